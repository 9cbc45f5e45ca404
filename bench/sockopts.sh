#!/usr/bin/env bash
# What each socket option of the server buys, A/B against the defaults, in one run.
#
#   bench/sockopts.sh              every variant below, ROUNDS rounds, interleaved
#   VARIANTS="base nodelay-off" bench/sockopts.sh
#
# For each variant (a set of server flags) and each round it measures, on loopback:
#   cpu    server CPU microseconds per shake and the driver's p50/p99 at CPU_RATE shakes/s
#          over CPU_USERS users (drive.c, open loop, latency from the scheduled time);
#   idle   with MEM_USERS users logged in and idle: server RSS per user, and the kernel's
#          socket buffer memory per connection (both loopback ends): growth of
#          /proc/net/sockstat TCP "mem" pages, divided by the users. That is the part of
#          the kernel's cost a socket option can change; the socket objects themselves
#          (a few KB of slab per socket, bench/README.md) are the same for every
#          variant, and slab deltas are blurred by objects freed and reused across runs;
#   storm  STORM_USERS users connecting as fast as the load generator can
#          (--connect-rate 1e6): seconds until all are logged in, and the growth of
#          ListenOverflows / ListenDrops in /proc/net/netstat.
# Variants run one after the other inside a round, and rounds repeat, so every variant
# meets the same machine; the table gives the median of the rounds and their range.
# The server gets one worker on CPU 0 and the driver CPU 1 (as BENCH_PIN=1 in
# compare.sh), except the steering variant, which needs two workers (CPUs 0,1).
#
# Needs gcc, curl and bench/yardsticks/drive.c (BENCH_SRC). Everything runs on 127.0.0.1
# and stops by itself; no sysctl is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${BENCH_SRC:-bench/yardsticks}
OUT=${BENCH_OUT:-target/bench/sockopts}
PORT=${BENCH_PORT:-22025}
CTL=${BENCH_CTL:-22989}
ROUNDS=${ROUNDS:-3}
CPU_RATE=${CPU_RATE:-20000} CPU_USERS=${CPU_USERS:-10000} CPU_SECS=${CPU_SECS:-12}
MEM_USERS=${MEM_USERS:-10000}
STORM_USERS=${STORM_USERS:-15000}
VARIANTS=${VARIANTS:-"base nodelay-off busy-poll defer-accept sock-buf backlog-128 steer base-2w"}
mkdir -p "$OUT"
TCK=$(getconf CLK_TCK)

flags_of() {
  case "$1" in
    base) echo "--cores 0" ;;
    nodelay-off) echo "--cores 0 --nodelay false" ;;
    busy-poll) echo "--cores 0 --busy-poll 50" ;;
    defer-accept) echo "--cores 0 --defer-accept 5" ;;
    sock-buf) echo "--cores 0 --sock-buf 4096" ;;
    backlog-128) echo "--cores 0 --backlog 128" ;;
    steer) echo "--cores 0,1 --steer-incoming-cpu" ;;
    base-2w) echo "--cores 0,1" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
driver_cpu() { case "$1" in steer|base-2w) echo "0,1" ;; *) echo 1 ;; esac; }

[ -f "$SRC/drive.c" ] || { echo "no $SRC/drive.c: set BENCH_SRC to the folder with drive.c" >&2; exit 2; }
gcc -O2 -o "$OUT/drive" "$SRC/drive.c"
cargo build --release -q --workspace --bins

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sock_pages() { awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }
netstat_field() { # netstat_field NAME: value of TcpExt NAME in /proc/net/netstat
  awk -v f="$1" '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else for (i = 1; i <= NF; i++) if (n[i] == f) print $i }' /proc/net/netstat
}
logged_in() { curl -s "127.0.0.1:$CTL/stats" | sed -E 's/.*"logged_in":([0-9]+).*/\1/'; }
shakes() { curl -s "127.0.0.1:$CTL/stats" | sed -E 's/.*"requests":\{[^}]*"shake":([0-9]+).*/\1/'; }

start_server() { # start_server VARIANT [extra flags]
  local v=$1; shift
  rm -f "$OUT/ready.json"
  # shellcheck disable=SC2046
  target/release/redpacket-server --listen 127.0.0.1:$PORT --control 127.0.0.1:$CTL \
    --stats-out off --ready-file "$OUT/ready.json" $(flags_of "$v") "$@" 2>"$OUT/server.log" &
  SPID=$!
  for _ in $(seq 100); do [ -s "$OUT/ready.json" ] && return 0; sleep 0.05; done
  echo "server did not start; see $OUT/server.log" >&2; exit 1
}
stop_server() { kill -TERM "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }
trap 'kill -TERM $SPID 2>/dev/null || true' EXIT
SPID=

cpu_point() { # -> "us_per_shake p50 p99"
  local v=$1
  start_server "$v" --max-qps 10000000
  taskset -c "$(driver_cpu "$v")" "$OUT/drive" 127.0.0.1 $PORT "$CPU_USERS" "$CPU_RATE" "$CPU_SECS" >"$OUT/cpu-$v.json" &
  local d=$!
  sleep 4
  local c0 n0 c1 n1
  c0=$(cpu_ticks "$SPID"); n0=$(shakes)
  sleep $((CPU_SECS - 5))
  c1=$(cpu_ticks "$SPID"); n1=$(shakes)
  wait $d || true
  stop_server
  local us
  us=$(awk -v c=$((c1 - c0)) -v n=$((n1 - n0)) -v t="$TCK" 'BEGIN { if (n > 0) printf "%.2f", c / t * 1e6 / n; else print "nan" }')
  sed -E "s/.*\"p50_ms\":([0-9.]+),\"p99_ms\":([0-9.]+).*/$us \\1 \\2/" "$OUT/cpu-$v.json"
}

idle_point() { # -> "rss_bytes_per_user kernel_buffer_bytes_per_conn"
  local v=$1 users=$MEM_USERS
  start_server "$v"
  sleep 0.5
  local r0 p0
  r0=$(rss_kib "$SPID"); p0=$(sock_pages)
  # One shake a second in all: every user logs in and answers once, then idles.
  taskset -c "$(driver_cpu "$v")" "$OUT/drive" 127.0.0.1 $PORT "$users" 1 25 >"$OUT/idle-$v.json" &
  local d=$!
  for _ in $(seq 300); do
    sleep 0.2
    [ "$(logged_in)" = "$users" ] && break
  done
  sleep 12 # past the login deadline: the bookkeeping of the login storm is gone
  local r1 p1
  r1=$(rss_kib "$SPID"); p1=$(sock_pages)
  kill "$d" 2>/dev/null || true; wait "$d" 2>/dev/null || true
  stop_server
  awk -v r=$((r1 - r0)) -v p=$((p1 - p0)) -v u="$users" \
    'BEGIN { printf "%d %d\n", r * 1024 / u, p * 4096 / u }'
}

storm_point() { # -> "seconds_to_log_in listen_overflows listen_drops"
  local v=$1
  start_server "$v"
  local o0 d0 o1 d1
  o0=$(netstat_field ListenOverflows); d0=$(netstat_field ListenDrops)
  target/release/redpacket-loadgen run --server 127.0.0.1:$PORT --users "$STORM_USERS" \
    --connect-rate 1000000 --phase idle:1:1s --threads 1 --no-pin --quiet --no-sample-host \
    --no-money-check --out "$OUT/storm-$v" >/dev/null 2>"$OUT/storm-$v.log" || true
  o1=$(netstat_field ListenOverflows); d1=$(netstat_field ListenDrops)
  stop_server
  local s
  s=$(sed -nE 's/.*"connect_s": *([0-9.]+).*/\1/p' "$OUT/storm-$v/summary.json" | head -n1)
  echo "${s:-nan} $((o1 - o0)) $((d1 - d0))"
}

declare -A R
for round in $(seq "$ROUNDS"); do
  for v in $VARIANTS; do
    R[$v,cpu,$round]=$(cpu_point "$v")
    R[$v,idle,$round]=$(idle_point "$v")
    R[$v,storm,$round]=$(storm_point "$v")
    echo "round $round $v: cpu(us p50 p99) ${R[$v,cpu,$round]} | idle(rss/user sockbuf/conn) ${R[$v,idle,$round]} | storm(s overflows drops) ${R[$v,storm,$round]}" >&2
  done
done

# median (range) of column COL of every round's KIND for variant V
med() {
  local v=$1 kind=$2 col=$3 vals=() r
  for r in $(seq "$ROUNDS"); do vals+=("$(echo "${R[$v,$kind,$r]}" | awk -v c="$col" '{print $c}')"); done
  printf '%s\n' "${vals[@]}" | sort -g | awk '{a[NR] = $1} END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%g (%g-%g)", m, a[1], a[NR] }'
}

echo
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r); rounds: $ROUNDS; median (min-max)"
printf '| %-13s | %-18s | %-18s | %-18s | %-16s | %-18s | %-16s | %-14s |\n' variant "CPU us/shake" "p50 ms" "p99 ms" "RSS B/user" "sock buf B/conn" "storm s" "overflows"
printf '|%s|\n' "---------------|--------------------|--------------------|--------------------|------------------|--------------------|------------------|----------------"
for v in $VARIANTS; do
  printf '| %-13s | %-18s | %-18s | %-18s | %-16s | %-18s | %-16s | %-14s |\n' "$v" \
    "$(med "$v" cpu 1)" "$(med "$v" cpu 2)" "$(med "$v" cpu 3)" \
    "$(med "$v" idle 1)" "$(med "$v" idle 2)" "$(med "$v" storm 1)" "$(med "$v" storm 2)"
done
echo "cpu: $CPU_RATE shakes/s over $CPU_USERS users; idle: $MEM_USERS users; storm: $STORM_USERS users at --connect-rate 1e6"
for v in $VARIANTS; do echo "$v = $(flags_of "$v")"; done

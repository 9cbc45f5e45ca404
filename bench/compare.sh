#!/usr/bin/env bash
# Measures redpacket-server against the floor (the least work any server can do for
# this protocol), on this machine, in one run, with the neutral open-loop driver.
#
#   bench/compare.sh memory   RSS per idle logged-in user (19 000 users)
#   bench/compare.sh cpu      CPU microseconds per shake at a fixed rate, server vs floor
#   bench/compare.sh rate     highest rate each sustains with p99 <= 5 ms
#   bench/compare.sh all
#
# BENCH_PIN=1 gives the server (one worker) and the floor (one thread) CPU 0 and the
# driver CPU 1, so they stop competing for cores: per-core figures, less noise.
#
# BASE_BIN=PATH also measures a second server binary (e.g. a build of an earlier
# commit) in the same run, interleaved with this one at every step ("base" beside
# "server"), so a before/after comparison meets the same machine. SERVER_BIN=PATH
# measures that binary instead of building target/release/redpacket-server.
#
# Needs gcc and the yardsticks floor.c and drive.c (BENCH_SRC, default bench/yardsticks).
# Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${BENCH_SRC:-bench/yardsticks}
OUT=${BENCH_OUT:-target/bench}
PORT=${BENCH_PORT:-21025}
CTL=${BENCH_CTL:-21989}
mkdir -p "$OUT"
TCK=$(getconf CLK_TCK)
if [ "${BENCH_PIN:-0}" = 1 ]; then
  SERVER_PIN=(--cores 0); FLOOR_THREADS=1; DRIVE=(taskset -c 1 "$OUT/drive")
else
  SERVER_PIN=(); FLOOR_THREADS=""; DRIVE=("$OUT/drive")
fi

build() {
  [ -f "$SRC/floor.c" ] || { echo "no $SRC/floor.c: set BENCH_SRC to the folder with floor.c and drive.c" >&2; exit 2; }
  gcc -O2 -o "$OUT/floor" "$SRC/floor.c" -lpthread
  gcc -O2 -o "$OUT/drive" "$SRC/drive.c"
  if [ -z "${SERVER_BIN:-}" ]; then cargo build --release -q --bin redpacket-server; fi
  for b in "${SERVER_BIN:-target/release/redpacket-server}" ${BASE_BIN:+"$BASE_BIN"}; do
    [ -x "$b" ] || { echo "no server binary $b" >&2; exit 2; }
  done
}
# The servers measured: "server" (this build or SERVER_BIN), and "base" when BASE_BIN is set.
SERVERS=(${BASE_BIN:+base} server)
bin_of() { if [ "$1" = base ]; then echo "$BASE_BIN"; else echo "${SERVER_BIN:-target/release/redpacket-server}"; fi; }
BIN=$(bin_of server)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

start_server() {
  rm -f "$OUT/ready.json"
  "$BIN" --listen 127.0.0.1:$PORT --control 127.0.0.1:$CTL \
    --stats-out off --ready-file "$OUT/ready.json" "${SERVER_PIN[@]}" "$@" 2>"$OUT/server.log" &
  SPID=$!
  for _ in $(seq 100); do [ -s "$OUT/ready.json" ] && return 0; sleep 0.05; done
  echo "server did not start; see $OUT/server.log" >&2; exit 1
}
stop_server() { kill -TERM "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }
server_shakes() { curl -s "127.0.0.1:$CTL/stats" | sed -E 's/.*"requests":\{[^}]*"shake":([0-9]+).*/\1/'; }

start_floor() {
  "$OUT/floor" $PORT $FLOOR_THREADS >"$OUT/floor.out" 2>&1 &
  FPID=$!
  sleep 0.3
}
stop_floor() { kill "$FPID" 2>/dev/null || true; wait "$FPID" 2>/dev/null || true; }
floor_shakes() { tail -n1 "$OUT/floor.out" | sed -E 's/.*"shake":([0-9]+).*/\1/'; }

memory() {
  local v
  for v in "${SERVERS[@]}"; do BIN=$(bin_of "$v"); memory_of "$v"; done
}

memory_of() {
  local name=$1 users=${MEM_USERS:-19000}
  start_server
  sleep 0.5
  local before; before=$(rss_kib $SPID)
  # drive logs every user in, then idles them (one shake a second) for a while.
  "${DRIVE[@]}" 127.0.0.1 $PORT "$users" 1 20 >"$OUT/mem-drive.json" &
  local d=$!
  for _ in $(seq 200); do
    sleep 0.2
    n=$(curl -s "127.0.0.1:$CTL/stats" | sed -E 's/.*"logged_in":([0-9]+).*/\1/')
    [ "$n" = "$users" ] && break
  done
  sleep 2
  local fresh; fresh=$(rss_kib $SPID)
  # Past the login deadline (10 s) the bookkeeping of the login storm is gone.
  sleep 10
  local idle; idle=$(rss_kib $SPID)
  wait $d || true
  stop_server
  echo "memory ($name): $users logged-in users: RSS ${before} KiB at start;" \
       "${fresh} KiB 2 s after they logged in ($(( (fresh - before) * 1024 / users )) bytes per user);" \
       "${idle} KiB once idle ($(( (idle - before) * 1024 / users )) bytes per user)"
}

# measure NAME PID COUNTER_FN RATE USERS SECONDS: CPU per request over the middle window.
measure() {
  local name=$1 pid=$2 counter=$3 rate=$4 users=$5 secs=$6
  "${DRIVE[@]}" 127.0.0.1 $PORT "$users" "$rate" "$secs" >"$OUT/$name-drive.json" &
  local d=$!
  sleep 4  # connect, log in, reach steady state
  local c0 n0; c0=$(cpu_ticks "$pid"); n0=$($counter)
  sleep $((secs - 5))
  local c1 n1; c1=$(cpu_ticks "$pid"); n1=$($counter)
  wait $d || true
  local us; us=$(awk -v c=$((c1 - c0)) -v n=$((n1 - n0)) -v t="$TCK" 'BEGIN { if (n > 0) printf "%.2f", c / t * 1e6 / n; else print "nan" }')
  echo "$name: $((n1 - n0)) shakes in the window, ${us} us CPU per shake; driver: $(cat "$OUT/$name-drive.json")"
  eval "${name}_US=$us"
}

cpu() {
  local rate=${CPU_RATE:-20000} users=${CPU_USERS:-10000} secs=${CPU_SECS:-14}
  local v
  start_floor;  measure floor "$FPID" floor_shakes "$rate" "$users" "$secs"; stop_floor
  for v in "${SERVERS[@]}"; do
    BIN=$(bin_of "$v")
    start_server; measure "$v" "$SPID" server_shakes "$rate" "$users" "$secs"; stop_server
  done
  for v in "${SERVERS[@]}"; do
    local us; us=$(eval echo "\$${v}_US")
    echo "cpu: at $rate shakes/s over $users users: $v ${us} us, floor ${floor_US} us per shake:" \
         "ratio $(awk -v a="$us" -v b="$floor_US" 'BEGIN { printf "%.2f", a / b }')"
  done
}

# One driver run against NAME at RATE; prints "p50 p99 p999 sent answered".
rate_point() {
  local name=$1 r=$2
  if [ "$name" = floor ]; then start_floor; else BIN=$(bin_of "$name"); start_server --max-qps 10000000; fi
  "${DRIVE[@]}" 127.0.0.1 $PORT "${RATE_USERS:-10000}" "$r" "${RATE_SECS:-6}" >"$OUT/rate-$name-$r.json"
  if [ "$name" = floor ]; then stop_floor; else stop_server; fi
  sed -E 's/.*"sent":([0-9]+),"answered":([0-9]+).*"p50_ms":([0-9.]+),"p99_ms":([0-9.]+),"p999_ms":([0-9.]+).*/\3 \4 \5 \1 \2/' "$OUT/rate-$name-$r.json"
}

# A sweep of rates, floor and server interleaved at each rate so both meet the same
# machine; prints the latency curve of each and the highest rate whose p99 <= 5 ms
# with every request answered (drive's histogram tops out at 40.96 ms).
rate() {
  local best_floor=0 r v
  declare -A best
  printf '%9s | %-28s' "rate/s" "floor p50/p99/p999 ms"
  for v in "${SERVERS[@]}"; do printf ' | %-28s' "$v p50/p99/p999 ms"; best[$v]=0; done
  echo
  ok() { awk -v p="$1" -v s="$2" -v a="$3" 'BEGIN { exit !(p <= 5 && a >= s * 0.999) }'; }
  for r in $(seq "${RATE_FROM:-10000}" "${RATE_STEP:-10000}" "${RATE_TO:-80000}"); do
    read -r fp50 fp99 fp999 fs fa <<<"$(rate_point floor "$r")"
    printf '%9s | %8s %8s %8s    ' "$r" "$fp50" "$fp99" "$fp999"
    if ok "$fp99" "$fs" "$fa"; then best_floor=$r; fi
    for v in "${SERVERS[@]}"; do
      read -r sp50 sp99 sp999 ss sa <<<"$(rate_point "$v" "$r")"
      printf ' | %8s %8s %8s    ' "$sp50" "$sp99" "$sp999"
      if ok "$sp99" "$ss" "$sa"; then best[$v]=$r; fi
    done
    echo
  done
  printf 'rate: highest rate with p99 <= 5 ms: floor %s/s' "$best_floor"
  for v in "${SERVERS[@]}"; do printf ', %s %s/s' "$v" "${best[$v]}"; done
  echo
}

build
case "${1:-all}" in
  memory) memory ;;
  cpu) cpu ;;
  rate) rate ;;
  all) memory; cpu; rate ;;
  *) echo "usage: $0 memory|cpu|rate|all" >&2; exit 2 ;;
esac

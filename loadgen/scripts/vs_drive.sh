#!/usr/bin/env bash
# The load generator against the neutral C driver (`drive.c` of the yardsticks), both
# pinned to CPU 1 against `floor.c` pinned to CPU 0 with one thread, in the same run,
# interleaved round by round so that each meets the same machine: CPU per shake
# (utime + stime growth of the driver's process over a steady window, divided by the
# shakes due in it) and the driver's own p50/p99.
#
# usage: [ROUNDS=3] [RATE=20000] [USERS=10000] [SECS=16] loadgen/scripts/vs_drive.sh [LOADGEN...]
# Each LOADGEN (default target/release/redpacket-loadgen) is measured in every round,
# so two builds (before / after a change) can be compared on the same machine.
# Needs gcc and floor.c, drive.c in BENCH_SRC (default bench/yardsticks). Everything runs
# on 127.0.0.1, pinned, and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${BENCH_SRC:-bench/yardsticks}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-20000}
USERS=${USERS:-10000}
SECS=${SECS:-16}
PORT=${PORT:-24701}
if [ $# -gt 0 ]; then LGS=("$@"); else LGS=(target/release/redpacket-loadgen); fi
for lg in "${LGS[@]}"; do [ -x "$lg" ] || { echo "no $lg" >&2; exit 2; }; done
[ -f "$SRC/floor.c" ] || { echo "no $SRC/floor.c: set BENCH_SRC" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
gcc -O2 -o "$TMP/floor" "$SRC/floor.c" -lpthread
gcc -O2 -o "$TMP/drive" "$SRC/drive.c"
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# window PID: CPU us per shake between 5 s and SECS-3 s after the start.
window() {
  local pid=$1 c0 c1 t0 t1
  sleep 5
  c0=$(ticks "$pid"); t0=$(date +%s.%N)
  sleep $((SECS - 8))
  c1=$(ticks "$pid"); t1=$(date +%s.%N)
  awk -v c=$((c1 - c0)) -v a="$t0" -v b="$t1" -v r="$RATE" -v t="$TCK" \
    'BEGIN { printf "%.2f", c / t * 1e6 / ((b - a) * r) }'
}

taskset -c 0 "$TMP/floor" "$PORT" 1 >"$TMP/floor.out" 2>&1 &
FPID=$!
sleep 0.3
for round in $(seq "$ROUNDS"); do
  taskset -c 1 "$TMP/drive" 127.0.0.1 "$PORT" "$USERS" "$RATE" "$SECS" >"$TMP/drive.json" &
  d=$!
  us=$(window $d)
  wait $d || true
  lat=$(sed -E 's/.*"p50_ms":([0-9.]+),"p99_ms":([0-9.]+).*/p50 \1 ms p99 \2 ms/' "$TMP/drive.json")
  echo "round $round drive.c: $us us/shake, $lat"
  for lg in "${LGS[@]}"; do
    rm -rf "$TMP/lg"
    taskset -c 1 "$lg" run --users "0..$USERS" --server "127.0.0.1:$PORT" \
      --phase "steady:$RATE:$((SECS - 2))s" --send-rate 0 --threads 1 --quiet \
      --no-money-check --no-sample-host --out "$TMP/lg" >/dev/null &
    l=$!
    us=$(window $l)
    wait $l || true
    lat=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["phases"][0]["latency_ms"]; print("p50 %s ms p99 %s ms" % (p["p50"], p["p99"]))' "$TMP/lg/summary.json" || echo "no summary")
    echo "round $round $lg: $us us/shake, $lat"
  done
done
kill "$FPID"; wait "$FPID" 2>/dev/null || true

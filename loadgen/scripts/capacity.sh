#!/usr/bin/env bash
# What one client core carries: the load generator alone on CPU 1 (one worker thread)
# against `floor.c` alone on CPU 0 (one thread), USERS users, each rate of RATES for
# SECS seconds: the load generator's CPU use (utime + stime over the phase's steady part,
# as a share of one core), CPU per shake, and the phase's p50 / p99 / p99.9 from its
# summary. Then the same users idle (rate 0): what holding them costs.
# Then SHARED=1 adds the default layout on a box shared with the server: floor with
# one thread per CPU, unpinned, and the load generator with its default (one pinned
# worker per CPU) against `--threads 1` unpinned, at the first rate.
#
# usage: [USERS=10000] [RATES="20000 40000 60000"] [SECS=14] [SHARED=1] loadgen/scripts/capacity.sh [LOADGEN]
# Needs gcc and floor.c in BENCH_SRC (default bench/yardsticks). Everything runs on
# 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${BENCH_SRC:-bench/yardsticks}
USERS=${USERS:-10000}
RATES=${RATES:-20000 40000 60000}
SECS=${SECS:-14}
PORT=${PORT:-24711}
LG=${1:-target/release/redpacket-loadgen}
[ -x "$LG" ] || { echo "no $LG" >&2; exit 2; }
[ -f "$SRC/floor.c" ] || { echo "no $SRC/floor.c: set BENCH_SRC" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
gcc -O2 -o "$TMP/floor" "$SRC/floor.c" -lpthread
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# one LABEL RATE PREFIX... -- ARGS...: runs the load generator (under PREFIX) at RATE,
# prints its CPU and latency.
one() {
  local label=$1 rate=$2; shift 2
  local prefix=()
  while [ "$1" != -- ]; do prefix+=("$1"); shift; done
  shift
  rm -rf "$TMP/lg"
  "${prefix[@]}" "$LG" run --users "0..$USERS" --server "127.0.0.1:$PORT" \
    --phase "p:$rate:${SECS}s" --send-rate 0 --quiet \
    --no-money-check --no-sample-host --out "$TMP/lg" "$@" >/dev/null &
  local l=$! c0 c1 t0 t1
  sleep 4
  c0=$(ticks $l); t0=$(date +%s.%N)
  sleep $((SECS - 4))
  c1=$(ticks $l); t1=$(date +%s.%N)
  wait $l || true
  python3 - "$TMP/lg/summary.json" "$label" "$rate" "$((c1 - c0))" "$t0" "$t1" "$TCK" <<'EOF'
import json, sys
path, label, rate, ticks, t0, t1, tck = sys.argv[1:]
p = json.load(open(path))["phases"][0]
secs = float(t1) - float(t0)
cpu = int(ticks) / int(tck)
share = cpu / secs
per = cpu * 1e6 / (secs * float(rate)) if float(rate) > 0 else float("nan")
l = p["latency_ms"]
print(f"{label}: {rate}/s target, {p['achieved_qps']}/s sent, errors {p['errors']}, timeouts {p['timeouts']}: "
      f"CPU {share * 100:.1f} % of a core, {per:.2f} us per shake; "
      f"p50 {l['p50']} p99 {l['p99']} p99.9 {l['p999']} max {l['max']} ms")
EOF
}

taskset -c 0 "$TMP/floor" "$PORT" 1 >"$TMP/floor.out" 2>&1 &
FPID=$!
sleep 0.3
for r in $RATES; do
  one "pinned" "$r" taskset -c 1 -- --threads 1
done
one "pinned, idle" 0 taskset -c 1 -- --threads 1
kill "$FPID"; wait "$FPID" 2>/dev/null || true

if [ "${SHARED:-0}" = 1 ]; then
  r=${RATES%% *}
  "$TMP/floor" "$PORT" >"$TMP/floor.out" 2>&1 &
  FPID=$!
  sleep 0.3
  one "shared box, default threads (one pinned per CPU)" "$r" env --
  one "shared box, --threads 1 --no-pin" "$r" env -- --threads 1 --no-pin
  kill "$FPID"; wait "$FPID" 2>/dev/null || true
fi

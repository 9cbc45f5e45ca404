#!/usr/bin/env bash
# Measures what the load generator costs against what the server it drives costs, on
# loopback: CPU per shake request (utime+stime growth in /proc/PID/stat over a steady
# window, divided by the requests answered in it) and memory per connected user (VmRSS
# with USERS connected minus VmRSS with 100, divided by the difference).
# usage: [TICK=500us] loadgen/scripts/cost.sh [USERS] [RATE] [SERVER_PROGRAM...]
# TICK is the load generator's --tick (0 = wake for every request and answer).
# Default server: redpacket-server beside the load generator. Every address is
# 127.0.0.1; every run is bounded (a phase of 24 s).
set -euo pipefail
USERS=${1:-10000}
RATE=${2:-10000}
shift 2 || true
LG=${LOADGEN:-${CARGO_TARGET_DIR:-target}/release/redpacket-loadgen}
[ -x "$LG" ] || { echo "no $LG: cargo build --release -p redpacket-loadgen (or set LOADGEN)" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

SRV=$(dirname "$LG")/redpacket-server
if [ $# -gt 0 ]; then SERVER=("$@"); else
  [ -x "$SRV" ] || { echo "no $SRV: cargo build --release --bin redpacket-server" >&2; exit 2; }
  SERVER=("$SRV")
fi
"${SERVER[@]}" --listen 127.0.0.1:0 --control 127.0.0.1:0 --stats-out off \
  --ready-file "$TMP/ready.json" 2>"$TMP/server.log" &
SPID=$!
for _ in $(seq 300); do [ -s "$TMP/ready.json" ] && break; sleep 0.1; done
[ -s "$TMP/ready.json" ] || { echo "the server did not start:" >&2; cat "$TMP/server.log" >&2; exit 1; }
LISTEN=$(sed 's/.*"listen":"\([^"]*\)".*/\1/' "$TMP/ready.json")

# Memory: 100 users, then USERS users, idle (rate 0).
rss_with() {
  "$LG" run --users "0..$1" --server "$LISTEN" --phase "idle:0:6s" --send-rate 0 --threads 1 \
    --quiet --no-money-check --out "$TMP/mem$1" >/dev/null &
  local pid=$!
  sleep 5
  rss_kib $pid
  wait $pid || true
}
R0=$(rss_with 100)
R1=$(rss_with "$USERS")
echo "loadgen memory: VmRSS $R0 KiB with 100 users, $R1 KiB with $USERS users:" \
  "$(( (R1 - R0) * 1024 / (USERS - 100) )) bytes per user"

# CPU: USERS users at RATE shakes/s; window from 8 s to 20 s after start.
"$LG" run --users "0..$USERS" --server "$LISTEN" --phase "steady:$RATE:24s" --send-rate 0 \
  --threads 1 --tick ${TICK:-500us} --quiet --no-money-check --out "$TMP/cpu" >"$TMP/cpu.txt" &
LPID=$!
sleep 8
L0=$(ticks $LPID); S0=$(ticks $SPID); T0=$(date +%s.%N)
sleep 12
L1=$(ticks $LPID); S1=$(ticks $SPID); T1=$(date +%s.%N)
wait $LPID || true
REQS=$(awk -v a="$T0" -v b="$T1" -v r="$RATE" 'BEGIN {printf "%d", (b - a) * r}')
us() { awk -v d="$1" -v n="$REQS" -v t="$TCK" 'BEGIN {printf "%.2f", d / t * 1e6 / n}'; }
echo "CPU per shake over $REQS requests at $RATE/s: loadgen $(us $((L1 - L0))) us," \
  "server $(us $((S1 - S0))) us"
grep -E "^(phase|steady)" "$TMP/cpu.txt"
kill -TERM $SPID; wait $SPID 2>/dev/null || true

#!/usr/bin/env bash
# What idle users cost: a server and a load generator holding USERS logged-in users
# (default 10 000) that ask nothing, measured over 10 s: wake-ups per second of each
# thread (voluntary context switches, /proc/PID/task/*/status) and the cores each
# program keeps busy (utime + stime). A million idle users should cost nearly nothing:
# the kernel wakes no one for an idle socket.
#
#   bench/idle.sh                 this build (target/release)
#   BASE_DIR=DIR bench/idle.sh    also the binaries of DIR (an earlier build), same run
#
# Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-10000}
SECONDS_MEASURED=${IDLE_SECONDS:-10}
PORT=${BENCH_PORT:-21125}
NEW=${BIN_DIR:-target/release}
[ -n "${BIN_DIR:-}" ] || cargo build --release -q --bin redpacket-server --bin redpacket-loadgen
ulimit -n "$(ulimit -Hn)"
TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

# Per thread of the given pids: "pid comm voluntary-switches cpu-ticks".
snap() {
  local p t
  for p in "$@"; do
    for t in /proc/"$p"/task/*; do
      printf '%s %s %s %s\n' "$p" "$(cat "$t/comm")" \
        "$(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status")" "$(awk '{print $14 + $15}' "$t/stat")"
    done
  done 2>/dev/null
}

# measure LABEL DIR: one server and one load generator of DIR, idle.
measure() {
  local label=$1 dir=$2 sp lp kids
  "$dir/redpacket-server" --listen "127.0.0.1:$PORT" --control "127.0.0.1:$((PORT + 1))" >"$WORK/server.log" 2>&1 &
  sp=$!
  for _ in $(seq 50); do grep -q "listening on" "$WORK/server.log" && break; sleep 0.1; done
  "$dir/redpacket-loadgen" run --users "0..$USERS" --server "127.0.0.1:$PORT" \
    --phase "idle:0:$((SECONDS_MEASURED + 30))s" --send-rate 0 --quiet --out "$WORK/lg-$label" >"$WORK/lg.log" 2>&1 &
  lp=$!
  # Until every user is logged in, then a second to settle.
  for _ in $(seq 300); do
    grep -q '"phase":"idle"' "$WORK/lg-$label/loadgen.jsonl" 2>/dev/null && break
    sleep 0.1
  done
  sleep 2
  kids=$(pgrep -P "$lp" | tr '\n' ' ' || true)
  # shellcheck disable=SC2086
  snap "$sp" "$lp" $kids >"$WORK/a"
  sleep "$SECONDS_MEASURED"
  # shellcheck disable=SC2086
  snap "$sp" "$lp" $kids >"$WORK/b"
  kill "$lp" "$sp" 2>/dev/null || true
  wait "$lp" "$sp" 2>/dev/null || true
  paste -d' ' "$WORK/a" "$WORK/b" | awk -v s="$SECONDS_MEASURED" -v tck="$TCK" -v sp="$sp" -v label="$label" -v users="$USERS" '
    $1 == $5 {
      who = ($1 == sp) ? "server" : "loadgen"
      w = ($7 - $3) / s; c = ($8 - $4) / tck / s
      W[who] += w; C[who] += c
      if (w >= 1) printf "  %-7s %-8s thread %-16s %8.1f wake-ups/s\n", label, who, $2, w
    }
    END {
      for (k in W) printf "%-7s %-8s %8.1f wake-ups/s  %.4f cores  (%d idle users)\n", label, k, W[k], C[k], users
    }' | sort
}

[ -z "${BASE_DIR:-}" ] || measure base "$BASE_DIR"
measure this "$NEW"

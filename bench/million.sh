#!/usr/bin/env bash
# The million-user demo on this box, as sysctl/server.conf tunes a server: its two
# global settings that a million loopback users meet (net.ipv4.tcp_mem, so connects
# do not stall near 800 000; net.core.netdev_max_backlog, so the loopback's per-CPU
# queue does not drop segments in a burst, each drop costing a retransmission of at
# least 200 ms) are raised for the run and put back after, also on failure or Ctrl-C.
# Prints what the kernel dropped and retransmitted during the run beside the report's
# summary lines.
#
#   bench/million.sh                      this build (target/release), 1 000 000 users
#   USERS=300000 bench/million.sh         fewer users (still many processes here)
#   NOFILE=6000 USERS=300000 bench/million.sh
#                                         a lower open-files limit: more, smaller
#                                         processes (52 + 51 here) for the same users
#   BIN_DIR=DIR bench/million.sh          the binaries of DIR
#   BACKLOG=1000 bench/million.sh         keep the kernel's default queue (to compare)
#   EHASH=0 bench/million.sh              share this host's TCP established table (to compare)
#   RESULTS=DIR bench/million.sh -- ...   results under DIR; demo flags after --
#
# The run has its own network namespace, made with an established-connection table
# of EHASH buckets (net.ipv4.tcp_child_ehash_entries; default: a power of two at least
# twice the users, as a million loopback users are two million sockets). The host's
# table is sized at boot (262 144 buckets on a 24 GiB VM): two million sockets in it are
# chains of 8, walked for every segment (10 % of all CPU at 30 000 shakes/s). On a real
# server the same is the boot parameter thash_entries (sysctl/README.md).
#
# Needs root (sysctl -w, unshare). Everything runs on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-1000000}
NOFILE=${NOFILE:-}
BIN=${BIN_DIR:-target/release}
RESULTS=${RESULTS:-results}
TCP_MEM=${TCP_MEM:-524288 1048576 2097152}
BACKLOG=${BACKLOG:-16384}
if [ -z "${EHASH:-}" ]; then
  EHASH=1024
  while [ "$EHASH" -lt $((2 * USERS)) ]; do EHASH=$((EHASH * 2)); done
fi
[ "${1:-}" = "--" ] && shift
[ -n "${BIN_DIR:-}" ] || [ -n "${MILLION_NETNS:-}" ] || cargo build --release -q --bin redpacket-server --bin redpacket-loadgen
if [ "$(id -u)" != 0 ]; then
  echo "bench/million.sh: needs root to raise net.ipv4.tcp_mem and net.core.netdev_max_backlog for the run" >&2
  exit 2
fi

# Segments the loopback queue dropped (second column of softnet_stat, per CPU, hex).
drops() {
  local s=0 x
  while read -r _ x _; do s=$((s + 16#$x)); done </proc/net/softnet_stat
  echo "$s"
}
# A counter of /proc/net/snmp or /proc/net/netstat (lines in pairs: names, values).
tcp() {
  awk -v k="$1" '{ if (seen[$1]++ % 2 == 0) { for (i = 2; i <= NF; i++) name[i] = $i }
                   else { for (i = 2; i <= NF; i++) if (name[i] == k) print $i } }' \
    /proc/net/snmp /proc/net/netstat
}
# The demo and the kernel's counters around it (inside the run's namespace, if any).
measured() {
  local before after status=0
  before=("$(drops)" "$(tcp RetransSegs)" "$(tcp TCPTimeouts)" "$(tcp TCPLossProbes)")
  # The demo lays the users out by the hard limit: NOFILE lowers it (only lowering is
  # allowed without CAP_SYS_RESOURCE), the one way to vary the processes, not the users.
  ulimit -n "${NOFILE:-$(ulimit -Hn)}"
  "$BIN/redpacket-loadgen" demo --users "$USERS" --results "$RESULTS" \
    --server-bin "$BIN/redpacket-server" "$@" || status=$?
  after=("$(drops)" "$(tcp RetransSegs)" "$(tcp TCPTimeouts)" "$(tcp TCPLossProbes)")
  echo "bench/million.sh: during the run the kernel dropped $((after[0] - before[0])) segments on the loopback queue" \
    "(netdev_max_backlog $BACKLOG); TCP retransmitted $((after[1] - before[1])) segments," \
    "$((after[2] - before[2])) retransmission timeouts, $((after[3] - before[3])) tail-loss probes;" \
    "established table $(sysctl -n net.ipv4.tcp_ehash_entries | tr -d -) buckets"
  return "$status"
}

if [ "${MILLION_NETNS:-}" = inside ]; then
  # Re-run by the part below in a fresh namespace: its loopback starts down.
  ip link set dev lo up
  measured "$@"
  exit
fi

old_mem=$(sysctl -n net.ipv4.tcp_mem | tr -s '\t ' ' ')
old_backlog=$(sysctl -n net.core.netdev_max_backlog)
old_child=$(sysctl -n net.ipv4.tcp_child_ehash_entries)
# shellcheck disable=SC2317 # run by the trap
restore() {
  sysctl -qw net.ipv4.tcp_mem="$old_mem" net.core.netdev_max_backlog="$old_backlog" \
    net.ipv4.tcp_child_ehash_entries="$old_child"
}
trap restore EXIT
sysctl -qw net.ipv4.tcp_mem="$TCP_MEM" net.core.netdev_max_backlog="$BACKLOG"

if [ "$EHASH" = 0 ]; then
  measured "$@"
else
  # Read when the namespace is made, so it is put back at once after.
  sysctl -qw net.ipv4.tcp_child_ehash_entries="$EHASH"
  MILLION_NETNS=inside unshare --net -- "$0" "$@" &
  pid=$!
  for _ in $(seq 100); do
    [ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
    sleep 0.05
  done
  sysctl -qw net.ipv4.tcp_child_ehash_entries="$old_child"
  wait "$pid"
fi

#!/usr/bin/env bash
# nic.sh: tune the server's network interface so each pinned worker CPU has its own
# queue: channels, RSS, IRQ affinity, RPS/RFS, XPS, rings, coalescing and the NAPI
# knobs. Prints one line per item (current -> wanted); changes only with --apply.
# Exit codes: 0 done (or nothing to change), 1 a change failed, 2 bad usage or no
# such interface.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: nic.sh [--apply] [--cores LIST] [options] INTERFACE

Tunes INTERFACE for redpacket-server's pinned workers: one queue per worker CPU,
each queue's interrupt on its CPU. Without --apply it only prints, one line per
item, "current -> wanted" (or "ok", or why the item is skipped on this device).

  --cores LIST            the server's worker CPUs, same syntax as the server's
                          --cores (e.g. 0-7 or 0-3,6). Default: every online CPU.
  --apply                 make the changes (root needed); otherwise a dry run.
  --ring N                RX and TX ring entries. Default: the device's maximum
                          (absorbs bursts of small packets).
  --rx-usecs N            fixed RX interrupt coalescing in microseconds, adaptive
                          off. Default: adaptive RX coalescing where the device has it.
  --defer-hard-irqs N     napi_defer_hard_irqs: NAPI polls that may find no work
                          before the interrupt is re-enabled (default 2).
  --gro-flush-timeout NS  gro_flush_timeout in nanoseconds: the timer that polls the
                          queue while its interrupt stays off (default 20000).
  -h, --help              this help.

Items: channels (queues = worker CPUs, up to the device's maximum), RSS
indirection (spread evenly over those queues), IRQ affinity (queue i's interrupt
on the i-th worker CPU; irqbalance must not run), RPS and RFS (only when the
device has fewer RX queues than worker CPUs: software spreading to the worker
CPUs, and steering each flow to the CPU whose worker reads it), XPS (each worker
CPU sends on its own TX queue), ring sizes, coalescing, napi_defer_hard_irqs and
gro_flush_timeout, and IRQ suspension (irq_suspend_timeout, per NAPI over netlink,
kernel 6.13 and later): reported only, since it acts for applications that busy
poll with epoll's prefer_busy_poll, which redpacket-server does not.
EOF
}

APPLY=0
CORES_ARG=""
RING=""
RX_USECS=""
DEFER=2
GRO_NS=20000
IFACE=""
FAILED=0
SYS=/sys/class/net
RFS_ENTRIES=32768

die_usage() {
  echo "nic.sh: $1" >&2
  echo "Try: nic.sh --help" >&2
  exit 2
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --apply) APPLY=1 ;;
    --cores | --ring | --rx-usecs | --defer-hard-irqs | --gro-flush-timeout)
      [ $# -ge 2 ] || die_usage "$1 needs a value"
      is_uint "$2" || [ "$1" = --cores ] || die_usage "$1 takes a whole number, not '$2'"
      case $1 in
        --cores) CORES_ARG=$2 ;;
        --ring) RING=$2 ;;
        --rx-usecs) RX_USECS=$2 ;;
        --defer-hard-irqs) DEFER=$2 ;;
        --gro-flush-timeout) GRO_NS=$2 ;;
      esac
      shift
      ;;
    -*) die_usage "unknown option '$1'" ;;
    *)
      [ -z "$IFACE" ] || die_usage "one interface only (got '$IFACE' and '$1')"
      IFACE=$1
      ;;
  esac
  shift
done

ifaces=("$SYS"/*)
ifaces=("${ifaces[@]##*/}")
[ -n "$IFACE" ] || die_usage "which interface? (interfaces here: ${ifaces[*]})"
if [[ $IFACE == */* || $IFACE == . || $IFACE == .. || ! -e $SYS/$IFACE ]]; then
  echo "nic.sh: no interface '$IFACE'; interfaces here: ${ifaces[*]}" >&2
  exit 2
fi
DEV=$SYS/$IFACE

# --- CPU lists ---------------------------------------------------------------------
# expand "0-3,6" into "0 1 2 3 6"; exit 2 on a malformed list
expand_cpus() {
  local list=$1 part lo hi cpus=() parts=()
  [[ $list =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]] || return 1
  IFS=, read -ra parts <<<"$list"
  for part in "${parts[@]}"; do
    lo=${part%-*} hi=${part#*-}
    [ "$lo" -le "$hi" ] || return 1
    while [ "$lo" -le "$hi" ]; do cpus+=("$lo"); lo=$((lo + 1)); done
  done
  echo "${cpus[@]}"
}

online=$(cat /sys/devices/system/cpu/online)
if [ -n "$CORES_ARG" ]; then
  cores_str=$(expand_cpus "$CORES_ARG") || die_usage "--cores '$CORES_ARG' is not a CPU list such as 0-7 or 0-3,6"
else
  cores_str=$(expand_cpus "$online")
fi
read -ra CORES <<<"$cores_str"
for c in "${CORES[@]}"; do
  [ -e "/sys/devices/system/cpu/cpu$c" ] || die_usage "--cores: CPU $c does not exist (online: $online)"
done
NCORES=${#CORES[@]}

# hex bitmap of CPUs (as in rps_cpus/xps_cpus: 32-bit words, comma-separated)
cpus_to_mask() {
  local words=() c w i out=""
  for c in "$@"; do
    w=$((c / 32))
    while [ "${#words[@]}" -le "$w" ]; do words+=(0); done
    words[w]=$((words[w] | (1 << (c % 32))))
  done
  [ "${#words[@]}" -gt 0 ] || words=(0)
  for ((i = ${#words[@]} - 1; i >= 0; i--)); do
    out+=$(printf '%08x' "${words[i]}")
    [ "$i" -eq 0 ] || out+=,
  done
  echo "$out"
}

# a mask without commas and leading zeros, to compare two masks
norm_mask() {
  local m=${1//,/}
  while [[ $m == 0* ]]; do m=${m#0}; done
  echo "${m:-0}"
}

# --- reporting ---------------------------------------------------------------------
say() { printf '%-28s %s\n' "$1:" "$2"; }

# item current wanted apply-command...: print, and run the command with --apply
change() {
  local item=$1 cur=$2 want=$3
  shift 3
  if [ "$cur" = "$want" ]; then
    say "$item" "$cur (ok)"
    return 0
  fi
  say "$item" "$cur -> $want"
  if [ "$APPLY" -eq 1 ]; then
    if ! "$@" >/dev/null 2>&1; then
      say "$item" "FAILED to apply: $*"
      FAILED=1
    fi
  fi
}

skip() { say "$1" "skipped: $2"; }

# shellcheck disable=SC2317 # called through change()
write_file() { printf '%s\n' "$2" >"$1"; }

HAVE_ETHTOOL=1
command -v ethtool >/dev/null 2>&1 || HAVE_ETHTOOL=0
no_ethtool="ethtool is not installed (apt-get install ethtool)"

echo "interface $IFACE, worker CPUs ${CORES[*]} ($NCORES), $([ "$APPLY" -eq 1 ] && echo applying || echo 'dry run: nothing changed, --apply to change')"

# --- channels ----------------------------------------------------------------------
# ethtool -l prints the maximums, then the current values; the value of field $1 in
# section $2 (1 = maximums, 2 = current), or "n/a"
eth_field() { awk -v f="$1" -v s="$2" '/^Pre-set maximums/{sec=1} /^Current hardware/{sec=2} sec==s && $1==f":"{print $2; exit}'; }

rx_queues() { find "$DEV/queues" -maxdepth 1 -name 'rx-*' | wc -l; }
tx_queues() { find "$DEV/queues" -maxdepth 1 -name 'tx-*' | wc -l; }

if [ "$HAVE_ETHTOOL" -eq 0 ]; then
  skip channels "$no_ethtool"
elif ! chan=$(ethtool -l "$IFACE" 2>&1); then
  skip channels "the device has no channel settings (${chan##*: })"
else
  cmax=$(eth_field Combined 1 <<<"$chan") ccur=$(eth_field Combined 2 <<<"$chan")
  rmax=$(eth_field RX 1 <<<"$chan") rcur=$(eth_field RX 2 <<<"$chan")
  tmax=$(eth_field TX 1 <<<"$chan") tcur=$(eth_field TX 2 <<<"$chan")
  if is_uint "$cmax" && [ "$cmax" -gt 0 ]; then
    want=$((NCORES < cmax ? NCORES : cmax))
    change "channels (combined)" "$ccur" "$want" ethtool -L "$IFACE" combined "$want"
  elif is_uint "$rmax" && is_uint "$tmax"; then
    wr=$((NCORES < rmax ? NCORES : rmax)) wt=$((NCORES < tmax ? NCORES : tmax))
    change "channels (rx tx)" "$rcur $tcur" "$wr $wt" ethtool -L "$IFACE" rx "$wr" tx "$wt"
  else
    skip channels "the device reports no queue maximums"
  fi
fi
NRX=$(rx_queues)
NTX=$(tx_queues)
if [ "$APPLY" -eq 0 ]; then
  say queues "rx $NRX, tx $NTX now (the items below are for these; run again after channels change)"
else
  say queues "rx $NRX, tx $NTX"
fi
NQ=$((NRX < NCORES ? NRX : NCORES))

# --- RSS ---------------------------------------------------------------------------
if [ "$HAVE_ETHTOOL" -eq 0 ]; then
  skip "RSS indirection" "$no_ethtool"
elif ! rss=$(ethtool -x "$IFACE" 2>&1) || ! grep -q '^ *[0-9]*:' <<<"$rss"; then
  skip "RSS indirection" "the device has no RSS indirection table"
else
  used=$(awk '/^ *[0-9]+:/{for(i=2;i<=NF;i++) if(!seen[$i]++) n++} END{print n+0}' <<<"$rss")
  change "RSS indirection" "over $used queues" "over $NQ queues" ethtool -X "$IFACE" equal "$NQ"
fi

# --- IRQ affinity ------------------------------------------------------------------
# The device's queue interrupts: its MSI vectors (PCI), else /proc/interrupts lines
# named after the interface or the virtio device; config/async vectors are left alone.
queue_irqs() {
  local devname="" irqs=()
  [ -e "$DEV/device" ] && devname=$(basename "$(readlink -f "$DEV/device")")
  if [ -d "$DEV/device/msi_irqs" ]; then
    irqs=("$DEV"/device/msi_irqs/*)
    for i in "${irqs[@]##*/}"; do
      awk -v i="$i:" '$1 == i && $NF !~ /config|async|ctrl/ {print i, $NF}' /proc/interrupts
    done | sed 's/: / /'
  else
    awk -v a="$IFACE" -v b="$devname" '{n=$NF} (index(n, a "-") == 1 || (b != "" && index(n, b "-") == 1 && n ~ /input|output|rx|tx/)) {sub(":", "", $1); print $1, n}' /proc/interrupts
  fi
}

if [ ! -e "$DEV/device" ]; then
  skip "IRQ affinity" "a virtual device (no $DEV/device): no interrupts of its own"
else
  mapfile -t IRQS < <(queue_irqs)
  if [ "${#IRQS[@]}" -eq 0 ]; then
    skip "IRQ affinity" "no queue interrupts found for $IFACE in /proc/interrupts"
  else
    if pgrep -x irqbalance >/dev/null 2>&1; then
      say "IRQ affinity" "WARNING: irqbalance is running and will undo this; stop it: systemctl disable --now irqbalance"
    fi
    # queue q's interrupt (named ...input.q, ...TxRx-q, ...rx-q, ...comp q) on the
    # q-th worker CPU; a name without a queue number takes its position in the list
    n=0
    for line in "${IRQS[@]}"; do
      irq=${line%% *} name=${line#* }
      q=$n
      if [[ $name =~ (input|output|TxRx|rx|tx|comp)[-._]?([0-9]+) ]]; then q=${BASH_REMATCH[2]}; fi
      cpu=${CORES[$((q % NCORES))]}
      f=/proc/irq/$irq/smp_affinity_list
      cur=$(cat "$f" 2>/dev/null || echo "?")
      change "IRQ $irq ($name)" "$cur" "$cpu" write_file "$f" "$cpu"
      n=$((n + 1))
    done
  fi
fi

# --- RPS / RFS ---------------------------------------------------------------------
# With a hardware queue per worker CPU the NIC spreads flows itself (RSS): RPS and RFS
# off. With fewer RX queues than worker CPUs (a VM NIC, veth), RPS spreads the
# packets of each queue over the worker CPUs and RFS sends a flow's packets to the CPU
# whose worker reads its socket.
if [ "$NRX" -ge "$NCORES" ]; then
  rps_want=0 flow_want=0 entries_want=""
  why="off: as many RX queues as worker CPUs (the device spreads flows over them)"
else
  rps_want=$(cpus_to_mask "${CORES[@]}") flow_want=$((RFS_ENTRIES / NRX)) entries_want=$RFS_ENTRIES
  why="on: $NRX RX queue(s) for $NCORES worker CPUs"
fi
say "RPS/RFS" "$why"
for q in "$DEV"/queues/rx-*; do
  qn=${q##*/}
  if [ -w "$q/rps_cpus" ]; then
    cur=$(cat "$q/rps_cpus")
    if [ "$(norm_mask "$cur")" = "$(norm_mask "$rps_want")" ]; then
      say "RPS $qn" "$cur (ok)"
    else
      change "RPS $qn" "$cur" "$rps_want" write_file "$q/rps_cpus" "$rps_want"
    fi
  else
    skip "RPS $qn" "no writable rps_cpus (kernel without CONFIG_RPS?)"
  fi
  if [ -w "$q/rps_flow_cnt" ]; then
    change "RFS $qn flow_cnt" "$(cat "$q/rps_flow_cnt")" "$flow_want" write_file "$q/rps_flow_cnt" "$flow_want"
  else
    skip "RFS $qn flow_cnt" "no writable rps_flow_cnt"
  fi
done
if [ -z "$entries_want" ]; then
  say "RFS rps_sock_flow_entries" "left as it is (RFS is off on this interface)"
elif [ ! -e /proc/sys/net/core/rps_sock_flow_entries ]; then
  skip "RFS rps_sock_flow_entries" "a global sysctl, not visible in this network namespace: set it on the host"
else
  change "RFS rps_sock_flow_entries" "$(cat /proc/sys/net/core/rps_sock_flow_entries)" "$entries_want" \
    sysctl -q -w "net.core.rps_sock_flow_entries=$entries_want"
fi

# --- XPS ---------------------------------------------------------------------------
# TX queue t serves the worker CPUs t, t + NTX, ...: a worker sends on its own queue.
for ((t = 0; t < NTX; t++)); do
  f=$DEV/queues/tx-$t/xps_cpus
  mine=()
  for ((k = t; k < NCORES; k += NTX)); do mine+=("${CORES[k]}"); done
  if [ ! -w "$f" ]; then
    skip "XPS tx-$t" "no writable xps_cpus"
  elif [ "${#mine[@]}" -eq 0 ]; then
    say "XPS tx-$t" "$(cat "$f") (no worker CPU left for this queue: left as it is)"
  else
    want=$(cpus_to_mask "${mine[@]}")
    if ! cur=$(cat "$f" 2>/dev/null); then
      skip "XPS tx-$t" "xps_cpus cannot be read (the kernel has XPS only on multiqueue devices)"
    elif [ "$(norm_mask "$cur")" = "$(norm_mask "$want")" ]; then
      say "XPS tx-$t" "$cur (ok)"
    else
      change "XPS tx-$t" "$cur" "$want" write_file "$f" "$want"
    fi
  fi
done

# --- rings -------------------------------------------------------------------------
if [ "$HAVE_ETHTOOL" -eq 0 ]; then
  skip rings "$no_ethtool"
elif ! ring=$(ethtool -g "$IFACE" 2>&1); then
  skip rings "the device has no ring settings (${ring##*: })"
else
  rmax=$(eth_field RX 1 <<<"$ring") rcur=$(eth_field RX 2 <<<"$ring")
  tmax=$(eth_field TX 1 <<<"$ring") tcur=$(eth_field TX 2 <<<"$ring")
  if is_uint "$rmax" && is_uint "$tmax"; then
    wr=${RING:-$rmax} wt=${RING:-$tmax}
    wr=$((wr < rmax ? wr : rmax)) wt=$((wt < tmax ? wt : tmax))
    change "rings (rx tx)" "$rcur $tcur" "$wr $wt" ethtool -G "$IFACE" rx "$wr" tx "$wt"
  else
    skip rings "the device reports no ring maximums"
  fi
fi

# --- coalescing --------------------------------------------------------------------
if [ "$HAVE_ETHTOOL" -eq 0 ]; then
  skip coalescing "$no_ethtool"
elif ! coal=$(ethtool -c "$IFACE" 2>&1); then
  skip coalescing "the device has no coalescing settings (${coal##*: })"
else
  adaptive=$(awk '/^Adaptive RX:/{print $3; exit}' <<<"$coal")
  usecs=$(awk '$1=="rx-usecs:"{print $2; exit}' <<<"$coal")
  if [ -n "$RX_USECS" ]; then
    if is_uint "$usecs"; then
      cur="adaptive-rx ${adaptive:-n/a} rx-usecs $usecs"
      want="adaptive-rx off rx-usecs $RX_USECS"
      [ "$adaptive" = on ] || [ "$adaptive" = off ] || want="adaptive-rx ${adaptive:-n/a} rx-usecs $RX_USECS"
      if [ "$adaptive" = on ]; then
        change coalescing "$cur" "$want" ethtool -C "$IFACE" adaptive-rx off rx-usecs "$RX_USECS"
      else
        change coalescing "$cur" "$want" ethtool -C "$IFACE" rx-usecs "$RX_USECS"
      fi
    else
      skip coalescing "the device has no rx-usecs"
    fi
  elif [ "$adaptive" = on ] || [ "$adaptive" = off ]; then
    change "coalescing adaptive-rx" "$adaptive" on ethtool -C "$IFACE" adaptive-rx on
  else
    skip coalescing "the device has no adaptive RX coalescing (fixed: --rx-usecs N)"
  fi
fi

# --- NAPI --------------------------------------------------------------------------
for knob in napi_defer_hard_irqs gro_flush_timeout; do
  want=$DEFER
  [ "$knob" = gro_flush_timeout ] && want=$GRO_NS
  if [ -w "$DEV/$knob" ]; then
    change "$knob" "$(cat "$DEV/$knob")" "$want" write_file "$DEV/$knob" "$want"
  else
    skip "$knob" "not in this kernel ($DEV/$knob missing)"
  fi
done

# IRQ suspension: per-NAPI irq-suspend-timeout over the netdev netlink family
# (napi-set, 6.13 and later). Reported, not set: it acts only for an application
# that busy polls with epoll prefer_busy_poll.
kver=$(uname -r)
kmaj=${kver%%.*} kmin=${kver#*.}
kmin=${kmin%%[!0-9]*}
if [ "$kmaj" -gt 6 ] || { [ "$kmaj" -eq 6 ] && [ "$kmin" -ge 13 ]; }; then
  say irq_suspend_timeout "kernel $kver has it (per NAPI, netdev netlink napi-set); left as it is: only epoll prefer_busy_poll applications use it, and redpacket-server does not"
else
  skip irq_suspend_timeout "kernel $kver has no IRQ suspension (6.13 and later)"
fi

if [ "$FAILED" -ne 0 ]; then
  echo "some changes failed (FAILED lines above)" >&2
  exit 1
fi
exit 0

#!/usr/bin/env bash
# Tests of sysctl/: the conf files' annotations and scopes, the per-namespace keys
# applied and read back in a network namespace made here, the global keys checked for
# shape only (never applied), `check` before and after (when the binaries have it),
# the systemd units (systemd-analyze verify, and the units' command line run against a
# stub and the real server), and nic.sh on a veth pair. Leaves the host's sysctls as it
# found them (asserted at the end) and removes every namespace it made, also on failure.
#
# Run: bash sysctl/tests/tuning.sh   (root: namespaces; CI=true makes a missing
# prerequisite a failure;
# REDPACKET_BIN_DIR: where the binaries are, default target/debug, built if absent).
set -euo pipefail
cd "$(dirname "$0")/../.."
SYSCTL_DIR=sysctl
BIN_DIR=${REDPACKET_BIN_DIR:-target/debug}
TAG=rpt$$
NSES=()
TMP=$(mktemp -d)
PIDS=()
PASSES=0
FAILS=0

cleanup() {
  local p ns
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  # the namespaces this run made (named $TAG-*), also one made just before a failure
  for ns in "${NSES[@]}" $(ip netns list 2>/dev/null | awk -v t="$TAG-" 'index($1, t) == 1 {print $1}'); do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

pass() { PASSES=$((PASSES + 1)); echo "ok   $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL $*"; }
check() { # description command...: pass when the command succeeds
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
missing() { # a prerequisite is missing: a failure under CI=true, a loud skip outside
  if [ "${CI:-}" = true ]; then
    fail "prerequisite missing (CI=true): $1"
  else
    echo "SKIPPED (not run, not passed): $1" >&2
  fi
}

new_ns() { # a fresh network namespace with loopback up; its name on stdout
  local ns=$TAG-$1
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  echo "$ns"
}

# ---------------------------------------------------------------------------------
# Prerequisites
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v sysctl >/dev/null; then
  missing "root, ip (iproute2) and sysctl (procps) for network namespaces"
  echo "tuning tests: $PASSES passed, $FAILS failed (nothing else run)"
  [ "$FAILS" -eq 0 ]
  exit
fi

# The conf files' keys, and the host's value of each, before anything runs.
conf_keys() { awk '/^[a-z]/{print $1}' "$@" | sort -u; }
read_host() { # key: its host value with single spaces, or MISSING
  local f=/proc/sys/${1//.//}
  if [ -r "$f" ]; then tr -s ' \t' '  ' <"$f"; else echo MISSING; fi
}
SNAP_KEYS=$(conf_keys "$SYSCTL_DIR"/server.conf "$SYSCTL_DIR"/client.conf)
SNAP_KEYS+=$'\nnet.core.rps_sock_flow_entries\nnet.core.rmem_max\nnet.core.wmem_max'
snapshot() { local k; for k in $SNAP_KEYS; do echo "$k = $(read_host "$k")"; done; }
snapshot >"$TMP/host-before"

# ---------------------------------------------------------------------------------
# 1. The files' format: CONTRACT of the annotations (one per key, directly above it)
ANN='^# redpacket: scope=(netns|global) check=(at-least|at-most|equal|range|info)( scale=conn)? limits=[^ ].*$'
for role in server client; do
  f=$SYSCTL_DIR/$role.conf
  bad=$(awk -v ann="$ANN" '
    /^# redpacket: target-connections=[0-9]+$/ { if (!nkeys) header=1 }
    /^[a-z]/ {
      nkeys++
      if ($0 !~ /^[a-z0-9_.-]+ = [0-9]+( [0-9]+)*$/) print "bad key line: " $0
      if (prev !~ ann) print "no annotation directly above " $1
      if (seen[$1]++) print "twice: " $1
      if (prev ~ /check=range/ && split($0, w, " ") != 4) print "range needs two numbers: " $1
    }
    { prev = $0 }
    END { if (!header) print "no target-connections header before the first key"; if (!nkeys) print "no keys" }' "$f")
  check "$f: every key has its annotation, a value of numbers, and the file its target" test -z "$bad"
  [ -z "$bad" ] || echo "$bad"
done

# keys of a file with a given scope, as "key = value" lines
scoped() { awk -v s="scope=$2" '/^# redpacket: scope=/{sc=$3} /^[a-z]/{ if (sc == s) print; sc="" }' "$1"; }

# ---------------------------------------------------------------------------------
# 2. Scopes for real, and the per-namespace keys applied and read back
SCOPE_NS=$(new_ns scope)
NSES+=("$SCOPE_NS")
for role in server client; do
  f=$SYSCTL_DIR/$role.conf
  # global keys: present on the host with a value of the file's shape; in a namespace
  # either absent or read-only (else they would be per namespace, or leak to the host)
  while read -r key _ value; do
    p=/proc/sys/${key//.//}
    check "$role global $key exists on the host" test -r "$p"
    live=$(read_host "$key")
    check "$role global $key: host value '$live' has the shape of '$value'" \
      test "$(wc -w <<<"$live")" -eq "$(wc -w <<<"$value")"
    if [[ $key == net.* ]]; then
      if ip netns exec "$SCOPE_NS" test -e "$p"; then
        check "$role global $key is read-only in a namespace" \
          bash -c "! ip netns exec '$SCOPE_NS' test -w '$p'"
      else
        pass "$role global $key is absent from a namespace"
      fi
    fi
  done < <(scoped "$f" global)

  ns=$(new_ns "$role")
  NSES+=("$ns")
  scoped "$f" netns >"$TMP/$role-netns.conf"
  check "$role.conf has per-namespace keys" test -s "$TMP/$role-netns.conf"
  if ip netns exec "$ns" sysctl -q -p "$TMP/$role-netns.conf" 2>"$TMP/err"; then
    check "$role: sysctl -p of the per-namespace keys: no key rejected" test ! -s "$TMP/err"
  else
    fail "$role: sysctl -p of the per-namespace keys failed"
  fi
  [ ! -s "$TMP/err" ] || cat "$TMP/err"
  while read -r key _ value; do
    got=$(ip netns exec "$ns" sysctl -n "$key" 2>&1 | tr -s ' \t' '  ')
    check "$role netns $key reads back '$value' (got '$got')" test "$got" = "$value"
  done <"$TMP/$role-netns.conf"
done

# ---------------------------------------------------------------------------------
# 3. `check` before and after applying, when the binaries have it (CONTRACT --json)
if [ ! -x "$BIN_DIR/redpacket-server" ] && [ -z "${REDPACKET_BIN_DIR:-}" ] && command -v cargo >/dev/null; then
  cargo build --locked --quiet --bins
fi
json_item() { # file name field: the field of the item with that name, or MISSING
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["schema"] == 1, "schema"
hits = [i for i in d["items"] if i["name"] == sys.argv[2]]
print(str(hits[0][sys.argv[3]]).lower() if hits else "MISSING")' "$@"
}
json_top() { python3 -c 'import json, sys; print(str(json.load(open(sys.argv[1]))[sys.argv[2]]).lower())' "$@"; }

run_check() { # role ns key: check before and after applying the role's netns keys
  local role=$1 key=$2 bin args ns rc
  if [ "$role" = server ]; then
    bin=$BIN_DIR/redpacket-server args=(check --connections 1000000 --json)
  else
    bin=$BIN_DIR/redpacket-loadgen args=(check --users 60000 --json)
  fi
  ns=$(new_ns "check-$role")
  NSES+=("$ns")
  for when in before after; do
    if [ "$when" = after ]; then ip netns exec "$ns" sysctl -q -p "$TMP/$role-netns.conf"; fi
    rc=0
    ip netns exec "$ns" "$bin" "${args[@]}" >"$TMP/check-$role-$when.json" 2>"$TMP/check.err" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
      fail "$role check --json exited $rc: $(head -3 "$TMP/check.err")"
      continue
    fi
    if ! json_top "$TMP/check-$role-$when.json" ok >/dev/null 2>&1; then
      fail "$role check --json: not one JSON object of schema 1"
      continue
    fi
    want_ok=false
    [ "$rc" -eq 0 ] && want_ok=true
    check "$role check $when: \"ok\" agrees with its exit code $rc" \
      test "$(json_top "$TMP/check-$role-$when.json" ok)" = "$want_ok"
    check "$role check $when: $key is judged, scope netns, advice (not a limit)" \
      test "$(json_item "$TMP/check-$role-$when.json" "$key" judged)/$(json_item "$TMP/check-$role-$when.json" "$key" scope)/$(json_item "$TMP/check-$role-$when.json" "$key" kind)" = true/netns/advice
    expect=false
    [ "$when" = after ] && expect=true
    check "$role check $when applying: $key ok=$expect" \
      test "$(json_item "$TMP/check-$role-$when.json" "$key" ok)" = "$expect"
  done
}

if [ -x "$BIN_DIR/redpacket-server" ] && "$BIN_DIR/redpacket-server" check --help >/dev/null 2>&1; then
  if command -v python3 >/dev/null; then
    run_check server net.core.somaxconn
    run_check client net.ipv4.ip_local_port_range
  else
    missing "python3, to read check --json"
  fi
else
  fail "$BIN_DIR/redpacket-server has no check subcommand (a stale build? cargo build)"
fi

# ---------------------------------------------------------------------------------
# 4. systemd units
UNITS=$TMP/units
mkdir -p "$UNITS"
cp "$SYSCTL_DIR"/redpacket-server.service "$SYSCTL_DIR"/redpacket-server@.service "$UNITS"/
ln -s redpacket-server@.service "$UNITS/redpacket-server@3.service"
if command -v systemd-analyze >/dev/null; then
  for u in redpacket-server.service redpacket-server@.service redpacket-server@3.service; do
    # verify returns 0 for unknown keys and unparsable values but prints them: any
    # output is a failure
    if out=$(cd "$UNITS" && systemd-analyze verify "./$u" 2>&1) && [ -z "$out" ]; then
      pass "systemd-analyze verify $u"
    else
      fail "systemd-analyze verify $u: $out"
    fi
  done
else
  missing "systemd-analyze (systemd), to verify the units"
fi

unit_value() { sed -n "s/^$2=//p" "$SYSCTL_DIR/$1" | tail -1; }
nr_open=$(awk '$1 == "fs.nr_open" {print $3}' "$SYSCTL_DIR/server.conf")
for u in redpacket-server.service redpacket-server@.service; do
  check "$u: LimitNOFILE $(unit_value "$u" LimitNOFILE) >= 1000064 and <= fs.nr_open $nr_open" \
    test "$(unit_value "$u" LimitNOFILE)" -ge 1000064 -a "$(unit_value "$u" LimitNOFILE)" -le "$nr_open"
  check "$u: TimeoutStopSec above the server's 5 s drain" test "$(unit_value "$u" TimeoutStopSec)" -gt 5
  check "$u: KillSignal=SIGTERM, Restart=on-failure" \
    test "$(unit_value "$u" KillSignal)/$(unit_value "$u" Restart)" = SIGTERM/on-failure
  used=$(grep -o 'REDPACKET_[A-Z_]*' "$SYSCTL_DIR/$u" | sort -u | grep -v '^REDPACKET_BIN$' | tr '\n' ' ')
  defined=$(sed -n 's/^\(REDPACKET_[A-Z_]*\)=.*/\1/p' "$SYSCTL_DIR/server.env" | sort -u | tr '\n' ' ')
  check "$u: uses exactly the variables server.env documents ($defined)" test "$used" = "$defined"
done

# The units' command line, as systemd hands it to /bin/sh for instance I.
unit_cmd() { # unit instance
  local s
  s=$(sed -n "s/^ExecStart=\/bin\/sh -c '\(.*\)'\$/\1/p" "$SYSCTL_DIR/$1")
  s=${s//%i/$2}
  s=${s//%%/%}
  echo "${s//\$\$/\$}"
}
cat >"$TMP/stub" <<'EOF'
#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done
EOF
chmod +x "$TMP/stub"
stub_env=(env -i PATH=/usr/bin:/bin REDPACKET_BIN="$TMP/stub" REDPACKET_LISTEN='[::]:1025'
  REDPACKET_CONTROL=127.0.0.1:8989 REDPACKET_CORES=0-3 REDPACKET_HOST_DIR='/runs/a b'
  REDPACKET_ARGS='--max-qps 100 --sock-buf *')
got=$("${stub_env[@]}" /bin/sh -c "$(unit_cmd redpacket-server@.service 3)" | tr '\n' '|')
check "template instance 3: ports +2, --instance 3, flags kept whole" test "$got" = \
  "--instance|3|--listen|[::]:1027|--control|127.0.0.1:8991|--cores|0-3|--host-dir|/runs/a b|--max-qps|100|--sock-buf|*|"
got=$(env -i REDPACKET_BIN="$TMP/stub" REDPACKET_LISTEN=0.0.0.0:1025 REDPACKET_CONTROL=127.0.0.1:8989 \
  /bin/sh -c "$(unit_cmd redpacket-server.service x)" | tr '\n' '|')
check "single unit: empty variables leave their flags out" test "$got" = \
  "--listen|0.0.0.0:1025|--control|127.0.0.1:8989|"
for bad in x 0 07 ''; do
  rc=0
  "${stub_env[@]}" /bin/sh -c "$(unit_cmd redpacket-server@.service "$bad")" >/dev/null 2>&1 || rc=$?
  check "template refuses instance '$bad' with exit 2" test "$rc" -eq 2
done

# The units' command line starting the real server (in a namespace), then SIGTERM.
start_server() { # unit instance expected-listen-port expected-control-port
  local ns rc=0 pid listen ctl
  ns=$(new_ns "unit$2")
  NSES+=("$ns")
  ip netns exec "$ns" env -i PATH=/usr/bin:/bin REDPACKET_BIN="$BIN_DIR/redpacket-server" \
    REDPACKET_LISTEN=127.0.0.1:1025 REDPACKET_CONTROL=127.0.0.1:8989 \
    REDPACKET_ARGS="--stats-out off --ready-file $TMP/ready$2 --cores 0" \
    /bin/sh -c "$(unit_cmd "$1" "$2")" >"$TMP/server$2.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do [ -s "$TMP/ready$2" ] && break; sleep 0.1; done
  listen=$(sed -n 's/.*"listen": *"\([^"]*\)".*/\1/p' "$TMP/ready$2" 2>/dev/null || true)
  ctl=$(sed -n 's/.*"control": *"\([^"]*\)".*/\1/p' "$TMP/ready$2" 2>/dev/null || true)
  check "$1 (instance $2) starts the server on ports $3 and $4 (got ${listen:-none}, ${ctl:-none})" \
    test "$listen/$ctl" = "127.0.0.1:$3/127.0.0.1:$4"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  check "$1 (instance $2): SIGTERM drains and exits 0 (exit $rc)" test "$rc" -eq 0
  [ "$rc" -eq 0 ] || tail -3 "$TMP/server$2.log"
}
if [ -x "$BIN_DIR/redpacket-server" ]; then
  start_server redpacket-server.service 1 1025 8989
  if grep -q -- '--instance' <<<"$("$BIN_DIR/redpacket-server" --help)"; then
    start_server redpacket-server@.service 2 1026 8990
  else
    echo "NOTE: $BIN_DIR/redpacket-server has no --instance yet: the template was checked with a stub only" >&2
  fi
else
  missing "$BIN_DIR/redpacket-server (cargo build), to start it through the units' command line"
fi

# ---------------------------------------------------------------------------------
# 5. nic.sh on a veth pair in a namespace
NIC_NS=$(new_ns nic)
NSES+=("$NIC_NS")
ip link add "$TAG-a" netns "$NIC_NS" type veth peer name "$TAG-b" netns "$NIC_NS"
nic() { ip netns exec "$NIC_NS" bash "$SYSCTL_DIR/nic.sh" "$@"; }
rc=0
nic --cores 0 "$TAG-a" >"$TMP/nic1" 2>&1 || rc=$?
check "nic.sh dry run exits 0" test "$rc" -eq 0
has() { grep -qE "$2" "$TMP/$1" || { echo "  no line /$2/ in:"; sed 's/^/    /' "$TMP/$1"; false; }; }
check "nic.sh dry run says it changes nothing" has nic1 '^interface .*dry run: nothing changed'
check "nic.sh: veth has no IRQs" has nic1 '^IRQ affinity: +skipped: a virtual device'
check "nic.sh: XPS of tx-0 for CPU 0" has nic1 '^XPS tx-0: +0+ -> 0+1$'
check "nic.sh: napi_defer_hard_irqs 0 -> 2" has nic1 '^napi_defer_hard_irqs: +0 -> 2$'
check "nic.sh: gro_flush_timeout 0 -> 20000" has nic1 '^gro_flush_timeout: +0 -> 20000$'
check "nic.sh: RPS off with a queue per worker CPU" has nic1 '^RPS rx-0: +0+ \(ok\)$'
check "nic.sh: IRQ suspension reported" has nic1 '^irq_suspend_timeout: '
if command -v ethtool >/dev/null; then
  check "nic.sh: channels of the veth" has nic1 '^channels \(rx tx\): +1 1 \(ok\)$'
  check "nic.sh: veth has no rings, said per item" has nic1 '^rings: +skipped: the device has no ring settings'
else
  missing "ethtool, for nic.sh's channels, rings and coalescing"
  check "nic.sh without ethtool says so per item" has nic1 '^rings: +skipped: ethtool is not installed'
fi
check "nic.sh dry run changed nothing" test "$(ip netns exec "$NIC_NS" cat "/sys/class/net/$TAG-a/napi_defer_hard_irqs")" = 0
rc=0
nic --cores 0 --apply "$TAG-a" >"$TMP/nic2" 2>&1 || rc=$?
check "nic.sh --apply on the veth exits 0" test "$rc" -eq 0
nic --cores 0 "$TAG-a" >"$TMP/nic3" 2>&1 || true
check "nic.sh after --apply: nothing left to change" bash -c "! grep -q -- ' -> ' '$TMP/nic3'"
rc=0
nic "$TAG-nosuch" >"$TMP/nic4" 2>&1 || rc=$?
check "nic.sh refuses a missing interface with exit 2" test "$rc" -eq 2
check "nic.sh lists the interfaces that exist" has nic4 "interfaces here: .*lo.*$TAG-a.*$TAG-b"
rc=0
nic --cores 0-x "$TAG-a" >/dev/null 2>&1 || rc=$?
check "nic.sh refuses a bad --cores with exit 2" test "$rc" -eq 2
check "nic.sh --help" bash -c "bash '$SYSCTL_DIR/nic.sh' --help | grep -q '^Usage: nic.sh'"

# ---------------------------------------------------------------------------------
# 6. shellcheck
if command -v shellcheck >/dev/null; then
  check "shellcheck nic.sh and this test" shellcheck "$SYSCTL_DIR/nic.sh" "$SYSCTL_DIR/tests/tuning.sh"
else
  missing "shellcheck"
fi

# ---------------------------------------------------------------------------------
# 7. The host as it was
snapshot >"$TMP/host-after"
if diff "$TMP/host-before" "$TMP/host-after" >"$TMP/host-diff"; then
  pass "the host's sysctls are unchanged ($(wc -l <"$TMP/host-before") keys)"
else
  fail "the host's sysctls changed:"
  cat "$TMP/host-diff"
fi

echo "tuning tests: $PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]

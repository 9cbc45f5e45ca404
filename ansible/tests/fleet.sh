#!/usr/bin/env bash
# The fleet, for real, on this machine: network namespaces as hosts, each with its own
# sshd, driven by the playbooks exactly as a real fleet is.
#
#   bash ansible/tests/fleet.sh [--clients N] [--instances K] [--keep]
#
# One server host running K instances (default 2) and N client hosts (default 2), joined
# by a bridge in a namespace of its own, addresses in 198.18.0.0/24 (the controller, this
# root namespace, gets 198.18.0.1 on a link into the bridge: no other address, no route
# beyond it). Each host runs Debian's sshd from its own config, host key and pid file,
# reachable only with a key made here, as a non-root user with passwordless sudo (so
# `become` is used). The test:
#   1. provision.yml twice: the second must report changed=0 for every host; every
#      host's per-namespace sysctls hold the files' values;
#   2. a phase of a million users per server: the pre-flight (check --json) refuses it
#      before anything starts, naming the host;
#   3. run-phase.yml -e phase=tiny: every host's files arrived, the report was made,
#      every instance's money ledger balances and the clients' cents equal the servers',
#      run.json has every host's clock offset and round trip and the defaults' thresholds;
#   4. plants a symbolic link (-> /etc/hostname) and a FIFO in one client host's folder
#      of that run and collects it again into a fresh folder: that host's archive is
#      rejected and named, the others arrive whole, nothing else changes;
#   5. kills one client host's sshd and runs the phase again, with a symbolic link planted
#      beforehand in another client's folder of the new run: the play finishes, exits
#      non-zero naming both (the second with "results rejected"), and the others are
#      collected and reported.
# Results go to a temporary folder, never into the repository's results/. Everything it
# makes (namespaces, links, processes, files) is removed on exit, failure or interrupt.
# Needs root, ip, sshd, sudo and python3-venv; under CI=true a missing one fails the test.
# Ansible comes from PyPI (ansible/requirements.txt) into a cached virtualenv.
# FLEET_SYSCTL_DIR=DIR tests the tuning against another sysctl/ folder than the repo's;
# FLEET_PREBUILT_DIR=DIR installs the binaries of DIR instead of building them.
# FLEET_RUN_ARGS="-e @FILE" adds arguments to run 1's run-phase.yml (a longer phase).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)     # ansible/
repo=$(dirname "$here")
clients=2
instances=2
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --instances) instances=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--clients N] [--instances K] [--keep]" >&2; exit 2 ;;
  esac
done
case "$clients:$instances" in
  *[!0-9:]*|:*|*:) echo "--clients and --instances take numbers" >&2; exit 2 ;;
esac
if [ "$clients" -lt 1 ] || [ "$clients" -gt 50 ] || [ "$instances" -lt 1 ] || [ "$instances" -gt 8 ]; then
  echo "--clients must be 1..50 and --instances 1..8" >&2; exit 2
fi

t0=$(date +%s)
# shellcheck source=ansible/tests/common.sh
. "$here/tests/common.sh"

[ "$(id -u)" = 0 ] || skip_or_fail "root (network namespaces)"
for cmd in ip /usr/sbin/sshd sudo ssh ssh-keygen /usr/bin/python3 cargo; do
  command -v "$cmd" >/dev/null || skip_or_fail "$cmd"
done
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || skip_or_fail "python3-venv"
sysctl_dir=${FLEET_SYSCTL_DIR:-$repo/sysctl}
if [ ! -f "$sysctl_dir/server.conf" ] || [ ! -f "$sysctl_dir/client.conf" ]; then
  skip_or_fail "$sysctl_dir/server.conf and client.conf"
fi

# --- Ansible from PyPI, in a cached virtualenv; then the linter ---------------------------
ansible_venv
say "ansible-lint (production profile)"
(cd "$here" && ansible-lint -q) >"/tmp/redpacket-fleet-lint.$$" 2>&1 \
  || { cat "/tmp/redpacket-fleet-lint.$$"; rm -f "/tmp/redpacket-fleet-lint.$$"; fail "ansible-lint"; }
rm -f "/tmp/redpacket-fleet-lint.$$"

# --- The fleet ----------------------------------------------------------------------------
one_fleet_at_a_time namespace-fleet
p="rf$$"                       # prefix of every namespace and link made here
tmp=$(mktemp -d /tmp/redpacket-fleet.XXXXXX)
chmod 755 "$tmp"
user=redpacket-fleet
results="$tmp/results"
hosts=(srv1)
for i in $(seq 1 "$clients"); do hosts+=("cli$i"); done
declare -A addr ns
for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  addr[$h]="198.18.0.$((10 + i))"
  ns[$h]="$p-$h"
done

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  # Ansible's SSH connection masters, by their control sockets.
  for s in "$tmp"/cp/*; do [ -S "$s" ] && ssh -o ControlPath="$s" -O exit dummy >/dev/null 2>&1; done
  for h in "${hosts[@]}"; do
    local n=${ns[$h]}
    grep -qw "$n" <<<"$(ip netns list 2>/dev/null)" || continue
    local pids
    # One pid a line: split into arguments on purpose.
    pids=$(ip netns pids "$n" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill $pids 2>/dev/null
    sleep 0.2
    pids=$(ip netns pids "$n" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
    ip netns del "$n" 2>/dev/null
  done
  ip netns del "$p-br" 2>/dev/null
  ip link del "${p}c" 2>/dev/null
  if [ "$keep" = 1 ]; then say "results and logs kept in $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
usermod -p '*' "$user"            # no password, but not locked: key login works
sudoers=/etc/sudoers.d/redpacket-fleet-test
if [ ! -f "$sudoers" ]; then
  echo "$user ALL=(ALL) NOPASSWD: ALL" >"$sudoers.tmp" && chmod 440 "$sudoers.tmp" && mv "$sudoers.tmp" "$sudoers"
fi
mkdir -p /run/sshd && chmod 755 /run/sshd

mkdir -p "$tmp/ssh" "$tmp/cp" "$tmp/hosts" "$results"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/ssh/id" -C redpacket-fleet-test
cp "$tmp/ssh/id.pub" "$tmp/ssh/authorized_keys"
chmod 644 "$tmp/ssh/authorized_keys"
: >"$tmp/ssh/known_hosts"

file_max=$(sysctl -n fs.file-max)
touch "$tmp/made"
say "making the fleet: ${hosts[*]} (server instances: $instances)"
ip netns add "$p-br"
ip -n "$p-br" link add br0 type bridge
ip -n "$p-br" link set br0 up
ip link add "${p}c" type veth peer name "${p}cb"
ip link set "${p}cb" netns "$p-br"
ip -n "$p-br" link set "${p}cb" master br0 up
ip addr add 198.18.0.1/24 dev "${p}c"
ip link set "${p}c" up
for i in "${!hosts[@]}"; do
  h=${hosts[$i]} n=${ns[$h]}
  ip netns add "$n"
  ip link add "${p}h$i" type veth peer name "${p}b$i"
  ip link set "${p}b$i" netns "$p-br"
  ip -n "$p-br" link set "${p}b$i" master br0 up
  ip link set "${p}h$i" netns "$n"
  ip -n "$n" link set "${p}h$i" name eth0
  ip -n "$n" addr add "${addr[$h]}/24" dev eth0
  ip -n "$n" link set eth0 up
  ip -n "$n" link set lo up
  d="$tmp/hosts/$h"
  mkdir -p "$d/home"
  ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
  cat >"$d/sshd_config" <<EOF
ListenAddress ${addr[$h]}:22
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $tmp/ssh/authorized_keys
AllowUsers $user
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
EOF
  ip netns exec "$n" /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
  echo "${addr[$h]} $(cut -d' ' -f1-2 "$d/host_key.pub")" >>"$tmp/ssh/known_hosts"
done

# The inventory a user would write, with what the namespace fleet needs: one kernel and
# one filesystem shared by every host.
inv="$tmp/inventory.yml"
{
  echo "all:"
  echo "  vars:"
  echo "    ansible_user: $user"
  echo "    ansible_ssh_private_key_file: $tmp/ssh/id"
  echo "    ansible_ssh_common_args: -o UserKnownHostsFile=$tmp/ssh/known_hosts -o StrictHostKeyChecking=yes"
  echo "    ansible_python_interpreter: /usr/bin/python3"
  echo "    # The hosts share this machine's kernel and filesystem."
  echo "    redpacket_system_files: false"
  echo "    redpacket_tuning_global: false"
  echo "    redpacket_connect_rate: 2000"
  echo "    redpacket_start_margin_s: 5"
  echo "    redpacket_results_dir: $results"
  echo "    redpacket_sysctl_dir: $sysctl_dir"
  echo "    redpacket_prebuilt_dir: ${FLEET_PREBUILT_DIR:-}"
  echo "  children:"
  echo "    servers:"
  echo "      hosts:"
  echo "        srv1:"
  echo "          ansible_host: ${addr[srv1]}"
  echo "          redpacket_home: $tmp/hosts/srv1/home"
  echo "          redpacket_server_instances: $instances"
  echo "    clients:"
  echo "      hosts:"
  for i in $(seq 1 "$clients"); do
    h=cli$i
    echo "        $h:"
    echo "          ansible_host: ${addr[$h]}"
    echo "          redpacket_home: $tmp/hosts/$h/home"
    echo "          redpacket_source_addrs: [198.18.0.$((100 + 2 * i)), 198.18.0.$((101 + 2 * i))]"
    echo "          redpacket_source_alias: true"
    echo "          redpacket_source_iface: eth0"
    done
} >"$inv"

export ANSIBLE_CONFIG="$here/ansible.cfg" ANSIBLE_SSH_CONTROL_PATH_DIR="$tmp/cp" \
  ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_HOME="$tmp/ansible-home" \
  ANSIBLE_LOCAL_TEMP="$tmp/ansible-local"
# Every setting is in the inventory (its all: vars, as a user writes them).
playbook() { (cd "$here" && ansible-playbook -i "$inv" "$@"); }

# --- 1. provision twice -------------------------------------------------------------------
say "provision.yml (first run)"
playbook provision.yml >"$tmp/provision1.log" 2>&1 || { tail -40 "$tmp/provision1.log"; fail "provision.yml failed"; }
say "provision.yml (second run: must change nothing)"
playbook provision.yml >"$tmp/provision2.log" 2>&1 || { tail -40 "$tmp/provision2.log"; fail "second provision.yml failed"; }
expect_unchanged "$tmp/provision2.log" "${hosts[@]}"
say "second provision: changed=0 on ${hosts[*]}"
# Nothing of the fleet's may reach this machine's own /etc or its global sysctls.
for f in /etc/sysctl.d/60-redpacket-server.conf /etc/sysctl.d/60-redpacket-client.conf \
  /etc/security/limits.d/60-redpacket.conf /etc/systemd/system/redpacket-server@.service; do
  if [ -e "$f" ] && [ "$f" -nt "$tmp/made" ]; then fail "provisioning wrote $f on the machine itself"; fi
done
[ "$(sysctl -n fs.file-max)" = "$file_max" ] || fail "fs.file-max changed on the machine itself"
playbook provision.yml --check >"$tmp/provision-check.log" 2>&1 || { tail -30 "$tmp/provision-check.log"; fail "provision.yml --check failed"; }

# Each host's per-namespace sysctls hold the file's values (the keys annotated netns).
checked=0
for h in "${hosts[@]}"; do
  f="$sysctl_dir/$([ "$h" = srv1 ] && echo server || echo client).conf"
  while IFS=$'\t' read -r key want; do
    live=$(ip netns exec "${ns[$h]}" sysctl -n "$key" | tr -s ' \t' '  ')
    [ "$live" = "$want" ] || fail "$h: $key is '$live', $(basename "$f") says '$want'"
    checked=$((checked + 1))
  done < <(netns_keys "$f")
done
[ "$checked" -gt 0 ] || fail "no scope=netns key found in $sysctl_dir/*.conf"
say "per-namespace sysctls hold the files' values ($checked key readings)"
for i in $(seq 1 "$clients"); do
  for a in "198.18.0.$((100 + 2 * i))" "198.18.0.$((101 + 2 * i))"; do
    # Read first: with pipefail, `ip | grep -q` fails when grep exits before ip writes all.
    addrs=$(ip -n "${ns[cli$i]}" -o addr show dev eth0)
    grep -q " $a/24 " <<<"$addrs" || fail "cli$i lacks source address $a: $addrs"
  done
done

# --- 2. a phase the hosts cannot carry is refused before anything starts ---------------
say "run-phase.yml with a million users per server: must be refused by the pre-flight"
set +e
playbook run-phase.yml -e phase=huge -e run_id=fleet-test-refused \
  -e '{"redpacket_phases": {"huge": {"shake_rate_per_server": 1000, "duration_s": 5, "users_per_server": 1000000}}}' \
  >"$tmp/refused.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a phase of a million users per server was not refused"
grep -q "not started: .*srv1 can hold" "$tmp/refused.log" || { tail -30 "$tmp/refused.log"; fail "the refusal does not name srv1"; }
[ ! -e "$tmp/hosts/srv1/home/runs/fleet-test-refused" ] || fail "the refused run started something"
say "refused before starting: $(grep -o 'not started: [^"]*' "$tmp/refused.log" | head -1 | cut -c1-150)"

# --- 3. a phase -------------------------------------------------------------------------
run1="fleet-test-1"
say "run-phase.yml -e phase=tiny (run $run1)"
# FLEET_RUN_ARGS: more ansible-playbook arguments for this run (words split on spaces),
# e.g. a longer phase from a file: -e @vars.yml
# shellcheck disable=SC2086
playbook run-phase.yml -e phase=tiny -e run_id="$run1" ${FLEET_RUN_ARGS:-} >"$tmp/run1.log" 2>&1 \
  || { tail -60 "$tmp/run1.log"; fail "run-phase.yml failed"; }
say "run 1: the live view as the controller showed it:"
grep -E '^[0-9]{2}:[0-9]{2}:[0-9]{2} |^live: ' "$tmp/run1.log" | cut -c1-260 || true
d="$results/$run1"
[ -f "$d/run.json" ] || fail "no run.json"
[ -f "$d/report.html" ] || fail "no report.html"
grep -q "report: $d/report.html" "$tmp/run1.log" || fail "the play did not say where the report is"
for h in "${hosts[@]}"; do [ -d "$d/$h" ] || fail "files of $h did not arrive"; done
for i in $(seq 1 "$clients"); do
  for f in summary.json loadgen.jsonl; do [ -s "$d/cli$i/$f" ] || fail "cli$i/$f missing"; done
done
python3 "$here/tests/check_run.py" "$d" --servers "srv1:$instances" --clients "$(seq -s, -f "cli%g" 1 "$clients")" \
  || fail "money or files do not add up"
say "run 1: files of every host, report, ledgers balanced, clock offsets and thresholds recorded"

# --- 4. a client host that is not clean: its files are untrusted input -------------------
bad=cli1
say "planting a symlink and a FIFO in $bad's folder of $run1, then collect.yml into a fresh folder"
ln -s /etc/hostname "$tmp/hosts/$bad/home/runs/$run1/$bad/evil"
mkfifo "$tmp/hosts/$bad/home/runs/$run1/$bad/pipe"
hostile="$tmp/results-hostile"
etc_before=$(stat -c '%Y %s' /etc/hostname; sha256sum /etc/hostname)
touch "$tmp/before-hostile"
set +e
playbook collect.yml -e run_id="$run1" -e redpacket_results_dir="$hostile" >"$tmp/collect-hostile.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { tail -30 "$tmp/collect-hostile.log"; fail "collect.yml took $bad's symlink and FIFO without a word"; }
grep -Eq "results rejected: .*$bad.*member '$bad/(evil|pipe)' is a (symbolic link|FIFO)" "$tmp/collect-hostile.log" \
  || { tail -30 "$tmp/collect-hostile.log"; fail "collect.yml did not name $bad and why"; }
[ ! -e "$hostile/$run1/$bad" ] || fail "$bad's rejected archive wrote $hostile/$run1/$bad"
for h in "${hosts[@]}"; do
  [ "$h" = "$bad" ] || diff -r "$results/$run1/$h" "$hostile/$run1/$h" >/dev/null \
    || fail "$h's files did not arrive whole beside the rejected $bad"
done
odd=$(find "$hostile" ! -type f ! -type d -o -type f ! -perm 0644 -o -type d ! -perm 0755 -o -name '.*')
[ -z "$odd" ] || fail "the results folder holds what it should not: $odd"
[ "$(stat -c '%Y %s' /etc/hostname; sha256sum /etc/hostname)" = "$etc_before" ] || fail "/etc/hostname changed"
[ -z "$(find "$results" -newer "$tmp/before-hostile")" ] || fail "collecting into $hostile changed $results"
say "$bad rejected: $(grep -Eo "member '$bad/[a-z]+' is a [a-zA-Z ]+" "$tmp/collect-hostile.log" | head -1); the others arrived"

# --- 5. a client host goes away -------------------------------------------------------------
dead=cli$clients
say "killing $dead's sshd, then run-phase.yml again"
for pid in $(ip netns pids "${ns[$dead]}"); do
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ] && kill "$pid"
done
for s in "$tmp"/cp/*; do [ -S "$s" ] && ssh -o ControlPath="$s" -O exit dummy >/dev/null 2>&1; done
run2="fleet-test-2"
# The host that is not clean again (when it is not the dead one): its files of run 2 hold
# a symbolic link from the start, so run-phase.yml must name it among the failed.
[ "$bad" != "$dead" ] || bad=""
if [ -n "$bad" ]; then
  mkdir -p "$tmp/hosts/$bad/home/runs/$run2/$bad"
  ln -s /etc/hostname "$tmp/hosts/$bad/home/runs/$run2/$bad/evil"
fi
set +e
playbook run-phase.yml -e phase=tiny -e run_id="$run2" >"$tmp/run2.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { tail -30 "$tmp/run2.log"; fail "the play exited 0 although $dead was gone"; }
grep -q "finished without .*$dead" "$tmp/run2.log" || { tail -40 "$tmp/run2.log"; fail "the play did not name $dead"; }
d="$results/$run2"
[ -f "$d/report.html" ] || { tail -40 "$tmp/run2.log"; fail "no report for run 2"; }
[ ! -e "$d/$dead" ] || fail "$dead has a folder although it was unreachable"
grep -q "host $dead" "$d/report.md" || fail "the report does not name $dead"
for h in "${hosts[@]}"; do
  [ "$h" = "$dead" ] || [ "$h" = "$bad" ] || [ -d "$d/$h" ] || fail "run 2: files of $h did not arrive"
done
[ -z "$bad" ] || [ ! -e "$d/$bad" ] || fail "run 2: $bad's rejected archive wrote $d/$bad"
python3 - "$d" "$dead" "$bad" <<'EOF' || fail "run 2's run.json does not name $dead and $bad"
import json, sys
failed = json.load(open(sys.argv[1] + "/run.json"))["failed_hosts"]
assert sorted(failed) == sorted(h for h in sys.argv[2:] if h), failed
# The dead host was measured by no one; every other host's clock was.
for h in json.load(open(sys.argv[1] + "/run.json"))["hosts"]:
    measured = "clock_offset_ms" in h and "clock_rtt_ms" in h
    assert measured == (h["name"] != sys.argv[2]), h
if sys.argv[3]:
    why = "results rejected: member '%s/evil' is a symbolic link (-> '/etc/hostname')" % sys.argv[3]
    assert failed[sys.argv[3]].startswith(why), failed
EOF
say "run 2: exit $rc naming $dead${bad:+ and $bad (results rejected)}; the others collected and reported"
say "PASS (provision x2, two runs, a rejected host) in $(($(date +%s) - t0)) s"

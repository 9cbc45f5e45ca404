# shellcheck shell=bash disable=SC2154
# What the fleet tests share: messages, the prerequisite rule, Ansible from PyPI in a
# cached virtualenv, the PLAY RECAP reader and the scope=netns keys of a sysctl file.
# Sourced by ansible/tests/fleet.sh (network-namespace hosts) and
# ansible/tests/systemd-fleet.sh (hosts that boot systemd); each sets `here` (ansible/)
# and `t0` first.

say() { printf '[%s %3ds] %s\n' "${FLEET_NAME:-fleet}" "$(($(date +%s) - t0))" "$*"; }
fail() { say "FAIL: $*"; exit 1; }
# Under CI=true a missing prerequisite fails the test; elsewhere it says SKIPPED (which
# the cargo test that runs the script still counts as a failure unless skips are allowed).
skip_or_fail() {
  if [ "${CI:-}" = true ]; then fail "missing prerequisite: $*"; fi
  say "SKIPPED (not a pass): missing prerequisite: $*"
  exit 0
}

# Ansible from PyPI (ansible/requirements.txt), in a virtualenv keyed on that file, put
# first on PATH; then ansible-lint when $1 is "lint".
ansible_venv() {
  local req="$here/requirements.txt" venv
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/redpacket-ansible-venv/$(sha256sum "$req" | cut -c1-16)"
  if [ ! -x "$venv/bin/ansible-playbook" ]; then
    say "installing ansible into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  fi
  export PATH="$venv/bin:$PATH"
}

# The PLAY RECAP of a log: "host changed" lines.
recap_changed() { awk '/^PLAY RECAP/ {r = 1; next} r && /changed=/ {for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) {split($i, a, "="); print $1, a[2]}}' "$1"; }

# Fails unless the second provisioning's PLAY RECAP ($1) says changed=0 for every host
# named after it.
expect_unchanged() {
  local log=$1 h
  shift
  recap_changed "$log" >"$log.recap"
  for h in "$@"; do
    grep -q "^$h 0$" "$log.recap" || {
      sed -n '/PLAY RECAP/,$p' "$log"
      grep -B2 -A8 'changed:' "$log" | head -60
      fail "provisioning again changed something on $h"
    }
  done
}

# The keys of a sysctl file ($1) annotated scope=netns, as "key<TAB>value" lines.
netns_keys() {
  awk '/^# redpacket:/ {s = ""; if (match($0, /scope=[a-z]+/)) s = substr($0, RSTART + 6, RLENGTH - 6); next}
       /^[ \t]*[#;]/ || /^[ \t]*$/ {next}
       {split($0, kv, "="); v = substr($0, index($0, "=") + 1); gsub(/^[ \t-]+|[ \t]+$/, "", kv[1]);
        gsub(/[ \t]+/, " ", v); gsub(/^ | $/, "", v); if (s == "netns") print kv[1] "\t" v; s = ""}' "$1"
}

# One fleet of this kind at a time on this machine: each takes fixed addresses (a /24 of
# 198.18.0.0/15 and its .1 on the controller), which a second run at once would take too.
# Waits for the other run to end (fd 9 holds the lock until this shell exits).
one_fleet_at_a_time() {
  local lock="/run/lock/redpacket-$1.lock"
  mkdir -p /run/lock
  exec 9>"$lock"
  if ! flock -n 9; then
    say "another $1 test runs on this machine: waiting for it to end"
    flock 9
  fi
}

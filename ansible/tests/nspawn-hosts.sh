# shellcheck shell=bash disable=SC2154
# Debian hosts that boot systemd as PID 1, for the fleet's tests: systemd-nspawn
# containers with their own filesystem (an overlay on one cached debootstrap image) and
# their own network (a veth into a bridge of this machine: /proc/sys/net is writable
# inside, as on a real host), sharing this machine's kernel. Each runs Debian's sshd,
# reachable with a key made by the caller as root and as a user with passwordless sudo.
#
# Sourced by ansible/tests/systemd-fleet.sh, which sets before sourcing:
#   NSPAWN_WORK   a folder of its own (the hosts' overlays, logs)
#   NSPAWN_BRIDGE the bridge's name; NSPAWN_NET the first three octets (198.18.1)
#   NSPAWN_KEY    the public key file every host accepts
#   NSPAWN_USER   the non-root user with sudo
# and then calls: nspawn_image, nspawn_bridge_up, nspawn_make HOST INDEX,
# nspawn_boot HOST, nspawn_wait_ssh HOST, nspawn_reboot HOST, nspawn_teardown.
# The image is built once with debootstrap from Debian's packages and cached in
# ${XDG_CACHE_HOME:-~/.cache}/redpacket-nspawn/<key>/rootfs (~320 MB, ~70-110 s).

NSPAWN_SUITE=${NSPAWN_SUITE:-bookworm}
NSPAWN_MIRROR=${NSPAWN_MIRROR:-http://deb.debian.org/debian}
# prometheus and prometheus-node-exporter (and python3-apt, which the apt module needs):
# the monitor role's `apt: state=present` then
# needs no network (the hosts have no route beyond the bridge).
NSPAWN_PACKAGES=systemd,systemd-sysv,dbus,openssh-server,python3,sudo,iproute2,procps,prometheus,prometheus-node-exporter,python3-apt
declare -A NSPAWN_PID NSPAWN_ADDR NSPAWN_MACHINE

# The cached image: debootstrap once, then the parts every host shares (networkd on,
# an empty machine-id so each boot makes its own, the sudo user). Built in a temporary
# folder and renamed into place, so an interrupted build is never taken for an image.
nspawn_image() {
  local key cache
  key=$(printf '%s %s %s v1' "$NSPAWN_SUITE" "$NSPAWN_PACKAGES" "$NSPAWN_USER" | sha256sum | cut -c1-12)
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/redpacket-nspawn/$key"
  NSPAWN_IMAGE="$cache/rootfs"
  [ -d "$NSPAWN_IMAGE/usr/lib/systemd" ] && return 0
  mkdir -p "$cache"
  rm -rf "$cache/build"
  say "building the Debian $NSPAWN_SUITE image once (debootstrap; cached in $cache)"
  debootstrap --variant=minbase --include="$NSPAWN_PACKAGES" "$NSPAWN_SUITE" "$cache/build" "$NSPAWN_MIRROR" \
    >"$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log"; fail "debootstrap failed"; }
  local r="$cache/build"
  : >"$r/etc/machine-id"
  rm -f "$r"/etc/ssh/ssh_host_*
  systemctl --root="$r" enable systemd-networkd.service >/dev/null 2>&1
  # Installed, not running: the monitor role enables node-exporter on every host and
  # Prometheus on the monitor host only, as on hosts that never had them.
  systemctl --root="$r" disable prometheus.service prometheus-node-exporter.service >/dev/null 2>&1
  chroot "$r" useradd --create-home --shell /bin/bash "$NSPAWN_USER"
  chroot "$r" usermod -p '*' "$NSPAWN_USER"
  echo "$NSPAWN_USER ALL=(ALL) NOPASSWD: ALL" >"$r/etc/sudoers.d/$NSPAWN_USER"
  chmod 440 "$r/etc/sudoers.d/$NSPAWN_USER"
  printf 'PasswordAuthentication no\nPermitRootLogin prohibit-password\n' >"$r/etc/ssh/sshd_config.d/test-fleet.conf"
  rm -rf "$r/var/cache/apt/archives"/*.deb
  mv "$r" "$NSPAWN_IMAGE"
}

# The bridge the hosts plug into, with the controller's address on it (.1): no route
# beyond it, no forwarding.
nspawn_bridge_up() {
  ip link add "$NSPAWN_BRIDGE" type bridge
  ip addr add "$NSPAWN_NET.1/24" dev "$NSPAWN_BRIDGE"
  ip link set "$NSPAWN_BRIDGE" up
}

# A host's own filesystem: an overlay on the image, with its address, host keys and the
# test's key. HOST is the inventory name; INDEX (2..250) its address's last octet.
nspawn_make() {
  local h=$1 i=$2 d="$NSPAWN_WORK/hosts/$1"
  mkdir -p "$d/upper" "$d/work" "$d/root"
  mount -t overlay overlay -o "lowerdir=$NSPAWN_IMAGE,upperdir=$d/upper,workdir=$d/work" "$d/root"
  local r="$d/root"
  NSPAWN_ADDR[$h]="$NSPAWN_NET.$i"
  NSPAWN_MACHINE[$h]="rp${NSPAWN_TAG}h$i"
  printf '[Match]\nName=host0\n\n[Network]\nAddress=%s/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
    "${NSPAWN_ADDR[$h]}" >"$r/etc/systemd/network/10-host0.network"
  ssh-keygen -q -t ed25519 -N '' -f "$r/etc/ssh/ssh_host_ed25519_key" -C "$h"
  local u home
  for u in root "$NSPAWN_USER"; do
    home=$([ "$u" = root ] && echo "$r/root" || echo "$r/home/$u")
    mkdir -p "$home/.ssh"
    cp "$NSPAWN_KEY" "$home/.ssh/authorized_keys"
    chmod 700 "$home/.ssh"
    chmod 600 "$home/.ssh/authorized_keys"
    [ "$u" = root ] || chroot "$r" chown -R "$u:$u" "/home/$u/.ssh"
  done
  echo "${NSPAWN_ADDR[$h]} $(cut -d' ' -f1-2 "$r/etc/ssh/ssh_host_ed25519_key.pub")" >>"$NSPAWN_WORK/known_hosts"
}

# Boots HOST in the background: systemd as PID 1, its own network on the bridge.
nspawn_boot() {
  local h=$1 d="$NSPAWN_WORK/hosts/$1"
  setsid systemd-nspawn -D "$d/root" --boot --register=no --keep-unit -M "${NSPAWN_MACHINE[$h]}" \
    --network-bridge="$NSPAWN_BRIDGE" --console=passive >>"$d/console.log" 2>&1 </dev/null &
  NSPAWN_PID[$h]=$!
}

# Waits until HOST's sshd answers as root (60 s at most) and its boot is over.
nspawn_wait_ssh() {
  local h=$1 n=0
  until nspawn_ssh "$h" true 2>/dev/null; do
    n=$((n + 1))
    kill -0 "${NSPAWN_PID[$h]}" 2>/dev/null || { tail -20 "$NSPAWN_WORK/hosts/$h/console.log"; fail "$h exited while booting"; }
    [ "$n" -lt 120 ] || { tail -20 "$NSPAWN_WORK/hosts/$h/console.log"; fail "$h: no sshd after 60 s"; }
    sleep 0.5
  done
  # Until boot is over, pam_nologin refuses every user but root: wait for it. A boot
  # that ends degraded with /run/nologin still there (a unit on the way to
  # systemd-user-sessions failed, seen once on a loaded machine) is named, and its
  # failed units are started again once, as an operator would.
  n=0
  local state retried=
  until state=$(nspawn_ssh "$h" 'systemctl is-system-running; test ! -e /run/nologin && echo open' 2>/dev/null) &&
    grep -qx open <<<"$state" && grep -qxE "running|degraded" <<<"$state"; do
    n=$((n + 1))
    if [ -z "$retried" ] && [ "$n" -ge 20 ] && grep -qx degraded <<<"$state"; then
      retried=1
      say "$h: boot ended degraded with logins still closed; failed units: $(nspawn_failed "$h"); starting them again"
      nspawn_ssh "$h" 'systemctl reset-failed; systemctl start multi-user.target' >/dev/null 2>&1 || true
    fi
    [ "$n" -lt 120 ] || fail "$h: boot not over after 60 s ($(tr '\n' ' ' <<<"$state"); failed units: $(nspawn_failed "$h"))"
    sleep 0.5
  done
}

# HOST's failed units, on one line.
nspawn_failed() {
  nspawn_ssh "$1" systemctl --failed --no-legend --plain 2>&1 | tr '\n' ' '
}

# Runs a command on HOST as root over SSH (as Ansible reaches it).
nspawn_ssh() {
  local h=$1
  shift
  ssh -i "${NSPAWN_KEY%.pub}" -o UserKnownHostsFile="$NSPAWN_WORK/known_hosts" -o StrictHostKeyChecking=yes \
    -n -o BatchMode=yes -o ConnectTimeout=3 "root@${NSPAWN_ADDR[$h]}" "$@"
}

# `systemctl reboot` inside HOST: its systemd stops every unit and nspawn exits (a
# container's reboot ends its nspawn); then it is booted again on the same filesystem.
# systemctl asks logind over D-Bus and waits for its answer; the shutdown it starts may
# stop dbus (or this SSH session) before that answer arrives, and systemctl then says
# "Call to Reboot failed: Connection reset by peer" and exits 1 although the reboot is
# under way. So its word is not taken: the host going down is the proof. What it said
# is kept in the host's reboot.log, and shown only when the host does not go down.
nspawn_reboot() {
  local h=$1 n=0 log="$NSPAWN_WORK/hosts/$1/reboot.log"
  nspawn_ssh "$h" systemctl reboot >"$log" 2>&1 || true
  while kill -0 "${NSPAWN_PID[$h]}" 2>/dev/null; do
    n=$((n + 1))
    [ "$n" -lt 600 ] || { cat "$log"; fail "$h did not go down within 60 s of systemctl reboot"; }
    sleep 0.1
  done
  wait "${NSPAWN_PID[$h]}" 2>/dev/null || true
  nspawn_boot "$h"
  nspawn_wait_ssh "$h"
}

# Powers every host off (SIGTERM to nspawn asks the container's systemd to shut down),
# kills what remains after 15 s, unmounts the overlays, removes the bridge. What remains
# is killed through the container's init (nspawn's child, PID 1 of the container's PID
# namespace): killing it ends every process of the container at once. Killing nspawn
# alone would leave that init running, reparented to this machine's, and its host's
# services with it (seen once: a shutdown on a loaded machine took longer than 15 s).
nspawn_teardown() {
  local h pid n
  local -A init
  for h in "${!NSPAWN_PID[@]}"; do
    init[$h]=$(pgrep -P "${NSPAWN_PID[$h]}" 2>/dev/null | tr '\n' ' ')
    kill -TERM "${NSPAWN_PID[$h]}" 2>/dev/null
  done
  for h in "${!NSPAWN_PID[@]}"; do
    pid=${NSPAWN_PID[$h]}
    n=0
    while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
    kill -0 "$pid" 2>/dev/null || continue # nspawn waits for its container to end
    # shellcheck disable=SC2086 # a list of PIDs, or none
    [ -n "${init[$h]}" ] && kill -KILL ${init[$h]} 2>/dev/null
    n=0
    while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    kill -KILL "$pid" 2>/dev/null
  done
  for h in "${!NSPAWN_PID[@]}"; do wait "${NSPAWN_PID[$h]}" 2>/dev/null; done
  for d in "$NSPAWN_WORK"/hosts/*/root; do
    mountpoint -q "$d" && { umount "$d" 2>/dev/null || umount -l "$d"; }
  done
  ip link del "$NSPAWN_BRIDGE" 2>/dev/null
  return 0
}

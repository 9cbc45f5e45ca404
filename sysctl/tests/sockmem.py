#!/usr/bin/env python3
"""Kernel memory per TCP socket: open N loopback connections, read what they cost.

Run it inside a network namespace of its own, so the per-namespace counters
(sockstat `inuse`, `ss`) see only these sockets:

    ip netns add rpmem && ip -n rpmem link set lo up
    ip netns exec rpmem python3 sysctl/tests/sockmem.py --conns 10000
    ip netns del rpmem

The parent process accepts, a child process connects (each holds N descriptors,
so N up to the open-files limit less a few works). Three states are measured:
connected (no data yet), after one 16-byte frame each way (each side has read
it), the same sockets once more after 2 s idle, and after one more frame sent
to every accepted socket that its process leaves unread (a server that falls
behind, or a login waiting in the accept queue). For each state it prints
the deltas from before the first connect of:
  - /proc/net/sockstat TCP `mem` (pages of socket buffer memory: what
    net.ipv4.tcp_mem limits; host-wide, so other traffic on the host adds noise),
  - the sum over this namespace's sockets of `ss -tmn` skmem r+t+f+w
    (queued + forward-allocated bytes: the same thing counted per socket, noise-free),
  - /proc/meminfo Slab (all kernel objects: struct tcp_sock, dentries, inodes,
    file structs, epoll..., host-wide).
Exit 0 when measured, 1 on a failure, 2 on a bad flag.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def sockstat_mem_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1])
    raise RuntimeError("no TCP line in /proc/net/sockstat")


def slab_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    raise RuntimeError("no Slab in /proc/meminfo")


def ss_bytes():
    """Sum of r+t+f+w of every TCP socket of this namespace (ss -tmn skmem)."""
    out = subprocess.run(["ss", "-tmnH"], capture_output=True, text=True, check=True).stdout
    total = 0
    socks = 0
    for m in re.finditer(r"skmem:\(([^)]*)\)", out):
        kv = dict(re.findall(r"([a-z]+)(\d+)", m.group(1)))
        total += sum(int(kv.get(k, 0)) for k in ("r", "t", "f", "w"))
        socks += 1
    return socks, total


def slab_caches():
    """Bytes held by each slab cache (active objects x object size), from /proc/slabinfo."""
    caches = {}
    with open("/proc/slabinfo") as f:
        for line in f:
            if line.startswith(("slabinfo", "#")):
                continue
            fields = line.split()
            caches[fields[0]] = int(fields[1]) * int(fields[3])
    return caches


def sample():
    socks, b = ss_bytes()
    return {
        "mem": sockstat_mem_pages(),
        "slab": slab_kib(),
        "ss_socks": socks,
        "ss_bytes": b,
        "caches": slab_caches(),
    }


def report_caches(base, now, sockets, top=8):
    deltas = sorted(
        ((now["caches"].get(k, 0) - v, k) for k, v in base["caches"].items()), reverse=True
    )
    parts = [f"{k} {d / sockets:.0f}" for d, k in deltas[:top] if d > 0]
    print("  largest slab caches grown, bytes/socket: " + ", ".join(parts))


def report(name, base, now, sockets):
    dm = now["mem"] - base["mem"]
    ds = now["slab"] - base["slab"]
    print(
        f"{name}: sockets={sockets} "
        f"sockstat_mem=+{dm} pages ({dm * PAGE / sockets:.0f} B/socket, {dm / sockets:.3f} pages/socket); "
        f"ss_skmem={now['ss_bytes']} B over {now['ss_socks']} sockets "
        f"({now['ss_bytes'] / max(now['ss_socks'], 1):.0f} B/socket); "
        f"slab=+{ds} KiB ({ds * 1024 / sockets:.0f} B/socket)"
    )


def client(port, n, wpipe, rpipe):
    """Child: connect n sockets, then follow the parent's steps over a pipe."""
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        conns.append(s)
    os.write(wpipe, b"c")
    os.read(rpipe, 1)  # parent: send a frame
    for s in conns:
        s.sendall(b"\x00\x10\x00\x00" + b"\x00" * 12)
    for s in conns:
        got = s.recv(64)
        if len(got) != 16:
            os._exit(1)
    os.write(wpipe, b"d")
    os.read(rpipe, 1)  # parent: send one more, which the parent leaves unread
    for s in conns:
        s.sendall(b"\x00\x10\x00\x02" + b"\x00" * 12)
    os.write(wpipe, b"u")
    os.read(rpipe, 1)  # parent: done
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=10000, help="connections (each = 2 sockets)")
    a = ap.parse_args()
    if a.conns < 1:
        ap.error("--conns must be at least 1")

    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(65535)
    port = lst.getsockname()[1]
    time.sleep(0.5)
    base = sample()

    c_r, p_w = os.pipe()
    p_r, c_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        client(port, a.conns, c_w, c_r)
    accepted = []
    while len(accepted) < a.conns:
        s, _ = lst.accept()
        accepted.append(s)
    if os.read(p_r, 1) != b"c":
        sys.exit("client failed while connecting")
    time.sleep(1)
    sockets = 2 * a.conns
    report("connected, no data", base, sample(), sockets)

    os.write(p_w, b"s")
    for s in accepted:
        got = s.recv(64)
        if len(got) != 16:
            sys.exit("short read on the server side")
        s.sendall(got)
    if os.read(p_r, 1) != b"d":
        sys.exit("client failed while exchanging")
    time.sleep(1)
    report("one 16-byte frame each way, read", base, sample(), sockets)
    time.sleep(2)
    last = sample()
    report("same, 2 s later", base, last, sockets)
    report_caches(base, last, sockets)

    os.write(p_w, b"u")
    if os.read(p_r, 1) != b"u":
        sys.exit("client failed while sending the unread frame")
    time.sleep(1)
    report("one more frame to the accepting side, left unread", base, sample(), sockets)

    os.write(p_w, b"x")
    _, status = os.waitpid(pid, 0)
    for s in accepted:
        s.close()
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Kernel memory held for clients that never read, while the server pushes to them.
#
#   bench/slow_readers.sh                      the release build, N=10 clients
#   BIN=path/to/other/redpacket-server bench/slow_readers.sh   (e.g. an older build)
#
# N clients log in as users 0..N-1 and then never read. A /fahongbao campaign at QPS
# packets a second sends each packet to 3 of them, so the server pushes a 36-byte
# notification to every client about 3*QPS/N times a second. Every 0.05 s for SECS
# seconds it samples `ss -tmn` (skmem of each socket: w = the send queue's memory on the
# server's side, r = the receive queue's on the client's) and /proc/net/sockstat (TCP
# "mem" pages: every socket of the machine, so both loopback ends). It prints the peaks,
# per client, and how the clients ended (closes.slow_reader, from /stats).
#
# Needs python3, curl and ss. Loopback only, ports PORT and CTL; no sysctl is changed;
# the server and the clients stop by themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/redpacket-server}
N=${N:-10} QPS=${QPS:-20000} SECS=${SECS:-20}
PORT=${BENCH_PORT:-22125} CTL=${BENCH_CTL:-22189}
OUT=${BENCH_OUT:-target/bench/slow_readers}
mkdir -p "$OUT"
rm -f "$OUT/ready.json"
"$BIN" --listen "127.0.0.1:$PORT" --control "127.0.0.1:$CTL" --cores 0 --stats-out off \
  --ready-file "$OUT/ready.json" ${SERVER_FLAGS:-} 2>"$OUT/server.log" &
SPID=$!
trap 'kill -TERM $SPID 2>/dev/null || true; wait $SPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$OUT/ready.json" ] && break; sleep 0.05; done
[ -s "$OUT/ready.json" ] || { echo "server did not start: $(cat "$OUT/server.log")" >&2; exit 1; }

python3 - "$PORT" "$CTL" "$N" "$QPS" "$SECS" <<'PY'
import json, re, socket, struct, subprocess, sys, time, urllib.request
port, ctl, n, qps, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])

def tcp_mem_pages():
    for line in open("/proc/net/sockstat"):
        if line.startswith("TCP:"):
            return int(re.search(r"mem (\d+)", line).group(1))

def skmem():
    """(server-side w per socket, client-side r per socket) for the server's port."""
    out = subprocess.run(["ss", "-tmnH", "state", "established"], capture_output=True, text=True).stdout
    srv, cli = [], []
    lines = out.splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"skmem:\(([^)]*)\)", line)
        if not m:
            continue
        # skmem is on its own line under the socket's, or at the end of it.
        head = lines[i - 1] if len(line.split()) < 4 else line
        f = dict(re.findall(r"([a-z]+)(\d+)", m.group(1)))
        cols = head.split()
        local, peer = (cols[2], cols[3]) if len(cols) >= 4 else ("", "")
        if local.endswith(f":{port}"):
            srv.append(int(f.get("w", 0)))
        elif peer.endswith(f":{port}"):
            cli.append(int(f.get("r", 0)))
    return srv, cli

def stats():
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{ctl}/stats", timeout=5))

base_pages = tcp_mem_pages()
clients = []
for u in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack(">HHQI", 16, 0, 0, u))
    got = b""
    while len(got) < 20:
        got += s.recv(20 - len(got))
    clients.append(s)  # never read again
logged_pages = tcp_mem_pages()
url = f"http://127.0.0.1:{ctl}/fahongbao?qps={qps}&sum={int(qps * secs)}&min=0&max={n - 1}"
urllib.request.urlopen(url, timeout=5).read()
start = time.time()
peak_w = peak_r = peak_pages = 0
peak_total_w = 0
while time.time() - start < secs:
    srv, cli = skmem()
    peak_w = max([peak_w] + srv)
    peak_total_w = max(peak_total_w, sum(srv))
    peak_r = max([peak_r] + cli)
    peak_pages = max(peak_pages, tcp_mem_pages() - base_pages)
    time.sleep(0.05)
st = stats()
srv, _ = skmem()
print(f"clients {n}, campaign {qps:g}/s for {secs:g} s: notifications written {st['send']['notified']}, "
      f"closes.slow_reader {st['closes'].get('slow_reader', 0)}, server sockets still open {len(srv)}")
print(f"peak server-side send queue (skmem w) of one client: {peak_w} bytes; of all: {peak_total_w} bytes "
      f"({peak_total_w / n:.0f} per client)")
print(f"peak client-side receive queue (skmem r) of one client: {peak_r} bytes")
print(f"peak TCP memory, /proc/net/sockstat (both ends): +{peak_pages} pages = {peak_pages * 4096 / n:.0f} bytes per client "
      f"(logged in and idle: +{logged_pages - base_pages} pages)")
PY

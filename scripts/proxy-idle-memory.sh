#!/usr/bin/env bash
# Memory of idle keep-alive client connections in the proxy, raw HTTP/1.1
# path against hyper's (issue 16): N connections, one GET each, then held
# open; the proxy's RSS before and after, A B B A.
# Usage: scripts/proxy-idle-memory.sh PROXY_BIN [N=2000] (PROXY_BIN: e.g.
# target/release/examples/bench_proxy; needs target/parallax-bin/session-cache).
set -euo pipefail
bin=$(realpath "$1"); n=${2:-2000}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); work=$(mktemp -d); cd "$work"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
primary=$(free_port)
"$root/target/parallax-bin/session-cache" --listen "127.0.0.1:$primary" >/dev/null 2>&1 & pids+=($!)
sleep 0.5
curl -fsS -X PUT --data-binary '{"a":1}' "127.0.0.1:$primary/v1/sessions/x" >/dev/null
for mode in raw hyper hyper raw; do
  port=$(free_port)
  printf 'admin_listen = "127.0.0.1:%s"\n[[services]]\nname = "m"\nlisten = "127.0.0.1:%s"\nprimary = "127.0.0.1:%s"\nshadow = "127.0.0.1:%s"\nmirror_percent = 0\n' "$(free_port)" "$port" "$primary" "$primary" > cfg.toml
  PARALLAX_PROXY_H1=$mode TOKIO_WORKER_THREADS=1 "$bin" --config cfg.toml >/dev/null 2>&1 & pid=$!; pids+=($pid)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  python3 - "$port" "$n" "$pid" "$mode" <<'PY'
import socket, sys, time
port, n, pid, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
# warm: one connection
s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"GET /v1/sessions/x HTTP/1.1\r\nHost: h\r\n\r\n"); s.recv(4096); s.close()
time.sleep(0.2); before = rss(); socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /v1/sessions/x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    socks.append(s)
time.sleep(0.5); after = rss()
print(f"{mode}: {n} idle keep-alive connections: RSS {before} -> {after} KiB, {(after-before)*1024/n/1024:.1f} KiB per connection")
PY
  kill $pid; wait $pid 2>/dev/null || true
done

#!/usr/bin/env bash
# The TLS handshake rate and its CPU cost: parallax proxy's TLS listener
# against nginx's, with the same certificate and key, one worker each
# (TOKIO_WORKER_THREADS=1; worker_processes 1).
#
# The client is `openssl s_time -new`: a fresh full handshake per
# connection (no session resumption), connection closed right after, no
# request sent — so only the handshake is timed. CLIENTS of them run in
# parallel for SECS seconds per run, against each server in turn, A B B A.
# The server's CPU-seconds (utime + stime from /proc) over the run, divided
# by the handshakes completed, is its CPU per handshake.
#
# KEY=ec (default: ECDSA P-256) or KEY=rsa (RSA 2048). Both servers offer
# TLS 1.2 and 1.3 (nginx 1.22 needs `ssl_protocols` for 1.3), so OpenSSL's
# client gets TLS 1.3, TLS_AES_256_GCM_SHA384 and X25519 from both (printed
# at the start). ROUNDS pairs of A B B A (default 2).
#
# Usage: SECS=10 CLIENTS=2 KEY=ec scripts/tls-handshake.sh
# Needs nginx (Debian nginx-light), openssl and target/release/parallax.
set -euo pipefail

secs=${SECS:-10}; clients=${CLIENTS:-2}; key=${KEY:-ec}; rounds=${ROUNDS:-2}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="$root/target/tls-handshake"
parallax="$root/target/release/parallax"
[[ -x $parallax ]] || { echo "tls-handshake: $parallax is missing: cargo build --release -p parallax" >&2; exit 2; }
for tool in nginx openssl; do
  command -v "$tool" >/dev/null || { echo "tls-handshake: $tool is missing" >&2; exit 2; }
done
rm -rf "$work" && mkdir -p "$work/nginx"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "tls-handshake: nothing listens on $1" >&2; exit 1
}
cpu_of() {
  local tick total=0 p
  tick=$(getconf CLK_TCK)
  for p in "$@"; do
    total=$(awk -v t="$total" -v hz="$tick" '{print t + ($14 + $15) / hz}' "/proc/$p/stat")
  done
  echo "$total"
}

case $key in
  ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
  rsa) newkey=(-newkey rsa:2048) ;;
  *) echo "tls-handshake: KEY must be ec or rsa" >&2; exit 2 ;;
esac
openssl req -x509 "${newkey[@]}" -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 2>/dev/null

# The proxy needs upstreams to start; no request ever reaches them.
upstream=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$upstream)); s.listen(); time.sleep(1e9)" & pids+=($!)
pp=$(free_port); admin=$(free_port)
cat >"$work/parallax.toml" <<EOF
admin_listen = "127.0.0.1:$admin"
[[services]]
name = "tls"
listen = "127.0.0.1:$pp"
primary = "http://127.0.0.1:$upstream"
shadow = "http://127.0.0.1:$upstream"
[services.tls]
cert_file = "$work/cert.pem"
key_file = "$work/key.pem"
EOF
TOKIO_WORKER_THREADS=1 "$parallax" proxy --config "$work/parallax.toml" >"$work/parallax.log" 2>&1 & pids+=($!); parallax_pid=$!

np=$(free_port)
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
    ssl_session_cache off;
    ssl_session_tickets off;
    # nginx 1.22 leaves TLS 1.3 out of its default; the proxy offers it first.
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:$np ssl http2;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        location / { return 204; }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' >"$work/nginx/out.log" 2>&1 & pids+=($!); nginx_pid=$!
wait_port "$pp"; wait_port "$np"
sleep 0.5
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)

declare -A port=([parallax]=$pp [nginx]=$np)
declare -A proc=([parallax]=$parallax_pid [nginx]="$nginx_pid $nginx_worker")

run() {
  local server=$1 before after n=0 i cp=()
  before=$(cpu_of ${proc[$server]})
  local t0 t1
  t0=$(date +%s.%N)
  for i in $(seq "$clients"); do
    openssl s_time -connect "127.0.0.1:${port[$server]}" -new -time "$secs" >"$work/$server-$i.out" 2>&1 &
    cp+=($!)
  done
  wait "${cp[@]}"
  t1=$(date +%s.%N)
  after=$(cpu_of ${proc[$server]})
  for i in $(seq "$clients"); do
    n=$((n + $(awk '/connections in .* real seconds/{print $1; exit}' "$work/$server-$i.out")))
  done
  python3 -c "import sys; n,b,a,s=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]); print(f'{sys.argv[5]}\t{n}\t{n/s:.0f}\t{(a-b):.2f}\t{(a-b)/max(n,1)*1e6:.0f}')" \
    "$n" "$before" "$after" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')" "$server"
}

echo "tls-handshake: key $key, $clients openssl s_time -new clients, ${secs}s per run, $(nproc) CPUs, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for server in parallax nginx; do
  # What each negotiates with OpenSSL's client (protocol, cipher, group).
  echo | openssl s_client -connect "127.0.0.1:${port[$server]}" -brief 2>&1 \
    | awk -v s="$server" '/Protocol version|Ciphersuite|Server Temp Key|Negotiated TLS1.3 group/{printf "%s: %s\n", s, $0}' >&2
done
printf 'server\thandshakes\tper_sec\tserver_cpu_s\tserver_cpu_us/handshake\n' | tee "$work/results.tsv"
for _ in $(seq "$rounds"); do
  for server in parallax nginx nginx parallax; do run "$server" | tee -a "$work/results.tsv"; done
done
python3 - "$work/results.tsv" <<'PY' >&2
import sys, collections
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:]]
n, s, c = collections.Counter(), collections.Counter(), collections.Counter()
for server, hs, rate, cpu, _ in rows:
    n[server] += int(hs); c[server] += float(cpu)
for server in n:
    print(f"tls-handshake: {server}: {n[server]} handshakes, {c[server] / n[server] * 1e6:.0f} µs server CPU per handshake (all runs)")
PY
echo "tls-handshake: done $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

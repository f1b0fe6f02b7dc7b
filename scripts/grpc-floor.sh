#!/usr/bin/env bash
# Unary gRPC through one proxy hop, side by side on this machine.
#
# Five paths to the same trivial gRPC responder (scripts/grpc-echo: grpc-go
# on h2c, every call answered with a fixed IngestResponse and status OK —
# no Kafka, no twin, so what differs between paths is the hop):
#   direct             the responder itself
#   nginx              nginx grpc_pass (keep-alive upstream), no mirror
#   nginx-mirror       the same plus `mirror` to a second responder
#   parallax           parallax proxy, h2c both ways, mirror_percent = 0
#   parallax-mirror    parallax proxy mirroring every call to the second
#                      responder and comparing the answers as gRPC
#                      (grpc-status, grpc-message, IngestResponse field by field)
# The load is `parallax load grpc` (open model, latency from each call's
# intended start), one 3-event IngestService/Publish batch per call.
# Each proxy gets one worker (nginx worker_processes 1; TOKIO_WORKER_THREADS=1).
#
# Two phases, each over the paths in order and then reversed (A..E, E..A):
#   hop    LOW calls/s (default 1000), 16 in flight: p50/p99 with no queueing
#   max    HIGH calls/s (default 20000, above what this box serves), 256 in
#          flight over 8 connections: the achieved rate is the ceiling; the
#          proxy's CPU-seconds per call from /proc (utime + stime)
#
# Usage: SECS=8 LOW=1000 HIGH=20000 scripts/grpc-floor.sh
# Needs nginx (Debian nginx-light), target/release/parallax (cargo build
# --release -p parallax) and the responder, built here when missing
# (cd scripts/grpc-echo && go build -o ../../target/parallax-bin/grpc-echo .).
set -euo pipefail

secs=${SECS:-8}; low=${LOW:-1000}; high=${HIGH:-20000}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="$root/target/grpc-floor"
parallax="$root/target/release/parallax"
echo_bin="$root/target/parallax-bin/grpc-echo"
[[ -x $echo_bin ]] || (cd "$root/scripts/grpc-echo" && go build -o "$echo_bin" .)
for need in "$parallax" "$echo_bin"; do
  [[ -x $need ]] || { echo "grpc-floor: $need is missing; see the usage at the top" >&2; exit 2; }
done
command -v nginx >/dev/null || { echo "grpc-floor: nginx is missing: apt-get install -y nginx-light" >&2; exit 2; }
rm -rf "$work" && mkdir -p "$work/nginx"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "grpc-floor: nothing listens on $1" >&2; exit 1
}
# CPU-seconds (user + system) of the given pids so far.
cpu_of() {
  local tick total=0 p
  tick=$(getconf CLK_TCK)
  for p in "$@"; do
    total=$(awk -v t="$total" -v hz="$tick" '{print t + ($14 + $15) / hz}' "/proc/$p/stat")
  done
  echo "$total"
}

primary=$(free_port); shadow=$(free_port)
"$echo_bin" "127.0.0.1:$primary" >"$work/primary.log" 2>&1 & pids+=($!); echo_pid=$!
"$echo_bin" "127.0.0.1:$shadow" >"$work/shadow.log" 2>&1 & pids+=($!)
wait_port "$primary"; wait_port "$shadow"

p0=$(free_port); p100=$(free_port); admin=$(free_port)
method=parallax.ingest.v1.IngestService/Publish
cat >"$work/parallax.toml" <<EOF
admin_listen = "127.0.0.1:$admin"
[[services]]
name = "m0"
listen = "127.0.0.1:$p0"
primary = "http://127.0.0.1:$primary"
shadow = "http://127.0.0.1:$shadow"
primary_http2 = true
shadow_http2 = true
mirror_percent = 0
[[services]]
name = "m100"
listen = "127.0.0.1:$p100"
primary = "http://127.0.0.1:$primary"
shadow = "http://127.0.0.1:$shadow"
primary_http2 = true
shadow_http2 = true
shadow_max_in_flight = 1024
[[services.routes]]
template = "/$method"
[services.routes.compare]
protobuf_message = "parallax.ingest.v1.IngestResponse"
EOF
TOKIO_WORKER_THREADS=1 "$parallax" proxy --config "$work/parallax.toml" >"$work/parallax.log" 2>&1 & pids+=($!); parallax_pid=$!

n0=$(free_port); n100=$(free_port)
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
    http2_max_requests 1000000;
    keepalive_requests 1000000;
    upstream primary { server 127.0.0.1:$primary; keepalive 256; keepalive_requests 1000000; }
    upstream shadow { server 127.0.0.1:$shadow; keepalive 256; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$n0 http2;
        location / { grpc_pass grpc://primary; }
    }
    server {
        listen 127.0.0.1:$n100 http2;
        location / { mirror /_mirror; mirror_request_body on; grpc_pass grpc://primary; }
        location = /_mirror { internal; grpc_read_timeout 1000ms; grpc_pass grpc://shadow; }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' >"$work/nginx/out.log" 2>&1 & pids+=($!); nginx_pid=$!
wait_port "$p0"; wait_port "$p100"; wait_port "$n0"; wait_port "$n100"
sleep 0.5
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)

declare -A port=([direct]=$primary [nginx]=$n0 [nginx-mirror]=$n100 [parallax]=$p0 [parallax-mirror]=$p100)
declare -A proc=([direct]="" [nginx]="$nginx_pid $nginx_worker" [nginx-mirror]="$nginx_pid $nginx_worker" [parallax]=$parallax_pid [parallax-mirror]=$parallax_pid)
order=(direct nginx nginx-mirror parallax parallax-mirror)
reverse=(parallax-mirror parallax nginx-mirror nginx direct)
batch='{"events":[{"eventId":"e-1","tenantId":"t-1","type":"page_view","occurredAtUnixMs":"1767225600000","payload":"aGVsbG8="},{"eventId":"e-2","tenantId":"t-1","type":"click","occurredAtUnixMs":"1767225600000"},{"eventId":"e-3","tenantId":"t-1","type":"purchase","occurredAtUnixMs":"1767225600000"}]}'

# run PHASE PATH RATE USERS CONNECTIONS: prints one result line.
run() {
  local phase=$1 path=$2 rate=$3 users=$4 conns=$5 out="$work/$1-$2-$RANDOM"
  local before after echo_before echo_after
  before=$(cpu_of ${proc[$path]} 2>/dev/null || echo 0); [[ -n ${proc[$path]} ]] || before=0
  echo_before=$(cpu_of "$echo_pid")
  "$parallax" load grpc --target "http://127.0.0.1:${port[$path]}" --method "$method" --json "$batch" \
    --rate "$rate" --duration-secs "$secs" --warmup-secs 2 --users "$users" --connections "$conns" \
    --max-late-ratio 1 --out "$out" >"$out.log" 2>&1 || true
  after=$(cpu_of ${proc[$path]} 2>/dev/null || echo 0); [[ -n ${proc[$path]} ]] || after=0
  echo_after=$(cpu_of "$echo_pid")
  python3 - "$out/load.json" "$before" "$after" "$echo_before" "$echo_after" "$phase" "$path" "$secs" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b, a, eb, ea = map(float, sys.argv[2:6])
phase, path, secs = sys.argv[6], sys.argv[7], float(sys.argv[8])
# CPU over warm-up + measured; per call over all calls sent in that time.
calls = r["requests"] * (secs + 2) / secs
ok = r.get("grpc_status", {}).get("OK", 0)
print(f"{phase}\t{path}\t{r['achieved_rate_per_sec']:.0f}\t{r['latency']['p50_us']}\t{r['latency']['p99_us']}"
      f"\t{(a - b) / max(calls, 1) * 1e6:.1f}\t{(ea - eb) / max(calls, 1) * 1e6:.1f}\t{ok}/{r['requests']}\t{r['late']}\t{r['generator_cpu_seconds']:.1f}")
PY
}

echo "grpc-floor: $(nproc) CPUs, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg); ${secs}s per run after 2s warm-up" >&2
printf 'phase\tpath\tcalls/s\tp50_us\tp99_us\tproxy_cpu_us/call\techo_cpu_us/call\tOK/calls\tlate\tgen_cpu_s\n' | tee "$work/results.tsv"
for path in "${order[@]}" "${reverse[@]}"; do run hop "$path" "$low" 16 2 | tee -a "$work/results.tsv"; done
for path in "${order[@]}" "${reverse[@]}"; do run max "$path" "$high" 256 8 | tee -a "$work/results.tsv"; done
echo "grpc-floor: done $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg); $work/results.tsv" >&2

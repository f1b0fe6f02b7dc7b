#!/usr/bin/env bash
# The latency floor of one proxy hop on this machine: one keep-alive
# connection, closed loop (`wrk -t1 -c1 --latency`), so every request finds
# the processes awake and only the hop itself is timed — no queueing, no
# coordinated omission to correct (there is one request in flight).
#
# Five paths to the same primary (the Go session cache; a 116-byte JSON hit):
#   direct             the primary itself
#   nginx              nginx proxy_pass, keep-alive upstream, no mirror
#   nginx-mirror       the same plus `mirror` to the shadow (Rust cache)
#   parallax           parallax proxy with mirror_percent = 0
#   parallax-mirror    parallax proxy mirroring and comparing every request
# measured in that order and then reversed (A..E, E..A), each for SECS.
# Each proxy gets one worker (nginx worker_processes 1; tokio 1 worker), so
# neither gets more cores than the other.
#
# Usage: scripts/proxy-floor.sh [SECS=10]. Needs nginx and wrk (Debian) and
# the release binaries (cargo build --release -p parallax -p
# parallax-session-cache; cd go-reference && go build -o ../target/parallax-bin/ ./cmd/...).
set -euo pipefail

secs=${1:-10}
name=proxy-floor
work="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/proxy-floor"
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "proxy-floor: $tool is missing: apt-get install -y nginx-light wrk" >&2; exit 2; }
done
mkdir -p "$work/nginx"

primary=$(free_port); shadow=$(free_port)
"$go_cache" --listen "127.0.0.1:$primary" >"$work/primary.log" 2>&1 & pids+=($!)
"$rust_cache" --listen "127.0.0.1:$shadow" >"$work/shadow.log" 2>&1 & pids+=($!)
wait_port "$primary"; wait_port "$shadow"
value='{"user":"bench","roles":["reader","writer"],"expires":"2026-12-01T00:00:00Z","padding":"xxxxxxxxxxxxxxxxxxxxxxx"}'
for port in "$primary" "$shadow"; do
  curl -fsS -X PUT --data-binary "$value" "127.0.0.1:$port/v1/sessions/bench" >/dev/null
done

p0=$(free_port); p100=$(free_port); admin=$(free_port)
{
  echo "admin_listen = \"127.0.0.1:$admin\""
  service_toml m0 "$p0" "$primary" "$shadow" "mirror_percent = 0"
  service_toml m100 "$p100" "$primary" "$shadow"
} >"$work/parallax.toml"
TOKIO_WORKER_THREADS=1 "$parallax" proxy --config "$work/parallax.toml" >"$work/parallax.log" 2>&1 & pids+=($!)

n0=$(free_port); n100=$(free_port)
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
    keepalive_requests 1000000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$http_host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    upstream primary { server 127.0.0.1:$primary; keepalive 64; keepalive_requests 1000000; }
    upstream shadow { server 127.0.0.1:$shadow; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$n0;
        location / { proxy_pass http://primary; }
    }
    server {
        listen 127.0.0.1:$n100;
        location / { mirror /_mirror; mirror_request_body on; proxy_pass http://primary; }
        location = /_mirror { internal; proxy_read_timeout 1000ms; proxy_pass http://shadow\$request_uri; }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' >"$work/nginx/out.log" 2>&1 & pids+=($!)
wait_port "$p0"; wait_port "$p100"; wait_port "$n0"; wait_port "$n100"

declare -A port=([direct]=$primary [nginx]=$n0 [nginx-mirror]=$n100 [parallax]=$p0 [parallax-mirror]=$p100)
order=(direct nginx nginx-mirror parallax parallax-mirror)
reverse=(parallax-mirror parallax nginx-mirror nginx direct)
declare -A results
echo "proxy-floor: wrk -t1 -c1 -d${secs}s --latency, A..E then E..A, $(nproc) CPUs, $(date -u +%FT%TZ)" >&2
for path in "${order[@]}" "${reverse[@]}"; do
  url="http://127.0.0.1:${port[$path]}/v1/sessions/bench"
  wrk -t1 -c1 -d1s "$url" >/dev/null           # warm the pools
  out=$(wrk -t1 -c1 -d"${secs}s" --latency "$url")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  rps=$(awk '/Requests\/sec/{printf "%d", $2}' <<<"$out")
  results[$path]+="${results[$path]:+ / }$p50 p50, $p99 p99, $rps req/s"
  echo "  $path: $p50 p50, $p99 p99, $rps req/s" >&2
done
printf '\n| path | run 1 / run 2 |\n|---|---|\n'
for path in "${order[@]}"; do printf '| %s | %s |\n' "$path" "${results[$path]}"; done

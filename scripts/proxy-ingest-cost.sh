#!/usr/bin/env bash
# The proxy's CPU per ingest batch (docs/scale.md): `parallax load ingest`
# (open model, batches of 500 events, 83 KB protobuf) through one `parallax
# proxy` to nginx answering every POST /v1/events with a canned
# {"accepted":500,"rejected":[]} as both primary and shadow, so the proxy -
# not a twin or Kafka - is what costs. Two proxy configs, run in turn
# M N N M: M mirrors and compares every batch, N mirrors none
# (mirror_percent = 0, pass-through). Prints per run the proxy's CPU-seconds
# (user + system from /proc over the whole load run, warm-up included), the
# batches it forwarded (its parallax_upstream_request_duration_seconds count
# for the primary), the comparisons, and the CPU per batch.
#
# Usage: scripts/proxy-ingest-cost.sh [EVENTS_PER_SEC=500000] [SECS=15]
# Needs nginx (apt-get install nginx-light) and the release binary
# (cargo build --release -p parallax). Output: target/proxy-ingest-cost/.
set -euo pipefail

rate=${1:-500000}; secs=${2:-15}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
parallax="$root/target/release/parallax"
work="$root/target/proxy-ingest-cost"
[[ -x $parallax ]] || { echo "proxy-ingest-cost: $parallax is missing (cargo build --release -p parallax)" >&2; exit 2; }
command -v nginx >/dev/null || { echo "proxy-ingest-cost: nginx is missing (apt-get install nginx-light)" >&2; exit 2; }

rm -rf "$work" && mkdir -p "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "proxy-ingest-cost: nothing listens on $1" >&2; exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { # metric PORT REGEX: the sum of the matching samples
  curl -s "http://127.0.0.1:$1/metrics" | awk -v re="$2" '$0 ~ re && $1 !~ /^#/ {s += $NF} END {printf "%d", s}'
}

primary=$(free_port); shadow=$(free_port)
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_buffer_size 1m;
  client_max_body_size 2m;
  client_body_temp_path $work/tmp-body;
  proxy_temp_path $work/tmp-proxy;
  fastcgi_temp_path $work/tmp-fastcgi;
  uwsgi_temp_path $work/tmp-uwsgi;
  scgi_temp_path $work/tmp-scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$primary;
    listen 127.0.0.1:$shadow;
    location /v1/events {
      default_type application/json;
      return 200 '{"accepted":500,"rejected":[]}';
    }
  }
}
EOF
nginx -c "$work/nginx.conf" & pids+=($!)
wait_port "$primary"; wait_port "$shadow"

listen=$(free_port); admin=$(free_port)
for mode in M N; do
  mirror=100; [[ $mode == N ]] && mirror=0
  cat >"$work/proxy-$mode.toml" <<EOF
admin_listen = "127.0.0.1:$admin"
[[services]]
name = "ingest"
listen = "127.0.0.1:$listen"
primary = "http://127.0.0.1:$primary"
shadow = "http://127.0.0.1:$shadow"
mirror_percent = $mirror
[[services.routes]]
template = "/v1/events"
EOF
done

echo "proxy-ingest-cost: $rate events/s in batches of 500, ${secs} s + 3 s warm-up per run, $(nproc) CPUs, $(date -u +%FT%TZ)"
i=0
for mode in M N N M; do
  i=$((i + 1))
  "$parallax" proxy --config "$work/proxy-$mode.toml" >"$work/proxy-$i.log" 2>&1 & px=$!
  pids+=($px)
  wait_port "$listen"; wait_port "$admin"
  load_before=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(cpu_ticks "$px")
  "$parallax" load ingest --target "http://127.0.0.1:$listen" --events-per-sec "$rate" --batch-size 500 \
    --duration-secs "$secs" --warmup-secs 3 --out "$work/load-$i" >"$work/load-$i.log" 2>&1 || true
  c1=$(cpu_ticks "$px")
  batches=$(metric "$admin" '^parallax_upstream_request_duration_seconds_count.*backend="primary"')
  compared=$(metric "$admin" '^parallax_comparisons_total')
  kill "$px"; wait "$px" 2>/dev/null || true
  python3 - "$mode" "$c0" "$c1" "$batches" "$compared" "$load_before" "$work/load-$i/load.json" <<'EOF'
import json, os, sys
mode, c0, c1, batches, compared, load, path = sys.argv[1:]
hz = os.sysconf("SC_CLK_TCK")
cpu = (int(c1) - int(c0)) / hz
batches = int(batches)
run = json.load(open(path))
print(f"  {'mirror+compare' if mode == 'M' else 'pass-through  '}  proxy CPU {cpu:5.2f} s  batches {batches:6d}  compared {int(compared):6d}"
      f"  {cpu / max(batches, 1) * 1e6:6.1f} us/batch  late {run['late']}/{run['requests']}  errors {run['errors']}  load avg {load}")
EOF
done

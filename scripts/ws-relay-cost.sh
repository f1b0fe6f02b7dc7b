#!/usr/bin/env bash
# The WebSocket relay's cost per relayed frame (issue 16), side by side with
# nginx as a WebSocket proxy, and before/after in one run.
#
# Each run is `proxy/examples/ws_bench.rs`: the fan-out twins (Go primary,
# Rust shadow), CONNS clients subscribed through the front, NOTIFS
# broadcasts at RATE/s to every client; the figure is the front's user +
# system CPU over the broadcasts per frame the clients got. Paths:
#   nginx          nginx proxy_pass with the upgrade headers (cannot shadow)
#   before-relay   BEFORE with mirror_percent = 0 (relaying only)
#   after-relay    AFTER, the same
#   before-shadow  BEFORE shadowing every connection (frames paired and
#                  compared with the Rust twin's)
#   after-shadow   AFTER, the same
# run in that order, then reversed (A..E, E..A), ROUNDS times. Each front
# gets WORKERS workers (nginx: one process with `master_process off` for 1;
# tokio: TOKIO_WORKER_THREADS). The load average is printed per run: on a
# busy box read the A B B A pairs, not the absolute figures.
#
# INSTRUCTIONS=1 adds the load-blind figures: each front under valgrind's
# callgrind (CG_CONNS clients, CG_NOTIFS broadcasts), counters zeroed once
# the clients are connected: user-space instructions and malloc / calloc /
# realloc calls per relayed frame. TIMINGS=0 leaves out the timed runs.
#
#   cargo build --release -p parallax-proxy --example ws_bench --example bench_proxy
#   cargo build --release -p parallax-fanout
#   (cd go-reference && go build -o ../target/parallax-bin/ ./cmd/...)
#   BEFORE=/tmp/bench_proxy.before INSTRUCTIONS=1 scripts/ws-relay-cost.sh
#
# Env: CONNS (5000), NOTIFS (20), RATE (1), WORKERS (1), ROUNDS (1),
# BEFORE (a proxy binary: bench_proxy, or parallax* run as `proxy`; without
# it the before paths are left out), AFTER (target/release/examples/bench_proxy),
# CG_CONNS (200), CG_NOTIFS (5), INSTRUCTIONS (0), TIMINGS (1).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bench=target/release/examples/ws_bench
after=${AFTER:-target/release/examples/bench_proxy}
before=${BEFORE:-}
conns=${CONNS:-5000}; notifs=${NOTIFS:-20}; rate=${RATE:-1}; workers=${WORKERS:-1}
for need in "$bench" "$after" target/parallax-bin/fanout target/release/parallax-fanout ${before:+"$before"}; do
  [[ -x $need ]] || { echo "ws-relay-cost: $need is missing; see the build lines at the top of this script" >&2; exit 2; }
done
command -v nginx >/dev/null || { echo "ws-relay-cost: nginx is missing: apt-get install -y nginx-light" >&2; exit 2; }
[[ ${INSTRUCTIONS:-0} != 1 ]] || command -v valgrind >/dev/null || { echo "ws-relay-cost: valgrind is missing: apt-get install -y valgrind" >&2; exit 2; }

paths=(nginx)
[[ -n $before ]] && paths+=(before-relay)
paths+=(after-relay)
[[ -n $before ]] && paths+=(before-shadow)
paths+=(after-shadow)

# one PATH CONNS NOTIFS [--callgrind]: one ws_bench run of PATH; its output.
one() {
  local path=$1 n=$2 k=$3; shift 3
  local bin="" mirror=100 via=parallax
  case $path in
    nginx) via=nginx ;;
    before-*) bin=$before ;;
    after-*) bin=$after ;;
  esac
  [[ $path == *-relay ]] && mirror=0
  PARALLAX_PROXY_BIN=$bin "$bench" run --via "$via" --checkpoints "$n" --notifications "$k" \
    --rate "$rate" --direct 0 --settle-secs 3 --workers "$workers" --mirror-percent "$mirror" "$@" 2>&1
}

declare -A cpu
if [[ ${TIMINGS:-1} == 1 ]]; then
  order=("${paths[@]}")
  for ((i = ${#paths[@]} - 1; i >= 0; i--)); do order+=("${paths[$i]}"); done
  echo "$(date -u +%FT%TZ) $conns clients, $notifs broadcasts at $rate/s, $workers worker(s) per front; order ${order[*]} x ${ROUNDS:-1}"
  for _ in $(seq "${ROUNDS:-1}"); do
    for path in "${order[@]}"; do
      load=$(cut -d' ' -f1 /proc/loadavg)
      out=$(one "$path" "$conns" "$notifs")
      us=$(sed -n 's/.*(\([0-9.]*\) µs per frame the clients got).*/\1/p' <<<"$out")
      got=$(sed -n 's/^client latency through the proxy: \([0-9]*\) frames.*/\1/p' <<<"$out")
      frames=$(sed -n 's/^frames: //p' <<<"$out")
      [[ -n $us ]] || { echo "ws-relay-cost: $path failed:" >&2; echo "$out" >&2; exit 1; }
      printf '  %-14s %6s µs per frame (%s frames; load %s)%s\n' "$path" "$us" "$got" "$load" \
        "$([[ $path == *-shadow ]] && echo "; $frames")"
      cpu[$path]+="${cpu[$path]:+, }$us"
    done
  done
  printf '\n| front, %s clients | CPU per relayed frame (µs), each run |\n|---|---|\n' "$conns"
  for path in "${paths[@]}"; do printf '| %s | %s |\n' "$path" "${cpu[$path]}"; done
fi

if [[ ${INSTRUCTIONS:-0} == 1 ]]; then
  n=${CG_CONNS:-200}; k=${CG_NOTIFS:-5}
  printf '\n| front, %s clients x %s broadcasts (callgrind) | instructions per relayed frame | mallocs per relayed frame |\n|---|---|---|\n' "$n" "$k"
  for path in "${paths[@]}"; do
    out=$(one "$path" "$n" "$k" --callgrind)
    line=$(sed -n 's/^callgrind per frame the clients got: \([0-9]*\) instructions, \([0-9.]*\) mallocs.*/\1 \2/p' <<<"$out")
    [[ -n $line ]] || { echo "ws-relay-cost: $path under callgrind failed:" >&2; echo "$out" >&2; exit 1; }
    read -r ir mallocs <<<"$line"
    printf '| %s | %s | %s |\n' "$path" "$ir" "$mallocs"
  done
fi

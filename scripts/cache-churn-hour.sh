#!/usr/bin/env bash
# cache-churn-hour.sh — both session-cache twins under PUT churn AT THE SAME
# TIME for an hour (issue 18: the seed's ~4 GB working set, RSS over time,
# where Go's GC shows in the tail).
#
# Why a script and not `parallax bench cache-churn`: the bench runs the twins
# one after the other and samples memory twice; an hour each would take two,
# and the question is the shape over time. So: each twin in its own cgroup
# (v1 memory + cpuacct: the kernel's accounting), one `churn_hour` driver per
# twin (loadgen/examples/churn_hour.rs: fill to 1.1 × capacity, then one CSV
# line of latency percentiles and RSS per minute), a sampler writing RSS,
# cgroup memory, `cache_bytes` and CPU every 10 s, and Go's
# GODEBUG=gctrace=1 lines in go.stderr. Both twins and drivers share the
# machine's cores (no pinning: a 2-core box has none to spare); what one
# twin's GC costs in CPU the other's tail also feels, so compare each twin's
# per-minute tail with its own GC times, not only across twins.
#
# Usage:
#   scripts/cache-churn-hour.sh [OUT]      (default target/churn-hour/<UTC time>)
#
# Environment (defaults in brackets):
#   BIN           directory with session-cache (Go), parallax-session-cache
#                 (Rust) and churn_hour [/tmp/churn] — copies, so rebuilds of
#                 the checkout during the hour don't touch the running files
#   CAPACITY      --capacity-bytes of both twins [4294967296]
#   RATE          churn PUTs/s per twin [1500]
#   MINUTES       measured minutes [60]
#   SHARDS        --shards [64]
#   GOGC          Go's GC target [100]; GOMEMLIMIT Go's soft limit [unset]
#   MALLOC_ARENA_MAX / other glibc tunables are passed through to both.
#   MIN_AVAILABLE_MIB  stop the run (kill both twins) when the machine's
#                 MemAvailable falls below this [1536]: the box is shared.
set -euo pipefail

OUT=${1:-target/churn-hour/$(date -u +%Y%m%dT%H%M%SZ)}
BIN=${BIN:-/tmp/churn}
CAPACITY=${CAPACITY:-4294967296}
RATE=${RATE:-1500}
MINUTES=${MINUTES:-60}
SHARDS=${SHARDS:-64}
MIN_AVAILABLE_MIB=${MIN_AVAILABLE_MIB:-1536}
GO_PORT=${GO_PORT:-18081}
RUST_PORT=${RUST_PORT:-18082}
CG=/sys/fs/cgroup
TAG=parallax-churn-$$

mkdir -p "$OUT"
for f in session-cache parallax-session-cache churn_hour; do
  [[ -x $BIN/$f ]] || { echo "missing $BIN/$f (set BIN=)" >&2; exit 2; }
done

# Exec a child inside cgroup $1 (memory + cpuacct) from its first
# instruction; called as `in_cgroup NAME CMD... &`, so $! is CMD's pid.
in_cgroup() {
  local name=$1; shift
  for c in memory cpuacct; do mkdir -p "$CG/$c/$TAG-$name"; done
  # shellcheck disable=SC2016
  exec sh -c 'for c in memory cpuacct; do echo $$ > "$0/$c/$1/cgroup.procs"; done; shift; exec "$@"' \
    "$CG" "$TAG-$name" "$@"
}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for c in memory cpuacct; do rmdir "$CG/$c/$TAG-go" "$CG/$c/$TAG-rust" 2>/dev/null || true; done
}
trap cleanup EXIT

{
  echo "date=$(date -u +%FT%TZ) host=$(hostname) nproc=$(nproc)"
  echo "capacity=$CAPACITY rate=$RATE minutes=$MINUTES shards=$SHARDS"
  echo "GOGC=${GOGC:-100} GOMEMLIMIT=${GOMEMLIMIT:-unset} MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-unset}"
  echo "loadavg=$(cat /proc/loadavg)"
  free -m
} > "$OUT/run.txt"

GODEBUG=gctrace=1 in_cgroup go "$BIN/session-cache" -listen 127.0.0.1:$GO_PORT \
  -capacity-bytes "$CAPACITY" -shards "$SHARDS" > "$OUT/go.stdout" 2> "$OUT/go.stderr" &
go_pid=$!; pids+=("$go_pid")
in_cgroup rust "$BIN/parallax-session-cache" --listen 127.0.0.1:$RUST_PORT \
  --capacity-bytes "$CAPACITY" --shards "$SHARDS" > "$OUT/rust.stdout" 2> "$OUT/rust.stderr" &
rust_pid=$!; pids+=("$rust_pid")

. "$(dirname "${BASH_SOURCE[0]}")/lib/twins.sh"
wait_healthz $GO_PORT $RUST_PORT

gauge() { curl -sf --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { printf "%.0f", $2 }' || true; }
rss() { awk '/^VmRSS/ { printf "%.0f", $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cgstat() { awk -v k="$2" '$1 == k { print $2 }' "$CG/memory/$TAG-$1/memory.stat" || true; }

sampler() {
  echo "t_s,loadavg1,mem_available_mib,go_rss,go_cg_rss,go_cg_usage,go_cache_bytes,go_cpu_ns,rust_rss,rust_cg_rss,rust_cg_usage,rust_cache_bytes,rust_cpu_ns"
  local t0; t0=$(date +%s)
  while true; do
    local avail; avail=$(awk '/^MemAvailable/ { print int($2 / 1024) }' /proc/meminfo)
    local row="$(( $(date +%s) - t0 )),$(cut -d' ' -f1 /proc/loadavg),$avail"
    for twin in go:$GO_PORT:$go_pid rust:$RUST_PORT:$rust_pid; do
      IFS=: read -r name port pid <<< "$twin"
      row+=",$(rss "$pid"),$(cgstat "$name" total_rss),$(cat "$CG/memory/$TAG-$name/memory.usage_in_bytes")"
      row+=",$(gauge "$port" cache_bytes),$(cat "$CG/cpuacct/$TAG-$name/cpuacct.usage")"
    done
    echo "$row"
    if (( avail < MIN_AVAILABLE_MIB )); then
      echo "MemAvailable ${avail} MiB < ${MIN_AVAILABLE_MIB}: stopping the run" >&2
      kill "$go_pid" "$rust_pid" 2>/dev/null || true
      return 1
    fi
    sleep 10
  done
}
sampler > "$OUT/samples.csv" 2> "$OUT/sampler.stderr" &
sampler_pid=$!; pids+=("$sampler_pid")

"$BIN/churn_hour" --target 127.0.0.1:$GO_PORT --pid "$go_pid" --capacity-bytes "$CAPACITY" \
  --rate "$RATE" --minutes "$MINUTES" > "$OUT/go.csv" 2> "$OUT/go-driver.stderr" &
go_driver=$!; pids+=("$go_driver")
"$BIN/churn_hour" --target 127.0.0.1:$RUST_PORT --pid "$rust_pid" --capacity-bytes "$CAPACITY" \
  --rate "$RATE" --minutes "$MINUTES" > "$OUT/rust.csv" 2> "$OUT/rust-driver.stderr" &
rust_driver=$!; pids+=("$rust_driver")

status=0
wait "$go_driver" || status=$?
wait "$rust_driver" || status=$?
for name in go rust; do
  echo "$name max_usage_in_bytes=$(cat "$CG/memory/$TAG-$name/memory.max_usage_in_bytes")" >> "$OUT/run.txt"
done
echo "end loadavg=$(cat /proc/loadavg)" >> "$OUT/run.txt"
echo "results in $OUT (drivers exit $status)"
exit "$status"

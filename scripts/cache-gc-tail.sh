#!/usr/bin/env bash
# cache-gc-tail.sh — the session cache at the seed's ~4 GB working set
# (issue 18): capacity at an SLO with the 4 GB pre-filled, and where Go's
# GC shows in the tail, each twin alone.
#
# One driver (loadgen/examples/cache_gc_tail.rs) against both twins, which
# run side by side but are loaded one at a time (the other idles):
#   1. fill each to 1.1 × CAPACITY with values of 64 B–64 KiB (unmeasured);
#   2. a rate ladder, probes A B B A (B A A B on the next rung), each a
#      WARMUP_SECS + PROBE_SECS open-model run of GET_SHARE GETs and PUTs;
#      a probe holds when p99 < SLO_P99_MS and < 1 % of slots are late,
#      failed or never sent;
#   3. TAIL_SECS per twin at one fixed rate (TAIL_RATE, or TAIL_SHARE of the
#      lower capacity), every request's slot time and latency kept.
#      Fixed by default: the ladder's capacities move with the machine's
#      stalls and with whether a GC cycle fell into a probe.
# Go runs with GODEBUG=gctrace=1; scripts/cache-gc-tail-summary.py lines its
# cycles up with the tail in 100 ms bins and prints the tables.
#
# Why a driver and not `parallax run --find-capacity`: the runner's probes
# start from a small preload; a 4 GB fill takes ~30 s per twin and is done
# once here, before every probe.
#
# Usage:
#   scripts/cache-gc-tail.sh [OUT]          (default target/gc-tail/<UTC time>)
# The defaults take about 10 minutes on the 2-core VM.
#
# Environment (defaults in brackets):
#   BIN          directory with session-cache (Go), parallax-session-cache
#                (Rust) and cache_gc_tail [/tmp/gctail]; copies, so rebuilds
#                of the checkout do not touch the running files. BUILD=1
#                builds and copies them first.
#   CAPACITY     --capacity-bytes of both twins [4294967296]
#   LADDER       rates, requests/s [5000,6300,8000,10000,12500,16000,20000]
#   PROBE_SECS [6]  WARMUP_SECS [2]  SLO_P99_MS [20]
#   TAIL_SECS    per twin [150]
#   TAIL_RATE    the tail's rate [6000: ~75 % of Go's capacity between GC
#                cycles at 4 GiB, 60 % of Rust's, measured 2026-12-05];
#                TAIL_RATE= (empty) takes TAIL_SHARE [0.8] of the lower
#                ladder capacity instead (a noisy figure on a busy box)
#   GET_SHARE    [0.5]; CONNECTIONS per twin [384]; SHARDS [64]
#   GOGC [100]; GOMEMLIMIT [unset]
#   DATA         also copy the results to DATA.csv (100 ms bins), DATA-steps.csv
#                and DATA.svg (e.g. DATA=docs/data/cache-gc-tail)
#   MIN_AVAILABLE_MIB  kill the twins when MemAvailable falls below [1536]
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-target/gc-tail/$(date -u +%Y%m%dT%H%M%SZ)}
BIN=${BIN:-/tmp/gctail}
CAPACITY=${CAPACITY:-4294967296}
LADDER=${LADDER:-5000,6300,8000,10000,12500,16000,20000}
PROBE_SECS=${PROBE_SECS:-6}
WARMUP_SECS=${WARMUP_SECS:-2}
SLO_P99_MS=${SLO_P99_MS:-20}
TAIL_SECS=${TAIL_SECS:-150}
TAIL_SHARE=${TAIL_SHARE:-0.8}
TAIL_RATE=${TAIL_RATE-6000}
GET_SHARE=${GET_SHARE:-0.5}
CONNECTIONS=${CONNECTIONS:-384}
SHARDS=${SHARDS:-64}
MIN_AVAILABLE_MIB=${MIN_AVAILABLE_MIB:-1536}
GO_PORT=${GO_PORT:-18181}
RUST_PORT=${RUST_PORT:-18182}

if [[ ${BUILD:-0} == 1 ]]; then
  cargo build --release -p parallax-session-cache
  cargo build --release -p parallax-loadgen --example cache_gc_tail
  mkdir -p "$BIN"
  (cd go-reference && go build -o "$BIN/" ./cmd/session-cache)
  cp target/release/parallax-session-cache target/release/examples/cache_gc_tail "$BIN/"
fi
for f in session-cache parallax-session-cache cache_gc_tail; do
  [[ -x $BIN/$f ]] || { echo "missing $BIN/$f (set BIN=, or BUILD=1)" >&2; exit 2; }
done
mkdir -p "$OUT"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

{
  echo "date=$(date -u +%FT%TZ) host=$(hostname) nproc=$(nproc)"
  echo "capacity=$CAPACITY ladder=$LADDER probe_secs=$PROBE_SECS warmup_secs=$WARMUP_SECS slo_p99_ms=$SLO_P99_MS"
  echo "tail_secs=$TAIL_SECS tail_rate=${TAIL_RATE:-} tail_share=$TAIL_SHARE get_share=$GET_SHARE connections=$CONNECTIONS shards=$SHARDS"
  echo "GOGC=${GOGC:-100} GOMEMLIMIT=${GOMEMLIMIT:-unset}"
  echo "loadavg_start=$(cat /proc/loadavg)"
} > "$OUT/run.txt"

# The launch time is the first guess at the Go process's start, which
# gctrace's "@s" counts from; the summary refines it with
# go_memstats_last_gc_time_seconds.
echo "go_launch_unix=$(date +%s.%N)" >> "$OUT/run.txt"
GODEBUG=gctrace=1 "$BIN/session-cache" -listen 127.0.0.1:$GO_PORT \
  -capacity-bytes "$CAPACITY" -shards "$SHARDS" > "$OUT/go.stdout" 2> "$OUT/go.stderr" &
go_pid=$!; pids+=("$go_pid")
"$BIN/parallax-session-cache" --listen 127.0.0.1:$RUST_PORT \
  --capacity-bytes "$CAPACITY" --shards "$SHARDS" > "$OUT/rust.stdout" 2> "$OUT/rust.stderr" &
rust_pid=$!; pids+=("$rust_pid")

. "$(dirname "${BASH_SOURCE[0]}")/lib/twins.sh"
wait_healthz $GO_PORT $RUST_PORT
# The Rust twin re-executes itself with one malloc arena: same pid.

# The box is shared: stop before it runs out of memory.
(
  while sleep 2; do
    avail=$(awk '/^MemAvailable/ { print int($2 / 1024) }' /proc/meminfo)
    echo "$(date +%s) $(cut -d' ' -f1 /proc/loadavg) $avail" >> "$OUT/machine.txt"
    if (( avail < MIN_AVAILABLE_MIB )); then
      echo "MemAvailable ${avail} MiB < ${MIN_AVAILABLE_MIB}: stopping the twins" >&2
      kill "$go_pid" "$rust_pid" 2>/dev/null || true
      exit 1
    fi
  done
) &
pids+=("$!")

tail_rate=()
[[ -n ${TAIL_RATE:-} ]] && tail_rate=(--tail-rate "$TAIL_RATE")
"$BIN/cache_gc_tail" --twin "go=127.0.0.1:$GO_PORT:$go_pid" --twin "rust=127.0.0.1:$RUST_PORT:$rust_pid" \
  --capacity-bytes "$CAPACITY" --ladder "$LADDER" --probe-secs "$PROBE_SECS" \
  --warmup-secs "$WARMUP_SECS" --slo-p99-ms "$SLO_P99_MS" --tail-secs "$TAIL_SECS" \
  --tail-share "$TAIL_SHARE" "${tail_rate[@]}" --get-share "$GET_SHARE" \
  --connections "$CONNECTIONS" --out "$OUT" 2>&1 | tee "$OUT/driver.log"
status=${PIPESTATUS[0]}
{
  echo "loadavg_end=$(cat /proc/loadavg)"
  for name in go:$go_pid rust:$rust_pid; do
    echo "${name%%:*} VmHWM=$(awk '/^VmHWM/ { print $2 * 1024 }' "/proc/${name#*:}/status" 2>/dev/null || echo gone)"
  done
} >> "$OUT/run.txt"
(( status == 0 )) || { echo "driver failed ($status); results so far in $OUT" >&2; exit "$status"; }
scripts/cache-gc-tail-summary.py "$OUT" ${DATA:+--data "$DATA"} | tee "$OUT/summary.md"

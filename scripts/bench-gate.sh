#!/usr/bin/env bash
# The benches in the one results model, end to end: each `parallax bench`
# (release build) writes results.json + report.html and prints the common
# table, then `parallax gate` judges it. One command for a quiet-window
# rerun; every figure is labelled with the load average before and after.
#
#   scripts/bench-gate.sh                 # cache 10 s/run, cache-churn 256 MiB, fanout 2,000 connections
#   BENCHES="cache" SECS=30 scripts/bench-gate.sh
#   PROXY=1 scripts/bench-gate.sh         # also `bench proxy` (needs nginx and wrk)
#
# Environment: BENCHES (default "cache cache-churn fanout"), SECS (measured
# seconds per cache run, default 10), RATE (cache req/s, default 50000),
# CHURN_MIB (cache-churn capacity, default 256), CHURN_OPS (default 50000),
# FANOUT (connection checkpoints, default 1000,2000), OUT (default
# target/parallax-bench-gate), GATE (extra flags for the gate; default
# budgets off except errors, so the verdict lists the ratios as INFO).
set -euo pipefail
cd "$(dirname "$0")/.."

BENCHES=${BENCHES:-cache cache-churn fanout}
SECS=${SECS:-10}
RATE=${RATE:-50000}
CHURN_MIB=${CHURN_MIB:-256}
CHURN_OPS=${CHURN_OPS:-50000}
FANOUT=${FANOUT:-1000,2000}
OUT=${OUT:-target/parallax-bench-gate}
GATE=${GATE:---max-p99-ratio off --max-rss-ratio off --max-error-rate 0}
[ "${PROXY:-0}" = 1 ] && BENCHES="$BENCHES proxy"

cargo build --release -q -p parallax -p parallax-ingest -p parallax-session-cache -p parallax-fanout
PARALLAX=target/release/parallax
status=0
for bench in $BENCHES; do
  echo "=== parallax bench $bench ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
  case $bench in
    cache) args=(--rate "$RATE" --duration-secs "$SECS" --quiet-wait-secs 30) ;;
    cache-churn) args=(--capacity-bytes $((CHURN_MIB << 20)) --ops "$CHURN_OPS" --quiet-wait-secs 30) ;;
    fanout) args=(--checkpoints "$FANOUT" --per-worker 1000 --latency-clients 1000 --slow-count 10 --fast-secs 5 --settle-secs 2) ;;
    proxy) args=(--wrk-secs 5 --duration-secs 5 --quiet-wait-secs 20) ;;
    *) echo "unknown bench $bench" >&2; exit 2 ;;
  esac
  # fanout's --out is its own folder; the others add a subfolder per bench.
  out=$OUT; [ "$bench" = fanout ] && out=$OUT/fanout
  "$PARALLAX" bench "$bench" --out "$out" "${args[@]}" || status=1
  echo "=== load after $bench: $(cut -d' ' -f1-3 /proc/loadavg)"
  # shellcheck disable=SC2086
  "$PARALLAX" gate "$OUT/$bench/results.json" $GATE || status=1
done
exit $status

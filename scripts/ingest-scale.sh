#!/usr/bin/env bash
# The ingest twins at scale, each alone against the local Kafka: for every
# rate, `parallax load ingest` (open model, batches of 500, latency from each
# batch's intended start) drives one twin at a time in the given order
# (default go rust rust go, so drift and warm-up cancel out), and the script
# prints one line per run: achieved events/s, late slots, errors, p50/p99/
# p99.9, the twin's CPU-seconds (user + system over warm-up + measured
# phase, from /proc/PID/stat) and peak RSS (VmHWM), the broker's
# CPU-seconds over the same window and its RSS after it, the load
# generator's CPU-seconds (its load.json), and the load average before the
# run: how much of the machine each part took.
#
# Usage: scripts/ingest-scale.sh RATES [SECS=12] [WARMUP=3] [ORDER="go rust rust go"]
#   RATES is a comma-separated list of events/s, e.g. 50000,100000,200000.
#   Twins are named by ORDER; each name's binary is $BIN_<name> (defaults:
#   BIN_go=target/parallax-bin/ingest, BIN_rust=target/release/parallax-ingest),
#   so two builds of one twin compare as e.g.
#   BIN_old=/tmp/ingest-before BIN_new=target/release/parallax-ingest ORDER="old new new old".
#   PARALLAX=path picks the load generator (default target/release/parallax).
#   PERF=SECS records `perf record -F 999 -g` of each run's twin for SECS
#   seconds of its measured phase into $work/run-N-NAME.perf.data.
# Needs Kafka (scripts/kafka.sh up), the release `parallax` and the twins
# (cargo build --release -p parallax -p parallax-ingest;
#  cd go-reference && go build -o ../target/parallax-bin/ ./cmd/...).
# Output: target/ingest-scale/ (each run's load.json and twin log).
set -euo pipefail

rates=${1:?usage: scripts/ingest-scale.sh RATES [SECS] [WARMUP] [ORDER]}
secs=${2:-12}; warmup=${3:-3}; order=${4:-${ORDER:-go rust rust go}}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
parallax=${PARALLAX:-$root/target/release/parallax}
BIN_go=${BIN_go:-$root/target/parallax-bin/ingest}
BIN_rust=${BIN_rust:-$root/target/release/parallax-ingest}
work="$root/target/ingest-scale"
topic=${TOPIC:-ingest-scale}
brokers=${PARALLAX_KAFKA_BROKERS:-127.0.0.1:9092}
mkdir -p "$work"

binary() { local v="BIN_$1"; echo "${!v:?no binary for twin $1 (set BIN_$1)}"; }
for name in $order; do [[ -x $(binary "$name") ]] || { echo "ingest-scale: $(binary "$name") is missing" >&2; exit 2; }; done
[[ -x $parallax ]] || { echo "ingest-scale: $parallax is missing" >&2; exit 2; }

broker=$(cat "${PARALLAX_KAFKA_DIR:-$HOME/.cache/parallax/kafka-run}/kafka.pid" 2>/dev/null || true)
[[ -n $broker && -r /proc/$broker/stat ]] || { echo "ingest-scale: no broker running (scripts/kafka.sh up)" >&2; exit 2; }
"$root/scripts/kafka.sh" create-topic "$topic" 3 >/dev/null

twin=""
cleanup() { [[ -n $twin ]] && kill "$twin" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

ticks=$(getconf CLK_TCK)
# CPU-seconds (user + system) of a process so far.
cpu() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "ingest-scale: $(nproc) CPUs, $(date -u +%FT%TZ), ${secs} s measured after ${warmup} s warm-up, batches of 500, order: $order"
printf '  %-4s %-6s %8s %10s %6s %6s %9s %9s %9s %8s %9s %9s %10s %6s %s\n' \
  run twin target achieved late errors p50_ms p99_ms p999_ms cpu_s peak_rss broker_s broker_rss gen_s load
i=0
for rate in ${rates//,/ }; do
  for name in $order; do
    i=$((i + 1))
    port=$(free_port)
    "$(binary "$name")" --listen "127.0.0.1:$port" --kafka-brokers "$brokers" --topic "$topic" \
      >"$work/run-$i-$name.log" 2>&1 &
    twin=$!
    for _ in $(seq 200); do curl -fsS -o /dev/null "127.0.0.1:$port/readyz" 2>/dev/null && break; sleep 0.05; done
    load=$(cut -d' ' -f1 /proc/loadavg)
    c0=$(cpu "$twin"); b0=$(cpu "$broker")
    if [[ -n ${PERF:-} ]]; then
      (sleep $((warmup + 2)); perf record -F 999 -g -p "$twin" -o "$work/run-$i-$name.perf.data" -- sleep "$PERF" >/dev/null 2>&1) &
    fi
    "$parallax" load ingest --target "http://127.0.0.1:$port" --events-per-sec "$rate" --batch-size 500 \
      --duration-secs "$secs" --warmup-secs "$warmup" --out "$work/run-$i-$name" >"$work/run-$i-$name.load.log" 2>&1 || true
    wait_perf=$(jobs -p | grep -v "^$twin\$" || true)
    [[ -n $wait_perf ]] && wait $wait_perf 2>/dev/null || true
    c1=$(cpu "$twin"); b1=$(cpu "$broker")
    rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$twin/status")
    brss=$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$broker/status")
    kill "$twin"; wait "$twin" 2>/dev/null || true; twin=""
    python3 - "$work/run-$i-$name/load.json" "$i" "$name" "$rate" "$c0" "$c1" "$rss" "$b0" "$b1" "$brss" "$load" <<'PY'
import json, sys
path, i, name, rate, c0, c1, rss, b0, b1, brss, load = sys.argv[1:]
try:
    d = json.load(open(path))
except OSError:
    print(f"  {i:<4} {name:<6} {int(rate):>8}  no load.json (see the .load.log)")
    sys.exit()
l = d["latency"]
print(f"  {i:<4} {name:<6} {int(rate):>8} {d['achieved_units_per_sec']:>10.0f} {d['late']:>6} {d['errors']:>6}"
      f" {l['p50_us'] / 1e3:>9.2f} {l['p99_us'] / 1e3:>9.2f} {l['p999_us'] / 1e3:>9.2f}"
      f" {float(c1) - float(c0):>8.2f} {rss:>7}Mi {float(b1) - float(b0):>9.2f} {brss:>8}Mi"
      f" {d['generator_cpu_seconds']:>6.2f} {load}")
PY
  done
done

#!/usr/bin/env bash
# capacity-all.sh — issue 18's capacity table in one command: for each
# built-in pair (cache, ingest, fan-out) a capacity search Go against Rust
# (A/B) between two searches Go against Go (A/A), so the ratio and its A/A
# spread come from the same minutes. SLOs and why: docs/experiments.md
# ("Capacity at an SLO: the objectives of the built-in pairs").
#
# Usage:
#   scripts/capacity-all.sh                 # all three pairs, ~12-15 min
#   PAIRS="cache fanout" AA_RUNS=1 scripts/capacity-all.sh
#
# Environment:
#   PARALLAX     the parallax binary (default target/release/parallax; build it
#                with `cargo build --release -p parallax -p parallax-ingest
#                -p parallax-session-cache -p parallax-fanout`)
#   OUT          where each run's results go (default target/capacity-all)
#   PAIRS        which pairs (default "cache ingest fanout")
#   AA_RUNS      A/A searches per pair, 1 or 2 (default 2: one before, one after the A/B)
#   PROBE_SECS   measured seconds of one probe (default 3; 1 s warm-up before each)
#   PARALLAX_{INGEST,CACHE,FANOUT}_{GO,RUST}_BIN   prebuilt twins (defaults below)
#
# Prints one line per search and a table of capacities, ratios and A/A
# spreads with the load average at the start of each search; writes it to
# $OUT/summary.txt. Needs the local Kafka for ingest (started if stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PARALLAX=${PARALLAX:-$ROOT/target/release/parallax}
OUT=${OUT:-$ROOT/target/capacity-all}
PAIRS=${PAIRS:-"cache ingest fanout"}
AA_RUNS=${AA_RUNS:-2}
PROBE_SECS=${PROBE_SECS:-3}
export PARALLAX_KAFKA_BROKERS=${PARALLAX_KAFKA_BROKERS:-127.0.0.1:9092}
. "$(dirname "${BASH_SOURCE[0]}")/lib/twins.sh"
twin_bins capacity-all "$ROOT"
[ -x "$PARALLAX" ] || { echo "capacity-all: $PARALLAX is missing: cargo build --release -p parallax" >&2; exit 2; }
case " $PAIRS " in *" ingest "*) scripts/kafka.sh status >/dev/null 2>&1 || scripts/kafka.sh up ;; esac
mkdir -p "$OUT"

# pair -> starting rate and SLO (rates: cache ops/s, ingest batches/s of 500
# events, fan-out notifications/s to 2000 sessions).
start_rate() { case $1 in cache) echo 1000 ;; ingest) echo 100 ;; fanout) echo 20 ;; esac; }
slo() { case $1 in cache) echo 'p99<50ms' ;; ingest) echo 'p99<250ms' ;; fanout) echo 'p99<100ms' ;; esac; }

runs() {
  echo aa1
  echo ab
  [ "$AA_RUNS" -ge 2 ] && echo aa2
  return 0
}

for pair in $PAIRS; do
  for run in $(runs); do
    aa=(); [ "$run" = ab ] || aa=(--aa)
    dir="$OUT/$pair-$run"
    rm -rf "$dir"
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "== $pair $run: load $load, $(date -u +%H:%M:%S) UTC" >&2
    "$PARALLAX" run "experiments/$pair.toml" "${aa[@]}" --find-capacity \
      --rate "$(start_rate "$pair")" --slo "$(slo "$pair")" \
      --duration-secs "$PROBE_SECS" --warmup-secs 1 --out "$dir" \
      > "$dir.log" 2>&1 || { echo "capacity-all: $pair $run failed; see $dir.log" >&2; tail -5 "$dir.log" >&2; }
    echo "$load $(cut -d' ' -f1 /proc/loadavg)" > "$dir.load"
  done
done

python3 - "$OUT" $PAIRS <<'PY' | tee "$OUT/summary.txt"
import json, sys, os
out, pairs = sys.argv[1], sys.argv[2:]
def search(pair, run):
    d = os.path.join(out, f"{pair}-{run}")
    try:
        r = json.load(open(os.path.join(d, "results.json")))
        load = open(d + ".load").read().split()
    except OSError:
        return None
    cap = r["scenarios"][0].get("capacity") or {}
    b = cap.get("backends", [])
    if len(b) < 2:
        return None
    a, c = b[0].get("capacity_per_sec"), b[1].get("capacity_per_sec")
    return dict(names=(b[0]["name"], b[1]["name"]), caps=(a, c), slo=cap.get("slo"),
                ratio=(c / a) if a and c else None, load=load,
                probes=(len(b[0]["probes"]), len(b[1]["probes"])))
fmt = lambda v: "none held" if v is None else f"{v:,.4g}/s"
print("pair     run  load start->end  SLO         baseline            candidate           ratio")
for pair in pairs:
    aa = []
    for run in ("aa1", "ab", "aa2"):
        s = search(pair, run)
        if s is None:
            continue
        if run != "ab" and s["ratio"]:
            aa.append(s["ratio"])
        ratio = "" if s["ratio"] is None else "%.2fx" % s["ratio"]
        print(f"{pair:8} {run:4} {s['load'][0]:>5} -> {s['load'][1]:<6} {s['slo']:11} "
              f"{s['names'][0]} {fmt(s['caps'][0]):14} {s['names'][1]} {fmt(s['caps'][1]):14} {ratio}")
    ab = search(pair, "ab")
    if ab and ab["ratio"]:
        spread = f"A/A {min(aa):.2f}-{max(aa):.2f}x over {len(aa)}" if aa else "no A/A ratio"
        print(f"  => {pair}: rust/go capacity {ab['ratio']:.2f}x ({spread})")
PY

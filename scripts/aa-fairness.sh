#!/usr/bin/env bash
# aa-fairness.sh — issue 18's A/A checks of the two fixes for role bias, in
# one command:
#   1. fan-out A/A, direct and interleaved (both backends' sessions held,
#      publishes in A B B A blocks): RUNS runs, p50/p99 ratios go-b/go-a;
#   2. cache A/A in shadow mode with the proxy's mirror_order "unordered"
#      (what every run used before) and "alternate" (now the harness's
#      default), RUNS runs each, interleaved U A U A …: p50/p99 ratios.
# Target: every ratio within 0.9-1.1.
#
# Usage: scripts/aa-fairness.sh            # RUNS=3, ~8 min on a quiet box
# Environment: PARALLAX (default target/release/parallax), OUT (default
# target/aa-fairness), RUNS (3), SECS (measured seconds per run, 12),
# PARTS ("fanout cache"), PARALLAX_{CACHE,FANOUT}_{GO,RUST}_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PARALLAX=${PARALLAX:-$ROOT/target/release/parallax}
OUT=${OUT:-$ROOT/target/aa-fairness}
RUNS=${RUNS:-3}
SECS=${SECS:-12}
PARTS=${PARTS:-"fanout cache"}
export PARALLAX_CACHE_GO_BIN=${PARALLAX_CACHE_GO_BIN:-$ROOT/target/parallax-bin/session-cache}
export PARALLAX_CACHE_RUST_BIN=${PARALLAX_CACHE_RUST_BIN:-$ROOT/target/release/parallax-session-cache}
export PARALLAX_FANOUT_GO_BIN=${PARALLAX_FANOUT_GO_BIN:-$ROOT/target/parallax-bin/fanout}
export PARALLAX_FANOUT_RUST_BIN=${PARALLAX_FANOUT_RUST_BIN:-$ROOT/target/release/parallax-fanout}
for b in "$PARALLAX" "$PARALLAX_CACHE_GO_BIN" "$PARALLAX_FANOUT_GO_BIN"; do
  [ -x "$b" ] || { echo "aa-fairness: $b is missing" >&2; exit 2; }
done
mkdir -p "$OUT"

one() { # name, args...
  local name=$1; shift
  local dir="$OUT/$name" load
  rm -rf "$dir"
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "== $name: load $load, $(date -u +%H:%M:%S) UTC" >&2
  "$PARALLAX" run "$@" --duration-secs "$SECS" --warmup-secs 2 --out "$dir" > "$dir.log" 2>&1 \
    || { echo "aa-fairness: $name failed; see $dir.log" >&2; tail -5 "$dir.log" >&2; }
  echo "$load $(cut -d' ' -f1 /proc/loadavg)" > "$dir.load"
}

for i in $(seq 1 "$RUNS"); do
  case " $PARTS " in *" fanout "*) one "fanout-aa-direct-$i" experiments/fanout.toml --aa --direct ;; esac
  case " $PARTS " in *" cache "*)
    one "cache-aa-shadow-unordered-$i" experiments/cache.toml --aa --mirror-order unordered
    one "cache-aa-shadow-alternate-$i" experiments/cache.toml --aa --mirror-order alternate ;;
  esac
done

python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, sys, os, glob
out = sys.argv[1]
print("run                              load start->end  p50 a / b (us)    p50 ratio  p99 a / b (us)      p99 ratio")
for d in sorted(glob.glob(os.path.join(out, "*/results.json"))):
    name = os.path.basename(os.path.dirname(d))
    try:
        s = json.load(open(d))["scenarios"][0]
        load = open(os.path.join(out, name + ".load")).read().split()
    except (OSError, KeyError, IndexError):
        continue
    a, b = s["backends"][0]["latency"], s["backends"][1]["latency"]
    r50 = b["p50_us"] / a["p50_us"] if a["p50_us"] else float("nan")
    r99 = b["p99_us"] / a["p99_us"] if a["p99_us"] else float("nan")
    ok = lambda r: "ok" if 0.9 <= r <= 1.1 else "OUT"
    print(f"{name:32} {load[0]:>5} -> {load[1]:<6} {a['p50_us']:>7} / {b['p50_us']:<7} {r50:5.2f} {ok(r50):3}  "
          f"{a['p99_us']:>8} / {b['p99_us']:<8} {r99:5.2f} {ok(r99)}")
PY

#!/usr/bin/env bash
# Does a slow shadow move the client's latency? One `parallax proxy` with
# three services in front of the same Go session-cache primary: `none`
# mirrors nothing (mirror_percent = 0: the no-shadow baseline), `fast`
# mirrors every request to a Rust cache, `slow` to a Rust cache that answers
# every request after 500 ms (its hidden `--debug-delay-us` fault
# injection). `parallax load cache` (open model, latency from each request's
# intended start) drives them in turn, N F S S F N repeated, so drift and
# warm-up cancel out, and the script prints each run's percentiles and the
# ratios of the means.
#
# Usage: scripts/slow-shadow.sh [RATE=5000] [SECS=10] [ROUNDS=2]
# Needs the release binaries (cargo build --release -p parallax -p
# parallax-session-cache; cd go-reference && go build -o ../target/parallax-bin/ ./cmd/...).
set -euo pipefail

rate=${1:-5000}; secs=${2:-10}; pairs=${3:-2}
name=slow-shadow
work="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/slow-shadow"
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"

primary=$(free_port); fast=$(free_port); slow=$(free_port)
"$go_cache" --listen "127.0.0.1:$primary" >"$work/primary.log" 2>&1 & pids+=($!)
"$rust_cache" --listen "127.0.0.1:$fast" >"$work/fast.log" 2>&1 & pids+=($!)
"$rust_cache" --listen "127.0.0.1:$slow" --debug-delay-us 500000 >"$work/slow.log" 2>&1 & pids+=($!)
pn=$(free_port); pf=$(free_port); ps=$(free_port); admin=$(free_port)
{
  echo "admin_listen = \"127.0.0.1:$admin\""
  service_toml none "$pn" "$primary" "$fast" "mirror_percent = 0"
  service_toml fast "$pf" "$primary" "$fast"
  service_toml slow "$ps" "$primary" "$slow"
} >"$work/parallax.toml"
"$parallax" proxy --config "$work/parallax.toml" >"$work/parallax.log" 2>&1 & pids+=($!)
for p in "$primary" "$fast" "$slow" "$pn" "$pf" "$ps"; do wait_port "$p"; done

echo "slow-shadow: $rate req/s (90 % reads, 10,000 Zipf keys, 128 B values), ${secs} s + 2 s warm-up per run, $(nproc) CPUs, $(date -u +%FT%TZ)"
order=()
for _ in $(seq "$pairs"); do order+=(none fast slow slow fast none); done
i=0
for which in "${order[@]}"; do
  i=$((i + 1))
  case $which in none) port=$pn ;; fast) port=$pf ;; slow) port=$ps ;; esac
  "$parallax" load cache --target "http://127.0.0.1:$port" --ops-per-sec "$rate" --read-ratio 0.9 \
    --keys 10000 --value-size 128 --duration-secs "$secs" --warmup-secs 2 \
    --out "$work/run-$i-$which" >"$work/run-$i.log" 2>&1 || echo "  run $i: the load generator reported a failure (see $work/run-$i.log)"
done
python3 - "$work" <<'PY'
import json, pathlib, sys
runs = {"none": [], "fast": [], "slow": []}
for path in sorted(pathlib.Path(sys.argv[1]).glob("run-*/load.json"), key=lambda p: int(p.parent.name.split("-")[1])):
    which = path.parent.name.split("-")[2]
    d = json.loads(path.read_text())
    l = d["latency"]
    runs[which].append(l)
    print(f"  {path.parent.name:12} p50 {l['p50_us']:>6} µs  p99 {l['p99_us']:>6} µs  p99.9 {l['p999_us']:>6} µs  late {d['late']}  errors {d['errors']}")
for q in ("p50_us", "p99_us", "p999_us"):
    n, f, s = (sum(r[q] for r in runs[w]) / len(runs[w]) for w in ("none", "fast", "slow"))
    print(f"  {q[:-3]:6} mean none {n:6.0f}  fast {f:6.0f}  slow {s:6.0f} µs   slow/none {s / n:.2f}  fast/none {f / n:.2f}  slow/fast {s / f:.2f}")
PY
curl -fsS "127.0.0.1:$admin/metrics" | grep -E '^parallax_mirror_total' | grep -v ' 0$' | sed 's/^/  /'

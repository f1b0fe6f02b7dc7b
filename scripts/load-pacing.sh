#!/usr/bin/env bash
# How well `parallax load http` keeps an open model's schedule, against the
# fastest target there is (the Go session cache's GET, no proxy): its own
# p50 from each slot beside loadgen/examples/lean_open's (plain threads,
# evenly spaced: the reference), late slots, the generator's CPU per
# request, and the hand-off from each slot's release to its send (the
# `pacing:` line of `parallax load`). Each rate runs A B L L B A: A the
# `parallax` in PARALLAX_LOAD_BASELINE (an older build; left out when
# unset), B this tree's release `parallax`, L lean_open.
#
# Usage: [PARALLAX_LOAD_BASELINE=path] [RATES="5000 20000"] [SECS=5]
#        scripts/load-pacing.sh
# Needs: cargo build --release -p parallax; cargo build --release -p
# parallax-loadgen --example lean_open; the Go twins (see proxy-floor.sh).
set -euo pipefail

name=load-pacing
work=${LOAD_PACING_WORK:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/load-pacing"}
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"
lean="$root/target/release/examples/lean_open"
[[ -x $lean ]] || { echo "$name: $lean is missing: cargo build --release -p parallax-loadgen --example lean_open" >&2; exit 2; }
secs=${SECS:-5}

port=$(free_port)
"$go_cache" --listen "127.0.0.1:$port" >"$work/cache.log" 2>&1 & pids+=($!)
wait_port "$port"
curl -fsS -X PUT --data-binary '{"user":"bench"}' "127.0.0.1:$port/v1/sessions/bench" >/dev/null

gens=(B L L B)
[[ -n ${PARALLAX_LOAD_BASELINE:-} ]] && gens=(A B L L B A)
echo "$name: ${RATES:-5000 20000} req/s, ${secs}s measured each, ${gens[*]}, $(nproc) CPUs, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
printf '| rate | generator | p50 / p99 µs | late | generator CPU µs/req | release → send p50 / p99 µs | load |\n|---|---|---|---|---|---|---|\n'
for rate in ${RATES:-5000 20000}; do
  run=0
  for gen in "${gens[@]}"; do
    run=$((run + 1)); dir="$work/$rate-$run-$gen"; mkdir -p "$dir"
    load=$(cut -d' ' -f1 /proc/loadavg)
    case $gen in
      A|B)
        bin=$parallax; label="parallax load http"
        [[ $gen == A ]] && { bin=$PARALLAX_LOAD_BASELINE; label="parallax load http (baseline)"; }
        # Enough users for rate × a stall of 10 ms.
        users=$(( rate / 100 > 64 ? rate / 100 : 64 ))
        "$bin" load http --target "http://127.0.0.1:$port" --path /v1/sessions/bench --rate "$rate" \
          --duration-secs "$secs" --warmup-secs 2 --users "$users" --out "$dir" >"$dir.log" 2>&1 || true
        pacing=$(sed -n 's/.*pacing: sent \([0-9]*\) µs (p50) \/ \([0-9]*\) µs (p99).*/\1 \/ \2/p' "$dir.log")
        ;;
      L)
        label="lean_open"; pacing="–"
        "$lean" --target "127.0.0.1:$port" --path /v1/sessions/bench --rate "$rate" --senders 64 \
          --duration-secs "$secs" --warmup-secs 2 --out "$dir/load.json" >"$dir.log" 2>&1 || true
        ;;
    esac
    python3 - "$dir/load.json" "$rate" "$label" "${pacing:-–}" "$load" "$secs" <<'EOF' || echo "| $rate | $label | failed: see $dir.log | | | | $load |"
import json, sys
d = json.load(open(sys.argv[1]))
l = d["latency"]
# Over every request sent, warm-up included (lean_open reports it so;
# parallax load's CPU is the whole process's, goose's start-up included).
cpu = d.get("generator_cpu_us_per_request")
if cpu is None:
    sent = d["target_rate_per_sec"] * (float(sys.argv[6]) + 2)
    cpu = d["generator_cpu_seconds"] * 1e6 / sent
print(f"| {sys.argv[2]} | {sys.argv[3]} | {l['p50_us']} / {l['p99_us']} | {d['late']} | {cpu:.1f} | {sys.argv[4]} | {sys.argv[5]} |")
EOF
  done
done

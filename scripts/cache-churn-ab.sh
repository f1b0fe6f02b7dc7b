#!/usr/bin/env bash
# cache-churn-ab.sh — variants of the Rust session cache under the same PUT
# churn AT THE SAME TIME, for allocator settings and memory fixes (issue 18:
# RSS growth under churn ≤ 5 %). Running them side by side rather than one
# after the other puts the machine's noise on every variant alike.
#
# Usage:
#   scripts/cache-churn-ab.sh OUT 'NAME|ENV|BINARY' ...
#     NAME    a label (go.csv-style output NAME.csv in OUT)
#     ENV     space-separated VAR=value for that twin ('' for none)
#     BINARY  the session cache to run (Rust flags: --listen, --capacity-bytes)
#   e.g.
#   scripts/cache-churn-ab.sh /tmp/ab 'base||/tmp/churn/parallax-session-cache' \
#       'arena1|MALLOC_ARENA_MAX=1|/tmp/churn/parallax-session-cache'
#
# Environment: CAPACITY [1073741824], RATE [1500] PUT/s per variant,
# INTERVALS [8] of INTERVAL_SECS [30], PORT_BASE [18190] (variants listen
# on the ports after it), DRIVER [/tmp/churn/churn_hour]
# (loadgen/examples/churn_hour.rs, built with
# `cargo build --release -p parallax-loadgen --example churn_hour`).
# Prints per variant: RSS after the fill, at the end, growth, and p99 of
# each interval (the fill itself is not measured).
set -euo pipefail

OUT=$1; shift
CAPACITY=${CAPACITY:-1073741824}
RATE=${RATE:-1500}
INTERVALS=${INTERVALS:-8}
INTERVAL_SECS=${INTERVAL_SECS:-30}
DRIVER=${DRIVER:-/tmp/churn/churn_hour}
mkdir -p "$OUT"
echo "start $(date -u +%FT%TZ) loadavg $(cat /proc/loadavg)" > "$OUT/run.txt"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

port=${PORT_BASE:-18190}
drivers=()
names=()
for spec in "$@"; do
  IFS='|' read -r name env binary <<< "$spec"
  port=$((port + 1))
  if curl -sf "http://127.0.0.1:$port/healthz" > /dev/null; then
    echo "port $port is taken (another run?): set PORT_BASE" >&2; exit 2
  fi
  # shellcheck disable=SC2086
  env $env "$binary" --listen 127.0.0.1:$port --capacity-bytes "$CAPACITY" \
    > "$OUT/$name.server.log" 2>&1 &
  server=$!; pids+=("$server")
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break
    sleep 0.1
  done
  "$DRIVER" --target 127.0.0.1:$port --pid "$server" --capacity-bytes "$CAPACITY" \
    --rate "$RATE" --minutes "$INTERVALS" --interval-secs "$INTERVAL_SECS" \
    > "$OUT/$name.csv" 2> "$OUT/$name.driver.log" &
  drivers+=("$!"); pids+=("$!"); names+=("$name")
  # The server's CPU ticks (utime + stime, 10 ms) when the first interval
  # ends and when the last does: CPU per PUT without the fill.
  (
    until [[ $(wc -l < "$OUT/$name.csv" 2> /dev/null || echo 0) -ge 2 ]]; do sleep 0.5; done
    awk '{ print $14 + $15 }' "/proc/$server/stat" > "$OUT/$name.cpu"
    until [[ $(wc -l < "$OUT/$name.csv" 2> /dev/null || echo 0) -ge $((INTERVALS + 1)) ]]; do sleep 0.5; done
    awk '{ print $14 + $15 }' "/proc/$server/stat" >> "$OUT/$name.cpu"
  ) &
  pids+=("$!")
  echo "$name: env '$env' binary $binary ($(sha256sum "$binary" | cut -c1-12)) port $port" >> "$OUT/run.txt"
done
for d in "${drivers[@]}"; do wait "$d"; done
echo "end $(date -u +%FT%TZ) loadavg $(cat /proc/loadavg)" >> "$OUT/run.txt"

for name in "${names[@]}"; do
  # rss_start of the first interval is right after the fill.
  sleep 1
  awk -F, -v n="$name" -v cpu="$(paste -sd, "$OUT/$name.cpu")" \
    'NR == 2 { s = $13 } NR > 1 { e = $14; p = p sprintf(" %.1f", $10 / 1000); c = $15 } NR > 2 { r += $3 }
    END { split(cpu, t, ","); printf "%-10s RSS after fill %.1f MiB, end %.1f MiB (%.3fx accounted), growth %.2f %%, CPU %.0f us/PUT, p99 ms:%s\n",
          n, s / 1048576, e / 1048576, e / c, (e - s) / s * 100, (t[2] - t[1]) * 10000 / r, p }' "$OUT/$name.csv"
done | tee -a "$OUT/run.txt"

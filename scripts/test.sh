#!/usr/bin/env bash
# Runs every test of the project against real processes and a real Kafka:
# Go unit tests, Rust unit and integration tests, and the conformance suite
# against both twins of every service (ingest, session cache, fan-out). This
# is the README's test command; .ci/run calls it after the lints.
#
# Kafka is started once for the whole run (scripts/kafka.sh up, reused if it
# is already running) and stopped at the end only if this script started it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

"$root/scripts/deps.sh"

echo "== building the twins" >&2
bin="$root/target/parallax-bin"
mkdir -p "$bin"
cargo build --workspace --bins
(cd go-reference && go build -o "$bin/" ./cmd/...)

echo "== starting Kafka" >&2
# Exit 3 means no broker process: only then is it ours to stop at the end
# (4, alive but slow to answer, is someone else's broker under load).
started_kafka=0
"$root/scripts/kafka.sh" status >/dev/null 2>&1 || [[ $? -ne 3 ]] || started_kafka=1
"$root/scripts/kafka.sh" up
if [[ $started_kafka == 1 && -z "${PARALLAX_KEEP_KAFKA:-}" ]]; then
  trap '"$root/scripts/kafka.sh" down >/dev/null 2>&1 || true' EXIT
fi

export PARALLAX_KAFKA_BROKERS="${PARALLAX_KAFKA_BROKERS:-127.0.0.1:${PARALLAX_KAFKA_PORT:-9092}}"
export PARALLAX_INGEST_GO_BIN="$bin/ingest"
export PARALLAX_INGEST_RUST_BIN="$root/target/debug/parallax-ingest"
export PARALLAX_CACHE_GO_BIN="$bin/session-cache"
export PARALLAX_CACHE_RUST_BIN="$root/target/debug/parallax-session-cache"
export PARALLAX_FANOUT_GO_BIN="$bin/fanout"
export PARALLAX_FANOUT_RUST_BIN="$root/target/debug/parallax-fanout"

echo "== Go tests" >&2
(cd go-reference && go test ./...)

echo "== Rust tests (unit, integration, conformance against both twins)" >&2
cargo test --workspace

echo "== docker-compose stack, Prometheus config, dashboards (no Docker engine needed)" >&2
"$root/scripts/check-deploy.sh"

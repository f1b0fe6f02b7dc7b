# Shared by the scripts that run the built-in twins themselves
# (aa-fairness.sh, capacity-all.sh, cache-gc-tail.sh, cache-churn-hour.sh);
# source it. No side effects: functions only.

# twin_bins SCRIPT ROOT [go|both]: exports PARALLAX_{INGEST,CACHE,FANOUT}_{GO,RUST}_BIN,
# defaulting to ROOT's builds (Go in target/parallax-bin, Rust release), and
# exits 2 naming the build command when a needed one is missing (`go`: the
# Go twins only, for A/A runs; `both`, the default: every twin).
twin_bins() {
  local script=$1 root=$2 need=${3:-both} svc name bin up go rust b
  for svc in ingest:ingest cache:session-cache fanout:fanout; do
    name=${svc%%:*} bin=${svc#*:}
    up=$(echo "$name" | tr a-z A-Z)
    go="PARALLAX_${up}_GO_BIN" rust="PARALLAX_${up}_RUST_BIN"
    export "$go=${!go:-$root/target/parallax-bin/$bin}"
    export "$rust=${!rust:-$root/target/release/parallax-$bin}"
    [ -x "${!go}" ] || { echo "$script: ${!go} is missing: (cd go-reference && go build -o ../target/parallax-bin/ ./cmd/...)" >&2; exit 2; }
    [ "$need" = go ] || [ -x "${!rust}" ] || { echo "$script: ${!rust} is missing: cargo build --release -p parallax-$bin" >&2; exit 2; }
  done
}

# wait_healthz PORT...: waits up to 10 s for each twin's /healthz; exits 1
# naming the port that never answered.
wait_healthz() {
  local port
  for port in "$@"; do
    for _ in $(seq 100); do
      curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break
      sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/healthz" > /dev/null || { echo "twin on :$port not up" >&2; exit 1; }
  done
}

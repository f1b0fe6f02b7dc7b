#!/usr/bin/env bash
# Times the README's main job as a new user's first run: `git clone`, then
# the README's "the main job" line, run as written, with an empty target
# directory and an empty Go build cache. Downloaded crates (~/.cargo) and
# Go modules (GOMODCACHE) are kept, and so is a running Kafka (start one
# first with `scripts/kafka.sh up`, or the run starts and times one).
#
#   scripts/first-run-time.sh [REPO]   # REPO: what to clone, default this checkout's committed HEAD
#
# Prints the time to the first table (the first scenario's, printed as it
# ends) and to the whole run, split into the build (everything
# before `parallax run` starts) and the run, with the load average at the
# start and the end (the figure means something only on a quiet machine:
# README "How long the first run takes"). The clone, its target directory
# (~4 GB) and the Go cache are deleted at the end; PARALLAX_FIRST_RUN_KEEP=1
# keeps them (their path is printed).
set -euo pipefail

repo="${1:-$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)}"
work="$(mktemp -d /tmp/parallax-first-run.XXXXXX)"
if [[ "${PARALLAX_FIRST_RUN_KEEP:-0}" != 1 ]]; then
  trap 'rm -rf "$work"' EXIT
fi

job="$(git -C "$repo" show HEAD:README.md | awk '!done && /^# the main job/ { getline; print; done = 1 }')"
if [[ -z "$job" ]]; then
  echo "first-run-time: no line after '# the main job' in $repo's README.md" >&2
  exit 2
fi

unset CARGO_TARGET_DIR PARALLAX_INGEST_GO_BIN PARALLAX_INGEST_RUST_BIN \
  PARALLAX_CACHE_GO_BIN PARALLAX_CACHE_RUST_BIN PARALLAX_FANOUT_GO_BIN PARALLAX_FANOUT_RUST_BIN
export GOCACHE="$work/gocache"
mkdir -p "$GOCACHE"

echo "first-run-time: $(date -u '+%F %T') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), in $work"
echo "first-run-time: job: $job"
start=$(date +%s.%N)
git clone -q "$repo" "$work/repo"
cd "$work/repo"
# xtrace stamps each command as it starts: the build/run split below.
# (PS4 is set inside: bash does not import it from the environment as root.)
# stdout through a stamper: the first table is the first line saying what
# a scenario measured ("ingest: ... measured after ..."), printed as the
# first scenario ends.
bash -c "PS4='+ \$(date +%s.%N) '; set -x; $job" 2> >(tee "$work/trace" >&2) |
  while IFS= read -r line; do
    printf '%s\n' "$line"
    if [[ ! -s "$work/first-table" && "$line" =~ ^[^\ \[][^:]*:\ .*measured\ after ]]; then
      date +%s.%N >"$work/first-table"
    fi
  done
end=$(date +%s.%N)
sleep 0.2 # the trace's tee

run_start="$(grep -m1 -E '^\++ [0-9.]+ target/release/parallax run' "$work/trace" | awk '{print $2}')"
fmt() { awk -v s="$1" 'BEGIN { printf "%d min %02d s", s / 60, s % 60 }'; }
total=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
echo "first-run-time: load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -s "$work/first-table" ]]; then
  first=$(awk -v a="$start" -v b="$(cat "$work/first-table")" 'BEGIN { print b - a }')
  echo "first-run-time: the first table after $(fmt "$first")"
fi
if [[ -n "$run_start" ]]; then
  build=$(awk -v a="$start" -v b="$run_start" 'BEGIN { print b - a }')
  run=$(awk -v a="$run_start" -v b="$end" 'BEGIN { print b - a }')
  echo "first-run-time: clone + build $(fmt "$build"), parallax run $(fmt "$run"), in all $(fmt "$total")"
else
  echo "first-run-time: in all $(fmt "$total") (no 'target/release/parallax run' in the trace to split at)"
fi

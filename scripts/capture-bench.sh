#!/usr/bin/env bash
# Record and replay benchmarks (docs/benchmarks.md, "Record and replay").
#
#   record  recording overhead: two proxies in front of the same canned
#           responder (nginx), one recording every request; parallax replay
#           drives RATE req/s (default 5000) at each, A B B A, SECS each;
#           proxy CPU per request from /proc (the sum of its threads'
#           run time in /proc/PID/task/*/schedstat, ns), and of that the
#           recorder's writer thread (`record-*`) alone. BODY=random (512
#           incompressible bytes: zstd's worst case) or json (~512 bytes of
#           JSON events that differ per request); MIRROR=0 (nothing
#           mirrored: the proxy's smallest work, recording's largest share)
#           or 100 (every request mirrored to a shadow and compared, as the
#           proxy is used); ROUNDS=N repeats A B B A N times; MIN_RATIO
#           sets the recorder's min_compression_ratio (0: compress every
#           frame, as before stored frames existed). Prints the capture's
#           size and its compression ratio (zstd -dc of what was written).
#   record-all  the three recording configurations one after another, for
#           a quiet-window rerun in one command (~5 min with the defaults
#           SECS=10 ROUNDS=2): pass-through random, pass-through JSON,
#           mirrored JSON (each A B B A x ROUNDS), then one summary table.
#           PARALLAX_PROXY_H1 (hyper|raw) is passed to both proxies.
#           PAIRED=1 drives both proxies at once instead of A B B A
#           (ROUNDS windows of SECS, one replay each): each window's
#           difference is what recording adds with the box the same for
#           both; prints the mean and its 95 % interval. CONTROL=1 (with
#           PAIRED=1) leaves [services.record] out of the second proxy:
#           the method's own bias and spread. BASE_BIN runs the first
#           ("off") proxy from another binary and BASE_RECORDS=1 makes it
#           record too: two recorder builds side by side (e.g. a change
#           against the build before it).
#           INSTRUCTIONS=1 adds load-blind counts: each proxy in turn
#           under valgrind's callgrind (one worker), a warm-up of
#           INSTR_RATE req/s (default 500) for INSTR_WARM_SECS (default 2;
#           past a stored run's probe), counters zeroed, then
#           INSTR_SECS (default 6) of the same replay: user-space
#           instructions per request, the recorder's writer thread
#           included (callgrind counts every thread), recording off and on;
#           TIMINGS=0 skips the timed phases (counts only: a busy box
#           cannot move them).
#   replay  replay accuracy and CPU: a capture of ingest batches (500
#           events, the loadgen's 83 KB protobuf batch) replayed at 1,000
#           req/s (500,000 events/s) against the canned responder; then
#           small GETs at rising rates, and wrk on the same URL.
#   rss     the replayer's peak RSS on a large capture (SIZE_GB, default 1,
#           of incompressible 16 KiB bodies), generated here then deleted.
#
# Usage: scripts/capture-bench.sh [record|record-all|replay|rss|all]
# (default all).
# Env: SECS (20), RATE (5000), SIZE_GB (1), LEVEL (record: the recorder's
# compression_level, default: the recorder's own), BODY, MIRROR, ROUNDS
# (record; above), PERF=1 (record: a
# `perf record -F 999 -g` of each phase's proxy, rec-<arm>-<i>.perf.data
# under target/capture-bench; read with perf report --sort comm,sym). Needs nginx and wrk (Debian:
# apt-get install -y nginx-light wrk) and the release binaries:
#   cargo build --release -p parallax
#   cargo build --release -p parallax-capture --example make_capture
set -euo pipefail

what=${1:-all}
secs=${SECS:-20}
rate=${RATE:-5000}
size_gb=${SIZE_GB:-1}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${WORK:-$root/target/capture-bench}
parallax=${PARALLAX_BIN:-$root/target/release/parallax}
make=${MAKE_CAPTURE_BIN:-$root/target/release/examples/make_capture}
# The proxy under test: `parallax proxy`, or PARALLAX_PROXY_BIN (e.g.
# target/release/examples/bench_proxy: the proxy library alone, same
# entry point and runtime) when the CLI cannot be built.
proxy_cmd=("$parallax" proxy)
[[ -n ${PARALLAX_PROXY_BIN:-} ]] && proxy_cmd=("$PARALLAX_PROXY_BIN")
for need in "$parallax" "$make"; do
  [[ -x $need ]] || { echo "capture-bench: $need is missing; see the usage at the top" >&2; exit 2; }
done
for tool in nginx wrk zstd; do
  command -v "$tool" >/dev/null || { echo "capture-bench: $tool is missing: apt-get install -y nginx-light wrk zstd" >&2; exit 2; }
done
rm -rf "$work" && mkdir -p "$work/nginx"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "capture-bench: nothing listens on $1" >&2; exit 1
}
# CPU run time of process $1 in ns: every live thread's schedstat summed
# (ns resolution, where /proc/PID/stat counts 10 ms ticks); with a second
# argument, only the threads whose name starts with it.
cpu_ns() {
  local t sum=0 name
  for t in /proc/"$1"/task/*; do
    if [[ -n ${2:-} ]]; then
      name=$(<"$t/comm") || continue
      [[ $name == "$2"* ]] || continue
    fi
    sum=$((sum + $(cut -d' ' -f1 "$t/schedstat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}

# The canned responder: nginx, one worker, a fixed JSON answer to anything.
canned=$(free_port)
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
    keepalive_requests 1000000;
    client_max_body_size 10m;
    server {
        listen 127.0.0.1:$canned;
        default_type application/json;
        location / { return 200 '{"accepted":500,"rejected":[]}'; }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' >"$work/nginx/out.log" 2>&1 & pids+=($!)
wait_port "$canned"
echo "capture-bench: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)" >&2

record() {
  local body=${1:-${BODY:-random}} mirror=${2:-${MIRROR:-0}} rounds=${ROUNDS:-1}
  echo "== recording overhead: ${rate} req/s for ${secs}s per phase, A B B A x ${rounds}; BODY=${body} MIRROR=${mirror} LEVEL=${LEVEL:-default} MIN_RATIO=${MIN_RATIO:-default}" >&2
  local n=$((rate * (secs + 2))) body_flag
  case $body in
    random) body_flag=--body-bytes ;;
    json) body_flag=--json-body-bytes ;;
    *) echo "capture-bench: BODY=$body: use random or json" >&2; exit 2 ;;
  esac
  [[ $mirror =~ ^[0-9]+$ && $mirror -le 100 ]] || { echo "capture-bench: MIRROR=$mirror: use 0-100" >&2; exit 2; }
  rm -rf "$work/rec"
  "$make" --out "$work/load.plxcap" --requests "$n" --rate "$rate" --conns 64 \
    --method POST --path /v1/events/{n} "$body_flag" 512 2>&1
  local plain rec admin1 admin2 level=""
  plain=$(free_port); rec=$(free_port); admin1=$(free_port); admin2=$(free_port)
  [[ -n ${LEVEL:-} ]] && level="compression_level = $LEVEL"
  [[ -n ${MIN_RATIO:-} ]] && level="$level
min_compression_ratio = $MIN_RATIO"
  printf 'admin_listen = "127.0.0.1:%s"\n[[services]]\nname = "plain"\nlisten = "127.0.0.1:%s"\nprimary = "127.0.0.1:%s"\nshadow = "127.0.0.1:%s"\nmirror_percent = %s\n' \
    "$admin1" "$plain" "$canned" "$canned" "$mirror" >"$work/plain.toml"
  printf 'admin_listen = "127.0.0.1:%s"\n[[services]]\nname = "rec"\nlisten = "127.0.0.1:%s"\nprimary = "127.0.0.1:%s"\nshadow = "127.0.0.1:%s"\nmirror_percent = %s\n[services.record]\npath = "%s/rec/rec.plxcap"\n%s\n' \
    "$admin2" "$rec" "$canned" "$canned" "$mirror" "$work" "$level" >"$work/rec.toml"
  if [[ ${CONTROL:-0} == 1 ]]; then
    sed -i '/^\[services.record\]/,$d' "$work/rec.toml"
  fi
  if [[ ${BASE_RECORDS:-0} == 1 ]]; then
    printf '[services.record]\npath = "%s/rec-base/rec.plxcap"\n%s\n' "$work" "$level" >>"$work/plain.toml"
  fi
  local base_cmd=("${proxy_cmd[@]}")
  [[ -n ${BASE_BIN:-} ]] && base_cmd=("$BASE_BIN")
  TOKIO_WORKER_THREADS=1 "${base_cmd[@]}" --config "$work/plain.toml" >"$work/plain.log" 2>&1 & local pid_plain=$!; pids+=($pid_plain)
  TOKIO_WORKER_THREADS=1 "${proxy_cmd[@]}" --config "$work/rec.toml" >"$work/rec.log" 2>&1 & local pid_rec=$!; pids+=($pid_rec)
  wait_port "$plain"; wait_port "$rec"
  declare -A port=([off]=$plain [on]=$rec) pid=([off]=$pid_plain [on]=$pid_rec)
  local i=0 perf_pid arms=() r
  [[ ${TIMINGS:-1} == 0 ]] || for ((r = 0; r < rounds; r++)); do arms+=(off on on off); done
  : >"$work/rec-phases.txt"
  if [[ ${PAIRED:-0} == 1 && ${TIMINGS:-1} != 0 ]]; then
    paired "$plain" "$rec" "$rounds"
    arms=()
  fi
  for arm in "${arms[@]}"; do
    local before after wbefore wafter out sent load
    i=$((i + 1))
    load=$(cut -d' ' -f1 /proc/loadavg)
    if [[ -n ${PERF:-} ]]; then
      perf record -F 999 -g -p "${pid[$arm]}" -o "$work/rec-$arm-$i.perf.data" -- sleep "$secs" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    before=$(cpu_ns "${pid[$arm]}"); wbefore=$(cpu_ns "${pid[$arm]}" record-)
    out=$("$parallax" replay "$work/load.plxcap" --target "$arm=http://127.0.0.1:${port[$arm]}" \
      --rate "$rate" --duration-secs "$secs" --no-sessions --quiet --results "$work/rec-$arm.json" || true)
    after=$(cpu_ns "${pid[$arm]}"); wafter=$(cpu_ns "${pid[$arm]}" record-)
    [[ -n ${PERF:-} ]] && wait "$perf_pid"
    sent=$(sed -n 's/.*sent \([0-9]*\) in.*/\1/p' <<<"$out" | head -1)
    echo "$arm $((after - before)) $((wafter - wbefore)) ${sent:-0} $load" >>"$work/rec-phases.txt"
    awk -v arm="$arm" -v t=$((after - before)) -v w=$((wafter - wbefore)) -v n="${sent:-0}" -v load="$load" \
      'BEGIN{ if (n == 0) n = 1; printf "  recording %-3s: proxy CPU %.2f us/request (writer thread %.2f) over %d requests, load %s\n", arm, t / n / 1e3, w / n / 1e3, n, load }' >&2
    grep -E "latency|late" <<<"$out" | sed 's/^/    /' >&2
  done
  curl -s "127.0.0.1:$admin2/metrics" >"$work/rec.metrics" || true
  kill "$pid_plain" "$pid_rec"
  wait "$pid_rec" 2>/dev/null || true # the recorder finishes its segment
  if [[ ${TIMINGS:-1} != 0 && ${PAIRED:-0} != 1 ]]; then
    # Each arm's CPU per request over all its phases, and the difference.
    local summary raw packed
    packed=$(cat "$work"/rec/*.plxcap | wc -c)
    raw=$(zstd -dcq "$work"/rec/*.plxcap | wc -c)
    summary=$(awk -v raw="$raw" -v packed="$packed" '{ t[$1] += $2; w[$1] += $3; n[$1] += $4; l = l " " $5 }
      END { off = t["off"] / n["off"] / 1e3; on = t["on"] / n["on"] / 1e3;
            printf "off %.2f us, on %.2f us (writer %.2f): recording adds %+.2f us/request (%+.1f %%); file %.1f MB, ratio %.2f; load%s", off, on, w["on"] / n["on"] / 1e3, on - off, (on / off - 1) * 100, packed / 1e6, raw / (packed > 0 ? packed : 1), l }' \
      "$work/rec-phases.txt")
    echo "  => $summary" >&2
    printf '%-7s %-4s %s\n' "$body" "$mirror" "$summary" >>"$work/summary.txt"
    grep -E '^parallax_record_(records|bytes|dropped)' "$work/rec.metrics" | sed 's/^/    /' >&2 || true
  fi
  if [[ ${INSTRUCTIONS:-0} == 1 ]]; then
    local instr_off instr_on
    instr_off=$(instructions "$work/plain.toml" "$plain" off)
    instr_on=$(instructions "$work/rec.toml" "$rec" on)
    awk -v off="$instr_off" -v on="$instr_on" -v body="$body" -v mirror="$mirror" 'BEGIN {
      printf "%-7s %-4s instructions per request (callgrind, all threads): off %.0f, on %.0f, recording adds %+.0f (%+.1f %%)\n",
        body, mirror, off, on, on - off, (on / off - 1) * 100 }' | tee -a "$work/instructions.txt" >&2
  fi
}

# paired PORT_OFF PORT_ON WINDOWS: both proxies driven at once (one
# replay each, RATE req/s, SECS) for WINDOWS windows, each proxy's CPU per
# request over the same window. Sequential phases of one arm spread ±2 µs
# a request on this box (the CPU a request costs depends on how the box's
# other work batches the proxy's wake-ups), more than recording adds; side
# by side, both arms see the same box, and the per-window difference is
# what recording adds. A process keeps a bias of its own (where its
# threads land, ±0.1-0.2 µs, measured with CONTROL=1), so both proxies
# are restarted before every window, in turn first, and warmed up for 2 s.
# CONTROL=1 gives the second proxy no [services.record]: the method's own
# bias and spread. Uses record's pid_plain / pid_rec and configs.
paired() {
  local port_off=$1 port_on=$2 windows=$3 w
  echo "  side by side: ${windows} windows of ${secs}s, both proxies at ${rate} req/s each, restarted before each window$([[ ${CONTROL:-0} == 1 ]] && echo ', CONTROL: neither records')" >&2
  : >"$work/paired.txt"
  for ((w = 1; w <= windows; w++)); do
    kill "$pid_plain" "$pid_rec" 2>/dev/null || true
    wait "$pid_plain" "$pid_rec" 2>/dev/null || true
    if ((w % 2)); then
      TOKIO_WORKER_THREADS=1 "${base_cmd[@]}" --config "$work/plain.toml" >>"$work/plain.log" 2>&1 & pid_plain=$!
      TOKIO_WORKER_THREADS=1 "${proxy_cmd[@]}" --config "$work/rec.toml" >>"$work/rec.log" 2>&1 & pid_rec=$!
    else
      TOKIO_WORKER_THREADS=1 "${proxy_cmd[@]}" --config "$work/rec.toml" >>"$work/rec.log" 2>&1 & pid_rec=$!
      TOKIO_WORKER_THREADS=1 "${base_cmd[@]}" --config "$work/plain.toml" >>"$work/plain.log" 2>&1 & pid_plain=$!
    fi
    pids+=("$pid_plain" "$pid_rec")
    wait_port "$port_off"; wait_port "$port_on"
    local port
    local warm=()
    for port in "$port_off" "$port_on"; do
      "$parallax" replay "$work/load.plxcap" --target "warm=http://127.0.0.1:$port" --rate "$rate" \
        --duration-secs 2 --no-sessions --quiet --max-late-percent 100 --results "$work/warm-$port.json" >/dev/null 2>&1 &
      warm+=($!)
    done
    wait "${warm[@]}" || true
    local off0 on0 won0 off1 on1 won1 load sent_off sent_on pid_off=$pid_plain pid_on=$pid_rec
    load=$(cut -d' ' -f1 /proc/loadavg)
    off0=$(cpu_ns "$pid_off"); on0=$(cpu_ns "$pid_on"); won0=$(cpu_ns "$pid_on" record-)
    # The two replays start in turn first, as the proxies did.
    local arm drive=()
    for arm in $( ((w % 2)) && echo "off on" || echo "on off"); do
      local port=$port_off
      [[ $arm == on ]] && port=$port_on
      "$parallax" replay "$work/load.plxcap" --target "$arm=http://127.0.0.1:$port" --rate "$rate" \
        --duration-secs "$secs" --no-sessions --quiet --results "$work/pair-$arm.json" >"$work/pair-$arm.out" 2>&1 &
      drive+=($!)
    done
    wait "${drive[@]}" || true
    off1=$(cpu_ns "$pid_off"); on1=$(cpu_ns "$pid_on"); won1=$(cpu_ns "$pid_on" record-)
    sent_off=$(sed -n 's/.*sent \([0-9]*\) in.*/\1/p' "$work/pair-off.out" | head -1)
    sent_on=$(sed -n 's/.*sent \([0-9]*\) in.*/\1/p' "$work/pair-on.out" | head -1)
    echo "$((off1 - off0)) ${sent_off:-0} $((on1 - on0)) $((won1 - won0)) ${sent_on:-0} $load" >>"$work/paired.txt"
    awk -v a=$((off1 - off0)) -v na="${sent_off:-1}" -v b=$((on1 - on0)) -v wb=$((won1 - won0)) -v nb="${sent_on:-1}" -v w="$w" -v load="$load" \
      'BEGIN { printf "  window %d: off %.2f us/request, on %.2f (writer %.2f): %+.2f us; load %s\n", w, a / na / 1e3, b / nb / 1e3, wb / nb / 1e3, b / nb / 1e3 - a / na / 1e3, load }' >&2
    grep -h "late" "$work/pair-off.out" "$work/pair-on.out" | sed 's/^/    /' >&2
  done
  local summary
  summary=$(awk '{ off = $1 / $2 / 1e3; on = $3 / $5 / 1e3; d[NR] = on - off; so += off; sn += on; sw += $4 / $5 / 1e3; sd += on - off }
    END { n = NR; m = sd / n; v = 0; for (i = 1; i <= n; i++) v += (d[i] - m) ^ 2; s = n > 1 ? sqrt(v / (n - 1)) : 0;
          printf "side by side, %d windows: off %.2f us, on %.2f us (writer %.2f): recording adds %+.2f us/request (%+.1f %%), 95%% CI %+.2f..%+.2f us (sd of a window %.2f)",
            n, so / n, sn / n, sw / n, m, m / (so / n) * 100, m - 2 * s / sqrt(n), m + 2 * s / sqrt(n), s }' "$work/paired.txt")
  echo "  => $summary" >&2
  printf '%-7s %-4s %s\n' "$body" "$mirror" "$summary" >>"$work/summary.txt"
}

# instructions CONFIG PORT LABEL: callgrind's user-space instructions per
# request of a proxy started on CONFIG (listening on PORT), over
# INSTR_SECS of the load capture at INSTR_RATE req/s after a warm-up.
instructions() {
  command -v valgrind >/dev/null || { echo "capture-bench: valgrind is missing: apt-get install -y valgrind" >&2; exit 2; }
  local config=$1 port=$2 label=$3 irate=${INSTR_RATE:-500} isecs=${INSTR_SECS:-6} vpid out sent
  rm -f "$work/cg-$label".*
  TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$work/cg-$label.%p" \
    "${proxy_cmd[@]}" --config "$config" >"$work/instr-$label.log" 2>&1 &
  vpid=$!; pids+=($vpid)
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  # A few connections only: under valgrind the proxy's threads take turns,
  # and a replay that opened a connection per late request would count
  # connection set-ups as per-request work.
  "$parallax" replay "$work/load.plxcap" --target "w=http://127.0.0.1:$port" --rate "$irate" --max-connections 8 \
    --duration-secs "${INSTR_WARM_SECS:-2}" --no-sessions --quiet --max-late-percent 100 --results "$work/instr-warm.json" >/dev/null 2>&1 || true
  sleep 1
  callgrind_control -z "$vpid" >/dev/null
  out=$("$parallax" replay "$work/load.plxcap" --target "i=http://127.0.0.1:$port" --rate "$irate" --max-connections 8 \
    --duration-secs "$isecs" --no-sessions --quiet --max-late-percent 100 --results "$work/instr-$label.json" 2>&1 || true)
  # The writer takes what is queued within its poll (flush_interval / 10).
  sleep 1.5
  rm -f "$work/cg-$label".*
  callgrind_control -d "$vpid" >/dev/null; sleep 1
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  sent=$(sed -n 's/.*sent \([0-9]*\) in.*/\1/p' <<<"$out" | head -1)
  # The dump after zeroing (the file without a part suffix is the final
  # dump at exit, which holds the shutdown too).
  cat "$work/cg-$label".*.1 2>/dev/null | awk -v n="${sent:-0}" '/^totals:/{s += $2} END{ if (n == 0) n = 1; printf "%.0f", s / n }'
}

replay_bench() {
  echo "== replay accuracy: ingest batches of 500 events at 1,000 req/s (500,000 events/s)" >&2
  (cd "$root" && "$parallax" load ingest --write-batch "$work/batch.bin")
  "$make" --out "$work/ingest.plxcap" --requests $((1000 * secs)) --rate 1000 --conns 16 \
    --method POST --path /v1/events --body "$work/batch.bin" 2>&1
  "$parallax" replay "$work/ingest.plxcap" --target "canned=http://127.0.0.1:$canned" --speed 1 --quiet \
    --results "$work/ingest.json" || true
  "$parallax" replay "$work/ingest.plxcap" --target "canned=http://127.0.0.1:$canned" --rate 1000 --no-sessions --quiet \
    --results "$work/ingest-rate.json" || true
  echo "== small GETs: rising rates, ${secs}s each; then wrk on the same URL" >&2
  "$make" --out "$work/gets.plxcap" --requests 2000000 --rate 100000 --conns 64 \
    --method GET --path /v1/sessions/{n} 2>&1
  for r in 10000 20000 30000 40000; do
    "$parallax" replay "$work/gets.plxcap" --target "canned=http://127.0.0.1:$canned" --rate "$r" \
      --duration-secs "$secs" --no-sessions --quiet --results "$work/gets-$r.json" || true
  done
  wrk -t1 -c16 -d"${secs}s" --latency "http://127.0.0.1:$canned/v1/sessions/1" | grep -E "Requests/sec|50%|99%" | sed 's/^/  wrk: /'
}

rss_bench() {
  local n=$(( size_gb * 1024 * 1024 / 16 ))
  echo "== replayer RSS: a ${size_gb} GB capture (${n} x 16 KiB incompressible bodies)" >&2
  "$make" --out "$work/big.plxcap" --requests "$n" --rate 5000 --conns 64 \
    --method POST --path /v1/blobs/{n} --body-bytes 16384 2>&1
  ls -l "$work/big.plxcap" | sed 's/^/  /'
  "$parallax" replay "$work/big.plxcap" --target "canned=http://127.0.0.1:$canned" --speed 1 --quiet \
    --results "$work/big.json" || true
  rm -f "$work/big.plxcap"
}

record_all() {
  : >"$work/summary.txt"; : >"$work/instructions.txt"
  record random 0
  record json 0
  record json 100
  echo "== summary (BODY MIRROR; proxy CPU per request, A B B A x ${ROUNDS:-1}, ${secs}s phases, LEVEL=${LEVEL:-default}, PARALLAX_PROXY_H1=${PARALLAX_PROXY_H1:-default})" >&2
  cat "$work/summary.txt" >&2
  [[ -s $work/instructions.txt ]] && cat "$work/instructions.txt" >&2
  return 0
}

case $what in
  record) record ;;
  record-all) record_all ;;
  replay) replay_bench ;;
  rss) rss_bench ;;
  all) record; replay_bench; rss_bench ;;
  *) echo "usage: $0 [record|record-all|replay|rss|all]" >&2; exit 2 ;;
esac

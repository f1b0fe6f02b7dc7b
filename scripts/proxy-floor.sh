#!/usr/bin/env bash
# The latency floor of one proxy hop on this machine: one keep-alive
# connection, closed loop (`wrk -t1 -c1 --latency`), so every request finds
# the processes awake and only the hop itself is timed — no queueing, no
# coordinated omission to correct (there is one request in flight).
#
# Six paths to the same primary (the Go session cache; a 116-byte JSON hit):
#   direct             the primary itself
#   nginx              nginx proxy_pass, keep-alive upstream, no mirror
#   nginx-mirror       the same plus `mirror` to the shadow (Rust cache)
#   parallax           parallax proxy with mirror_percent = 0 (its raw
#                      HTTP/1.1 path, proxy/src/h1)
#   parallax-hyper     the same binary with PARALLAX_PROXY_H1=hyper: the
#                      pass-through served by hyper, as before issue 16
#   parallax-mirror    parallax proxy mirroring and comparing every request
# measured in that order and then reversed (A..F, F..A), each for SECS.
# Each proxy gets one worker (nginx worker_processes 1; tokio 1 worker), so
# neither gets more cores than the other.
#
# Usage: scripts/proxy-floor.sh [SECS=10]. Needs nginx and wrk (Debian) and
# the release binaries (cargo build --release -p parallax -p
# parallax-session-cache; cd go-reference && go build -o ../target/parallax-bin/ ./cmd/...).
#
# Optional, for before/after in one run:
#   HOP=0                     leave out the one-connection table (for a run
#                             of only the phases below);
#   PARALLAX_PROXY_BIN=path   the proxy to measure instead of this tree's
#                             `parallax proxy`: another `parallax*` binary, or
#                             target/release/examples/bench_proxy, which
#                             `cargo build --release -p parallax-proxy
#                             --example bench_proxy` builds alone);
#   PARALLAX_BASELINE=path    a second proxy binary (an older build: a
#                             `parallax*` binary or a bench_proxy copy), run
#                             as the proxy under test is (WORKERS,
#                             PROXY_RUNTIME) and measured beside it as
#                             `base` and `base-mirror`;
#   MAX=1                     also the maximum throughput of the pass-through
#                             and mirroring paths (`wrk -t1 -c32`; MAX_CONNS=N
#                             for another number of connections) with each
#                             proxy's own CPU per request (user + system from
#                             /proc), and where the two CPUs went per
#                             request (scripts/cpu-account.py: idle share,
#                             CPU and run-queue wait of wrk, primary, shadow
#                             and proxy, softirq, steal, the rest), and what
#                             the proxy's CPU would have to be for 2.5×
#                             nginx mirror's throughput;
#   PROXY_RUNTIME=current-thread   passed on as PARALLAX_PROXY_RUNTIME;
#   WORKERS=N                 N workers for each proxy instead of one (nginx
#                             worker_processes N, tokio N workers): both
#                             proxies as deployed on an N-core machine;
#   COUNT=1                   also, per request on one connection (`wrk
#                             -t1 -c1`), each proxy's heap allocations
#                             (glibc `malloc` calls, by a perf uprobe),
#                             system calls and context switches (`perf stat`);
#   SHAPES=1                  with MAX=1 and PARALLAX_PROXY_BIN: runtime shapes at
#                             maximum mirrored throughput (`wrk -t1 -c32`,
#                             A B B A): one process on tokio's multi-threaded
#                             runtime with one worker per CPU, against one
#                             current-thread process per CPU sharing the
#                             port by SO_REUSEPORT; CPU of all its processes;
#   PERF=1                    with MAX=1: `perf record -g` of each mirroring
#                             path's proxy during its first run, into
#                             target/proxy-floor/perf-PATH.data.
#   SYSCALLS=1                per request on one connection, each proxy's
#                             system calls by name (`perf trace -s`) and its
#                             voluntary / involuntary context switches (all
#                             threads, from /proc/PID/task/*/status);
#   OPEN=1                    the added median under an open model at
#                             OPEN_RATE (default 5000 req/s, CO-corrected,
#                             OPEN_SECS measured, default 10), A..E then E..A,
#                             from each generator in OPEN_GEN (default
#                             "goose"): goose is `parallax load http` (every
#                             path; goose-base the same from the `parallax`
#                             binary in PARALLAX_LOAD_BASELINE, an older
#                             build, for its generator before and after in
#                             one run); lean is loadgen/examples/lean_open (cargo
#                             build --release -p parallax-loadgen --example
#                             lean_open; direct, nginx, nginx-mirror,
#                             parallax, parallax-mirror), evenly spaced sends
#                             from plain threads, no millisecond timer bursts;
#                             lean-ticked (the same slots sent on whole
#                             milliseconds, as goose's timer sends them),
#                             lean-poisson (Poisson arrivals), lean-awake
#                             (lean with a SCHED_IDLE busy loop per CPU, so
#                             no vCPU halts: the idle wake-up left out); per
#                             run the CPU and run-queue wait per request
#                             of generator, primary, shadow and proxy, the
#                             machine's idle share and the proxy's own
#                             upstream latency (scripts/cpu-account.py);
#   INSTRUCTIONS=1            user-space instructions per request, exact
#                             and blind to the machine's load: the proxy (and
#                             an nginx with `master_process off`) under
#                             valgrind's callgrind on ports of their own,
#                             counters zeroed after a warm-up, `wrk -t1 -c1`
#                             for 5 s, pass-through and mirrored;
#   ALLOCATORS=1              the proxy under glibc malloc, jemalloc and
#                             mimalloc (LD_PRELOAD of Debian's libjemalloc2 and
#                             libmimalloc2.0), A B C C B A: pass-through p50 on
#                             one connection, mirrored maximum throughput with
#                             the proxy's CPU per request, and peak RSS.
set -euo pipefail

secs=${1:-10}
name=proxy-floor
# PROXY_FLOOR_WORK: another output folder (two runs at once must not share one).
work=${PROXY_FLOOR_WORK:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/proxy-floor"}
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "proxy-floor: $tool is missing: apt-get install -y nginx-light wrk" >&2; exit 2; }
done
mkdir -p "$work/nginx"

primary=$(free_port); shadow=$(free_port)
"$go_cache" --listen "127.0.0.1:$primary" >"$work/primary.log" 2>&1 & pids+=($!)
"$rust_cache" --listen "127.0.0.1:$shadow" >"$work/shadow.log" 2>&1 & pids+=($!)
wait_port "$primary"; wait_port "$shadow"
value='{"user":"bench","roles":["reader","writer"],"expires":"2026-12-01T00:00:00Z","padding":"xxxxxxxxxxxxxxxxxxxxxxx"}'
for port in "$primary" "$shadow"; do
  curl -fsS -X PUT --data-binary "$value" "127.0.0.1:$port/v1/sessions/bench" >/dev/null
done

p0=$(free_port); p100=$(free_port); admin=$(free_port)
{
  echo "admin_listen = \"127.0.0.1:$admin\""
  service_toml m0 "$p0" "$primary" "$shadow" "mirror_percent = 0"
  service_toml m100 "$p100" "$primary" "$shadow"
} >"$work/parallax.toml"
proxy_cmd=("$parallax" proxy)
if [[ -n ${PARALLAX_PROXY_BIN:-} ]]; then
  proxy_cmd=("$PARALLAX_PROXY_BIN")
  [[ $(basename "$PARALLAX_PROXY_BIN") == parallax* ]] && proxy_cmd+=(proxy)
fi
workers=${WORKERS:-1}
TOKIO_WORKER_THREADS=$workers PARALLAX_PROXY_RUNTIME=${PROXY_RUNTIME:-multi-thread} \
  "${proxy_cmd[@]}" --config "$work/parallax.toml" >"$work/parallax.log" 2>&1 & pids+=($!)
declare -A cpu_pid=([parallax]=$! [parallax-mirror]=$!)
# The same binary on hyper's HTTP/1.1 path (issue 16's escape hatch).
ph=$(free_port)
hadmin=$(free_port)
{ echo "admin_listen = \"127.0.0.1:$hadmin\""; service_toml h0 "$ph" "$primary" "$shadow" "mirror_percent = 0"; } >"$work/hyper.toml"
PARALLAX_PROXY_H1=hyper TOKIO_WORKER_THREADS=$workers PARALLAX_PROXY_RUNTIME=${PROXY_RUNTIME:-multi-thread} \
  "${proxy_cmd[@]}" --config "$work/hyper.toml" >"$work/hyper.log" 2>&1 & pids+=($!)
cpu_pid[parallax-hyper]=$!
if [[ -n ${PARALLAX_BASELINE:-} ]]; then
  b0=$(free_port); b100=$(free_port); badmin=$(free_port)
  {
    echo "admin_listen = \"127.0.0.1:$badmin\""
    service_toml b0 "$b0" "$primary" "$shadow" "mirror_percent = 0"
    service_toml b100 "$b100" "$primary" "$shadow"
  } >"$work/base.toml"
  # Run as the proxy under test is: the same workers and runtime (a
  # WORKERS=2 before/after is otherwise two workers against one), and a
  # bench_proxy baseline takes no `proxy` subcommand.
  base_cmd=("$PARALLAX_BASELINE")
  [[ $(basename "$PARALLAX_BASELINE") == parallax* ]] && base_cmd+=(proxy)
  TOKIO_WORKER_THREADS=$workers PARALLAX_PROXY_RUNTIME=${PROXY_RUNTIME:-multi-thread} \
    "${base_cmd[@]}" --config "$work/base.toml" >"$work/base.log" 2>&1 & pids+=($!)
  cpu_pid[base]=$!; cpu_pid[base-mirror]=$!
fi

n0=$(free_port); n100=$(free_port)
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes $workers;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
    keepalive_requests 1000000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$http_host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    upstream primary { server 127.0.0.1:$primary; keepalive 64; keepalive_requests 1000000; }
    upstream shadow { server 127.0.0.1:$shadow; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$n0;
        location / { proxy_pass http://primary; }
    }
    server {
        listen 127.0.0.1:$n100;
        location / { mirror /_mirror; mirror_request_body on; proxy_pass http://primary; }
        location = /_mirror { internal; proxy_read_timeout 1000ms; proxy_pass http://shadow\$request_uri; }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' >"$work/nginx/out.log" 2>&1 & pids+=($!)
nginx_master=$!
wait_port "$p0"; wait_port "$p100"; wait_port "$n0"; wait_port "$n100"; wait_port "$ph"

declare -A port=([direct]=$primary [nginx]=$n0 [nginx-mirror]=$n100 [parallax]=$p0 [parallax-hyper]=$ph [parallax-mirror]=$p100)
order=(direct nginx nginx-mirror parallax parallax-hyper parallax-mirror)
if [[ -n ${PARALLAX_BASELINE:-} ]]; then
  wait_port "$b0"; wait_port "$b100"
  port[base]=$b0; port[base-mirror]=$b100
  order+=(base base-mirror)
fi
reverse=(); for ((i=${#order[@]}-1; i>=0; i--)); do reverse+=("${order[i]}"); done
declare -A results
echo "proxy-floor: wrk -t1 -c1 -d${secs}s --latency, A..F then F..A, $(nproc) CPUs, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
[[ ${HOP:-1} == 0 ]] && echo "proxy-floor: HOP=0, the one-connection table left out" >&2
for path in "${order[@]}" "${reverse[@]}"; do
  [[ ${HOP:-1} == 0 ]] && break
  url="http://127.0.0.1:${port[$path]}/v1/sessions/bench"
  wrk -t1 -c1 -d1s "$url" >/dev/null           # warm the pools
  out=$(wrk -t1 -c1 -d"${secs}s" --latency "$url")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  rps=$(awk '/Requests\/sec/{printf "%d", $2}' <<<"$out")
  results[$path]+="${results[$path]:+ / }$p50 p50, $p99 p99, $rps req/s"
  echo "  $path: $p50 p50, $p99 p99, $rps req/s" >&2
done
if [[ ${HOP:-1} != 0 ]]; then
  printf '\n| path | run 1 / run 2 |\n|---|---|\n'
  for path in "${order[@]}"; do printf '| %s | %s |\n' "$path" "${results[$path]}"; done
fi

# nginx's worker does the work; its master only watches. With WORKERS > 1
# the master stands for all of them: `ticks` adds its children (the
# cpu-account tables then count the master's threads alone: read the
# per-path CPU column instead).
cpu_pid[nginx]=$(pgrep -P "$nginx_master" | head -1)
((workers > 1)) && cpu_pid[nginx]=$nginx_master
cpu_pid[nginx-mirror]=${cpu_pid[nginx]}
if [[ ${COUNT:-0} == 1 ]]; then
  perf probe -q -x "$(ldd /bin/true | awk '/libc.so/{print $3}')" malloc 2>/dev/null || true
  declare -A counts
  echo "proxy-floor: per request, wrk -t1 -c1 -d${secs}s under perf stat, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  for path in "${!cpu_pid[@]}"; do
    url="http://127.0.0.1:${port[$path]}/v1/sessions/bench"
    perf stat -x, -e probe_libc:malloc,raw_syscalls:sys_enter,context-switches -p "${cpu_pid[$path]}" \
      -o "$work/stat-$path.csv" -- sleep "$secs" &
    stat_pid=$!
    out=$(wrk -t1 -c1 -d"${secs}s" "$url")
    wait "$stat_pid" || true
    requests=$(awk '/requests in/{print $1}' <<<"$out")
    counts[$path]=$(awk -F, -v n="$requests" '$3 ~ /malloc/{m=$1} $3 ~ /sys_enter/{s=$1} $3 ~ /context-switches/{c=$1}
      END{printf "%.1f mallocs, %.1f syscalls, %.2f context switches", m/n, s/n, c/n}' "$work/stat-$path.csv")
    echo "  $path: ${counts[$path]} per request" >&2
  done
  printf '\n| path, per request | mallocs, syscalls, context switches |\n|---|---|\n'
  for path in "${order[@]}"; do [[ -n ${counts[$path]:-} ]] && printf '| %s | %s |\n' "$path" "${counts[$path]}"; done
fi
# Ticks of user + system CPU of a process and its children (nginx's worker).
ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
# Voluntary and involuntary context switches of all of a process's threads.
switches() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt/{v+=$2} /^nonvoluntary_ctxt/{n+=$2} END{print v+0, n+0}'; }
if [[ ${SYSCALLS:-0} == 1 ]]; then
  declare -A calls
  echo "proxy-floor: system calls by name per request, perf trace -s, wrk -t1 -c1 -d${secs}s, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  for path in "${order[@]}"; do
    [[ -n ${cpu_pid[$path]:-} ]] || continue
    url="http://127.0.0.1:${port[$path]}/v1/sessions/bench"
    read -r v0 n0 < <(switches "${cpu_pid[$path]}")
    # The trace outlasts wrk on both sides (perf trace is slow to attach on
    # a busy machine), so every request of the run is in it.
    perf trace -s -p "${cpu_pid[$path]}" -o "$work/trace-$path.txt" -- sleep "$((secs + 4))" 2>/dev/null &
    trace_pid=$!
    sleep 2
    out=$(wrk -t1 -c1 -d"${secs}s" "$url")
    wait "$trace_pid" || true
    read -r v1 n1 < <(switches "${cpu_pid[$path]}")
    requests=$(awk '/requests in/{print $1}' <<<"$out")
    calls[$path]=$(awk -v n="$requests" -v v=$((v1 - v0)) -v i=$((n1 - n0)) '
      /^ *[a-z_0-9]+ +[0-9]+ / { if (!($1 in c)) names[++k] = $1; c[$1] += $2; t += $2 }
      END {
        line = sprintf("%.2f: ", t / n)
        for (j = 1; j <= k; j++) if (c[names[j]] / n >= 0.01) line = line sprintf("%s %.2f, ", names[j], c[names[j]] / n)
        printf "%s| %.2f / %.2f", substr(line, 1, length(line) - 2), v / n, i / n
      }' "$work/trace-$path.txt")
    echo "  $path: ${calls[$path]}" >&2
  done
  printf '\n| path, per request (wrk -c1) | system calls: total: by name | context switches voluntary / involuntary |\n|---|---|---|\n'
  for path in "${order[@]}"; do [[ -n ${calls[$path]:-} ]] && printf '| %s | %s |\n' "$path" "${calls[$path]}"; done
fi
# Which admin port serves each parallax path's /metrics.
declare -A admin_of=([parallax]=$admin [parallax-mirror]=$admin [parallax-hyper]=$hadmin)
# account OUT SKIP SPAN PATH RUN GEN ARGS... -- COMMAND...: the load
# generator COMMAND under scripts/cpu-account.py: the machine's idle share
# and the CPU and run-queue wait of the generator, the primary, the shadow
# and the path's proxy (none for direct) between SKIP and SKIP + SPAN
# seconds into the run, and a parallax proxy's own upstream latencies.
account() {
  local out=$1 skip=$2 span=$3 path=$4 run=$5 gen=$6; shift 6
  local named=(--pid "primary=${pids[0]}" --pid "shadow=${pids[1]}")
  [[ -n ${cpu_pid[$path]:-} ]] && named+=(--pid "proxy=${cpu_pid[$path]}")
  [[ -n ${admin_of[$path]:-} ]] && named+=(--metrics "proxy=http://127.0.0.1:${admin_of[$path]}/metrics")
  "$root/scripts/cpu-account.py" run --out "$out" --skip "$skip" --span "$span" "${named[@]}" \
    --tag "label=$path ($gen, run $run)" --tag "path=$path" --tag "gen=$gen" --tag "run=$run" "$@"
}
# acct_table PHASE PATH...: the table of PHASE's accounts, path by path.
acct_table() {
  local phase=$1 files=() f; shift
  for path in "$@"; do for f in "$work/acct-$phase-$path"-[12].json; do [[ -e $f ]] && files+=("$f"); done; done
  "$root/scripts/cpu-account.py" table "${files[@]}"
}
if [[ ${OPEN:-0} == 1 ]]; then
  rate=${OPEN_RATE:-5000}; osecs=${OPEN_SECS:-10}
  # goose: `parallax load http`; lean: loadgen/examples/lean_open.rs, evenly
  # spaced sends from plain threads (no millisecond timer bursts);
  # lean-ticked: the same slots sent on whole milliseconds as goose's
  # tokio timer sends them; lean-poisson: Poisson arrivals; lean-awake:
  # lean with the CPUs kept from halting (the VM's idle wake-up left out).
  read -ra gens <<<"${OPEN_GEN:-goose}"
  if [[ " ${gens[*]} " == *" goose-base "* && ! -x ${PARALLAX_LOAD_BASELINE:-} ]]; then
    echo "proxy-floor: OPEN_GEN goose-base needs PARALLAX_LOAD_BASELINE=<an older parallax binary>" >&2; exit 2
  fi
  lean="$root/target/release/examples/lean_open"
  if [[ " ${gens[*]} " == *" lean"* && ! -x $lean ]]; then
    echo "proxy-floor: $lean is missing: cargo build --release -p parallax-loadgen --example lean_open (or OPEN_GEN=goose)" >&2; exit 2
  fi
  declare -A open
  echo "proxy-floor: open model, ${gens[*]} at $rate req/s, ${osecs}s measured, A..E then E..A, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  open_paths=(direct nginx nginx-mirror parallax parallax-hyper parallax-mirror)
  lean_paths=(direct nginx nginx-mirror parallax parallax-mirror)
  for gen in "${gens[@]}"; do
    if [[ $gen == goose* ]]; then these=("${open_paths[@]}"); else these=("${lean_paths[@]}"); fi
    declare -A open_runs=()
    for path in "${these[@]}" $(printf '%s\n' "${these[@]}" | tac); do
      run_no=$((${open_runs[$path]:-0} + 1)); open_runs[$path]=$run_no
      dir="$work/open-$gen-$path-$run_no"; mkdir -p "$dir"
      if [[ $gen == goose* ]]; then
        load_bin=$parallax; [[ $gen == goose-base ]] && load_bin=$PARALLAX_LOAD_BASELINE
        # goose starts its schedule 1.5 s after its users, then 2 s of warm-up.
        account "$work/acct-open-$gen-$path-$run_no.json" 4 "$(awk -v s="$osecs" 'BEGIN{print s - 1.5}')" "$path" "$run_no" "$gen" \
          --result "json:$dir/load.json" -- "$load_bin" load http --target "http://127.0.0.1:${port[$path]}" \
          --path /v1/sessions/bench --rate "$rate" --duration-secs "$osecs" --warmup-secs 2 --out "$dir" >"$dir.log" 2>&1 || true
      else
        arrivals=uniform; [[ $gen == lean-ticked || $gen == lean-poisson ]] && arrivals=${gen#lean-}
        spinners=()
        if [[ $gen == lean-awake ]]; then
          # One busy loop per CPU at SCHED_IDLE: any other task preempts it
          # at once, but no vCPU ever halts, so nothing pays the wake-up of
          # an idle virtual CPU (a VM exit and the host's scheduler).
          for ((i = 0; i < $(nproc); i++)); do chrt -i 0 bash -c 'while :; do :; done' & spinners+=($!); pids+=($!); done
        fi
        account "$work/acct-open-$gen-$path-$run_no.json" 2.5 "$(awk -v s="$osecs" 'BEGIN{print s - 1}')" "$path" "$run_no" "$gen" \
          --result "json:$dir/load.json" -- "$lean" --target "127.0.0.1:${port[$path]}" --path /v1/sessions/bench \
          --arrivals "$arrivals" --rate "$rate" --duration-secs "$osecs" --warmup-secs 2 --out "$dir/load.json" >"$dir.log" 2>&1 || true
        for sp in "${spinners[@]}"; do kill "$sp"; wait "$sp" 2>/dev/null || true; done
      fi
      got=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); l = d["latency"]
print("%s µs p50, %s µs p99, %s errors, %s late" % (l["p50_us"], l["p99_us"], d["errors"], d["late"]))' "$dir/load.json" 2>/dev/null || echo "failed: see $dir.log")
      open[$gen-$path]+="${open[$gen-$path]:+ / }$got"
      echo "  $gen $path: $got" >&2
    done
    printf '\n| path, open model %s req/s, %s | run 1 / run 2 |\n|---|---|\n' "$rate" "$gen"
    for path in "${these[@]}"; do printf '| %s | %s |\n' "$path" "${open[$gen-$path]}"; done
  done
  printf '\nOpen model at %s req/s: added p50 against direct in the same run, and per request the CPU / run-queue wait of every process (µs, middle of each run):\n\n' "$rate"
  open_files=()
  for gen in "${gens[@]}"; do for path in "${open_paths[@]}"; do open_files+=("$gen-$path"); done; done
  acct_table open "${open_files[@]}"
fi
if [[ ${INSTRUCTIONS:-0} == 1 ]]; then
  command -v valgrind >/dev/null || { echo "proxy-floor: valgrind is missing: apt-get install -y valgrind" >&2; exit 2; }
  declare -A instr
  # instructions PID PORT LABEL: callgrind's Ir per request over 5 s of wrk -c1.
  instructions() {
    local url="http://127.0.0.1:$2/v1/sessions/bench" out requests
    wrk -t1 -c1 -d2s "$url" >/dev/null; sleep 1
    callgrind_control -z "$1" >/dev/null
    out=$(wrk -t1 -c1 -d5s "$url"); sleep 1
    rm -f "$work/cg-$3".*
    callgrind_control -d "$1" >/dev/null; sleep 1
    requests=$(awk '/requests in/{print $1}' <<<"$out")
    cat "$work/cg-$3".* | awk -v n="$requests" '/^totals:/{s += $2} END{printf "%.0f", s / n}'
  }
  i0=$(free_port); i100=$(free_port)
  { echo "admin_listen = \"127.0.0.1:$(free_port)\""
    service_toml i0 "$i0" "$primary" "$shadow" "mirror_percent = 0"
    service_toml i100 "$i100" "$primary" "$shadow"; } >"$work/instr.toml"
  TOKIO_WORKER_THREADS=1 PARALLAX_PROXY_RUNTIME=${PROXY_RUNTIME:-multi-thread} valgrind --tool=callgrind \
    --callgrind-out-file="$work/cg-parallax.%p" "${proxy_cmd[@]}" --config "$work/instr.toml" >"$work/instr-parallax.log" 2>&1 &
  vpid=$!
  for _ in $(seq 200); do curl -fs "127.0.0.1:$i100/v1/sessions/bench" >/dev/null && break; sleep 0.2; done
  instr[parallax]=$(instructions "$vpid" "$i0" "parallax.$vpid")
  instr[parallax-mirror]=$(instructions "$vpid" "$i100" "parallax.$vpid")
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  # The pass-through again on hyper's HTTP/1.1 path.
  ih=$(free_port)
  { echo "admin_listen = \"127.0.0.1:$(free_port)\""; service_toml ih "$ih" "$primary" "$shadow" "mirror_percent = 0"; } >"$work/instr-hyper.toml"
  PARALLAX_PROXY_H1=hyper TOKIO_WORKER_THREADS=1 PARALLAX_PROXY_RUNTIME=${PROXY_RUNTIME:-multi-thread} valgrind --tool=callgrind \
    --callgrind-out-file="$work/cg-hyper.%p" "${proxy_cmd[@]}" --config "$work/instr-hyper.toml" >"$work/instr-hyper.log" 2>&1 &
  vpid=$!
  for _ in $(seq 200); do curl -fs "127.0.0.1:$ih/v1/sessions/bench" >/dev/null && break; sleep 0.2; done
  instr[parallax-hyper]=$(instructions "$vpid" "$ih" "hyper.$vpid")
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  # A port from free_port can be taken again before nginx binds it: new
  # ports until it starts (three tries).
  for _ in 1 2 3; do
    j0=$(free_port); j100=$(free_port)
    sed -e "s/^worker_processes [0-9]*;/master_process off;\ndaemon off;/" -e "s/listen 127.0.0.1:$n0;/listen 127.0.0.1:$j0;/" \
      -e "s/listen 127.0.0.1:$n100;/listen 127.0.0.1:$j100;/" -e "s|^pid .*|pid $work/nginx/instr.pid;|" \
      "$work/nginx/nginx.conf" >"$work/nginx/instr.conf"
    valgrind --tool=callgrind --callgrind-out-file="$work/cg-nginx.%p" \
      nginx -p "$work/nginx" -c "$work/nginx/instr.conf" >"$work/instr-nginx.log" 2>&1 &
    vpid=$!
    for _ in $(seq 200); do
      curl -fs "127.0.0.1:$j100/v1/sessions/bench" >/dev/null && break 2
      kill -0 "$vpid" 2>/dev/null || break
      sleep 0.2
    done
  done
  instr[nginx]=$(instructions "$vpid" "$j0" "nginx.$vpid")
  instr[nginx-mirror]=$(instructions "$vpid" "$j100" "nginx.$vpid")
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  printf '\n| path, per request (wrk -c1, callgrind) | user-space instructions |\n|---|---|\n'
  for path in nginx nginx-mirror parallax parallax-hyper parallax-mirror; do printf '| %s | %s |\n' "$path" "${instr[$path]}"; done
fi
if [[ ${ALLOCATORS:-0} == 1 ]]; then
  # A second proxy process of the same binary per allocator, started in
  # turn on fresh ports (the run's own proxies keep running, idle).
  declare -A alloc_lib=([glibc]="" [jemalloc]=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 [mimalloc]=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2)
  for a in jemalloc mimalloc; do
    [[ -e ${alloc_lib[$a]} ]] || { echo "proxy-floor: ${alloc_lib[$a]} is missing: apt-get install -y libjemalloc2 libmimalloc2.0" >&2; exit 2; }
  done
  declare -A alloc
  echo "proxy-floor: allocators, A B C C B A, wrk -t1 -c1 (pass-through) and -c32 (mirrored) -d${secs}s, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  for a in glibc jemalloc mimalloc mimalloc jemalloc glibc; do
    a0=$(free_port); a100=$(free_port)
    { echo "admin_listen = \"127.0.0.1:$(free_port)\""
      service_toml a0 "$a0" "$primary" "$shadow" "mirror_percent = 0"
      service_toml a100 "$a100" "$primary" "$shadow"; } >"$work/alloc.toml"
    LD_PRELOAD=${alloc_lib[$a]} TOKIO_WORKER_THREADS=1 PARALLAX_PROXY_RUNTIME=${PROXY_RUNTIME:-multi-thread} \
      "${proxy_cmd[@]}" --config "$work/alloc.toml" >"$work/alloc-$a.log" 2>&1 &
    apid=$!
    wait_port "$a0"; wait_port "$a100"
    wrk -t1 -c1 -d1s "http://127.0.0.1:$a0/v1/sessions/bench" >/dev/null
    out=$(wrk -t1 -c1 -d"${secs}s" --latency "http://127.0.0.1:$a0/v1/sessions/bench")
    p50=$(awk '$1=="50%"{print $2}' <<<"$out")
    wrk -t1 -c32 -d1s "http://127.0.0.1:$a100/v1/sessions/bench" >/dev/null
    before=$(ticks "$apid")
    out=$(wrk -t1 -c32 -d"${secs}s" "http://127.0.0.1:$a100/v1/sessions/bench")
    after=$(ticks "$apid")
    requests=$(awk '/requests in/{print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/{printf "%d", $2}' <<<"$out")
    us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')
    hwm=$(awk '/VmHWM/{printf "%.1f", $2 / 1024}' "/proc/$apid/status")
    kill "$apid"; wait "$apid" 2>/dev/null || true
    alloc[$a]+="${alloc[$a]:+ / }$p50 p50; $rps req/s, $us µs CPU/req; $hwm MiB"
    echo "  $a: pass-through $p50 p50; mirrored $rps req/s, $us µs CPU/req; peak RSS $hwm MiB" >&2
  done
  printf '\n| allocator | pass-through p50; mirrored max req/s, proxy CPU/req; peak RSS (run 1 / run 2) |\n|---|---|\n'
  for a in glibc jemalloc mimalloc; do printf '| %s | %s |\n' "$a" "${alloc[$a]}"; done
fi
[[ ${MAX:-0} == 1 ]] || exit 0
declare -A max_runs
mirrors=(nginx parallax parallax-hyper nginx-mirror parallax-mirror); [[ -n ${PARALLAX_BASELINE:-} ]] && mirrors+=(base-mirror)
declare -A max
conns=${MAX_CONNS:-32}
echo "proxy-floor: max throughput, wrk -t1 -c$conns -d${secs}s, A..E then E..A, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for path in "${mirrors[@]}" $(printf '%s\n' "${mirrors[@]}" | tac); do
  url="http://127.0.0.1:${port[$path]}/v1/sessions/bench"
  wrk -t1 -c$conns -d1s "$url" >/dev/null
  before=$(ticks "${cpu_pid[$path]}")
  run_no=$((${max_runs[$path]:-0} + 1)); max_runs[$path]=$run_no
  if [[ ${PERF:-0} == 1 && ! -e $work/perf-$path.data ]]; then
    # The proxy's own profile under this load, once per path.
    perf record -F 999 -g -p "${cpu_pid[$path]}" -o "$work/perf-$path.data" -- sleep "$secs" 2>/dev/null &
    perf_pid=$!
  fi
  # Who had the CPUs in the middle of the run (scripts/cpu-account.py).
  out=$(account "$work/acct-max-$path-$run_no.json" 0.5 "$((secs - 1))" "$path" "$run_no" wrk --result wrk \
    -- wrk -t1 -c$conns -d"${secs}s" --latency "$url")
  if [[ -n ${perf_pid:-} ]]; then wait "$perf_pid" || true; perf_pid=; fi
  after=$(ticks "${cpu_pid[$path]}")
  requests=$(awk '/requests in/{print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/{printf "%d", $2}' <<<"$out")
  us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')
  max[$path]+="${max[$path]:+ / }$rps req/s, $us µs CPU/req"
  echo "  $path: $rps req/s, proxy CPU $us µs/req" >&2
done
printf '\n| path, wrk -c%s | run 1 / run 2 |\n|---|---|\n' "$conns"
for path in "${mirrors[@]}"; do printf '| %s | %s |\n' "$path" "${max[$path]}"; done
printf '\nWhere the CPUs went at maximum throughput (µs per request over the middle %ss of each run; CPU / run-queue wait per process from schedstat):\n\n' "$((secs - 1))"
acct_table max "${mirrors[@]}"
for r in 1 2; do
  printf '\nRun %s: ' "$r"
  "$root/scripts/cpu-account.py" budget "$work/acct-max-parallax-mirror-$r.json" --against "$work/acct-max-nginx-mirror-$r.json" --ratio 2.5 --proxy proxy \
    --optimistic "$work/acct-max-parallax-$r.json" || true
done

[[ ${SHAPES:-0} == 1 && -n ${PARALLAX_PROXY_BIN:-} ]] || exit 0
ncpu=$(nproc)
multi=$(free_port); reuse=$(free_port)
{ echo "admin_listen = \"127.0.0.1:$(free_port)\""; service_toml multi "$multi" "$primary" "$shadow"; } >"$work/multi.toml"
PARALLAX_PROXY_RUNTIME=multi-thread TOKIO_WORKER_THREADS=$ncpu "$PARALLAX_PROXY_BIN" --config "$work/multi.toml" >"$work/multi.log" 2>&1 & pids+=($!)
declare -A shape_pids=([multi-thread]=$!)
for ((i = 0; i < ncpu; i++)); do
  { echo "admin_listen = \"127.0.0.1:$(free_port)\""; service_toml reuse "$reuse" "$primary" "$shadow" "reuse_port = true"; } >"$work/reuse-$i.toml"
  PARALLAX_PROXY_RUNTIME=current-thread "$PARALLAX_PROXY_BIN" --config "$work/reuse-$i.toml" >"$work/reuse-$i.log" 2>&1 & pids+=($!)
  shape_pids[current-thread]+="${shape_pids[current-thread]:+ }$!"
done
wait_port "$multi"; wait_port "$reuse"
declare -A port_of=([multi-thread]=$multi [current-thread]=$reuse) shape
echo "proxy-floor: runtime shapes, wrk -t1 -c32 -d${secs}s, A B B A, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for s in multi-thread current-thread current-thread multi-thread; do
  url="http://127.0.0.1:${port_of[$s]}/v1/sessions/bench"
  wrk -t1 -c32 -d1s "$url" >/dev/null
  before=0; for p in ${shape_pids[$s]}; do before=$((before + $(ticks "$p"))); done
  out=$(wrk -t1 -c32 -d"${secs}s" "$url")
  after=0; for p in ${shape_pids[$s]}; do after=$((after + $(ticks "$p"))); done
  requests=$(awk '/requests in/{print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/{printf "%d", $2}' <<<"$out")
  us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')
  shape[$s]+="${shape[$s]:+ / }$rps req/s, $us µs CPU/req"
  echo "  $s: $rps req/s, proxy CPU $us µs/req" >&2
done
printf '\n| runtime shape (%s CPUs), mirroring, wrk -c32 | run 1 / run 2 |\n|---|---|\n' "$ncpu"
for s in multi-thread current-thread; do printf '| %s | %s |\n' "$s" "${shape[$s]}"; done

#!/usr/bin/env bash
# The largest WebSocket audience this machine holds: N fan-out processes of
# one twin share a port (SO_REUSEPORT; each process may hold at most 20,000
# descriptors here) and share the audience through the Kafka path (every
# process consumes the topic and broadcasts locally; POST /v1/notify
# publishes to it). `parallax load ws` holds the clients in worker processes
# from several source addresses and measures delivery latency.
#
#   scripts/ws-scale.sh go|rust [clients=50000] [processes=3] [workers=4] [notify_rate=2] [secs=20]
#
# Needs the twins built (release) and Kafka up (scripts/kafka.sh up).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
twin=${1:?go or rust}
clients=${2:-50000}
processes=${3:-3}
workers=${4:-4}
rate=${5:-2}
secs=${6:-20}
port=${PARALLAX_WS_SCALE_PORT:-18282}
topic="ws-scale-$twin-$(date +%s)"
out="$root/target/parallax-load/ws-scale-$twin-$clients"
mkdir -p "$out"

case $twin in
  go) bin="$root/target/parallax-bin/fanout" ;;
  rust) bin="$root/target/release/parallax-fanout" ;;
  *) echo "usage: $0 go|rust [clients] [processes] [workers] [rate] [secs]" >&2; exit 2 ;;
esac
[[ -x $bin ]] || { echo "$bin is missing: build the twins first" >&2; exit 1; }

"$root/scripts/kafka.sh" create-topic "$topic" >/dev/null
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for i in $(seq 1 "$processes"); do
  "$bin" --listen "127.0.0.1:$port" --reuse-port --kafka-brokers 127.0.0.1:9092 \
    --kafka-topic "$topic" --ping-interval-secs 3600 2>"$out/twin-$i.log" &
  pids+=($!)
done
sleep 3
rss() { local total=0; for p in "${pids[@]}"; do total=$((total + $(awk '/VmRSS/{print $2}' "/proc/$p/status"))); done; echo "$total"; }
base=$(rss)
last=$((1 + workers * 2)); [[ $last -gt 254 ]] && last=254
"$root/target/release/parallax" load ws --target "127.0.0.1:$port" --clients "$clients" \
  --workers "$workers" --source-addrs "127.0.0.2-127.0.0.$last" --notify-rate "$rate" \
  --duration-secs "$secs" --topics scale --out "target/parallax-load/ws-scale-$twin-$clients" &
load=$!
# Read the servers' memory once every client is connected (descriptors).
fds() { local total=0; for p in "${pids[@]}"; do total=$((total + $(ls "/proc/$p/fd" | wc -l))); done; echo "$total"; }
while kill -0 "$load" 2>/dev/null && (( $(fds) < clients )); do sleep 1; done
sleep 3
now=$(rss)
echo "$twin: $processes processes, RSS $((base / 1024)) MiB before, $((now / 1024)) MiB with clients connected" | tee "$out/rss.txt"
for p in "${pids[@]}"; do echo "  pid $p: $(ls /proc/$p/fd | wc -l) descriptors"; done | tee -a "$out/rss.txt"
wait "$load"

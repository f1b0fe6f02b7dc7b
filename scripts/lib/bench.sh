# Shared by the proxy benchmark scripts (scripts/proxy-floor.sh,
# scripts/slow-shadow.sh); source it after setting `name` (for messages) and
# `work` (the output folder, emptied here).
#
# Gives: $root, the release binaries $parallax, $go_cache, $rust_cache
# (checked to exist), background processes in `pids` killed on exit,
# free_port, wait_port, and service_toml for a proxy [[services]] table.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
parallax="$root/target/release/parallax"
go_cache="$root/target/parallax-bin/session-cache"
rust_cache="$root/target/release/parallax-session-cache"
for need in "$parallax" "$go_cache" "$rust_cache"; do
  [[ -x $need ]] || { echo "$name: $need is missing; see the usage at the top of the script" >&2; exit 2; }
done

rm -rf "$work" && mkdir -p "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "$name: nothing listens on $1" >&2; exit 1
}

# service_toml NAME LISTEN_PORT PRIMARY_PORT SHADOW_PORT [EXTRA_LINE]: a
# session-cache service of the proxy with its route template.
service_toml() {
  printf '[[services]]\nname = "%s"\nlisten = "127.0.0.1:%s"\nprimary = "127.0.0.1:%s"\nshadow = "127.0.0.1:%s"\n%s\n[[services.routes]]\ntemplate = "/v1/sessions/{id}"\n' \
    "$1" "$2" "$3" "$4" "${5:-}"
}

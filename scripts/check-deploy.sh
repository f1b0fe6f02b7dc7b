#!/usr/bin/env bash
# Validates the docker-compose user stack without a Docker engine (none
# exists on CI machines; images are not built here):
#   1. docker-compose.yml resolves (`docker-compose config -q`; Debian's
#      docker-compose 1.29 needs no engine for it, installed like deps.sh
#      installs promtool), and deploy/check_compose.py checks builds, build
#      args, bind mounts and every command-line flag against the binaries'
#      --help (when they are built: scripts/test.sh builds them first);
#   2. deploy/prometheus.yml (`promtool check config`);
#   3. the dashboards: generated JSON up to date (dashboards/gen.py --check),
#      every metric and label value their PromQL uses is exposed, and every
#      query parses (dashboards/check_metrics.py, promtool check rules);
#   4. deploy/parallax.toml (`parallax proxy --check`, when built);
#   5. the Kubernetes manifests (scripts/check-kubernetes.sh).
# Quick (~20 s) and offline once the packages are installed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

install_debian() {
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "check-deploy: need root or sudo to install: $*" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "check-deploy: installing $* from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v docker-compose >/dev/null 2>&1 || install_debian docker-compose
command -v promtool >/dev/null 2>&1 || install_debian prometheus

# docker-compose 1.29 is a Python program: its interpreter has PyYAML.
compose_python=$(head -1 "$(command -v docker-compose)" | sed -n 's/^#! *//p')
python3 -c 'import yaml' 2>/dev/null && compose_python=python3
[[ -n $compose_python ]] || compose_python=python3

echo "== docker-compose.yml" >&2
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml config | $compose_python deploy/check_compose.py "$root"

echo "== deploy/prometheus.yml" >&2
promtool check config deploy/prometheus.yml

echo "== dashboards" >&2
python3 dashboards/gen.py --check
python3 dashboards/check_metrics.py "$root"

echo "== deploy/parallax.toml" >&2
if [[ -x target/debug/parallax ]]; then
  # The token file as the compose file mounts it: deploy/admin.token.dev.
  checked=$(mktemp)
  sed 's#^admin_token_file = "/etc/parallax/admin.token"#admin_token_file = "deploy/admin.token.dev"#' deploy/parallax.toml >"$checked"
  RUST_BACKTRACE=0 target/debug/parallax proxy --config "$checked" --check
  rm -f "$checked"
else
  echo "check-deploy: target/debug/parallax not built, deploy/parallax.toml not checked (cargo build -p parallax)" >&2
fi
echo "== deploy/kubernetes" >&2
scripts/check-kubernetes.sh

echo "check-deploy: ok" >&2

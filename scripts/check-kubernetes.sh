#!/usr/bin/env bash
# Validates deploy/kubernetes offline: no cluster, no kubectl, no network
# once the tools are installed (deploy/kubernetes/check.py says what is
# checked). Installs what it needs on a fresh machine:
#   kustomize   `go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION`
#               (the Go module proxy), kept in ~/.cache/parallax/tools;
#   kubernetes-validate (PyPI; bundles the Kubernetes schemas) and PyYAML;
#   promtool    Debian's prometheus package, as scripts/check-deploy.sh does.
# Then renders every kustomization, checks it (check.py), and proves the
# checker still catches broken manifests (test_check.py, ~10 s).
# Called by scripts/check-deploy.sh; the flag and config checks need the
# binaries scripts/test.sh builds (target/debug, target/parallax-bin).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

KUSTOMIZE_VERSION=v5.8.2   # v5.8.3 needs Go 1.27
tools="${XDG_CACHE_HOME:-$HOME/.cache}/parallax/tools"
kustomize="$tools/kustomize-$KUSTOMIZE_VERSION"

if [[ ! -x $kustomize ]]; then
  echo "check-kubernetes: installing kustomize $KUSTOMIZE_VERSION (go install)" >&2
  mkdir -p "$tools"
  (cd "$tools" && GOTOOLCHAIN=local GOFLAGS= GOBIN="$tools/bin-$KUSTOMIZE_VERSION" \
     go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION")
  mv "$tools/bin-$KUSTOMIZE_VERSION/kustomize" "$kustomize"
  rmdir "$tools/bin-$KUSTOMIZE_VERSION" 2>/dev/null || true
fi

if ! python3 -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  echo "check-kubernetes: installing kubernetes-validate and PyYAML (pip)" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0' PyYAML 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'kubernetes-validate==1.37.0' PyYAML
fi

if ! command -v promtool >/dev/null 2>&1; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "check-kubernetes: installing prometheus (promtool) from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

python3 deploy/kubernetes/check.py "$root" "$kustomize"
python3 deploy/kubernetes/test_check.py "$root" "$kustomize"

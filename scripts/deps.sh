#!/usr/bin/env bash
# Installs what Parallax's tests need beyond the toolchains (Rust, Go, a JDK
# 17+ and Maven are expected on the machine): Debian's prometheus package, for
# promtool, which lints every service's /metrics; and the third-party gRPC
# clients of the ingest twins' gRPC tests, grpcurl (go install) and Python's
# grpcio. (protoc is not needed: the Rust build scripts compile .proto files
# with protox, and the Go code generated from them is checked in.)
# Idempotent and quick when present.
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The proxy's WebSocket tests run a third-party client: Python's `websockets`.
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
# The diff explorer's browser test drives Debian's chromium through
# chromium-driver (with Python's selenium, below).
[[ -x /usr/bin/chromium ]] || need+=(chromium)
[[ -x /usr/bin/chromedriver ]] || need+=(chromium-driver)

for tool in cargo go java mvn; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "deps.sh: '$tool' not found: install the Rust toolchain (rustup), Go 1.26+, a JDK 17+ and Maven first" >&2
    exit 1
  fi
done

if ((${#need[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps.sh: need root or sudo to install: ${need[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "deps.sh: installing ${need[*]} from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! python3 -c 'import selenium' >/dev/null 2>&1; then
  echo "deps.sh: installing the Python selenium package (drives chromium-driver)" >&2
  python3 -m pip install --quiet selenium 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages selenium
fi

if ! python3 -c 'import websockets' >/dev/null 2>&1; then
  echo "deps.sh: installing the Python websockets package" >&2
  python3 -m pip install --quiet websockets 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages websockets
fi

# The ingest twins' gRPC conformance tests run clients nobody here wrote:
# grpcurl (a Go module, installed into GOBIN or GOPATH/bin, where the suite
# looks) and Python's grpcio (gRPC's C core).
gobin="$(go env GOBIN)"
[[ -n $gobin ]] || gobin="$(go env GOPATH)/bin"
if ! command -v grpcurl >/dev/null 2>&1 && [[ ! -x $gobin/grpcurl ]]; then
  echo "deps.sh: installing grpcurl (go install)" >&2
  go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4
fi

if ! python3 -c 'import grpc' >/dev/null 2>&1; then
  echo "deps.sh: installing the Python grpcio package" >&2
  python3 -m pip install --quiet grpcio 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages grpcio
fi

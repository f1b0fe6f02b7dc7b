#!/usr/bin/env bash
# Regenerates internal/pb/ingestv1/ingest.pb.go from the shared contract
# proto/parallax/ingest/v1/ingest.proto (the go_package option there names
# this module's import path). Needs protoc and protoc-gen-go:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
PATH="$PATH:$(go env GOPATH)/bin"
mkdir -p "$here/internal/pb/ingestv1"
protoc \
  --proto_path="$root/proto" \
  --go_out="$here" \
  --go_opt=module=github.com/parallax-dev/parallax/go-reference \
  parallax/ingest/v1/ingest.proto

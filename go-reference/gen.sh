#!/usr/bin/env bash
# Regenerates internal/pb/*/*.pb.go from the shared contract in proto/ (the
# go_package options there name this module's import paths): the ingest
# messages, and the file descriptors of the ingest and fan-out services,
# which server reflection serves from protobuf's global registry (the gRPC
# handlers themselves are written by hand; see internal/ingest/grpc.go).
# Needs protoc and protoc-gen-go:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
PATH="$PATH:$(go env GOPATH)/bin"
mkdir -p "$here/internal/pb/ingestv1" "$here/internal/pb/fanoutv1"
protoc \
  --proto_path="$root/proto" \
  --go_out="$here" \
  --go_opt=module=github.com/parallax-dev/parallax/go-reference \
  parallax/ingest/v1/ingest.proto \
  parallax/ingest/v1/ingest_service.proto \
  parallax/fanout/v1/fanout.proto

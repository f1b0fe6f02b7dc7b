// Package ingestv1 holds the Go types generated from the shared wire
// contract, proto/parallax/ingest/v1/ingest.proto. Regenerate with
// `go generate ./...` (or ./gen.sh) from go-reference/.
package ingestv1

//go:generate ../../../gen.sh

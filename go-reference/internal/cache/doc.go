// Package cache is the Go reference of the session-cache service: an
// in-memory, sharded LRU store of opaque values with per-entry TTLs behind
// PUT/GET/HEAD/DELETE /v1/sessions/{id}.
//
// The rules (status codes, error bodies, which shard holds an id, how bytes
// are accounted, which entry is evicted when) are those of
// docs/contract-cache.md; the Rust twin in rust-services/session-cache
// follows the same document, and the conformance suite diffs the two byte
// for byte and replays operation sequences against both.
//
// Layout:
//   - store.go: the Store — shards (FNV-1a 64 of the id), per-shard LRU
//     lists and byte accounting, lazy expiry;
//   - sweep.go: the background expiry sweep, in bounded batches;
//   - request.go: id validation, X-Session-TTL parsing, reading the value;
//   - errors.go: the error answers;
//   - metrics.go: cache_* metrics, read from the store at scrape time;
//   - handler.go: routes and the HTTP flow of each method;
//   - faults.go: the hidden --debug-extra-cpu-us fault (CPU burned per
//     request) for the harness's gate tests.
package cache

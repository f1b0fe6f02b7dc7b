// Package fanout is the Go reference of the notification fan-out service:
// WebSocket clients subscribe to topics on GET /v1/subscribe, and every
// notification POSTed to /v1/notify is sent, as one text frame built once,
// to every connection subscribed to its topic — locally, or through Kafka
// so that several processes (sharing a port with SO_REUSEPORT, or on
// several machines) serve one audience.
//
// The rules (status codes, error bodies, frame bytes, close codes, the
// drop-oldest policy, metrics) are those of docs/contract-fanout.md; the
// Rust twin in rust-services/fanout follows the same document, and the
// conformance suite compares the two byte for byte.
//
// This is the idiomatic Go shape, the baseline of the comparison:
// gorilla/websocket, a hub of topic → connections behind a sync.RWMutex,
// and per connection a reader and a writer goroutine around a bounded
// drop-oldest queue.
//
// Layout:
//   - service.go: Serve, the entry point — hub, Kafka path, HTTP, shutdown;
//   - handler.go: routes, the subscribe handshake and the notify flow;
//   - hub.go: the Hub — who holds which topic, broadcasts, shutdown;
//   - conn.go: one connection's reader and writer goroutines, client ops,
//     close codes, pings and liveness;
//   - grpc.go: FanoutService/Subscribe, a gRPC stream as a connection of
//     the same hub (same queue, drop limit and metrics);
//   - queue.go: the per-connection drop-oldest frame queue;
//   - frame.go: notification and subscription frame bytes;
//   - decode.go: strict JSON decoding of notify bodies and client ops;
//   - topic.go: topic names and the topics query parameter;
//   - kafka.go: the Kafka path (franz-go producer + group-less consumer);
//   - metrics.go, errors.go: fanout_* metrics and the error answers.
package fanout

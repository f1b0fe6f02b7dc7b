// Package ingest is the Go reference of the event-ingestion service: POST
// /v1/events takes an EventBatch (binary protobuf or its proto3 JSON
// mapping), validates every event, publishes the valid ones to Kafka and
// answers with an IngestResponse once Kafka acknowledged all of them.
//
// The rules (status codes, error bodies, reason codes, escaping) are those
// of docs/contract-ingest.md; the Rust twin in rust-services/ingest follows
// the same document and the conformance suite diffs the two byte for byte.
//
// Layout:
//   - media.go: content negotiation (Content-Type, Accept);
//   - decode.go: reading the bounded body and decoding the batch;
//   - validate.go: per-event rules and reason codes;
//   - prepare.go: decode + validate + encode the Kafka records of a batch;
//   - response.go: encoding the 200 body;
//   - publisher.go, kafka.go: publishing records (interface, franz-go);
//   - metrics.go: ingest_* metrics;
//   - handler.go: routes and the HTTP flow of POST /v1/events.
package ingest

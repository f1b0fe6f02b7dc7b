package ingest

import (
	"testing"

	"github.com/parallax-dev/parallax/go-reference/internal/ingest/ingesttest"
	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

const benchEvents = 500

// BenchmarkDecodeValidateEncode is the CPU path of one POST /v1/events
// without Kafka: decode a pre-encoded 500-event protobuf batch (16-byte ids,
// 3 attributes, 200-byte payloads), validate it, encode every accepted event
// deterministically as its Kafka value, and encode the (protobuf) response.
// It runs on one goroutine, so events/s is per core.
func BenchmarkDecodeValidateEncode(b *testing.B) {
	body := ingesttest.EncodedBatch(1, benchEvents)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		batch, herr := Prepare(MediaProtobuf, body)
		if herr != nil || len(batch.Records) != benchEvents {
			b.Fatalf("prepare: %v, %d records", herr, len(batch.Records))
		}
		if _, err := EncodeResponse(MediaProtobuf, &ingestv1.IngestResponse{
			Accepted: uint32(len(batch.Records)),
			Rejected: batch.Rejected,
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*benchEvents/b.Elapsed().Seconds(), "events/s")
}

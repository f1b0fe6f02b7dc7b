package ingest

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

// FuzzDecodeBatch feeds arbitrary bodies, protobuf or JSON, to the decoder
// and checks what must hold for every one of them:
//
//   - nothing panics;
//   - Prepare answers malformed_body exactly when DecodeBatch fails;
//   - a decoded batch keeps no unknown fields;
//   - its deterministic encoding decodes back to the same batch, and
//     encoding that again gives the same bytes (and, for JSON, its
//     protojson encoding decodes back to it too);
//   - every Kafka record value decodes to its event and is, byte for
//     byte, what the runtime's deterministic Marshal writes for it.
//
// `go test ./...` runs the checked-in seeds (testdata/fuzz/FuzzDecodeBatch:
// the wire-format edges of docs/contract-ingest.md). To search further:
//
//	go test -run='^$' -fuzz=FuzzDecodeBatch -fuzztime=60s ./internal/ingest
func FuzzDecodeBatch(f *testing.F) {
	f.Add(false, []byte{})
	f.Add(true, []byte(`{"events":[]}`))
	f.Fuzz(func(t *testing.T, json bool, body []byte) {
		m := MediaProtobuf
		if json {
			m = MediaJSON
		}
		batch, err := DecodeBatch(m, body)
		if _, prepErr := Prepare(m, body); (err != nil) != (prepErr == errMalformedBody) {
			t.Fatalf("DecodeBatch: %v, but Prepare: %v", err, prepErr)
		}
		if err != nil {
			return
		}

		for i, ev := range batch.GetEvents() {
			if u := ev.ProtoReflect().GetUnknown(); len(u) != 0 {
				t.Fatalf("event %d kept unknown fields %x", i, u)
			}
		}
		if u := batch.ProtoReflect().GetUnknown(); len(u) != 0 {
			t.Fatalf("batch kept unknown fields %x", u)
		}

		encoded, err := deterministic.Marshal(batch)
		if err != nil {
			t.Fatalf("a decoded batch does not encode: %v", err)
		}
		again, err := DecodeBatch(MediaProtobuf, encoded)
		if err != nil || !proto.Equal(batch, again) {
			t.Fatalf("round trip through protobuf: %v\n got %v\nwant %v", err, again, batch)
		}
		if reencoded, _ := deterministic.Marshal(again); !bytes.Equal(encoded, reencoded) {
			t.Fatalf("the deterministic encoding is not a fixed point:\n%x\n%x", encoded, reencoded)
		}
		if json {
			text, err := protojson.Marshal(batch)
			if err != nil {
				t.Fatalf("a decoded batch does not encode as JSON: %v", err)
			}
			again, err := DecodeBatch(MediaJSON, text)
			if err != nil || !proto.Equal(batch, again) {
				t.Fatalf("round trip through JSON %s: %v", text, err)
			}
		}

		records := EncodeRecords(batch.GetEvents())
		for i, r := range records {
			ev := new(ingestv1.Event)
			if err := proto.Unmarshal(r.Value, ev); err != nil || !proto.Equal(ev, batch.GetEvents()[i]) {
				t.Fatalf("record %d does not decode to its event: %v", i, err)
			}
			if want, err := deterministic.Marshal(batch.GetEvents()[i]); err != nil || !bytes.Equal(r.Value, want) {
				t.Fatalf("record %d is not the runtime's deterministic encoding:\n%x\n%x (%v)", i, r.Value, want, err)
			}
		}
	})
}

package ingest

import (
	"testing"

	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

func TestResponseJSONOfAnEmptyResponseHasAllFields(t *testing.T) {
	if got := string(AppendResponseJSON(nil, &ingestv1.IngestResponse{})); got != `{"accepted":0,"rejected":[]}` {
		t.Fatalf("got %s", got)
	}
}

func TestResponseJSONHasFixedFieldOrderAndNoWhitespace(t *testing.T) {
	resp := &ingestv1.IngestResponse{Accepted: 2, Rejected: []*ingestv1.Rejection{
		{Index: 1, EventId: "e-1", Reason: "missing_type"},
		{Index: 3, EventId: "", Reason: "invalid_event_id"},
	}}
	want := `{"accepted":2,"rejected":[{"index":1,"eventId":"e-1","reason":"missing_type"},{"index":3,"eventId":"","reason":"invalid_event_id"}]}`
	if got := string(AppendResponseJSON(nil, resp)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestResponseJSONEscapesEventIDs(t *testing.T) {
	resp := &ingestv1.IngestResponse{Rejected: []*ingestv1.Rejection{{EventId: "\"<&>\"\x01\u2028", Reason: "duplicate_event_id"}}}
	want := `{"accepted":0,"rejected":[{"index":0,"eventId":"\"<&>\"\u0001\u2028","reason":"duplicate_event_id"}]}`
	if got := string(AppendResponseJSON(nil, resp)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestResponseProtobufOfAnEmptyResponseIsAnEmptyBody(t *testing.T) {
	body, err := EncodeResponse(MediaProtobuf, &ingestv1.IngestResponse{})
	if err != nil || len(body) != 0 {
		t.Fatalf("got %x, %v", body, err)
	}
}

func TestResponseProtobufRoundTrips(t *testing.T) {
	resp := &ingestv1.IngestResponse{Accepted: 7, Rejected: []*ingestv1.Rejection{{Index: 2, EventId: "x", Reason: "missing_type"}}}
	body, err := EncodeResponse(MediaProtobuf, resp)
	if err != nil {
		t.Fatal(err)
	}
	var got ingestv1.IngestResponse
	if err := proto.Unmarshal(body, &got); err != nil || !proto.Equal(&got, resp) {
		t.Fatalf("got %v, %v", &got, err)
	}
}

func TestKafkaValueIsTheDeterministicEventEncoding(t *testing.T) {
	ev := &ingestv1.Event{
		EventId: "e1", TenantId: "t1", Type: "click",
		Attributes: map[string]string{"z": "1", "a": "2", "m": "3"},
	}
	records := EncodeRecords([]*ingestv1.Event{ev})
	// Field-number order, map entries sorted by key, occurred_at (0) and
	// payload (empty) omitted.
	want := []byte("\x0a\x02e1\x12\x02t1\x1a\x05click" +
		"\x2a\x06\x0a\x01a\x12\x012" +
		"\x2a\x06\x0a\x01m\x12\x013" +
		"\x2a\x06\x0a\x01z\x12\x011")
	if string(records[0].Value) != string(want) {
		t.Fatalf("value %x\nwant  %x", records[0].Value, want)
	}
	if string(records[0].Key) != "t1" || records[0].EventID != "e1" {
		t.Fatalf("key %q event id %q", records[0].Key, records[0].EventID)
	}
}

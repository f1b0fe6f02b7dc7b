package ingest

import (
	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

// Record is one accepted event as it goes to Kafka.
type Record struct {
	// Key is the tenant_id: the partitioning key.
	Key []byte
	// Value is the Event, deterministically encoded.
	Value []byte
	// EventID goes into the record's event-id header.
	EventID string
}

// Batch is a decoded and validated request: what to publish and what to
// report as rejected.
type Batch struct {
	Records  []Record
	Rejected []*ingestv1.Rejection
}

// Prepare turns a request body of media m into a Batch: decode (400
// malformed_body), bound the event count (413 too_many_events), validate, and
// encode every accepted event as its Kafka record. The body size limit is the
// caller's, checked while reading.
func Prepare(m Media, body []byte) (*Batch, *httpx.Error) {
	batch, err := DecodeBatch(m, body)
	if err != nil {
		return nil, errMalformedBody
	}
	if len(batch.GetEvents()) > MaxEvents {
		return nil, errTooManyEvents
	}
	accepted, rejected := Validate(batch.GetEvents())
	records, err := EncodeRecords(accepted)
	if err != nil {
		// Unreachable for a batch that decoded: encoding fails only on
		// invalid UTF-8, which both decoders reject.
		return nil, errMalformedBody
	}
	return &Batch{Records: records, Rejected: rejected}, nil
}

// EncodeRecords encodes each event as its Kafka record: key tenant_id,
// value the deterministic binary Event, header event-id.
func EncodeRecords(events []*ingestv1.Event) ([]Record, error) {
	records := make([]Record, len(events))
	for i, ev := range events {
		value, err := deterministic.Marshal(ev)
		if err != nil {
			return nil, err
		}
		records[i] = Record{Key: []byte(ev.GetTenantId()), Value: value, EventID: ev.GetEventId()}
	}
	return records, nil
}

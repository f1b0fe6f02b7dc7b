package ingest

import ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"

// Reason codes of rejected events (docs/contract-ingest.md, "Per-event
// validation"), listed in the order the rules are checked.
const (
	ReasonInvalidEventID   = "invalid_event_id"
	ReasonDuplicateEventID = "duplicate_event_id"
	ReasonInvalidTenantID  = "invalid_tenant_id"
	ReasonMissingType      = "missing_type"
	ReasonPayloadTooLarge  = "payload_too_large"
)

// Per-event limits, in bytes.
const (
	MaxEventIDBytes  = 128
	MaxTenantIDBytes = 64
	MaxPayloadBytes  = 65_536
)

// Validate checks events in batch order and splits them into the accepted
// ones and the rejections (in batch order, with their 0-based index). For
// each event the first failing rule gives the reason:
//
//  1. event_id is 1–128 bytes: invalid_event_id
//  2. no earlier event (valid or not) has the same event_id: duplicate_event_id
//  3. tenant_id is 1–64 bytes: invalid_tenant_id
//  4. type is non-empty: missing_type
//  5. payload is at most 65,536 bytes: payload_too_large
func Validate(events []*ingestv1.Event) (accepted []*ingestv1.Event, rejected []*ingestv1.Rejection) {
	accepted = make([]*ingestv1.Event, 0, len(events))
	seen := make(map[string]struct{}, len(events))
	for i, ev := range events {
		id := ev.GetEventId()
		_, dup := seen[id]
		seen[id] = struct{}{}
		reason := ""
		switch {
		case len(id) < 1 || len(id) > MaxEventIDBytes:
			reason = ReasonInvalidEventID
		case dup:
			reason = ReasonDuplicateEventID
		case len(ev.GetTenantId()) < 1 || len(ev.GetTenantId()) > MaxTenantIDBytes:
			reason = ReasonInvalidTenantID
		case ev.GetType() == "":
			reason = ReasonMissingType
		case len(ev.GetPayload()) > MaxPayloadBytes:
			reason = ReasonPayloadTooLarge
		}
		if reason == "" {
			accepted = append(accepted, ev)
			continue
		}
		rejected = append(rejected, &ingestv1.Rejection{
			Index:   uint32(i),
			EventId: id,
			Reason:  reason,
		})
	}
	return accepted, rejected
}

package ingest

import (
	"strings"
	"testing"

	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

func validEvent(id string) *ingestv1.Event {
	return &ingestv1.Event{EventId: id, TenantId: "t1", Type: "click", Payload: []byte("hi")}
}

func with(id string, f func(*ingestv1.Event)) *ingestv1.Event {
	ev := validEvent(id)
	f(ev)
	return ev
}

// reasonOf validates a batch and returns the reason of the event at index
// last, or "" when it was accepted.
func reasonOf(events ...*ingestv1.Event) string {
	_, rejected := Validate(events)
	for _, r := range rejected {
		if int(r.GetIndex()) == len(events)-1 {
			return r.GetReason()
		}
	}
	return ""
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name  string
		batch []*ingestv1.Event // the last event is the one under test
		want  string
	}{
		{"a complete event is accepted", []*ingestv1.Event{validEvent("e1")}, ""},
		{"occurred_at and attributes are optional", []*ingestv1.Event{validEvent("e1")}, ""},
		{"an empty payload is fine", []*ingestv1.Event{with("e1", func(e *ingestv1.Event) { e.Payload = nil })}, ""},

		{"empty event_id", []*ingestv1.Event{validEvent("")}, ReasonInvalidEventID},
		{"event_id of 128 bytes is fine", []*ingestv1.Event{validEvent(strings.Repeat("a", 128))}, ""},
		{"event_id of 129 bytes", []*ingestv1.Event{validEvent(strings.Repeat("a", 129))}, ReasonInvalidEventID},
		{"event_id is measured in bytes: 64 two-byte runes fit", []*ingestv1.Event{validEvent(strings.Repeat("é", 64))}, ""},
		{"event_id is measured in bytes: 65 two-byte runes do not", []*ingestv1.Event{validEvent(strings.Repeat("é", 65))}, ReasonInvalidEventID},

		{"event_id seen earlier in the batch", []*ingestv1.Event{validEvent("e1"), validEvent("e1")}, ReasonDuplicateEventID},
		{"event_id seen earlier on a rejected event", []*ingestv1.Event{
			with("e1", func(e *ingestv1.Event) { e.Type = "" }), validEvent("e1"),
		}, ReasonDuplicateEventID},
		{"event_id compared byte for byte", []*ingestv1.Event{validEvent("e1"), validEvent("E1")}, ""},

		{"empty tenant_id", []*ingestv1.Event{with("e1", func(e *ingestv1.Event) { e.TenantId = "" })}, ReasonInvalidTenantID},
		{"tenant_id of 64 bytes is fine", []*ingestv1.Event{with("e1", func(e *ingestv1.Event) { e.TenantId = strings.Repeat("t", 64) })}, ""},
		{"tenant_id of 65 bytes", []*ingestv1.Event{with("e1", func(e *ingestv1.Event) { e.TenantId = strings.Repeat("t", 65) })}, ReasonInvalidTenantID},
		{"tenant_id is measured in bytes", []*ingestv1.Event{with("e1", func(e *ingestv1.Event) { e.TenantId = strings.Repeat("€", 22) })}, ReasonInvalidTenantID},

		{"empty type", []*ingestv1.Event{with("e1", func(e *ingestv1.Event) { e.Type = "" })}, ReasonMissingType},

		{"payload of 65,536 bytes is fine", []*ingestv1.Event{with("e1", func(e *ingestv1.Event) { e.Payload = make([]byte, 65536) })}, ""},
		{"payload of 65,537 bytes", []*ingestv1.Event{with("e1", func(e *ingestv1.Event) { e.Payload = make([]byte, 65537) })}, ReasonPayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reasonOf(tt.batch...); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateReportsOnlyTheFirstFailingRule(t *testing.T) {
	allBad := func(id string) *ingestv1.Event {
		return &ingestv1.Event{EventId: id, TenantId: "", Type: "", Payload: make([]byte, 65537)}
	}
	tests := []struct {
		name  string
		batch []*ingestv1.Event
		want  string
	}{
		{"invalid_event_id before everything", []*ingestv1.Event{allBad("")}, ReasonInvalidEventID},
		{"duplicate_event_id before tenant, type and payload", []*ingestv1.Event{validEvent("e1"), allBad("e1")}, ReasonDuplicateEventID},
		{"invalid_tenant_id before type and payload", []*ingestv1.Event{allBad("e1")}, ReasonInvalidTenantID},
		{"missing_type before payload", []*ingestv1.Event{with("e1", func(e *ingestv1.Event) {
			e.Type = ""
			e.Payload = make([]byte, 65537)
		})}, ReasonMissingType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reasonOf(tt.batch...); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateListsRejectionsInBatchOrderWithIndexAndEventIDAsSent(t *testing.T) {
	events := []*ingestv1.Event{
		validEvent("a"),
		with("b\n\u2028", func(e *ingestv1.Event) { e.Type = "" }),
		validEvent("a"),
		validEvent("c"),
		validEvent(""),
	}
	accepted, rejected := Validate(events)
	if len(accepted) != 2 || accepted[0] != events[0] || accepted[1] != events[3] {
		t.Fatalf("accepted %v", accepted)
	}
	want := []struct {
		index  uint32
		id     string
		reason string
	}{{1, "b\n\u2028", ReasonMissingType}, {2, "a", ReasonDuplicateEventID}, {4, "", ReasonInvalidEventID}}
	if len(rejected) != len(want) {
		t.Fatalf("rejected %v", rejected)
	}
	for i, w := range want {
		r := rejected[i]
		if r.GetIndex() != w.index || r.GetEventId() != w.id || r.GetReason() != w.reason {
			t.Errorf("rejection %d = %v, want %+v", i, r, w)
		}
	}
}

func TestValidateEveryLaterCopyOfAnEventIDIsADuplicate(t *testing.T) {
	_, rejected := Validate([]*ingestv1.Event{validEvent("x"), validEvent("x"), validEvent("x")})
	if len(rejected) != 2 || rejected[0].GetIndex() != 1 || rejected[1].GetIndex() != 2 {
		t.Fatalf("rejected %v", rejected)
	}
}

func TestValidateOfAnEmptyBatchAcceptsAndRejectsNothing(t *testing.T) {
	accepted, rejected := Validate(nil)
	if len(accepted) != 0 || len(rejected) != 0 {
		t.Fatalf("accepted %v rejected %v", accepted, rejected)
	}
}

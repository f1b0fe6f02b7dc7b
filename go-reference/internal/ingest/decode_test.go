package ingest

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

func decodeJSON(t *testing.T, body string) (*ingestv1.Event, error) {
	t.Helper()
	b, err := DecodeBatch(MediaJSON, []byte(body))
	if err != nil {
		return nil, err
	}
	if len(b.GetEvents()) != 1 {
		t.Fatalf("decoded %d events", len(b.GetEvents()))
	}
	return b.GetEvents()[0], nil
}

func TestDecodeJSONAcceptsJSONNames(t *testing.T) {
	ev, err := decodeJSON(t, `{"events":[{"eventId":"e1","tenantId":"t1","type":"click","occurredAtUnixMs":"1700000000000","attributes":{"k":"v"},"payload":"aGk="}]}`)
	if err != nil {
		t.Fatal(err)
	}
	want := &ingestv1.Event{EventId: "e1", TenantId: "t1", Type: "click", OccurredAtUnixMs: 1700000000000, Attributes: map[string]string{"k": "v"}, Payload: []byte("hi")}
	if !proto.Equal(ev, want) {
		t.Fatalf("got %v, want %v", ev, want)
	}
}

func TestDecodeJSONAcceptsProtoNames(t *testing.T) {
	ev, err := decodeJSON(t, `{"events":[{"event_id":"e1","tenant_id":"t1","type":"click","occurred_at_unix_ms":5}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetEventId() != "e1" || ev.GetTenantId() != "t1" || ev.GetOccurredAtUnixMs() != 5 {
		t.Fatalf("got %v", ev)
	}
}

func TestDecodeJSONAcceptsInt64AsIntegerOrDecimalString(t *testing.T) {
	for body, want := range map[string]int64{
		`{"events":[{"occurredAtUnixMs":42}]}`:                     42,
		`{"events":[{"occurredAtUnixMs":"42"}]}`:                   42,
		`{"events":[{"occurredAtUnixMs":"-42"}]}`:                  -42,
		`{"events":[{"occurredAtUnixMs":9223372036854775807}]}`:    9223372036854775807,
		`{"events":[{"occurredAtUnixMs":"-9223372036854775808"}]}`: -9223372036854775808,
	} {
		ev, err := decodeJSON(t, body)
		if err != nil || ev.GetOccurredAtUnixMs() != want {
			t.Errorf("%s: got %v, %v; want %d", body, ev, err, want)
		}
	}
}

func TestDecodeJSONAcceptsBase64InEveryAlphabetAndPadding(t *testing.T) {
	// 0xfb 0xff encodes with both alphabet-specific characters.
	for _, p := range []string{"+/8=", "+/8", "-_8=", "-_8"} {
		ev, err := decodeJSON(t, `{"events":[{"payload":"`+p+`"}]}`)
		if err != nil || string(ev.GetPayload()) != "\xfb\xff" {
			t.Errorf("%q: got %v, %v", p, ev, err)
		}
	}
}

func TestDecodeJSONTreatsNullAsTheDefault(t *testing.T) {
	ev, err := decodeJSON(t, `{"events":[{"eventId":null,"tenantId":null,"type":null,"occurredAtUnixMs":null,"attributes":null,"payload":null}]}`)
	if err != nil || !proto.Equal(ev, &ingestv1.Event{}) {
		t.Fatalf("got %v, %v", ev, err)
	}
	b, err := DecodeBatch(MediaJSON, []byte(`{"events":null}`))
	if err != nil || len(b.GetEvents()) != 0 {
		t.Fatalf("events:null: got %v, %v", b, err)
	}
}

func TestDecodeJSONAcceptsSurroundingWhitespace(t *testing.T) {
	if _, err := DecodeBatch(MediaJSON, []byte(" \n{\"events\":[]}\n ")); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeJSONRejectsMalformedBodies(t *testing.T) {
	for name, body := range map[string]string{
		"empty body":                    ``,
		"top-level null":                `null`,
		"top-level array":               `[]`,
		"unknown top-level field":       `{"events":[],"extra":1}`,
		"unknown event field":           `{"events":[{"eventId":"e1","color":"red"}]}`,
		"field name in the wrong case":  `{"events":[{"EventId":"e1"}]}`,
		"same field twice":              `{"events":[{"eventId":"a","eventId":"b"}]}`,
		"same field under both names":   `{"events":[{"eventId":"a","event_id":"b"}]}`,
		"events given twice":            `{"events":[],"events":[]}`,
		"events not an array":           `{"events":{}}`,
		"null event":                    `{"events":[null]}`,
		"string field with a number":    `{"events":[{"type":1}]}`,
		"int64 with a fraction":         `{"events":[{"occurredAtUnixMs":1.5}]}`,
		"int64 above the range":         `{"events":[{"occurredAtUnixMs":9223372036854775808}]}`,
		"int64 string with spaces":      `{"events":[{"occurredAtUnixMs":" 1"}]}`,
		"int64 string with a plus sign": `{"events":[{"occurredAtUnixMs":"+1"}]}`,
		"int64 string that is empty":    `{"events":[{"occurredAtUnixMs":""}]}`,
		"int64 as a boolean":            `{"events":[{"occurredAtUnixMs":true}]}`,
		"attributes not an object":      `{"events":[{"attributes":["k","v"]}]}`,
		"attribute value not a string":  `{"events":[{"attributes":{"k":1}}]}`,
		"attribute value null":          `{"events":[{"attributes":{"k":null}}]}`,
		"attribute key given twice":     `{"events":[{"attributes":{"k":"1","k":"2"}}]}`,
		"payload with mixed alphabets":  `{"events":[{"payload":"-/8="}]}`,
		"payload with a space":          `{"events":[{"payload":"aG k="}]}`,
		"trailing garbage":              `{"events":[]} x`,
		"trailing comma":                `{"events":[{"eventId":"a"},]}`,
		"invalid UTF-8":                 "{\"events\":[{\"eventId\":\"\xff\"}]}",
		"lone surrogate escape":         `{"events":[{"eventId":"\ud800"}]}`,
		"byte order mark":               "\ufeff{\"events\":[]}",
		"truncated":                     `{"events":[`,
		"Any-style @type":               `{"@type":"x"}`,
	} {
		if _, err := DecodeBatch(MediaJSON, []byte(body)); err == nil {
			t.Errorf("%s: %q decoded", name, body)
		}
	}
}

func TestDecodeProtobufEmptyBodyIsAnEmptyBatch(t *testing.T) {
	b, err := DecodeBatch(MediaProtobuf, nil)
	if err != nil || len(b.GetEvents()) != 0 {
		t.Fatalf("got %v, %v", b, err)
	}
}

func TestDecodeProtobufDropsUnknownFields(t *testing.T) {
	ev, _ := proto.Marshal(&ingestv1.Event{EventId: "e1"})
	ev = protowire.AppendTag(ev, 99, protowire.VarintType)
	ev = protowire.AppendVarint(ev, 7)
	body := protowire.AppendTag(nil, 1, protowire.BytesType)
	body = protowire.AppendBytes(body, ev)
	b, err := DecodeBatch(MediaProtobuf, body)
	if err != nil {
		t.Fatal(err)
	}
	if u := b.GetEvents()[0].ProtoReflect().GetUnknown(); len(u) != 0 {
		t.Fatalf("unknown fields kept: %x", u)
	}
}

func TestDecodeProtobufRejectsInvalidUTF8InStrings(t *testing.T) {
	ev := protowire.AppendTag(nil, 1, protowire.BytesType)
	ev = protowire.AppendString(ev, "\xff")
	body := protowire.AppendTag(nil, 1, protowire.BytesType)
	body = protowire.AppendBytes(body, ev)
	if _, err := DecodeBatch(MediaProtobuf, body); err == nil {
		t.Fatal("decoded")
	}
}

func TestDecodeProtobufRejectsTruncatedInput(t *testing.T) {
	body, _ := proto.Marshal(&ingestv1.EventBatch{Events: []*ingestv1.Event{{EventId: "e1"}}})
	if _, err := DecodeBatch(MediaProtobuf, body[:len(body)-1]); err == nil {
		t.Fatal("decoded")
	}
}

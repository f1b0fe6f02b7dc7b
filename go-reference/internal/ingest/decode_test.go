package ingest

import (
	"bytes"
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
		// Read from the digits, not through a float64.
		`{"events":[{"occurredAtUnixMs":9223372036854775807.0}]}`: 9223372036854775807,
		`{"events":[{"occurredAtUnixMs":9007199254740993.0}]}`:    9007199254740993,
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
		"int64 below the range":         `{"events":[{"occurredAtUnixMs":-9223372036854775809}]}`,
		"number with an empty exponent": `{"events":[{"occurredAtUnixMs":1e}]}`,
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

// batchOf wraps encoded events in an EventBatch.
func batchOf(events ...[]byte) []byte {
	var b []byte
	for _, ev := range events {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, ev)
	}
	return b
}

func TestDecodeProtobufSkipsKnownFieldsWithTheWrongWireType(t *testing.T) {
	ev, _ := proto.Marshal(&ingestv1.Event{EventId: "e1", TenantId: "t1", Type: "x"})
	ev = protowire.AppendTag(ev, 1, protowire.VarintType) // event_id as a varint
	ev = protowire.AppendVarint(ev, 5)
	ev = protowire.AppendTag(ev, 6, protowire.StartGroupType) // payload as a group
	ev = protowire.AppendTag(ev, 6, protowire.EndGroupType)
	body := protowire.AppendTag(nil, 1, protowire.Fixed32Type) // events as fixed32
	body = protowire.AppendFixed32(body, 7)
	b, err := DecodeBatch(MediaProtobuf, append(body, batchOf(ev)...))
	if err != nil {
		t.Fatal(err)
	}
	want := &ingestv1.EventBatch{Events: []*ingestv1.Event{{EventId: "e1", TenantId: "t1", Type: "x"}}}
	if !proto.Equal(b, want) {
		t.Fatalf("got %v, want %v", b, want)
	}
}

func TestDecodeProtobufGroupsNest10001DeepAndNoDeeper(t *testing.T) {
	nested := func(levels int) []byte {
		start := protowire.AppendTag(nil, 1, protowire.StartGroupType)
		end := protowire.AppendTag(nil, 1, protowire.EndGroupType)
		return append(bytes.Repeat(start, levels), bytes.Repeat(end, levels)...)
	}
	if _, err := DecodeBatch(MediaProtobuf, nested(10_001)); err != nil {
		t.Fatalf("10,001 levels: %v", err)
	}
	if _, err := DecodeBatch(MediaProtobuf, nested(10_002)); err == nil {
		t.Fatal("10,002 levels decoded")
	}
}

func TestDecodeProtobufRejectsBrokenFraming(t *testing.T) {
	ev, _ := proto.Marshal(&ingestv1.Event{EventId: "e1"})
	for name, extra := range map[string][]byte{
		"stray end-group":          protowire.AppendTag(nil, 99, protowire.EndGroupType),
		"group closed by another":  protowire.AppendTag(protowire.AppendTag(nil, 99, protowire.StartGroupType), 98, protowire.EndGroupType),
		"group left open":          protowire.AppendTag(nil, 99, protowire.StartGroupType),
		"wire type 6":              append(protowire.AppendVarint(nil, 99<<3|6), 0),
		"wire type 7 on event_id":  {1<<3 | 7, 0},
		"field number 0":           {0, 1},
		"field number 2^29":        protowire.AppendVarint(protowire.AppendVarint(nil, 1<<29<<3), 1),
		"11-byte varint":           {4 << 3, 0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
		"varint over 64 bits":      {4 << 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		"invalid UTF-8 in map key": protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), []byte{0x0a, 0x01, 0xff}),
	} {
		if _, err := DecodeBatch(MediaProtobuf, batchOf(append(ev, extra...))); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

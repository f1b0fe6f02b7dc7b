package fanout

import (
	"bytes"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	fanoutv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/fanoutv1"
)

func TestNotificationMessageIsTheDeterministicEncodingOfTheFrame(t *testing.T) {
	for _, n := range []Notification{
		{ID: "n-1", Topic: "news", PublishedAtUnixUS: 1764000000000000, Body: []byte(`{"a": [1, 2]}`)},
		{ID: "é\"\\", Topic: "a", PublishedAtUnixUS: 0, Body: []byte(`null`)},
		{ID: "x", Topic: "t", PublishedAtUnixUS: 1<<63 - 1, Body: []byte(`"<&>"`)},
	} {
		got, ok := NotificationMessage(Frame(&n))
		if !ok {
			t.Fatalf("%s: not a frame", Frame(&n))
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&fanoutv1.Notification{
			Id: n.ID, Topic: n.Topic, PublishedAtUnixUs: n.PublishedAtUnixUS, BodyJson: string(n.Body),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %x, want %x", Frame(&n), got, want)
		}
	}
	for _, junk := range []string{``, `{}`, `[1]`, `{"id":"a","topic":"b","published_at_unix_us":1}`, `{"id":"a","topic":"b","published_at_unix_us":-1,"body":1}`} {
		if _, ok := NotificationMessage([]byte(junk)); ok {
			t.Errorf("%q taken for a frame", junk)
		}
	}
}

func TestSubscribeRequestTopicsAreCheckedLikeTheQueryParameter(t *testing.T) {
	enc := func(topics ...string) []byte {
		b, _ := proto.Marshal(&fanoutv1.SubscribeRequest{Topics: topics})
		return b
	}
	many := make([]string, MaxTopicsPerConn+1)
	for i := range many {
		many[i] = string(rune('A'+i%26)) + string(rune('a'+i/26))
	}
	cases := []struct {
		name    string
		message []byte
		want    []string
		status  *grpcStatus
	}{
		{"sorted and deduplicated", enc("b", "a", "b"), []string{"a", "b"}, nil},
		{"no topics", nil, nil, &statusInvalidTopics},
		{"empty name", enc("a", ""), nil, &statusInvalidTopics},
		{"bad byte", enc("a b"), nil, &statusInvalidTopics},
		{"65 topics", enc(many...), nil, &statusInvalidTopics},
		{"64 topics with duplicates", enc(append(slices.Clone(many[:64]), many[0])...), nil, nil},
		{"unknown field skipped", append(enc("a"), 0x10, 0x01), []string{"a"}, nil},
		{"topics as a varint is unknown", []byte{0x08, 0x01, 0x0a, 0x01, 'a'}, []string{"a"}, nil},
		{"limit as bytes is unknown", []byte{0x12, 0x00, 0x0a, 0x01, 'a'}, []string{"a"}, nil},
		{"invalid UTF-8", []byte{0x0a, 0x01, 0xff}, nil, &statusMalformedRequest},
		{"truncated", []byte{0x0a, 0x05, 'a'}, nil, &statusMalformedRequest},
	}
	for _, c := range cases {
		got, st := ParseSubscribeRequest(c.message)
		if st != c.status {
			t.Errorf("%s: status %v, want %v", c.name, st, c.status)
		}
		if c.want != nil && !slices.Equal(got.Topics, c.want) {
			t.Errorf("%s: topics %q, want %q", c.name, got.Topics, c.want)
		}
	}
}

func TestSubscribeRequestLimitIsItsLow32Bits(t *testing.T) {
	got, st := ParseSubscribeRequest([]byte{0x0a, 0x01, 'a', 0x10, 0x81, 0x80, 0x80, 0x80, 0x10})
	if st != nil || got.Limit != 1 {
		t.Fatalf("got %+v %v, want limit 1", got, st)
	}
}

package fanout

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestFrameHasTheContractFieldsInOrderWithoutWhitespace(t *testing.T) {
	n := Notification{ID: "n-1", Topic: "news", PublishedAtUnixUS: 1764000000000000, Body: []byte(`{"any":"json"}`)}
	want := `{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}`
	if got := string(Frame(&n)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestFrameEscapesTheIDWithTheSharedRules(t *testing.T) {
	n := Notification{ID: "q\"b\\s\n\x01<&>\x7fé\u2028\u2029🦀", Topic: "t", Body: []byte("0")}
	want := `{"id":"q\"b\\s\n\u0001<&>` + "\x7fé" + `\u2028\u2029` + "🦀" + `","topic":"t","published_at_unix_us":0,"body":0}`
	if got := string(Frame(&n)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestFrameEmbedsTheBodyVerbatimWhereEncodingJSONWouldNot(t *testing.T) {
	// encoding/json would compact this RawMessage and escape <, > and &
	// as \u003c, \u003e, \u0026.
	body := "{ \"html\" : \"<a href='x'>&amp;</a>\",\n  \"n\": 1.50e+3, \"s\": \"\\u00e9\\/\" }"
	n := Notification{ID: "i", Topic: "t", PublishedAtUnixUS: 1, Body: []byte(body)}
	got := Frame(&n)
	if !bytes.HasSuffix(got, []byte(`,"body":`+body+`}`)) {
		t.Fatalf("body not verbatim: %s", got)
	}
	if !json.Valid(got) {
		t.Fatalf("frame is not JSON: %s", got)
	}
	marshalled, _ := json.Marshal(struct {
		Body json.RawMessage `json:"body"`
	}{json.RawMessage(body)})
	if strings.Contains(string(marshalled), body) {
		t.Fatal("encoding/json kept the body verbatim after all; this test no longer shows why Frame exists")
	}
}

func TestFrameWritesNullBodyAndLargeTimestamps(t *testing.T) {
	n := Notification{ID: "i", Topic: "t", PublishedAtUnixUS: 9223372036854775807, Body: []byte("null")}
	want := `{"id":"i","topic":"t","published_at_unix_us":9223372036854775807,"body":null}`
	if got := string(Frame(&n)); got != want {
		t.Fatalf("got %s", got)
	}
}

func TestSubscribedFrameListsTheGivenSortedSet(t *testing.T) {
	for _, tc := range []struct {
		topics []string
		want   string
	}{
		{[]string{"a", "b"}, `{"op":"subscribed","topics":["a","b"]}`},
		{[]string{"A", "_", "a"}, `{"op":"subscribed","topics":["A","_","a"]}`},
		{nil, `{"op":"subscribed","topics":[]}`},
	} {
		if got := string(AppendSubscribedFrame(nil, tc.topics)); got != tc.want {
			t.Errorf("got %s, want %s", got, tc.want)
		}
	}
}

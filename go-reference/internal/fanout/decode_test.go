package fanout

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	fixedNow = func() time.Time { return time.UnixMicro(1764000000123456) }
	fixedID  = func() string { return "generated" }
)

func TestParseNotificationKeepsEveryGivenField(t *testing.T) {
	n, ok := ParseNotification([]byte(`{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}`), fixedNow, fixedID)
	want := Notification{ID: "n-1", Topic: "news", PublishedAtUnixUS: 1764000000000000, Body: []byte(`{"any":"json"}`)}
	if !ok || n.ID != want.ID || n.Topic != want.Topic || n.PublishedAtUnixUS != want.PublishedAtUnixUS || string(n.Body) != string(want.Body) {
		t.Fatalf("got %+v, %v", n, ok)
	}
}

func TestParseNotificationDefaultsAbsentIDAndTimestamp(t *testing.T) {
	n, ok := ParseNotification([]byte(`{"topic":"news","body":null}`), fixedNow, fixedID)
	if !ok || n.ID != "generated" || n.PublishedAtUnixUS != 1764000000123456 || string(n.Body) != "null" {
		t.Fatalf("got %+v, %v", n, ok)
	}
}

func TestParseNotificationKeepsTheBodyBytesExactlyAsSent(t *testing.T) {
	for _, body := range []string{
		`{ "b" : [1, 2.50, 1e3, -0.0] ,"a":"\u00e9\/<&>" }`,
		`"\ud800 lone surrogates stay as sent"`,
		`12345678901234567890123456789`,
		`1E400`,
		`[]`, `{}`, `true`, `false`, `null`, `""`, `-0`,
		"\"é🦀\u2028\"",
		"[\n\t1\r\n]",
	} {
		doc := "{\"topic\":\"t\",\"body\": \n" + body + " \t\n}"
		n, ok := ParseNotification([]byte(doc), fixedNow, fixedID)
		if !ok || string(n.Body) != body {
			t.Errorf("%s: got %q, %v", body, n.Body, ok)
		}
	}
}

func TestParseNotificationDecodesEscapedNames(t *testing.T) {
	n, ok := ParseNotification([]byte(`{"\u0074opic":"n\u0065ws","body":1,"id":"a\"b\\c\u2028\ud83e\udd80"}`), fixedNow, fixedID)
	if !ok || n.Topic != "news" || n.ID != "a\"b\\c\u2028🦀" {
		t.Fatalf("got %+v, %v", n, ok)
	}
}

func TestParseNotificationLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		ok   bool
	}{
		{"id of 1 byte", `{"topic":"t","body":1,"id":"x"}`, true},
		{"id of 128 bytes", `{"topic":"t","body":1,"id":"` + strings.Repeat("x", 128) + `"}`, true},
		{"id of 128 bytes of 2-byte characters", `{"topic":"t","body":1,"id":"` + strings.Repeat("é", 64) + `"}`, true},
		{"id of 129 bytes", `{"topic":"t","body":1,"id":"` + strings.Repeat("x", 129) + `"}`, false},
		{"id of 130 bytes of 2-byte characters", `{"topic":"t","body":1,"id":"` + strings.Repeat("é", 65) + `"}`, false},
		{"escaped id counted decoded", `{"topic":"t","body":1,"id":"` + strings.Repeat(`\u0078`, 128) + `"}`, true},
		{"timestamp 0", `{"topic":"t","body":1,"published_at_unix_us":0}`, true},
		{"timestamp int64 max", `{"topic":"t","body":1,"published_at_unix_us":9223372036854775807}`, true},
		{"timestamp past int64", `{"topic":"t","body":1,"published_at_unix_us":9223372036854775808}`, false},
		{"topic of 64 bytes", `{"topic":"` + strings.Repeat("t", 64) + `","body":1}`, true},
		{"topic of 65 bytes", `{"topic":"` + strings.Repeat("t", 65) + `","body":1}`, false},
	} {
		if _, ok := ParseNotification([]byte(tc.doc), fixedNow, fixedID); ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

func TestParseNotificationRefusesInvalidDocuments(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":                       ``,
		"not JSON":                    `topic=news`,
		"truncated":                   `{"topic":"t","body":1`,
		"trailing data":               `{"topic":"t","body":1}x`,
		"two documents":               `{"topic":"t","body":1}{}`,
		"top-level null":              `null`,
		"top-level array":             `[{"topic":"t","body":1}]`,
		"top-level string":            `"x"`,
		"missing topic":               `{"body":1}`,
		"missing body":                `{"topic":"t"}`,
		"null topic":                  `{"topic":null,"body":1}`,
		"numeric topic":               `{"topic":1,"body":1}`,
		"empty topic":                 `{"topic":"","body":1}`,
		"topic with a space":          `{"topic":"a b","body":1}`,
		"topic with a comma":          `{"topic":"a,b","body":1}`,
		"unknown field":               `{"topic":"t","body":1,"extra":1}`,
		"field name in another case":  `{"Topic":"t","body":1}`,
		"field name in upper case":    `{"topic":"t","BODY":1}`,
		"null id":                     `{"topic":"t","body":1,"id":null}`,
		"empty id":                    `{"topic":"t","body":1,"id":""}`,
		"numeric id":                  `{"topic":"t","body":1,"id":7}`,
		"lone high surrogate in id":   `{"topic":"t","body":1,"id":"\ud800"}`,
		"lone low surrogate in id":    `{"topic":"t","body":1,"id":"\udc00x"}`,
		"reversed surrogates in id":   `{"topic":"t","body":1,"id":"\udc00\ud800"}`,
		"null timestamp":              `{"topic":"t","body":1,"published_at_unix_us":null}`,
		"negative timestamp":          `{"topic":"t","body":1,"published_at_unix_us":-1}`,
		"negative zero timestamp":     `{"topic":"t","body":1,"published_at_unix_us":-0}`,
		"fractional timestamp":        `{"topic":"t","body":1,"published_at_unix_us":1.5}`,
		"integral fraction timestamp": `{"topic":"t","body":1,"published_at_unix_us":1.0}`,
		"exponent timestamp":          `{"topic":"t","body":1,"published_at_unix_us":1e3}`,
		"string timestamp":            `{"topic":"t","body":1,"published_at_unix_us":"1"}`,
		"invalid body":                `{"topic":"t","body":}`,
		"single-quoted body":          `{"topic":"t","body":'x'}`,
		"raw control byte in body":    "{\"topic\":\"t\",\"body\":\"a\x01\"}",
		"invalid UTF-8 in body":       "{\"topic\":\"t\",\"body\":\"\xff\"}",
		"invalid UTF-8 in id":         "{\"topic\":\"t\",\"body\":1,\"id\":\"\xc3\"}",
		"byte-order mark":             "\xef\xbb\xbf{\"topic\":\"t\",\"body\":1}",
		"bad escape in body":          `{"topic":"t","body":"\x"}`,
		"leading zero in body":        `{"topic":"t","body":01}`,
		"comment":                     `{"topic":"t",/*c*/"body":1}`,
	} {
		if n, ok := ParseNotification([]byte(doc), fixedNow, fixedID); ok {
			t.Errorf("%s: accepted as %+v", name, n)
		}
	}
}

func TestNewIDIs32LowerCaseHexCharactersAndRandom(t *testing.T) {
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	a, b := NewID(), NewID()
	if !hex32.MatchString(a) || !hex32.MatchString(b) || a == b {
		t.Fatalf("got %q and %q", a, b)
	}
}

func TestParseOpAcceptsSubscribeAndUnsubscribe(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want Op
	}{
		{`{"op":"subscribe","topics":["c"]}`, Op{Subscribe: true, Topics: []string{"c"}}},
		{`{"op":"unsubscribe","topics":["a","b"]}`, Op{Topics: []string{"a", "b"}}},
		{` { "topics" : [ "b" , "a" ] , "op" : "subscribe" } `, Op{Subscribe: true, Topics: []string{"b", "a"}}},
		{`{"op":"subscribe","topics":[]}`, Op{Subscribe: true, Topics: []string{}}},
		{`{"op":"subscribe","topics":["a","a"]}`, Op{Subscribe: true, Topics: []string{"a", "a"}}},
		{`{"op":"s\u0075bscribe","topics":["\u0061"]}`, Op{Subscribe: true, Topics: []string{"a"}}},
	} {
		got, ok := ParseOp([]byte(tc.msg))
		if !ok || got.Subscribe != tc.want.Subscribe || !slices.Equal(got.Topics, tc.want.Topics) {
			t.Errorf("%s: got %+v, %v", tc.msg, got, ok)
		}
	}
}

func TestParseOpRefusesAnythingElse(t *testing.T) {
	for _, msg := range []string{
		``, `x`, `null`, `[]`, `"subscribe"`, `{}`,
		`{"op":"subscribe"}`,
		`{"topics":["a"]}`,
		`{"op":"publish","topics":["a"]}`,
		`{"op":"Subscribe","topics":["a"]}`,
		`{"op":null,"topics":["a"]}`,
		`{"op":1,"topics":["a"]}`,
		`{"op":"subscribe","topics":null}`,
		`{"op":"subscribe","topics":"a"}`,
		`{"op":"subscribe","topics":[1]}`,
		`{"op":"subscribe","topics":[null]}`,
		`{"op":"subscribe","topics":[""]}`,
		`{"op":"subscribe","topics":["a b"]}`,
		`{"op":"subscribe","topics":["` + strings.Repeat("x", 65) + `"]}`,
		`{"op":"subscribe","topics":["a"],"id":1}`,
		`{"OP":"subscribe","topics":["a"]}`,
		`{"op":"subscribe","Topics":["a"]}`,
		`{"op":"subscribe","topics":["a"]} x`,
		`{"op":"subscribe","topics":["a"]`,
	} {
		if op, ok := ParseOp([]byte(msg)); ok {
			t.Errorf("%q: accepted as %+v", msg, op)
		}
	}
}

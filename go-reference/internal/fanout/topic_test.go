package fanout

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestValidTopicAcceptsOneToSixtyFourNameBytes(t *testing.T) {
	for _, name := range []string{"a", "news", "A-Z.a_z-0.9", strings.Repeat("x", 64), "...", "-", "_"} {
		if !ValidTopic(name) {
			t.Errorf("%q refused", name)
		}
	}
}

func TestValidTopicRefusesEmptyLongAndOtherBytes(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("x", 65), "a b", "a,b", "a/b", "a+b", "a%2Cb", "é", "a\x00", "a:b", "a~b", "*"} {
		if ValidTopic(name) {
			t.Errorf("%q accepted", name)
		}
	}
}

func TestParseTopicsQuery(t *testing.T) {
	many := func(n int) string {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("t%02d", i)
		}
		return strings.Join(names, ",")
	}
	for _, tc := range []struct {
		query string
		want  []string // nil: invalid
	}{
		{"topics=a", []string{"a"}},
		{"topics=news,alerts", []string{"alerts", "news"}},
		{"topics=b,a,b,a", []string{"a", "b"}},    // duplicates ignored, sorted
		{"topics=B,a,_", []string{"B", "_", "a"}}, // byte order
		{"x=1&topics=a&y", []string{"a"}},         // other parameters ignored
		{"topics=a%2Cb", []string{"a", "b"}},      // decoded before splitting
		{"topics=%61", []string{"a"}},             // percent-decoded
		{"x=%zz&topics=a", []string{"a"}},         // a malformed pair is dropped
		{"topics=" + many(64), strings.Split(many(64), ",")},
		{"topics=" + many(64) + ",t00", strings.Split(many(64), ",")}, // 65 names, 64 distinct
		{"", nil},
		{"topic=a", nil},
		{"topics", nil},
		{"topics=", nil},
		{"topics=a,", nil},
		{"topics=,a", nil},
		{"topics=a,,b", nil},
		{"topics=a+b", nil},        // '+' is a space
		{"topics=a%20b", nil},      // so is %20
		{"topics=a;b", nil},        // net/url drops the pair: topics absent
		{"topics=a&topics=b", nil}, // repeated parameter
		{"topics=%zz", nil},
		{"topics=" + strings.Repeat("x", 65), nil},
		{"topics=" + many(65), nil},
		{"Topics=a", nil},
	} {
		got, ok := ParseTopicsQuery(tc.query)
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, %v; want %q", tc.query, got, ok, tc.want)
		}
	}
}

package fanout

import (
	"net/url"
	"slices"
	"strings"
)

const (
	// MaxTopicBytes bounds a topic name.
	MaxTopicBytes = 64
	// MaxTopicsPerConn bounds the topics one connection holds.
	MaxTopicsPerConn = 64
)

// nameByte marks the bytes a topic name may hold: A–Z a–z 0–9 . _ -
var nameByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
		t[c+'a'-'A'] = true
	}
	for _, c := range "._-" {
		t[c] = true
	}
	return t
}()

// ValidTopic reports whether s is a topic name: 1–64 bytes of
// A–Z a–z 0–9 . _ -, compared byte for byte (names are case-sensitive).
func ValidTopic(s string) bool {
	if len(s) == 0 || len(s) > MaxTopicBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte[s[i]] {
			return false
		}
	}
	return true
}

// ParseTopicsQuery reads the topics of GET /v1/subscribe from the raw query
// string. The query is form-decoded ('+' is a space, %XX a byte) with
// net/url's rules, whose failures only drop the offending pair; then exactly
// one topics parameter must be left, whose value, split on ',', is a list of
// valid names — an empty element ("a,,b", "a,", "") is invalid. Duplicates
// are ignored and at most MaxTopicsPerConn distinct names may remain. The
// result is sorted by byte order, without duplicates.
func ParseTopicsQuery(rawQuery string) ([]string, bool) {
	values, _ := url.ParseQuery(rawQuery) // a malformed pair is dropped, as if absent
	v := values["topics"]
	if len(v) != 1 {
		return nil, false
	}
	var topics []string
	for name := range strings.SplitSeq(v[0], ",") {
		if !ValidTopic(name) {
			return nil, false
		}
		topics = append(topics, name)
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	if len(topics) > MaxTopicsPerConn {
		return nil, false
	}
	return topics, true
}

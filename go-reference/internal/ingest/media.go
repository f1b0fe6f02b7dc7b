package ingest

import (
	"net/http"
	"strings"
)

// Media is one of the two encodings of the wire contract.
type Media int

const (
	// MediaUnsupported is any media type the contract does not name.
	MediaUnsupported Media = iota
	// MediaProtobuf is binary protobuf.
	MediaProtobuf
	// MediaJSON is the proto3 JSON mapping.
	MediaJSON
)

// ContentType is the exact Content-Type this service writes for m.
func (m Media) ContentType() string {
	switch m {
	case MediaProtobuf:
		return "application/x-protobuf"
	case MediaJSON:
		return "application/json"
	}
	return ""
}

// protobufTypes are the names that mean binary protobuf.
var protobufTypes = [...]string{
	"application/x-protobuf",
	"application/protobuf",
	"application/vnd.google.protobuf",
}

// ParseMedia reads one media type or media range: the part before the first
// ';' (parameters and q-values ignored), trimmed of spaces and tabs, matched
// ASCII-case-insensitively.
func ParseMedia(v string) Media {
	v, _, _ = strings.Cut(v, ";")
	v = trimOWS(v)
	if equalFoldASCII(v, "application/json") {
		return MediaJSON
	}
	for _, t := range protobufTypes {
		if equalFoldASCII(v, t) {
			return MediaProtobuf
		}
	}
	return MediaUnsupported
}

// RequestMedia is the request body's encoding from its (first) Content-Type
// header; MediaUnsupported means 415.
func RequestMedia(h http.Header) Media {
	v := h.Get("Content-Type")
	if !visibleASCII(v) {
		return MediaUnsupported
	}
	return ParseMedia(v)
}

// ResponseMedia is the 200 body's encoding: the first supported type named
// in Accept (all Accept header lines, in order, split on ','), else the
// request's encoding.
func ResponseMedia(h http.Header, request Media) Media {
	for _, line := range h.Values("Accept") {
		if !visibleASCII(line) {
			continue
		}
		for item := range strings.SplitSeq(line, ",") {
			if m := ParseMedia(item); m != MediaUnsupported {
				return m
			}
		}
	}
	return request
}

// visibleASCII reports whether a header value holds only visible ASCII,
// space and tab. Values with other bytes (obs-text) are ignored, as the Rust
// twin's HeaderValue::to_str does.
func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// equalFoldASCII compares ASCII-case-insensitively. strings.EqualFold is not
// used on purpose: it applies Unicode folding ("ſ" matches "s").
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

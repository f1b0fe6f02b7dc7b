package cache

import (
	"strings"
	"testing"
	"time"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"letters and digits", "Session42", true},
		{"every unreserved punctuation mark", "a-b.c_d~e", true},
		{"a single byte", "x", true},
		{"dots only", "..", true},
		{"256 bytes", strings.Repeat("a", 256), true},

		{"empty", "", false},
		{"257 bytes", strings.Repeat("a", 257), false},
		{"a slash", "a/b", false},
		{"an encoded slash stays encoded", "a%2Fb", false},
		{"an encoded space stays encoded", "a%20b", false},
		{"an encoded unreserved byte stays encoded", "%41", false},
		{"a lone percent", "a%", false},
		{"a plus", "a+b", false},
		{"a colon", "a:b", false},
		{"an at sign", "a@b", false},
		{"sub-delims", "a!$&'()*,;=b", false},
		{"braces", "{id}", false},
		{"a space", "a b", false},
		{"a NUL byte", "a\x00b", false},
		{"DEL", "a\x7f", false},
		{"non-ASCII bytes", "caf\xc3\xa9", false},
		{"a backslash", `a\b`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidID(tt.id); got != tt.want {
				t.Fatalf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestValidIDAcceptsExactlyTheUnreservedBytes(t *testing.T) {
	const unreservedSet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	for b := range 256 {
		want := strings.IndexByte(unreservedSet, byte(b)) >= 0
		if got := ValidID(string([]byte{byte(b)})); got != want {
			t.Errorf("byte %#02x: %v, want %v", b, got, want)
		}
	}
}

func TestParseTTL(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration // 0: invalid
	}{
		{"1", time.Second},
		{"60", time.Minute},
		{"604800", 7 * 24 * time.Hour},
		{"007", 7 * time.Second},
		{"0000000000000000000001", time.Second},

		{"", 0},
		{"0", 0},
		{"000", 0},
		{"604801", 0},
		{"99999999999999999999999", 0},
		{"+5", 0},
		{"-5", 0},
		{" 5", 0},
		{"5 ", 0},
		{"5s", 0},
		{"1.5", 0},
		{"1e3", 0},
		{"0x10", 0},
		{"1_000", 0},
		{"５", 0}, // fullwidth digit
	}
	for _, tt := range tests {
		got, ok := ParseTTL(tt.in)
		if ok != (tt.want != 0) || got != tt.want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", tt.in, got, ok, tt.want)
		}
	}
}

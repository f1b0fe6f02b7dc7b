package cache

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

const (
	// MaxIDBytes bounds a session id.
	MaxIDBytes = 256
	// MaxValueBytes bounds a PUT body, declared or counted.
	MaxValueBytes = 1 << 20
	// MaxTTLSeconds bounds X-Session-TTL (and --default-ttl-secs): 7 days.
	MaxTTLSeconds = 604800
	// DefaultContentType is stored for a PUT without Content-Type.
	DefaultContentType = "application/octet-stream"
)

// unreserved marks the bytes an id may hold: RFC 3986 unreserved,
// A–Z a–z 0–9 - . _ ~.
var unreserved = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
		t[c+'a'-'A'] = true
	}
	for _, c := range "-._~" {
		t[c] = true
	}
	return t
}()

// ValidID reports whether id — the raw path after /v1/sessions/, not
// percent-decoded — is 1–256 bytes of A–Z a–z 0–9 - . _ ~. A '%' is just
// another byte outside that set, so "a%2Fb" and "a%20b" are invalid.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !unreserved[id[i]] {
			return false
		}
	}
	return true
}

// ParseTTL parses an X-Session-TTL value: decimal digits only (no sign, no
// spaces; leading zeros are fine) whose value is 1–604800 seconds.
func ParseTTL(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		// Stopping as soon as n is out of range also rules out overflow.
		if n = n*10 + int(c-'0'); n > MaxTTLSeconds {
			return 0, false
		}
	}
	if n == 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// readValue reads a PUT body of at most MaxValueBytes. Too large is 413
// value_too_large: at once for a declared Content-Length over the limit,
// else as soon as the counted bytes pass it. A body that cannot be read (it
// broke off, or its chunked encoding is malformed) is 400 invalid_body.
func readValue(w http.ResponseWriter, r *http.Request) ([]byte, *httpx.Error) {
	if r.ContentLength > MaxValueBytes {
		return nil, errValueTooLarge
	}
	body := http.MaxBytesReader(w, r.Body, MaxValueBytes)
	var value []byte
	var err error
	if r.ContentLength >= 0 {
		// Declared length: one exact allocation, the value's only copy,
		// which the store then keeps.
		value = make([]byte, r.ContentLength)
		_, err = io.ReadFull(body, value)
	} else {
		// Chunked: io.ReadAll grows its buffer by doubling; copy to an
		// exact size when the slack would be more than an eighth, since
		// the store keeps the whole backing array but accounts only len.
		value, err = io.ReadAll(body)
		if err == nil && cap(value)-len(value) > len(value)/8 {
			value = bytes.Clone(value)
		}
	}
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return nil, errValueTooLarge
	}
	if err != nil {
		return nil, errInvalidBody
	}
	return value, nil
}

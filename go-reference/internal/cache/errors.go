package cache

import (
	"net/http"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

// The error answers of the session cache. Messages are fixed per code
// (docs/contract-cache.md, "Error bodies"); 404 not_found and 405
// method_not_allowed come from httpx.
var (
	errInvalidID = &httpx.Error{
		Status:  http.StatusBadRequest,
		Code:    "invalid_id",
		Message: "session id must be 1-256 bytes of A-Z a-z 0-9 - . _ ~",
	}
	errInvalidTTL = &httpx.Error{
		Status:  http.StatusBadRequest,
		Code:    "invalid_ttl",
		Message: "X-Session-TTL must be whole seconds from 1 to 604800",
	}
	errNotFoundSession = &httpx.Error{
		Status:  http.StatusNotFound,
		Code:    "not_found_session",
		Message: "no such session",
	}
	errValueTooLarge = &httpx.Error{
		Status:  http.StatusRequestEntityTooLarge,
		Code:    "value_too_large",
		Message: "value exceeds 1048576 bytes",
	}
	// errInvalidBody is not in the contract's table: the body broke off
	// or its chunked encoding was malformed. Same code and message as the
	// Rust twin.
	errInvalidBody = &httpx.Error{
		Status:  http.StatusBadRequest,
		Code:    "invalid_body",
		Message: "request body could not be read",
	}
	errEntryTooLarge = &httpx.Error{
		Status:  http.StatusRequestEntityTooLarge,
		Code:    "entry_too_large",
		Message: "entry exceeds the capacity of its shard",
	}
)

// writeError writes e as the whole answer; to a HEAD request without the
// body, but with the headers (Content-Length included) a GET would get.
// net/http drops HEAD bodies on the wire anyway; doing it here keeps the
// handler's answer the same under httptest and behind any middleware.
func writeError(w http.ResponseWriter, r *http.Request, e *httpx.Error) {
	if r.Method == http.MethodHead {
		w = bodiless{w}
	}
	httpx.WriteError(w, e)
}

// bodiless discards what is written as the body.
type bodiless struct{ http.ResponseWriter }

func (b bodiless) Write(p []byte) (int, error) { return len(p), nil }

// Unwrap lets http.ResponseController reach the underlying writer.
func (b bodiless) Unwrap() http.ResponseWriter { return b.ResponseWriter }

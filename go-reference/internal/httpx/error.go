package httpx

import (
	"net/http"
	"strconv"
)

// Error is an error answer: status, stable code, fixed message and the
// optional headers some codes carry. Every non-200 answer of a service is
// one of these, written by WriteError as
//
//	{"code":"<code>","message":"<message>"}
//
// with Content-Type: application/json, fixed field order and no whitespace,
// so the Go and Rust twins agree byte for byte.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the Retry-After header value (seconds); empty means none.
	RetryAfter string
	// Allow is the Allow header value of a 405; empty means none.
	Allow string
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// AppendBody appends the JSON body of e to dst.
func (e *Error) AppendBody(dst []byte) []byte {
	dst = append(dst, `{"code":`...)
	dst = AppendString(dst, e.Code)
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, e.Message)
	return append(dst, '}')
}

// Body returns the JSON body of e.
func (e *Error) Body() []byte {
	return e.AppendBody(make([]byte, 0, 32+len(e.Code)+len(e.Message)))
}

// NotFound is the answer for a path no route serves.
func NotFound() *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such route"}
}

// MethodNotAllowed is the answer for a known path asked with another method;
// allow lists the methods the path serves.
func MethodNotAllowed(allow string) *Error {
	return &Error{
		Status:  http.StatusMethodNotAllowed,
		Code:    "method_not_allowed",
		Message: "method not allowed on this route",
		Allow:   allow,
	}
}

// WriteError writes e as the whole answer.
func WriteError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	if e.RetryAfter != "" {
		h.Set("Retry-After", e.RetryAfter)
	}
	if e.Allow != "" {
		h.Set("Allow", e.Allow)
	}
	Write(w, e.Status, "application/json", e.Body())
}

// Write writes a complete answer with an explicit Content-Type and
// Content-Length.
func Write(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

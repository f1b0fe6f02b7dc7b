package httpx

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestErrorBodyHasCodeThenMessageWithoutWhitespaceOrNewline(t *testing.T) {
	if got, want := string(NotFound().Body()), `{"code":"not_found","message":"no such route"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestWriteErrorSetsStatusJSONContentTypeAndLength(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, NotFound())
	if rec.Code != http.StatusNotFound {
		t.Errorf("status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := rec.Header().Get("Content-Length"); cl != "46" {
		t.Errorf("Content-Length %q", cl)
	}
}

func TestWriteErrorSendsRetryAfterWhenSet(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, &Error{Status: 503, Code: "x", Message: "y", RetryAfter: "1"})
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %q", got)
	}
}

func TestWriteErrorSendsNoOptionalHeadersWhenUnset(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, NotFound())
	for _, h := range []string{"Retry-After", "Allow"} {
		if _, ok := rec.Header()[h]; ok {
			t.Errorf("unexpected %s header", h)
		}
	}
}

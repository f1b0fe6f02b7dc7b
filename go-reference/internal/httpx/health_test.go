package httpx

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

var notReady = &Error{Status: 503, Code: "dep_unavailable", Message: "down", RetryAfter: "1"}

func TestReadyzAnswersReadyWhenTheCheckSucceeds(t *testing.T) {
	h := Readyz(func(context.Context) error { return nil }, time.Second, notReady)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != 200 || rec.Body.String() != `{"status":"ready"}` || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

func TestReadyzAnswersTheGivenErrorWhenTheCheckFails(t *testing.T) {
	h := Readyz(func(context.Context) error { return errors.New("down") }, time.Second, notReady)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != 503 || rec.Body.String() != `{"code":"dep_unavailable","message":"down"}` {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

func TestReadyzBoundsTheCheckWithTheTimeout(t *testing.T) {
	var left time.Duration
	h := Readyz(func(ctx context.Context) error {
		deadline, ok := ctx.Deadline()
		if !ok {
			t.Fatal("check ran without a deadline")
		}
		left = time.Until(deadline)
		return nil
	}, 2*time.Second, notReady)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if left <= time.Second || left > 2*time.Second {
		t.Fatalf("check had %v left, want just under 2s", left)
	}
}

package httpx

import (
	"context"
	"net/http"
	"time"
)

// Healthz answers GET /healthz: the process is alive.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	Write(w, http.StatusOK, "application/json", []byte(`{"status":"ok"}`))
}

// Readyz returns a GET /readyz handler that answers {"status":"ready"} when
// check succeeds within timeout, else notReady.
func Readyz(check func(context.Context) error, timeout time.Duration, notReady *Error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := check(ctx); err != nil {
			WriteError(w, notReady)
			return
		}
		Write(w, http.StatusOK, "application/json", []byte(`{"status":"ready"}`))
	}
}

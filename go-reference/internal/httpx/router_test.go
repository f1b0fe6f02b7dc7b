package httpx

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTestRouter() (*Router, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	rt := NewRouter(NewHTTPMetrics(reg))
	rt.HandleFunc(http.MethodGet, "/healthz", Healthz)
	rt.HandleFunc(http.MethodPost, "/items", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	return rt, reg
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestRouterServesRegisteredMethodAndPath(t *testing.T) {
	rt, _ := newTestRouter()
	rec := serve(rt, http.MethodGet, "/healthz")
	if rec.Code != 200 || rec.Body.String() != `{"status":"ok"}` {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

func TestRouterIgnoresTheQueryString(t *testing.T) {
	rt, _ := newTestRouter()
	if rec := serve(rt, http.MethodGet, "/healthz?verbose=1"); rec.Code != 200 {
		t.Fatalf("got %d", rec.Code)
	}
}

func TestRouterAnswersUnknownPathWith404JSON(t *testing.T) {
	rt, _ := newTestRouter()
	rec := serve(rt, http.MethodGet, "/nope")
	if rec.Code != 404 || rec.Body.String() != `{"code":"not_found","message":"no such route"}` {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

func TestRouterDoesNotCleanOrRedirectPaths(t *testing.T) {
	rt, _ := newTestRouter()
	for _, target := range []string{"/healthz/", "//healthz", "/./healthz", "/HEALTHZ", "/health%7a", "*"} {
		if rec := serve(rt, http.MethodGet, target); rec.Code != 404 {
			t.Errorf("%s: got %d, want 404", target, rec.Code)
		}
	}
}

func TestRouterAnswersOtherMethodOnKnownPathWith405AndAllow(t *testing.T) {
	rt, _ := newTestRouter()
	rec := serve(rt, http.MethodPost, "/healthz")
	if rec.Code != 405 || rec.Body.String() != `{"code":"method_not_allowed","message":"method not allowed on this route"}` {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Allow"); got != "GET" {
		t.Fatalf("Allow %q", got)
	}
}

func TestRouterTreatsHEADAsAnotherMethod(t *testing.T) {
	rt, _ := newTestRouter()
	rec := serve(rt, http.MethodHead, "/healthz")
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET" {
		t.Fatalf("got %d Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

func TestRouterAllowListsEveryMethodOfAPathInRegistrationOrder(t *testing.T) {
	rt, _ := newTestRouter()
	rt.HandleFunc(http.MethodDelete, "/items", func(http.ResponseWriter, *http.Request) {})
	if got := serve(rt, http.MethodGet, "/items").Header().Get("Allow"); got != "POST, DELETE" {
		t.Fatalf("Allow %q", got)
	}
}

func TestRouterCountsRequestsByRouteAndStatus(t *testing.T) {
	rt, reg := newTestRouter()
	serve(rt, http.MethodGet, "/healthz")
	serve(rt, http.MethodPost, "/items")
	serve(rt, http.MethodGet, "/items")
	want := `
# HELP http_requests_total HTTP requests answered, by route and status.
# TYPE http_requests_total counter
http_requests_total{route="/healthz",status="200"} 1
http_requests_total{route="/items",status="204"} 1
http_requests_total{route="/items",status="405"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_requests_total"); err != nil {
		t.Fatal(err)
	}
}

func TestRouterLabelsUnknownPathsUnmatched(t *testing.T) {
	rt, reg := newTestRouter()
	serve(rt, http.MethodGet, "/a")
	serve(rt, http.MethodGet, "/b")
	want := `
# HELP http_requests_total HTTP requests answered, by route and status.
# TYPE http_requests_total counter
http_requests_total{route="unmatched",status="404"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_requests_total"); err != nil {
		t.Fatal(err)
	}
}

func TestRouterTimesRequestsInTheSharedBuckets(t *testing.T) {
	rt, reg := newTestRouter()
	serve(rt, http.MethodGet, "/healthz")
	if n := testutil.CollectAndCount(reg, "http_request_duration_seconds"); n != 1 {
		t.Fatalf("%d histogram series", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "http_request_duration_seconds" {
			continue
		}
		buckets := mf.GetMetric()[0].GetHistogram().GetBucket()
		if len(buckets) != len(LatencyBuckets) {
			t.Fatalf("%d buckets", len(buckets))
		}
		for i, b := range buckets {
			if b.GetUpperBound() != LatencyBuckets[i] {
				t.Errorf("bucket %d: %v", i, b.GetUpperBound())
			}
		}
	}
}

func TestRegistryCarriesGoAndProcessMetrics(t *testing.T) {
	mfs, err := NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{"go_gc_duration_seconds", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} {
		if !have[name] {
			t.Errorf("missing %s", name)
		}
	}
}

func TestRouterCountsAHijackedRequestAsSwitchingProtocols(t *testing.T) {
	reg := prometheus.NewRegistry()
	rt := NewRouter(NewHTTPMetrics(reg))
	rt.HandleFunc(http.MethodGet, "/ws", func(w http.ResponseWriter, _ *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n")
		_ = brw.Flush()
		_ = conn.Close()
	})
	srv := httptest.NewServer(rt)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	want := `
# HELP http_requests_total HTTP requests answered, by route and status.
# TYPE http_requests_total counter
http_requests_total{route="/ws",status="101"} 1
`
	// The router counts the request when the handler returns, which may be
	// just after the client has read the answer.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_requests_total")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

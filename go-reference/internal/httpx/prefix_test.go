package httpx

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// echoItem answers 200 with the {id} wildcard as the body.
func echoItem(w http.ResponseWriter, r *http.Request) {
	Write(w, http.StatusOK, "text/plain", []byte(r.PathValue("id")))
}

func newPrefixRouter() (*Router, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	rt := NewRouter(NewHTTPMetrics(reg))
	rt.HandleFunc(http.MethodGet, "/items/special", func(w http.ResponseWriter, _ *http.Request) {
		Write(w, http.StatusOK, "text/plain", []byte("exact"))
	})
	rt.HandlePrefix(http.MethodGet, "/items/{id}", http.HandlerFunc(echoItem))
	rt.HandlePrefix(http.MethodDelete, "/items/{id}", http.HandlerFunc(echoItem))
	return rt, reg
}

func TestPrefixRouteHandsTheRestOfThePathAsSentToTheHandler(t *testing.T) {
	rt, _ := newPrefixRouter()
	for target, want := range map[string]string{
		"/items/abc":       "abc",
		"/items/":          "",
		"/items/a/b":       "a/b",
		"/items/a%2Fb":     "a%2Fb",
		"/items/%41":       "%41",
		"/items/a%20b?q=1": "a%20b",
		"/items/{x}":       "{x}",
	} {
		rec := serve(rt, http.MethodGet, target)
		if rec.Code != 200 || rec.Body.String() != want {
			t.Errorf("%s: got %d %q, want 200 %q", target, rec.Code, rec.Body, want)
		}
	}
}

func TestPrefixRouteDoesNotMatchAPathDecodingToItsPrefix(t *testing.T) {
	rt, _ := newPrefixRouter()
	for _, target := range []string{"/item%73/x", `/item%73/"`, "/items", "/ITEMS/x", "//items/x"} {
		if rec := serve(rt, http.MethodGet, target); rec.Code != 404 {
			t.Errorf("%s: got %d, want 404", target, rec.Code)
		}
	}
}

func TestExactRouteWinsOverPrefixRoute(t *testing.T) {
	rt, _ := newPrefixRouter()
	if rec := serve(rt, http.MethodGet, "/items/special"); rec.Body.String() != "exact" {
		t.Fatalf("got %q", rec.Body)
	}
}

func TestPrefixRouteAnswersOtherMethodWith405AndAllowInRegistrationOrder(t *testing.T) {
	rt, _ := newPrefixRouter()
	rec := serve(rt, http.MethodPost, "/items/bad%20id")
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET, DELETE" {
		t.Fatalf("got %d Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

func TestPrefixRouteIsLabelledWithItsPattern(t *testing.T) {
	rt, reg := newPrefixRouter()
	serve(rt, http.MethodGet, "/items/a")
	serve(rt, http.MethodGet, "/items/b")
	serve(rt, http.MethodPut, "/items/c")
	want := `
# HELP http_requests_total HTTP requests answered, by route and status.
# TYPE http_requests_total counter
http_requests_total{route="/items/{id}",status="200"} 2
http_requests_total{route="/items/{id}",status="405"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_requests_total"); err != nil {
		t.Fatal(err)
	}
}

func TestHandlePrefixRejectsMalformedPatterns(t *testing.T) {
	for _, pattern := range []string{"/items/", "/items/{}", "/items{id}", "/items/{id}/x", "/items/{a/b}", "{id}"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%q: no panic", pattern)
				}
			}()
			NewRouter(nil).HandlePrefix(http.MethodGet, pattern, http.HandlerFunc(echoItem))
		}()
	}
}

func TestRawPathIsTheRequestTargetUpToTheQuery(t *testing.T) {
	for target, want := range map[string]string{
		"/a%2Fb?x=%41":     "/a%2Fb",
		`/v1/session%73/"`: `/v1/session%73/"`,
		"/p\xff":           "/p\xff",
	} {
		if got := RawPath(httptest.NewRequest(http.MethodGet, target, nil)); got != want {
			t.Errorf("%q: got %q, want %q", target, got, want)
		}
	}
}

func TestRawPathFallsBackToTheEscapedPathForAbsoluteFormTargets(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "http://example.com/a%20b?q", nil)
	if got := RawPath(req); got != "/a%20b" {
		t.Fatalf("got %q", got)
	}
}

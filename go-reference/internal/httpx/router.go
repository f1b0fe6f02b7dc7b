package httpx

import (
	"net/http"
	"strings"
	"time"
)

// Router dispatches on the exact request path (or, for routes registered
// with HandlePrefix, a path prefix) and method, answering unknown
// paths with 404 not_found and known paths asked with another method
// (HEAD included: it is not mapped to GET) with 405 method_not_allowed and an
// Allow header — both as JSON errors, never ServeMux's plain text. Every
// request is counted and timed in HTTPMetrics under its route path, or
// UnmatchedRoute.
//
// Paths are compared as sent (percent-encoding is not decoded, no trailing
// slash or dot-segment cleanup, no redirects), like the Rust twin's router.
type Router struct {
	metrics  *HTTPMetrics
	routes   map[string]*route
	prefixes []*prefixRoute
}

type route struct {
	path     string
	handlers map[string]http.Handler
	allow    string
}

// NewRouter returns an empty router that records into metrics.
func NewRouter(metrics *HTTPMetrics) *Router {
	return &Router{metrics: metrics, routes: make(map[string]*route)}
}

// Handle serves method on path with h. Allow lists a path's methods in the
// order they were registered.
func (rt *Router) Handle(method, path string, h http.Handler) {
	r, ok := rt.routes[path]
	if !ok {
		r = &route{path: path, handlers: make(map[string]http.Handler)}
		rt.routes[path] = r
	}
	r.add(method, h)
}

// add serves method on r with h and appends method to r's Allow list.
func (r *route) add(method string, h http.Handler) {
	if _, dup := r.handlers[method]; dup {
		panic("httpx: duplicate route " + method + " " + r.path)
	}
	r.handlers[method] = h
	if r.allow == "" {
		r.allow = method
	} else {
		r.allow = strings.Join([]string{r.allow, method}, ", ")
	}
}

// HandleFunc is Handle for a function.
func (rt *Router) HandleFunc(method, path string, h func(http.ResponseWriter, *http.Request)) {
	rt.Handle(method, path, http.HandlerFunc(h))
}

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	label := UnmatchedRoute
	if r := rt.match(req); r != nil {
		label = r.path
		if h, ok := r.handlers[req.Method]; ok {
			h.ServeHTTP(rec, req)
		} else {
			WriteError(rec, MethodNotAllowed(r.allow))
		}
	} else {
		WriteError(rec, NotFound())
	}
	if rt.metrics != nil {
		rt.metrics.Observe(label, rec.code(), time.Since(start))
	}
}

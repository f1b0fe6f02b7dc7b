package httpx

import (
	"net/http"
	"strings"
)

// prefixRoute is a route whose path ends in a wildcard that takes the rest
// of the path: pattern "/v1/sessions/{id}" has prefix "/v1/sessions/" and
// name "id".
type prefixRoute struct {
	route
	prefix string
	name   string
}

// HandlePrefix serves method on every path that begins with the literal
// part of pattern, which must have the form "PREFIX{NAME}" with PREFIX
// ending in '/' (e.g. "/v1/sessions/{id}"). The rest of the path as sent —
// possibly empty, never percent-decoded, '/' included — reaches h as
// r.PathValue(NAME). Requests are labelled with pattern in HTTPMetrics.
//
// Exact routes (Handle) win over prefix routes; among prefix routes the one
// registered first whose prefix matches wins. A pattern's methods
// accumulate as with Handle and make its Allow header.
func (rt *Router) HandlePrefix(method, pattern string, h http.Handler) {
	open := strings.IndexByte(pattern, '{')
	if open <= 0 || pattern[open-1] != '/' || !strings.HasSuffix(pattern, "}") ||
		open+2 >= len(pattern) || strings.ContainsAny(pattern[open+1:len(pattern)-1], "{}/") {
		panic("httpx: prefix pattern must look like /path/{name}: " + pattern)
	}
	for _, p := range rt.prefixes {
		if p.path == pattern {
			p.add(method, h)
			return
		}
	}
	p := &prefixRoute{
		route:  route{path: pattern, handlers: make(map[string]http.Handler)},
		prefix: pattern[:open],
		name:   pattern[open+1 : len(pattern)-1],
	}
	p.add(method, h)
	rt.prefixes = append(rt.prefixes, p)
}

// match finds the route of req: an exact route by its escaped path, else
// the first prefix route whose prefix starts the raw path, whose wildcard
// it then sets on req. nil means no route.
func (rt *Router) match(req *http.Request) *route {
	if r, ok := rt.routes[req.URL.EscapedPath()]; ok {
		return r
	}
	if len(rt.prefixes) == 0 {
		return nil
	}
	raw := RawPath(req)
	for _, p := range rt.prefixes {
		if rest, ok := strings.CutPrefix(raw, p.prefix); ok {
			req.SetPathValue(p.name, rest)
			return &p.route
		}
	}
	return nil
}

// RawPath is the path of req's request target exactly as the client sent
// it: no percent-decoding, no re-encoding, without the query. net/http keeps
// that text in RequestURI for origin-form targets ("/a/b?q"); for anything
// else (absolute-form, or a request built by client code) it falls back to
// URL.EscapedPath, which equals the sent path whenever it was validly
// encoded.
//
// URL.EscapedPath alone is not enough where a prefix matters: for a target
// holding a byte that is invalid in a path (e.g. '"') it re-encodes the
// decoded path, so "/v1/session%73/\"" would come out as "/v1/sessions/%22"
// and match the prefix "/v1/sessions/".
func RawPath(req *http.Request) string {
	if p := req.RequestURI; strings.HasPrefix(p, "/") {
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		return p
	}
	return req.URL.EscapedPath()
}

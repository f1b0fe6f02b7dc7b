package cache

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

// SessionsRoute is the session routes' pattern and their route label.
const SessionsRoute = "/v1/sessions/{id}"

// Options configure the session-cache handler.
type Options struct {
	Store *Store
	// DefaultTTL is the TTL of a PUT without X-Session-TTL.
	DefaultTTL time.Duration
	// Registry receives the HTTP and cache metrics and is served on
	// /metrics.
	Registry *prometheus.Registry
}

// NewHandler returns the service's routes:
//
//	PUT    /v1/sessions/{id}  store a value, 204
//	GET    /v1/sessions/{id}  200 with the value, or 404 not_found_session
//	HEAD   /v1/sessions/{id}  as GET, without the body
//	DELETE /v1/sessions/{id}  204, or 404 not_found_session
//	GET    /healthz           {"status":"ok"}
//	GET    /readyz            {"status":"ready"}
//	GET    /metrics           Prometheus text exposition
//
// and 404/405 JSON errors for everything else. {id} is the raw rest of the
// path; the router hands it over undecoded and the handlers validate it.
func NewHandler(opts Options) http.Handler {
	h := &sessions{
		store:      opts.Store,
		defaultTTL: opts.DefaultTTL,
		metrics:    NewMetrics(opts.Registry, opts.Store),
	}
	rt := httpx.NewRouter(httpx.NewHTTPMetrics(opts.Registry))
	// Registration order is the Allow order: GET, HEAD, PUT, DELETE.
	rt.HandlePrefix(http.MethodGet, SessionsRoute, http.HandlerFunc(h.get))
	rt.HandlePrefix(http.MethodHead, SessionsRoute, http.HandlerFunc(h.head))
	rt.HandlePrefix(http.MethodPut, SessionsRoute, http.HandlerFunc(h.put))
	rt.HandlePrefix(http.MethodDelete, SessionsRoute, http.HandlerFunc(h.delete))
	rt.HandleFunc(http.MethodGet, "/healthz", httpx.Healthz)
	// The cache depends on nothing, so it is ready as soon as it serves.
	rt.Handle(http.MethodGet, "/readyz", httpx.Readyz(func(context.Context) error { return nil }, time.Second, nil))
	rt.Handle(http.MethodGet, "/metrics", httpx.MetricsHandler(opts.Registry))
	return rt
}

type sessions struct {
	store      *Store
	defaultTTL time.Duration
	metrics    *Metrics
}

func (h *sessions) get(w http.ResponseWriter, r *http.Request)  { h.lookup(w, r, &h.metrics.get) }
func (h *sessions) head(w http.ResponseWriter, r *http.Request) { h.lookup(w, r, &h.metrics.head) }

// lookup is GET and HEAD: 400 invalid_id, 404 not_found_session, or 200
// with the stored Content-Type, Content-Length and (GET only) the value.
func (h *sessions) lookup(w http.ResponseWriter, r *http.Request, m *lookupCounters) {
	id := r.PathValue("id")
	if !ValidID(id) {
		m.invalid.Inc()
		writeError(w, r, errInvalidID)
		return
	}
	value, contentType, ok := h.store.Get(id)
	if !ok {
		m.miss.Inc()
		writeError(w, r, errNotFoundSession)
		return
	}
	m.hit.Inc()
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Length", strconv.Itoa(len(value)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(value)
	}
}

// put is PUT: checks in the contract's order — id, X-Session-TTL, body
// size, entry size — then stores and answers 204. A body that cannot be
// read is 400 invalid_body (outside the contract's table).
func (h *sessions) put(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ValidID(id) {
		h.metrics.putInvalid.Inc()
		writeError(w, r, errInvalidID)
		return
	}
	ttl := h.defaultTTL
	if v := r.Header.Values("X-Session-TTL"); len(v) > 0 {
		var ok bool
		if ttl, ok = ParseTTL(v[0]); !ok {
			h.metrics.putInvalid.Inc()
			writeError(w, r, errInvalidTTL)
			return
		}
	}
	value, herr := readValue(w, r)
	if herr != nil {
		h.metrics.putInvalid.Inc()
		writeError(w, r, herr)
		return
	}
	// Present but empty is stored as sent: only absence means the default.
	contentType := DefaultContentType
	if v := r.Header.Values("Content-Type"); len(v) > 0 {
		contentType = v[0]
	}
	if err := h.store.Put(id, value, contentType, ttl); err != nil { // only ErrEntryTooLarge
		h.metrics.putInvalid.Inc()
		writeError(w, r, errEntryTooLarge)
		return
	}
	h.metrics.putStored.Inc()
	w.WriteHeader(http.StatusNoContent)
}

// delete is DELETE: 400 invalid_id, 404 not_found_session (missing or
// expired), or 204.
func (h *sessions) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ValidID(id) {
		h.metrics.deleteInvalid.Inc()
		writeError(w, r, errInvalidID)
		return
	}
	if !h.store.Delete(id) {
		h.metrics.deleteMiss.Inc()
		writeError(w, r, errNotFoundSession)
		return
	}
	h.metrics.deleteDeleted.Inc()
	w.WriteHeader(http.StatusNoContent)
}

package fanout

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

const (
	// MaxNotifyBytes bounds a POST /v1/notify body, declared or counted.
	MaxNotifyBytes = 16384
	// PublishTimeout bounds the wait for Kafka's acknowledgement of a
	// notification before 503 kafka_unavailable.
	PublishTimeout = 5 * time.Second
)

// Publisher is the Kafka path: it hands a notification frame to Kafka
// instead of broadcasting it locally (KafkaBus implements it).
type Publisher interface {
	// Publish sends frame, keyed by topic, and waits for Kafka's
	// acknowledgement or for ctx.
	Publish(ctx context.Context, topic string, frame []byte) error
	// Ready reports whether the consumer has its partitions assigned.
	Ready() bool
}

// Options configure the fan-out handler.
type Options struct {
	Hub *Hub
	// Publisher is the Kafka path; nil broadcasts notifications locally.
	Publisher Publisher
	// Registry receives the HTTP metrics and is served on /metrics; the
	// hub's Metrics should be registered with it too.
	Registry *prometheus.Registry
	// Now and NewID default to the wall clock and NewID; tests fix them.
	Now   func() time.Time
	NewID func() string
}

// upgrader is shared by every connection. Per-connection memory is the
// baseline of a memory comparison, so it is kept small the idiomatic
// gorilla way, without tricks:
//   - ReadBufferSize 1024: gorilla keeps one read buffer per connection
//     for its whole life (with 0 it would keep net/http's 4 KiB one);
//     client messages are small ops of at most 4096 bytes, read through it.
//   - WriteBufferSize 1024 with a shared WriteBufferPool: the write buffer
//     is taken from the pool only while a message is written and given
//     back after, so idle connections hold none. Notifications do not even
//     use it: they go out as PreparedMessages, framed once per
//     notification and written straight to the socket; only subscription
//     frames pass through the buffer (still as one frame: gorilla's server
//     fast path writes a message as a single frame whatever its size).
//   - No permessage-deflate: frames go out exactly as built.
//   - Any Origin is accepted: the contract has no origin rule (gorilla's
//     default would refuse cross-origin browsers with 403).
var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	WriteBufferPool: &sync.Pool{},
	CheckOrigin:     func(*http.Request) bool { return true },
}

// NewHandler returns the service's routes:
//
//	GET  /v1/subscribe?topics=a,b  WebSocket upgrade (426, 400 invalid_topics before it)
//	POST /v1/notify                202 {"id":…}, or 400/413/415/503
//	GET  /healthz                  {"status":"ok"}
//	GET  /readyz                   {"status":"ready"}, or 503 kafka_unavailable
//	                               until the Kafka consumer has its partitions
//	GET  /metrics                  Prometheus text exposition
//
// and 404/405 JSON errors for everything else.
func NewHandler(opts Options) http.Handler {
	h := &handler{hub: opts.Hub, publisher: opts.Publisher, now: opts.Now, newID: opts.NewID}
	if h.now == nil {
		h.now = time.Now
	}
	if h.newID == nil {
		h.newID = NewID
	}
	ready := func(context.Context) error { return nil }
	if h.publisher != nil {
		ready = func(context.Context) error {
			if !h.publisher.Ready() {
				return errKafkaUnavailable
			}
			return nil
		}
	}
	rt := httpx.NewRouter(httpx.NewHTTPMetrics(opts.Registry))
	rt.HandleFunc(http.MethodGet, "/v1/subscribe", h.subscribe)
	rt.HandleFunc(http.MethodPost, "/v1/notify", h.notify)
	rt.HandleFunc(http.MethodGet, "/healthz", httpx.Healthz)
	rt.Handle(http.MethodGet, "/readyz", httpx.Readyz(ready, time.Second, errKafkaUnavailable))
	rt.Handle(http.MethodGet, "/metrics", httpx.MetricsHandler(opts.Registry))
	return rt
}

type handler struct {
	hub       *Hub
	publisher Publisher
	now       func() time.Time
	newID     func() string
}

// subscribe is GET /v1/subscribe: 426 unless the request asks for a
// WebSocket upgrade, 400 invalid_topics, then the upgrade (gorilla answers
// its own handshake errors with 400 and a plain-text body). The handler
// returns right after the upgrade: the connection lives on in its reader
// and writer goroutines.
func (h *handler) subscribe(w http.ResponseWriter, r *http.Request) {
	if !wantsWebSocket(r.Header) {
		// RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
		w.Header().Set("Upgrade", "websocket")
		httpx.WriteError(w, errUpgradeRequired)
		return
	}
	topics, ok := ParseTopicsQuery(r.URL.RawQuery)
	if !ok {
		httpx.WriteError(w, errInvalidTopics)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // gorilla has answered
	}
	c := newConn(ws, h.hub)
	if !h.hub.register(c, topics) {
		// Shutting down: the connection goes away at once.
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "")
		_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeTimeout))
		_ = ws.Close()
		return
	}
	c.serve()
}

// wantsWebSocket reports whether some Upgrade header lists the token
// "websocket" (comma-separated, ASCII-case-insensitive). The rest of the
// handshake (Connection, Sec-WebSocket-Version, Sec-WebSocket-Key) is
// gorilla's to check, after the topics.
func wantsWebSocket(h http.Header) bool {
	for _, line := range h.Values("Upgrade") {
		for token := range strings.SplitSeq(line, ",") {
			if equalFoldASCII(strings.Trim(token, " \t"), "websocket") {
				return true
			}
		}
	}
	return false
}

// notify is POST /v1/notify: 415 (before the body is read), 413, 400, then
// the local broadcast or the Kafka publish (503), and 202 {"id":"…"}.
func (h *handler) notify(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r.Header) {
		httpx.WriteError(w, errUnsupportedMediaType)
		return
	}
	body, herr := readBody(w, r)
	if herr != nil {
		httpx.WriteError(w, herr)
		return
	}
	n, ok := ParseNotification(body, h.now, h.newID)
	if !ok {
		httpx.WriteError(w, errInvalidNotification)
		return
	}
	frame := Frame(&n)
	if h.publisher == nil {
		h.hub.Broadcast(n.Topic, frame)
	} else {
		// The notification's fate does not depend on the client staying:
		// a disconnect neither cancels the record nor cuts the wait short.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), PublishTimeout)
		err := h.publisher.Publish(ctx, n.Topic, frame)
		cancel()
		if err != nil {
			httpx.WriteError(w, errKafkaUnavailable)
			return
		}
	}
	out := append([]byte(`{"id":`), httpx.AppendString(nil, n.ID)...)
	httpx.Write(w, http.StatusAccepted, "application/json", append(out, '}'))
}

// readBody reads the whole request body, at most MaxNotifyBytes of it. A
// declared Content-Length over the limit is refused before reading. A body
// that breaks off is an invalid notification.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpx.Error) {
	if r.ContentLength > MaxNotifyBytes {
		return nil, errBodyTooLarge
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + 1) // +1: ReadFrom sees EOF without growing
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxNotifyBytes)); err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return nil, errBodyTooLarge
		}
		return nil, errInvalidNotification
	}
	return buf.Bytes(), nil
}

// isJSON reports whether the (first) Content-Type is application/json:
// parameters after ';' ignored, spaces and tabs trimmed, ASCII
// case-insensitive, as the ingest service reads it. A value with bytes
// other than visible ASCII, space and tab is not.
func isJSON(h http.Header) bool {
	v := h.Get("Content-Type")
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c > 0x7e {
			return false
		}
	}
	v, _, _ = strings.Cut(v, ";")
	return equalFoldASCII(strings.Trim(v, " \t"), "application/json")
}

// equalFoldASCII compares ASCII-case-insensitively (strings.EqualFold would
// also fold Unicode: "ſ" matches "s").
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

package fanout

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testHubConfig keeps pings out of the way unless a test asks for them.
var testHubConfig = HubConfig{QueueCapacity: 256, DropLimit: 64, PingInterval: time.Minute}

// server is a fan-out handler behind a real HTTP server, for tests that
// need real WebSocket clients.
type server struct {
	t   *testing.T
	hub *Hub
	reg *prometheus.Registry
	pub *fakePublisher // nil: local mode
	srv *httptest.Server
}

type serverOption func(*server, *Options)

func withHubConfig(cfg HubConfig) serverOption {
	return func(s *server, _ *Options) { s.hub.cfg = cfg }
}

func withPublisher(p *fakePublisher) serverOption {
	return func(s *server, o *Options) { s.pub = p; o.Publisher = p }
}

func newServer(t *testing.T, opts ...serverOption) *server {
	t.Helper()
	s := &server{t: t, reg: prometheus.NewRegistry()}
	s.hub = NewHub(testHubConfig, NewMetrics(s.reg))
	o := Options{
		Hub:      s.hub,
		Registry: s.reg,
		Now:      func() time.Time { return time.UnixMicro(1764000000000000) },
		NewID:    func() string { return "00112233445566778899aabbccddeeff" },
	}
	for _, opt := range opts {
		opt(s, &o)
	}
	s.srv = httptest.NewServer(NewHandler(o))
	t.Cleanup(func() {
		s.hub.CloseAll()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.hub.Wait(ctx); err != nil {
			t.Errorf("connections still open after the test: %v", err)
		}
		s.srv.Close()
	})
	return s
}

func (s *server) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/v1/subscribe" + query
}

// notify posts a JSON notification and returns the answer.
func (s *server) notify(body string) (int, string) {
	s.t.Helper()
	resp, err := http.Post(s.srv.URL+"/v1/notify", "application/json", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// metric compares the named metrics with want (text exposition).
// metric waits up to 5 s for the named metrics to read want: a counter
// moves after the write that a client may already have read.
func (s *server) metric(want string, names ...string) {
	s.t.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if err = testutil.GatherAndCompare(s.reg, strings.NewReader(want), names...); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		s.t.Fatal(err)
	}
}

// eventually retries check until it passes or 5 s have gone by.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !check(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// client is a real WebSocket client (gorilla's).
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

// dial connects and reads the first subscription frame.
func (s *server) dial(topics string) (*client, string) {
	s.t.Helper()
	c := s.dialRaw(topics)
	return c, c.next()
}

// dialRaw connects without reading anything.
func (s *server) dialRaw(topics string) *client {
	s.t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(s.wsURL("?topics="+topics), nil)
	if err != nil {
		s.t.Fatalf("dial: %v (%v)", err, resp)
	}
	s.t.Cleanup(func() { ws.Close() })
	return &client{t: s.t, ws: ws}
}

// next reads the next text message, failing after 5 s.
func (c *client) next() string {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	kind, data, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if kind != websocket.TextMessage {
		c.t.Fatalf("got message type %d", kind)
	}
	return string(data)
}

// send writes a message.
func (c *client) send(kind int, data string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(kind, []byte(data)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// closedWith reads (skipping data messages) until the server's close frame
// and returns its code.
func (c *client) closedWith() int {
	c.t.Helper()
	// The server may have cut the TCP connection after its close frame:
	// answering a ping read before it must not end the read.
	c.ws.SetPingHandler(func(string) error { return nil })
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
			return ce.Code
		}
		c.t.Fatalf("read ended without a close frame: %v", err)
	}
}

// fakePublisher stands in for Kafka.
type fakePublisher struct {
	mu        sync.Mutex
	published []string // topic + " " + frame
	err       error
	ready     bool
}

func (f *fakePublisher) Publish(_ context.Context, topic string, frame []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, topic+" "+string(frame))
	return f.err
}

func (f *fakePublisher) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

// histogramCount is the sample count of an unlabelled histogram.
func histogramCount(t *testing.T, s *server, name string) uint64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func websocketDial(url string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	return websocket.DefaultDialer.Dial(url, hdr)
}

// countOf reads one counter series, written as in the exposition format.
func countOf(t *testing.T, s *server, series string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					name += ","
				}
				name += l.GetName() + `="` + l.GetValue() + `"`
			}
			if name+"}" == series && m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

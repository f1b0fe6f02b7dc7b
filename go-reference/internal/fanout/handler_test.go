package fanout

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// do sends a request through the handler in-process.
func (s *server) do(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.srv.Config.Handler.ServeHTTP(rec, req)
	return rec
}

func (s *server) post(contentType, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/notify", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return s.do(req)
}

func expectAnswer(t *testing.T, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if rec.Code != status || rec.Body.String() != body {
		t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, status, body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

const (
	invalidNotification = `{"code":"invalid_notification","message":"notification must be a JSON object with a valid topic and a body"}`
	invalidTopics       = `{"code":"invalid_topics","message":"topics must be 1-64 names of 1-64 bytes of A-Z a-z 0-9 . _ -"}`
	unsupportedMedia    = `{"code":"unsupported_media_type","message":"Content-Type must be application/json"}`
	bodyTooLarge        = `{"code":"body_too_large","message":"request body exceeds 16384 bytes"}`
	upgradeRequired     = `{"code":"upgrade_required","message":"this route needs a WebSocket upgrade"}`
	kafkaUnavailable    = `{"code":"kafka_unavailable","message":"Kafka did not acknowledge the notification; retry later"}`
)

func TestNotifyAnswers202WithTheID(t *testing.T) {
	s := newServer(t)
	expectAnswer(t, s.post("application/json", `{"id":"a\"<&>\u2028","topic":"t","body":{}}`), 202, `{"id":"a\"<&>\u2028"}`)
}

func TestNotifyAcceptsApplicationJSONWithParametersAndAnyCase(t *testing.T) {
	s := newServer(t)
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON", " application/json ;x=y", "application/json;"} {
		if rec := s.post(ct, `{"topic":"t","body":1}`); rec.Code != 202 {
			t.Errorf("%q: %d %s", ct, rec.Code, rec.Body)
		}
	}
}

func TestNotifyRefusesOtherMediaTypesBeforeReadingTheBody(t *testing.T) {
	s := newServer(t)
	for _, ct := range []string{"", "text/plain", "application/jsonx", "application/x-json", "application/json-patch+json", "applicatioN/jſon", "application/json\x7f"} {
		expectAnswer(t, s.post(ct, strings.Repeat("x", MaxNotifyBytes+1)), 415, unsupportedMedia)
	}
}

func TestNotifyRefusesBodiesOver16384Bytes(t *testing.T) {
	s := newServer(t)
	pad := func(n int) string {
		doc := `{"topic":"t","body":""}`
		return `{"topic":"t","body":"` + strings.Repeat("x", n-len(doc)) + `"}`
	}
	expectAnswer(t, s.post("application/json", pad(MaxNotifyBytes)), 202, `{"id":"00112233445566778899aabbccddeeff"}`)
	expectAnswer(t, s.post("application/json", pad(MaxNotifyBytes+1)), 413, bodyTooLarge)

	// Declared length over the limit: refused before reading.
	req := httptest.NewRequest(http.MethodPost, "/v1/notify", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = MaxNotifyBytes + 1
	expectAnswer(t, s.do(req), 413, bodyTooLarge)

	// No declared length (chunked): counted while reading.
	req = httptest.NewRequest(http.MethodPost, "/v1/notify", io.MultiReader(strings.NewReader(pad(MaxNotifyBytes+1))))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	expectAnswer(t, s.do(req), 413, bodyTooLarge)
}

func TestNotifyAnswers400ForInvalidNotifications(t *testing.T) {
	s := newServer(t)
	for _, body := range []string{``, `{}`, `[]`, `null`, `{"topic":"t"}`, `{"body":1}`, `{"topic":"a b","body":1}`, `{"topic":"t","body":1,"x":0}`, `{"topic":"t","body":1,"id":""}`} {
		expectAnswer(t, s.post("application/json", body), 400, invalidNotification)
	}
}

func TestNotifyChecksMediaTypeThenSizeThenContent(t *testing.T) {
	s := newServer(t)
	big := strings.Repeat("x", MaxNotifyBytes+1)
	expectAnswer(t, s.post("text/plain", big), 415, unsupportedMedia)
	expectAnswer(t, s.post("application/json", big), 413, bodyTooLarge)
	expectAnswer(t, s.post("application/json", "x"), 400, invalidNotification)
}

type brokenBody struct{}

func (brokenBody) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestNotifyBodyThatBreaksOffIsInvalid(t *testing.T) {
	s := newServer(t)
	req := httptest.NewRequest(http.MethodPost, "/v1/notify", brokenBody{})
	req.Header.Set("Content-Type", "application/json")
	expectAnswer(t, s.do(req), 400, invalidNotification)
}

func TestSubscribeWithoutUpgradeIs426EvenWithBadTopics(t *testing.T) {
	s := newServer(t)
	for _, target := range []string{"/v1/subscribe?topics=a", "/v1/subscribe", "/v1/subscribe?topics=a,,b"} {
		rec := s.do(httptest.NewRequest(http.MethodGet, target, nil))
		expectAnswer(t, rec, 426, upgradeRequired)
		if got := rec.Header().Get("Upgrade"); got != "websocket" {
			t.Fatalf("Upgrade header %q", got)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/subscribe?topics=a", nil)
	req.Header.Set("Upgrade", "h2c")
	expectAnswer(t, s.do(req), 426, upgradeRequired)
}

func TestSubscribeChecksTopicsBeforeTheUpgrade(t *testing.T) {
	s := newServer(t)
	for _, upgrade := range []string{"websocket", "WebSocket", "h2c, websocket"} {
		for _, query := range []string{"", "?topics=", "?topics=a,", "?topics=a%20b", "?topics=a&topics=b"} {
			req := httptest.NewRequest(http.MethodGet, "/v1/subscribe"+query, nil)
			req.Header.Set("Upgrade", upgrade)
			expectAnswer(t, s.do(req), 400, invalidTopics)
		}
	}
}

func TestSubscribeHandshakeErrorsAreTheLibrarys400(t *testing.T) {
	s := newServer(t)
	for name, headers := range map[string]map[string]string{
		"no Connection: upgrade": {"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
		"bad version":            {"Connection": "Upgrade", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
		"missing key":            {"Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/v1/subscribe?topics=a", nil)
		req.Header.Set("Upgrade", "websocket")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d", name, resp.StatusCode)
		}
	}
}

func TestSubscribeAcceptsAnyOrigin(t *testing.T) {
	s := newServer(t)
	hdr := http.Header{"Origin": {"https://elsewhere.example"}}
	ws, resp, err := websocketDial(s.wsURL("?topics=a"), hdr)
	if err != nil {
		t.Fatalf("%v %v", err, resp)
	}
	ws.Close()
}

func TestOtherMethodsAndPaths(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct{ method, target, allow string }{
		{http.MethodPost, "/v1/subscribe", "GET"},
		{http.MethodHead, "/v1/subscribe", "GET"},
		{http.MethodGet, "/v1/notify", "POST"},
		{http.MethodPut, "/v1/notify", "POST"},
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodDelete, "/readyz", "GET"},
		{http.MethodPost, "/metrics", "GET"},
	} {
		rec := s.do(httptest.NewRequest(tc.method, tc.target, nil))
		expectAnswer(t, rec, 405, `{"code":"method_not_allowed","message":"method not allowed on this route"}`)
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q", tc.method, tc.target, got)
		}
	}
	for _, target := range []string{"/", "/v1/subscribe/", "/v1/notify/x", "/V1/notify", "/v2/notify"} {
		expectAnswer(t, s.do(httptest.NewRequest(http.MethodGet, target, nil)), 404, `{"code":"not_found","message":"no such route"}`)
	}
}

func TestHealthAndReadinessInLocalMode(t *testing.T) {
	s := newServer(t)
	expectAnswer(t, s.do(httptest.NewRequest(http.MethodGet, "/healthz", nil)), 200, `{"status":"ok"}`)
	expectAnswer(t, s.do(httptest.NewRequest(http.MethodGet, "/readyz", nil)), 200, `{"status":"ready"}`)
}

func TestKafkaModePublishesTheFrameKeyedByTopicInsteadOfBroadcasting(t *testing.T) {
	pub := &fakePublisher{ready: true}
	s := newServer(t, withPublisher(pub))
	c, _ := s.dial("news")
	expectAnswer(t, s.post("application/json", `{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}`), 202, `{"id":"n-1"}`)
	if len(pub.published) != 1 || pub.published[0] != "news "+newsFrame {
		t.Fatalf("published %q", pub.published)
	}
	// Delivery comes back through the consumer, not from the handler.
	s.hub.Broadcast("news", []byte("from kafka"))
	if got := c.next(); got != "from kafka" {
		t.Fatalf("subscriber got %s", got)
	}
}

func TestKafkaModeAnswers503WithRetryAfterWhenKafkaDoesNotAcknowledge(t *testing.T) {
	pub := &fakePublisher{ready: true, err: errors.New("timed out")}
	s := newServer(t, withPublisher(pub))
	rec := s.post("application/json", `{"topic":"t","body":1}`)
	expectAnswer(t, rec, 503, kafkaUnavailable)
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %q", got)
	}
}

func TestKafkaModeIsNotReadyUntilTheConsumerHasItsPartitions(t *testing.T) {
	pub := &fakePublisher{}
	s := newServer(t, withPublisher(pub))
	rec := s.do(httptest.NewRequest(http.MethodGet, "/readyz", nil))
	expectAnswer(t, rec, 503, kafkaUnavailable)
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %q", got)
	}
	pub.mu.Lock()
	pub.ready = true
	pub.mu.Unlock()
	expectAnswer(t, s.do(httptest.NewRequest(http.MethodGet, "/readyz", nil)), 200, `{"status":"ready"}`)
}

func TestRequestsAreCountedUnderTheContractRoutes(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("a")
	s.post("application/json", `{"topic":"a","body":1}`)
	c.next()
	s.do(httptest.NewRequest(http.MethodGet, "/v1/subscribe?topics=a", nil))
	s.do(httptest.NewRequest(http.MethodGet, "/nope", nil))
	eventually(t, "the upgrade to be counted", func() bool {
		return countOf(t, s, `http_requests_total{route="/v1/subscribe",status="101"}`) == 1
	})
	s.metric(`
# HELP http_requests_total HTTP requests answered, by route and status.
# TYPE http_requests_total counter
http_requests_total{route="/v1/notify",status="202"} 1
http_requests_total{route="/v1/subscribe",status="101"} 1
http_requests_total{route="/v1/subscribe",status="426"} 1
http_requests_total{route="unmatched",status="404"} 1
`, "http_requests_total")
}

func TestShutdownIsQuickWhenPeersAnswerTheClose(t *testing.T) {
	s := newServer(t)
	for range 20 {
		c, _ := s.dial("t")
		go func() { _, _, _ = c.ws.ReadMessage() }() // gorilla answers the close while reading
	}
	start := time.Now()
	s.hub.CloseAll()
	eventually(t, "every connection to be gone", func() bool { return s.hub.Connections() == 0 })
	if took := time.Since(start); took > closeTimeout/2 {
		t.Fatalf("took %v", took)
	}
}

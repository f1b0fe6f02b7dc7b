package fanout

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// These tests run the real handler behind httptest.Server and talk to it
// with gorilla/websocket's client.

const newsFrame = `{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}`

func TestUpgradeSendsTheSubscriptionFrameWithTheSortedSet(t *testing.T) {
	s := newServer(t)
	_, first := s.dial("news,alerts,news,Zeta")
	if first != `{"op":"subscribed","topics":["Zeta","alerts","news"]}` {
		t.Fatalf("got %s", first)
	}
}

func TestNotifyDeliversTheFrameToSubscribersOfTheTopicOnly(t *testing.T) {
	s := newServer(t)
	news, _ := s.dial("news")
	both, _ := s.dial("alerts,news")
	alerts, _ := s.dial("alerts")
	if code, body := s.notify(`{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}`); code != 202 || body != `{"id":"n-1"}` {
		t.Fatalf("notify: %d %s", code, body)
	}
	if code, _ := s.notify(`{"id":"a-1","topic":"alerts","published_at_unix_us":1,"body":null}`); code != 202 {
		t.Fatalf("notify: %d", code)
	}
	alertsFrame := `{"id":"a-1","topic":"alerts","published_at_unix_us":1,"body":null}`
	if got := news.next(); got != newsFrame {
		t.Errorf("news got %s", got)
	}
	if got := both.next(); got != newsFrame {
		t.Errorf("both got %s", got)
	}
	if got := both.next(); got != alertsFrame {
		t.Errorf("both got %s", got)
	}
	// alerts never saw the news notification: its next frame is the alert.
	if got := alerts.next(); got != alertsFrame {
		t.Errorf("alerts got %s", got)
	}
}

func TestNotifyFillsInAbsentIDAndTimestamp(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("t")
	if code, body := s.notify(`{"topic":"t","body":[1, 2]}`); code != 202 || body != `{"id":"00112233445566778899aabbccddeeff"}` {
		t.Fatalf("notify: %d %s", code, body)
	}
	want := `{"id":"00112233445566778899aabbccddeeff","topic":"t","published_at_unix_us":1764000000000000,"body":[1, 2]}`
	if got := c.next(); got != want {
		t.Fatalf("got %s", got)
	}
}

func TestOneTopicsNotificationsArriveInTheOrderTheyWereAccepted(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("t")
	for i := range 50 {
		if code, _ := s.notify(fmt.Sprintf(`{"id":"%d","topic":"t","published_at_unix_us":0,"body":0}`, i)); code != 202 {
			t.Fatalf("notify %d: %d", i, code)
		}
	}
	for i := range 50 {
		if got, want := c.next(), fmt.Sprintf(`{"id":"%d","topic":"t","published_at_unix_us":0,"body":0}`, i); got != want {
			t.Fatalf("frame %d: got %s", i, got)
		}
	}
}

func TestClientOpsChangeTheSetAndEachIsAnsweredWithTheWholeSet(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("b")
	for _, step := range []struct{ op, want string }{
		{`{"op":"subscribe","topics":["c","a"]}`, `["a","b","c"]`},
		{`{"op":"subscribe","topics":["a"]}`, `["a","b","c"]`},
		{`{"op":"unsubscribe","topics":["b","x"]}`, `["a","c"]`},
		{`{"op":"unsubscribe","topics":["a","c"]}`, `[]`},
		{`{"op":"subscribe","topics":["news"]}`, `["news"]`},
	} {
		c.send(websocket.TextMessage, step.op)
		if got, want := c.next(), `{"op":"subscribed","topics":`+step.want+`}`; got != want {
			t.Fatalf("after %s: got %s, want %s", step.op, got, want)
		}
	}
	s.notify(newsFrame)
	if got := c.next(); got != newsFrame {
		t.Fatalf("got %s", got)
	}
}

func TestAConnectionWithAnEmptySetStaysOpen(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("a")
	c.send(websocket.TextMessage, `{"op":"unsubscribe","topics":["a"]}`)
	c.next()
	s.notify(`{"topic":"a","body":1}`)
	c.send(websocket.TextMessage, `{"op":"subscribe","topics":["b"]}`)
	if got := c.next(); got != `{"op":"subscribed","topics":["b"]}` {
		t.Fatalf("got %s", got)
	}
}

func TestBadClientMessagesCloseWithTheContractCodes(t *testing.T) {
	var tooMany []string
	for i := range 64 {
		tooMany = append(tooMany, fmt.Sprintf(`"t%02d"`, i))
	}
	for _, tc := range []struct {
		name string
		kind int
		msg  string
		code int
	}{
		{"binary frame", websocket.BinaryMessage, `{"op":"subscribe","topics":["a"]}`, 1003},
		{"invalid JSON", websocket.TextMessage, `{"op":`, 1003},
		{"unknown op", websocket.TextMessage, `{"op":"publish","topics":["a"]}`, 1003},
		{"missing topics", websocket.TextMessage, `{"op":"subscribe"}`, 1003},
		{"invalid topic", websocket.TextMessage, `{"op":"subscribe","topics":["a b"]}`, 1003},
		{"unknown member", websocket.TextMessage, `{"op":"subscribe","topics":["a"],"x":1}`, 1003},
		{"65 topics in total", websocket.TextMessage, `{"op":"subscribe","topics":[` + strings.Join(tooMany, ",") + `]}`, 1003},
		{"invalid UTF-8", websocket.TextMessage, "{\"op\":\"subscribe\",\"topics\":[\"\xff\"]}", 1007},
		{"invalid UTF-8 that is not JSON either", websocket.TextMessage, "\xc3(", 1007},
		{"4097 bytes", websocket.TextMessage, strings.Repeat(" ", 4097), 1009},
		{"4097 bytes of binary", websocket.BinaryMessage, strings.Repeat("x", 4097), 1009},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			c, _ := s.dial("z")
			c.send(tc.kind, tc.msg)
			if code := c.closedWith(); code != tc.code {
				t.Fatalf("closed with %d, want %d", code, tc.code)
			}
			eventually(t, "the connection to be gone", func() bool { return s.hub.Connections() == 0 })
		})
	}
}

func TestAMessageOfExactly4096BytesIsRead(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("z")
	op := `{"op":"subscribe","topics":["a"]}`
	c.send(websocket.TextMessage, op+strings.Repeat(" ", 4096-len(op)))
	if got := c.next(); got != `{"op":"subscribed","topics":["a","z"]}` {
		t.Fatalf("got %s", got)
	}
}

func TestAFragmentedMessageCountsWhole(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("z")
	w, err := c.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	// gorilla's client flushes a frame per 4 KiB buffer: 3 fragments.
	_, _ = w.Write([]byte(strings.Repeat(" ", 3000)))
	_, _ = w.Write([]byte(strings.Repeat(" ", 3000)))
	_ = w.Close()
	if code := c.closedWith(); code != 1009 {
		t.Fatalf("closed with %d", code)
	}
}

func TestPingIsAnsweredWithPong(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("z")
	pong := make(chan string, 1)
	c.ws.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.ws.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _, _ = c.ws.ReadMessage() }() // pongs are handled while reading
	select {
	case got := <-pong:
		if got != "hello" {
			t.Fatalf("pong carried %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}

func TestCloseIsAnsweredWithClose(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("z")
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := c.closedWith(); code != websocket.CloseNormalClosure {
		t.Fatalf("answered with %d", code)
	}
	eventually(t, "the connection to be gone", func() bool { return s.hub.Connections() == 0 })
}

func TestServerPingsAndClosesAPeerSilentForTwoIntervalsWith1001(t *testing.T) {
	s := newServer(t, withHubConfig(HubConfig{QueueCapacity: 8, DropLimit: 8, PingInterval: 100 * time.Millisecond}))
	silent := s.dialRaw("z") // reads nothing, so answers no ping
	start := time.Now()
	eventually(t, "the peer to be registered", func() bool { return s.hub.Connections() == 1 })
	eventually(t, "the silent peer to be closed", func() bool { return s.hub.Connections() == 0 })
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("closed after %v, before two intervals", took)
	}
	silent.next() // the subscription frame, then the pings were skipped over, then:
	if code := silent.closedWith(); code != 1001 {
		t.Fatalf("closed with %d", code)
	}
}

func TestAPeerThatAnswersPingsStaysConnected(t *testing.T) {
	s := newServer(t, withHubConfig(HubConfig{QueueCapacity: 8, DropLimit: 8, PingInterval: 50 * time.Millisecond}))
	c, _ := s.dial("z")
	pings := make(chan struct{}, 100)
	c.ws.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() { _, _, _ = c.ws.ReadMessage() }()
	time.Sleep(500 * time.Millisecond) // ten intervals
	if s.hub.Connections() != 1 {
		t.Fatal("an answering peer was closed")
	}
	if len(pings) < 5 {
		t.Fatalf("%d pings in ten intervals", len(pings))
	}
}

func TestAClientThatNeverReadsIsClosedWith1013AtTheDropLimit(t *testing.T) {
	s := newServer(t, withHubConfig(HubConfig{QueueCapacity: 4, DropLimit: 8, PingInterval: time.Minute}))
	slow := s.dialRaw("t") // never reads until the server gave up on it
	reader, _ := s.dial("t")
	got := make(chan struct{})
	go func() { // a client that keeps up with every frame
		for {
			if _, _, err := reader.ws.ReadMessage(); err != nil {
				close(got)
				return
			}
			got <- struct{}{}
		}
	}()
	body := `"` + strings.Repeat("x", 16000) + `"`
	frame := []byte(`{"id":"i","topic":"t","published_at_unix_us":0,"body":` + body + `}`)
	// One notification at a time, each read by the keeping-up client before
	// the next: only the client that never reads falls behind, once the
	// socket buffers between it and the server are full.
	slowClosed := func() bool {
		return testutil.ToFloat64(s.hub.metrics.slowConsumer) == 1
	}
	for sent := 0; !slowClosed(); sent++ {
		if sent == 20_000 {
			t.Fatal("the client that never reads was not dropped")
		}
		s.hub.Broadcast("t", frame)
		select {
		case _, ok := <-got:
			if !ok {
				t.Fatal("the keeping-up client was closed")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the keeping-up client got nothing")
		}
	}
	// The server's writer is stuck on the full socket: the close frame
	// follows once the client reads, if it does within closeTimeout.
	if code := slow.closedWith(); code != websocket.CloseTryAgainLater {
		t.Fatalf("closed with %d", code)
	}
	eventually(t, "the slow consumer to be gone", func() bool { return s.hub.Connections() == 1 })
	// At least the drop limit's run of drops; earlier runs may have been
	// ended by a write, when the kernel grew the socket's send buffer.
	if drops := testutil.ToFloat64(s.hub.metrics.queueFull); drops < 8 {
		t.Fatalf("%v drops counted", drops)
	}
	if closed := testutil.ToFloat64(s.hub.metrics.slowConsumer); closed != 1 {
		t.Fatalf("%v slow consumers closed", closed)
	}
}

func TestShutdownClosesEveryConnectionWith1001AndRefusesNewOnes(t *testing.T) {
	s := newServer(t)
	a, _ := s.dial("a")
	b, _ := s.dial("b")
	s.hub.CloseAll()
	for _, c := range []*client{a, b} {
		if code := c.closedWith(); code != 1001 {
			t.Fatalf("closed with %d", code)
		}
	}
	late := s.dialRaw("a")
	if code := late.closedWith(); code != 1001 {
		t.Fatalf("late connection closed with %d", code)
	}
}

func TestConnectionGaugeFollowsOpenConnections(t *testing.T) {
	s := newServer(t)
	a, _ := s.dial("a")
	s.dial("b")
	s.metric(`
# HELP fanout_connections Open WebSocket connections.
# TYPE fanout_connections gauge
fanout_connections 2
`, "fanout_connections")
	a.ws.Close()
	eventually(t, "the closed connection to be gone", func() bool { return s.hub.Connections() == 1 })
	s.metric(`
# HELP fanout_connections Open WebSocket connections.
# TYPE fanout_connections gauge
fanout_connections 1
`, "fanout_connections")
}

func TestSentCounterAndDeliveryLagCountNotificationFramesOnly(t *testing.T) {
	s := newServer(t)
	a, _ := s.dial("t")
	b, _ := s.dial("t")
	s.notify(`{"topic":"t","body":1}`)
	a.next()
	b.next()
	s.metric(`
# HELP fanout_messages_sent_total Notification frames written to sockets.
# TYPE fanout_messages_sent_total counter
fanout_messages_sent_total 2
`, "fanout_messages_sent_total")
	eventually(t, "the delivery lag observed twice", func() bool {
		return histogramCount(t, s, "fanout_delivery_lag_seconds") == 2
	})
}

// A TCP peer that vanishes without a close frame is cleaned up.
func TestAVanishedPeerIsForgotten(t *testing.T) {
	s := newServer(t)
	c, _ := s.dial("t")
	_ = c.ws.NetConn().(*net.TCPConn).SetLinger(0)
	c.ws.NetConn().Close()
	eventually(t, "the vanished peer to be gone", func() bool { return s.hub.Connections() == 0 })
}

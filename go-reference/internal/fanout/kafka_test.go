package fanout

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// startBus runs a KafkaBus for hub until the test ends.
func startBus(t *testing.T, brokers []string, topic string, hub *Hub) *KafkaBus {
	t.Helper()
	b, err := NewKafkaBus(KafkaConfig{Brokers: brokers, Topic: topic}, hub, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		closeCtx, cancelClose := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancelClose()
		_ = b.Close(closeCtx)
	})
	return b
}

// withKafka puts the server on the Kafka path.
func withKafka(brokers []string, topic string) serverOption {
	return func(s *server, o *Options) { o.Publisher = startBus(s.t, brokers, topic, s.hub) }
}

func TestKafkaWithoutABrokerIsNotReadyAndPublishFailsWithinTheTimeout(t *testing.T) {
	h, _ := newTestHub(t, testHubConfig)
	b := startBus(t, []string{"127.0.0.1:1"}, "notifications", h) // nothing listens on port 1
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Publish(ctx, "t", []byte("{}")); err == nil {
		t.Fatal("published without a broker")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v", took)
	}
	time.Sleep(2 * readinessPoll)
	if b.Ready() {
		t.Fatal("ready without a broker")
	}
}

// kafkaBrokers are the test broker's addresses, from PARALLAX_KAFKA_BROKERS
// (scripts/test.sh sets it); tests that need a broker skip without one.
func kafkaBrokers(t *testing.T) []string {
	env := os.Getenv("PARALLAX_KAFKA_BROKERS")
	if env == "" {
		t.Skip("PARALLAX_KAFKA_BROKERS not set")
	}
	return strings.Split(env, ",")
}

func TestKafkaTwoProcessesServeOneAudience(t *testing.T) {
	brokers := kafkaBrokers(t)
	topic := fmt.Sprintf("fanout-test-%d", time.Now().UnixNano())
	a := newServer(t, withKafka(brokers, topic))
	b := newServer(t, withKafka(brokers, topic))
	for _, s := range []*server{a, b} {
		eventually30s(t, "/readyz to answer 200", func() bool {
			resp, err := s.srv.Client().Get(s.srv.URL + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
	onA, _ := a.dial("news")
	onB, _ := b.dial("news,sport")
	weather, _ := b.dial("weather")

	var want []string
	for i := range 20 { // one topic's notifications keep their order
		code, body := a.notify(fmt.Sprintf(`{"id":"%d","topic":"news","published_at_unix_us":0,"body":%d}`, i, i))
		if code != 202 || body != fmt.Sprintf(`{"id":"%d"}`, i) {
			t.Fatalf("notify: %d %s", code, body)
		}
		want = append(want, fmt.Sprintf(`{"id":"%d","topic":"news","published_at_unix_us":0,"body":%d}`, i, i))
	}
	if code, _ := b.notify(`{"id":"s","topic":"sport","published_at_unix_us":0,"body":"goal"}`); code != 202 {
		t.Fatalf("notify: %d", code)
	}
	for i, w := range want {
		if got := onA.next(); got != w {
			t.Fatalf("A's subscriber, frame %d: %s", i, got)
		}
	}
	// B's subscriber gets both topics: each in its own order, but the two
	// topics' frames may interleave (they are different partitions).
	const goal = `{"id":"s","topic":"sport","published_at_unix_us":0,"body":"goal"}`
	var news []string
	sport := 0
	for range len(want) + 1 {
		if got := onB.next(); got == goal {
			sport++
		} else {
			news = append(news, got)
		}
	}
	if sport != 1 || strings.Join(news, "\n") != strings.Join(want, "\n") {
		t.Fatalf("B's subscriber: sport %d times, news frames in order:\n%s", sport, strings.Join(news, "\n"))
	}
	// weather's subscriber saw none of it: its next frame is its own.
	weather.send(websocket.TextMessage, `{"op":"subscribe","topics":["x"]}`)
	if got := weather.next(); got != `{"op":"subscribed","topics":["weather","x"]}` {
		t.Fatalf("weather's subscriber: %s", got)
	}
}

func eventually30s(t *testing.T, what string, check func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !check(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

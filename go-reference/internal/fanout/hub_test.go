package fanout

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// These tests drive the hub with connections that have no socket and no
// goroutines: what the hub queued is read straight from their queues, as if
// the client never read.

func newTestHub(t testing.TB, cfg HubConfig) (*Hub, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return NewHub(cfg, NewMetrics(reg)), reg
}

func register(t testing.TB, h *Hub, topics ...string) *Conn {
	t.Helper()
	c := newConn(nil, h)
	if !h.register(c, topics) {
		t.Fatal("hub refused a connection")
	}
	return c
}

// queued pops everything c has queued.
func queued(c *Conn) []string {
	var got []string
	for f := c.q.pop(); f != nil; f = c.q.pop() {
		if f.msg != nil {
			got = append(got, "notification")
		} else {
			got = append(got, string(f.data))
		}
	}
	return got
}

// broadcast broadcasts text as a notification frame.
func broadcast(h *Hub, topic, text string) int { return h.Broadcast(topic, []byte(text)) }

func TestRegisterQueuesTheFirstSubscriptionFrame(t *testing.T) {
	h, _ := newTestHub(t, testHubConfig)
	c := register(t, h, "a", "b")
	if got := queued(c); len(got) != 1 || got[0] != `{"op":"subscribed","topics":["a","b"]}` {
		t.Fatalf("got %v", got)
	}
}

func TestBroadcastReachesExactlyTheSubscribersOfTheTopic(t *testing.T) {
	h, _ := newTestHub(t, testHubConfig)
	a := register(t, h, "a")
	ab := register(t, h, "a", "b")
	b := register(t, h, "b")
	for _, c := range []*Conn{a, ab, b} {
		queued(c)
	}
	if n := broadcast(h, "a", "1"); n != 2 {
		t.Fatalf("reached %d", n)
	}
	if n := broadcast(h, "c", "2"); n != 0 {
		t.Fatalf("reached %d", n)
	}
	for c, want := range map[*Conn]int{a: 1, ab: 1, b: 0} {
		if got := len(queued(c)); got != want {
			t.Errorf("%v: %d frames, want %d", c.topics, got, want)
		}
	}
}

func TestBroadcastSharesOneFrameBetweenSubscribers(t *testing.T) {
	h, _ := newTestHub(t, testHubConfig)
	a, b := register(t, h, "t"), register(t, h, "t")
	a.q.pop()
	b.q.pop()
	broadcast(h, "t", `{"x":1}`)
	fa, fb := a.q.pop(), b.q.pop()
	if fa == nil || fa != fb || fa.msg == nil {
		t.Fatalf("frames %p and %p", fa, fb)
	}
}

func TestApplySubscribesAndUnsubscribesAndQueuesTheWholeSortedSet(t *testing.T) {
	h, _ := newTestHub(t, testHubConfig)
	c := register(t, h, "m")
	for _, step := range []struct {
		op   Op
		want string
	}{
		{Op{Subscribe: true, Topics: []string{"z", "a", "a", "m"}}, `["a","m","z"]`},
		{Op{Topics: []string{"m", "nope"}}, `["a","z"]`},
		{Op{Subscribe: true}, `["a","z"]`},
		{Op{Topics: []string{"a", "z"}}, `[]`},
	} {
		if !h.apply(c, step.op) {
			t.Fatalf("%+v refused", step.op)
		}
		got := queued(c)
		if want := `{"op":"subscribed","topics":` + step.want + `}`; got[len(got)-1] != want {
			t.Fatalf("after %+v: got %v, want %s", step.op, got, want)
		}
	}
	if broadcast(h, "a", "x")+broadcast(h, "m", "x")+broadcast(h, "z", "x") != 0 {
		t.Fatal("an unsubscribed connection still receives")
	}
	if len(h.topics) != 0 {
		t.Fatalf("empty topics kept: %v", h.topics)
	}
}

func TestApplyRefusesMoreThan64TopicsInTotalAndChangesNothing(t *testing.T) {
	h, _ := newTestHub(t, testHubConfig)
	var first []string
	for i := range 60 {
		first = append(first, fmt.Sprintf("t%02d", i))
	}
	c := register(t, h, first...)
	queued(c)
	five := Op{Subscribe: true, Topics: []string{"t00", "n1", "n2", "n3", "n4", "n5"}}
	if h.apply(c, five) {
		t.Fatal("65 topics accepted")
	}
	if len(c.topics) != 60 || broadcast(h, "n1", "x") != 0 || len(queued(c)) != 0 {
		t.Fatalf("a refused op changed the set: %d topics", len(c.topics))
	}
	four := Op{Subscribe: true, Topics: []string{"t00", "n1", "n2", "n3", "n4"}}
	if !h.apply(c, four) || len(c.topics) != 64 {
		t.Fatalf("64 topics refused")
	}
}

func TestSlowConsumerDropsOldestThenIsClosedAtTheDropLimit(t *testing.T) {
	h, reg := newTestHub(t, HubConfig{QueueCapacity: 4, DropLimit: 3, PingInterval: testHubConfig.PingInterval})
	slow := register(t, h, "t")
	fast := register(t, h, "t")
	for i := range 6 { // the subscription frame + 6 = 7 frames into 4 slots: 3 drops
		broadcast(h, "t", fmt.Sprint(i))
		queued(fast)
	}
	if !slow.isClosing() || slow.closeCode != websocket.CloseTryAgainLater {
		t.Fatalf("slow consumer not closing with 1013 (code %d)", slow.closeCode)
	}
	if fast.isClosing() {
		t.Fatal("a connection that keeps up was closed")
	}
	want := `
# HELP fanout_dropped_total Frames dropped by reason: queue_full (the oldest queued frame of a full connection queue) or slow_consumer_closed (connections closed with 1013 after too many drops in a row).
# TYPE fanout_dropped_total counter
fanout_dropped_total{reason="queue_full"} 3
fanout_dropped_total{reason="slow_consumer_closed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "fanout_dropped_total"); err != nil {
		t.Fatal(err)
	}
	broadcast(h, "t", "after")
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "fanout_dropped_total"); err != nil {
		t.Fatalf("a closed connection still counts drops: %v", err)
	}
}

func TestConcurrentBroadcastsOfOneTopicReachEverySubscriberInOneOrder(t *testing.T) {
	h, _ := newTestHub(t, HubConfig{QueueCapacity: 10_000, DropLimit: 10_000, PingInterval: testHubConfig.PingInterval})
	conns := make([]*Conn, 50)
	for i := range conns {
		conns[i] = register(t, h, "t")
		conns[i].q.pop()
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				broadcast(h, "t", "x")
			}
		})
	}
	wg.Wait()
	var order []*frame
	for f := conns[0].q.pop(); f != nil; f = conns[0].q.pop() {
		order = append(order, f)
	}
	if len(order) != 800 {
		t.Fatalf("%d frames", len(order))
	}
	for _, c := range conns[1:] {
		for i, want := range order {
			if f := c.q.pop(); f != want {
				t.Fatalf("frame %d differs between subscribers", i)
			}
		}
	}
}

func TestClosedHubRefusesNewConnectionsAndClosesOpenOnesWith1001(t *testing.T) {
	h, _ := newTestHub(t, testHubConfig)
	c := register(t, h, "t")
	h.CloseAll()
	if !c.isClosing() || c.closeCode != 1001 {
		t.Fatalf("open connection: closing %v code %d", c.isClosing(), c.closeCode)
	}
	if h.register(newConn(nil, h), []string{"t"}) {
		t.Fatal("closed hub registered a connection")
	}
}

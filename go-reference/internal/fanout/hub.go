package fanout

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// HubConfig are the per-connection limits of the contract.
type HubConfig struct {
	// QueueCapacity is the frames queued per connection before the oldest
	// is dropped (--queue-capacity).
	QueueCapacity int
	// DropLimit is the consecutive drops after which a connection is
	// closed with 1013 (--drop-limit).
	DropLimit int
	// PingInterval is the server's ping period; a peer silent for two of
	// them is closed with 1001 (--ping-interval-secs).
	PingInterval time.Duration
}

// Hub knows every connection and the topics each one holds, and broadcasts
// frames to the subscribers of a topic.
type Hub struct {
	cfg     HubConfig
	metrics *Metrics

	// mu guards topics, conns, closed and every connection's topic set.
	// A broadcast holds it shared, so broadcasts of different topics run in
	// parallel; a subscription change holds it exclusively while it
	// changes the sets and queues the connection's subscription frame, so
	// that frame splits the connection's stream cleanly: notifications
	// queued before it were broadcast under the old set, those after it
	// under the new one. Nothing blocks while it is held (queue pushes
	// never block).
	mu     sync.RWMutex
	topics map[string]*subscribers
	conns  map[*Conn]struct{}
	closed bool

	// live counts registered connections until their goroutines are done.
	live sync.WaitGroup
}

// subscribers are the connections of one topic.
type subscribers struct {
	// mu serializes the broadcasts of one topic (under Hub.mu shared), so
	// every subscriber queues them in the same order: the contract's
	// per-topic order. conns itself only changes under Hub.mu exclusive.
	mu    sync.Mutex
	conns map[*Conn]struct{}
}

// NewHub returns an empty hub.
func NewHub(cfg HubConfig, metrics *Metrics) *Hub {
	return &Hub{
		cfg:     cfg,
		metrics: metrics,
		topics:  make(map[string]*subscribers),
		conns:   make(map[*Conn]struct{}),
	}
}

// Broadcast sends data, a notification frame, to every connection
// subscribed to topic now, and returns how many there were. The frame is
// framed once (websocket.PreparedMessage) and the same bytes are queued on
// every subscriber. It never blocks on a connection: a full queue drops its
// oldest frame.
func (h *Hub) Broadcast(topic string, data []byte) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	subs := h.topics[topic]
	if subs == nil {
		return 0
	}
	msg, err := websocket.NewPreparedMessage(websocket.TextMessage, data)
	if err != nil { // unreachable: framing into memory does not fail
		return 0
	}
	f := &frame{msg: msg, queued: time.Now()}
	pbDone := false
	subs.mu.Lock()
	for c := range subs.conns {
		if c.stream {
			// The gRPC message, encoded once, at the first stream.
			if !pbDone {
				f.pb, _ = NotificationMessage(data)
				pbDone = true
			}
			if f.pb == nil {
				// Not a notification frame: only a foreign Kafka
				// record can be that, and it has no Notification.
				continue
			}
		}
		c.enqueue(f)
	}
	subs.mu.Unlock()
	return len(subs.conns)
}

// register adds c with its first topics (sorted, without duplicates) and
// queues its first subscription frame. It returns false once the hub is
// closed.
func (h *Hub) register(c *Conn, topics []string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	h.live.Add(1)
	h.metrics.connections.Inc()
	for _, t := range topics {
		h.addLocked(c, t)
	}
	c.topics = topics
	if !c.stream {
		c.enqueue(&frame{data: AppendSubscribedFrame(nil, topics)})
	}
	return true
}

// apply performs a client op on c and queues the subscription frame. It
// returns false, changing nothing, when a subscribe would leave c with more
// than MaxTopicsPerConn topics.
func (h *Hub) apply(c *Conn, op Op) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := c.topics
	if op.Subscribe {
		var added []string
		for _, t := range op.Topics {
			if _, found := slices.BinarySearch(set, t); !found && !slices.Contains(added, t) {
				added = append(added, t)
			}
		}
		if len(set)+len(added) > MaxTopicsPerConn {
			return false
		}
		if len(added) > 0 {
			set = slices.Concat(set, added)
			slices.Sort(set)
			for _, t := range added {
				h.addLocked(c, t)
			}
		}
	} else {
		set = slices.DeleteFunc(slices.Clone(set), func(t string) bool {
			if slices.Contains(op.Topics, t) {
				h.removeLocked(c, t)
				return true
			}
			return false
		})
	}
	c.topics = set
	c.enqueue(&frame{data: AppendSubscribedFrame(nil, set)})
	return true
}

func (h *Hub) addLocked(c *Conn, topic string) {
	subs := h.topics[topic]
	if subs == nil {
		subs = &subscribers{conns: make(map[*Conn]struct{})}
		h.topics[topic] = subs
	}
	subs.conns[c] = struct{}{}
}

func (h *Hub) removeLocked(c *Conn, topic string) {
	subs := h.topics[topic]
	if subs == nil {
		return
	}
	delete(subs.conns, c)
	if len(subs.conns) == 0 {
		delete(h.topics, topic)
	}
}

// unregister forgets c once its goroutines are done.
func (h *Hub) unregister(c *Conn) {
	h.mu.Lock()
	for _, t := range c.topics {
		h.removeLocked(c, t)
	}
	c.topics = nil
	delete(h.conns, c)
	h.mu.Unlock()
	h.metrics.connections.Dec()
	h.live.Done()
}

// CloseAll starts closing every connection with 1001 (going away) and
// refuses new ones. It does not wait; see Wait.
func (h *Hub) CloseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.conns {
		c.closeWith(websocket.CloseGoingAway)
	}
}

// Wait waits until every registered connection is gone, or until ctx is
// done; then it cuts the TCP connections still open (their close handshake
// ran out of time) and returns ctx's error.
func (h *Hub) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { h.live.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	h.mu.RLock()
	for c := range h.conns {
		if c.ws != nil { // a gRPC stream ends with its server's Stop
			_ = c.ws.NetConn().Close()
		}
	}
	h.mu.RUnlock()
	<-done
	return ctx.Err()
}

// Connections is the number of registered connections.
func (h *Hub) Connections() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

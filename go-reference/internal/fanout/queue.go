package fanout

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// frame is one outgoing text frame, shared by every connection it is
// queued on and never modified after it is built.
type frame struct {
	// msg is a notification, framed once for all subscribers
	// (websocket.PreparedMessage caches the wire bytes).
	msg *websocket.PreparedMessage
	// data is a subscription frame, which only one connection sends.
	data []byte
	// pb is the notification as a gRPC Notification message, encoded at
	// the broadcast when a gRPC stream is among the subscribers.
	pb []byte
	// queued is when the broadcast began, for fanout_delivery_lag_seconds.
	queued time.Time
}

// pushResult says what a push did besides queueing the frame.
type pushResult uint8

const (
	pushed       pushResult = iota // queued, nothing dropped
	droppedOne                     // queued after dropping the oldest frame
	dropLimitHit                   // dropped the oldest; that was the drop limit: the queue is now closed
	refused                        // the queue was already closed: nothing queued
)

// queue is a connection's bounded frame queue with the contract's
// drop-oldest policy. A buffered channel would drop the newest frame (or
// block the broadcaster), so it is a ring behind a mutex: push never blocks,
// and when the ring is full it overwrites the oldest frame. The mutex is only
// held for a few pointer moves, never across I/O; the writer goroutine
// learns about new frames from wake, a 1-buffered channel whose pending
// signal means "look again".
//
// The ring starts empty and doubles up to its capacity as frames pile up,
// so an idle connection holds no ring at all; after the writer drains a
// ring that grew past initialRing frames, it is released again.
type queue struct {
	mu       sync.Mutex
	ring     []*frame
	head, n  int // the oldest frame is ring[head]; n frames are queued
	capacity int
	// drops counts frames dropped since a frame was last written; at
	// dropLimit the queue closes.
	drops, dropLimit int
	closed           bool
	wake             chan struct{}
}

// initialRing is the ring size allocated at the first push.
const initialRing = 4

func newQueue(capacity, dropLimit int) *queue {
	return &queue{capacity: capacity, dropLimit: dropLimit, wake: make(chan struct{}, 1)}
}

// push queues f, dropping the oldest frame when the queue is full. It never
// blocks.
func (q *queue) push(f *frame) pushResult {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return refused
	}
	res := pushed
	if q.n == q.capacity {
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		q.drops++
		res = droppedOne
		if q.drops >= q.dropLimit {
			q.closeLocked()
			q.mu.Unlock()
			return dropLimitHit
		}
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = f
	q.n++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return res
}

// grow doubles the ring (up to capacity), keeping the frames in order.
func (q *queue) grow() {
	size := min(max(2*len(q.ring), initialRing), q.capacity)
	ring := make([]*frame, size)
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// pop takes the oldest frame, or nil when the queue is empty or closed.
func (q *queue) pop() *frame {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil
	}
	f := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.ring) > initialRing {
			q.ring = nil // a burst is over: give its ring back
		}
	}
	return f
}

// written records that a frame reached the socket, which ends a run of
// drops.
func (q *queue) written() {
	q.mu.Lock()
	q.drops = 0
	q.mu.Unlock()
}

// close discards the queued frames and refuses further pushes.
func (q *queue) close() {
	q.mu.Lock()
	q.closeLocked()
	q.mu.Unlock()
}

func (q *queue) closeLocked() {
	q.closed = true
	q.ring, q.head, q.n = nil, 0, 0
}

// len is the number of queued frames.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

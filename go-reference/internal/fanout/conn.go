package fanout

import (
	"errors"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

const (
	// MaxMessageBytes bounds a client message; a larger one is closed with
	// 1009 by gorilla/websocket's read limit.
	MaxMessageBytes = 4096
	// closeTimeout is how long a closing connection has from the decision
	// to close until its TCP connection is cut: to finish the frame being
	// written, send the close frame and get the peer's close in reply.
	closeTimeout = 2 * time.Second
)

// Conn is one WebSocket connection. It runs two goroutines, the idiomatic
// gorilla/websocket shape (which allows one concurrent reader and one
// concurrent writer):
//
//   - the reader (readLoop) reads client ops, answers pings (gorilla's
//     ping handler), keeps the liveness deadline, and when it ends tears
//     the connection down;
//   - the writer (writeLoop) drains the queue onto the socket, pings every
//     interval, and sends the close frame when the connection is closed
//     from anywhere.
//
// A connection is closed by closeWith(code) from whichever side decides:
// the broadcaster (1013), the reader (1003, 1007, 1001 on silence) or the
// hub (1001 on shutdown). It only records the code and signals the writer;
// nothing blocks the caller.
type Conn struct {
	ws  *websocket.Conn // nil for a gRPC stream
	hub *Hub
	q   *queue
	// stream marks a gRPC Subscribe stream (grpc.go): it gets Notification
	// messages instead of frames, and no subscription frames.
	stream bool

	// topics is the connection's set, sorted, guarded by hub.mu.
	topics []string

	closeOnce  sync.Once
	closeCode  int           // set before closing is closed; 0: close without a frame
	closing    chan struct{} // closed when the connection starts closing
	cutTimer   *time.Timer   // cuts a close handshake that takes too long
	writerDone chan struct{}
}

func newConn(ws *websocket.Conn, hub *Hub) *Conn {
	return &Conn{
		ws:         ws,
		hub:        hub,
		q:          newQueue(hub.cfg.QueueCapacity, hub.cfg.DropLimit),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// serve starts the connection's goroutines after the hub registered it.
func (c *Conn) serve() {
	go c.writeLoop()
	go c.readLoop()
}

// enqueue queues f without blocking, counting drops, and closes the
// connection with 1013 when its drop limit is hit.
func (c *Conn) enqueue(f *frame) {
	switch c.q.push(f) {
	case droppedOne:
		c.hub.metrics.queueFull.Inc()
	case dropLimitHit:
		c.hub.metrics.queueFull.Inc()
		c.hub.metrics.slowConsumer.Inc()
		c.closeWith(websocket.CloseTryAgainLater)
	}
}

// closeWith starts closing the connection with code (0: no close frame,
// the connection is already broken or the close handshake is done). Only
// the first call counts; it reports whether it was this one. Queued frames
// are discarded. A close with a code gets closeTimeout for its handshake:
// the writer may be stuck in a write to a peer that does not read, and
// then neither the close frame nor anything else will go out.
func (c *Conn) closeWith(code int) bool {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.closeCode = code
		c.q.close()
		close(c.closing)
		if code != 0 && c.ws != nil {
			c.cutTimer = time.AfterFunc(closeTimeout, c.cut)
		}
	})
	return first
}

// cut closes the TCP connection: blocked reads and writes fail, and the
// reader tears the connection down.
func (c *Conn) cut() { _ = c.ws.NetConn().Close() }

func (c *Conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// extendLiveness pushes the read deadline two ping intervals ahead:
// something arrived from the peer.
func (c *Conn) extendLiveness() {
	_ = c.ws.SetReadDeadline(time.Now().Add(2 * c.hub.cfg.PingInterval))
}

// readLoop reads until the connection ends, then tears it down: waits for
// the writer, closes the TCP connection and unregisters.
func (c *Conn) readLoop() {
	ws := c.ws
	ws.SetReadLimit(MaxMessageBytes)
	c.extendLiveness()
	ws.SetPongHandler(func(string) error {
		c.extendLiveness()
		return nil
	})
	ws.SetPingHandler(func(data string) error {
		c.extendLiveness()
		// As gorilla's default handler: answer with a pong, ignoring a
		// close already sent or a timeout.
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(closeTimeout))
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || isTimeout(err) {
			return nil
		}
		return err
	})
	// gorilla's default close handler answers a close with a close frame
	// of the same code.

	var err error
	for {
		var kind int
		var data []byte
		if kind, data, err = ws.ReadMessage(); err != nil {
			break
		}
		if c.isClosing() {
			continue // waiting for the peer's close: discard
		}
		c.extendLiveness()
		if code := c.handle(kind, data); code != 0 {
			c.closeWith(code)
		}
	}

	// A read timeout while open means the peer was silent for two
	// intervals: the writer sends 1001 before the TCP connection goes.
	// Otherwise nothing more can be said: gorilla already answered a close
	// frame or sent 1009, the peer is gone, or our close handshake is over.
	if isTimeout(err) && c.closeWith(websocket.CloseGoingAway) {
		<-c.writerDone
	}
	c.closeWith(0)
	_ = ws.Close()
	<-c.writerDone
	if c.cutTimer != nil {
		c.cutTimer.Stop()
	}
	c.hub.unregister(c)
}

// handle processes one client message and returns the close code it calls
// for, or 0.
func (c *Conn) handle(kind int, data []byte) int {
	if kind != websocket.TextMessage {
		return websocket.CloseUnsupportedData
	}
	if !utf8.Valid(data) {
		return websocket.CloseInvalidFramePayloadData
	}
	op, ok := ParseOp(data)
	if !ok || !c.hub.apply(c, op) {
		return websocket.CloseUnsupportedData
	}
	return 0
}

// writeLoop writes queued frames and pings until the connection closes.
func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	interval := c.hub.cfg.PingInterval
	ping := time.NewTicker(interval)
	defer ping.Stop()
	for {
		select {
		case <-c.closing:
			c.sendClose()
			return
		case <-ping.C:
			if !c.writeControl(websocket.PingMessage, nil, interval) {
				return
			}
			continue
		default:
		}
		if f := c.q.pop(); f != nil {
			if !c.writeFrame(f, interval) {
				return
			}
			continue
		}
		select {
		case <-c.closing:
			c.sendClose()
			return
		case <-ping.C:
			if !c.writeControl(websocket.PingMessage, nil, interval) {
				return
			}
		case <-c.q.wake:
		}
	}
}

// writeFrame writes f. A frame the peer has not taken within timeout (one
// ping interval) marks the connection dead.
func (c *Conn) writeFrame(f *frame, timeout time.Duration) bool {
	_ = c.ws.SetWriteDeadline(time.Now().Add(timeout))
	var err error
	if f.msg != nil {
		err = c.ws.WritePreparedMessage(f.msg)
	} else {
		err = c.ws.WriteMessage(websocket.TextMessage, f.data)
	}
	if err != nil {
		c.abort()
		return false
	}
	c.q.written()
	if f.msg != nil {
		c.hub.metrics.sent.Inc()
		c.hub.metrics.deliveryLag.Observe(time.Since(f.queued).Seconds())
	}
	return true
}

// writeControl sends a control frame.
func (c *Conn) writeControl(kind int, data []byte, timeout time.Duration) bool {
	if err := c.ws.WriteControl(kind, data, time.Now().Add(timeout)); err != nil {
		c.abort()
		return false
	}
	return true
}

// sendClose sends the close frame of closeWith's code, if any. The reader
// then waits for the peer's close in reply, until the cut timer.
func (c *Conn) sendClose() {
	if c.closeCode == 0 {
		return
	}
	msg := websocket.FormatCloseMessage(c.closeCode, "")
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeTimeout)); err != nil &&
		!errors.Is(err, websocket.ErrCloseSent) {
		c.abort()
	}
}

// abort cuts a connection whose writes failed; the reader then tears it
// down.
func (c *Conn) abort() {
	c.closeWith(0)
	c.cut()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

package fanout

import (
	"context"
	"slices"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parallax-dev/parallax/go-reference/internal/grpcx"
	fanoutv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/fanoutv1"
)

// The gRPC surface: parallax.fanout.v1.FanoutService/Subscribe
// (proto/parallax/fanout/v1/fanout.proto), a server-streaming subscription
// fed by the same hub as the WebSocket endpoint (docs/contract-fanout.md,
// "gRPC"). A stream is a Conn without a WebSocket: registered on its
// topics like any connection, with the same bounded drop-oldest queue, the
// same drop limit and the same metrics; instead of a reader and a writer
// goroutine, the handler's goroutine drains the queue into the stream.
//
// Each notification is encoded once per broadcast (Notification, in
// field-number order, defaults omitted: the bytes the Rust twin writes) and
// the same bytes are sent on every stream. Like the ingest service, the
// handler takes raw bytes (grpcx.Codec): the request is decoded here, so
// the answer to a malformed one is the contract's, not the codec's.

const (
	// GRPCService is the full name of the gRPC service.
	GRPCService = "parallax.fanout.v1.FanoutService"
	// GRPCSubscribeMethod is the full method name of Subscribe.
	GRPCSubscribeMethod = "/" + GRPCService + "/Subscribe"
	// TrailerErrorCode carries the contract's error code beside the gRPC
	// status, as on the ingest service.
	TrailerErrorCode = "parallax-error-code"
	// maxSubscribeRequestBytes bounds the request message: 64 topics of
	// 64 bytes with their tags fit in well under it.
	maxSubscribeRequestBytes = 16384
)

// grpcStatus is one error answer of Subscribe: its status code, message and
// parallax-error-code.
type grpcStatus struct {
	code    codes.Code
	message string
	errCode string
}

// The error answers of Subscribe, in one table (the Rust twin's
// grpc::status_for has the same rows).
var (
	statusMalformedRequest = grpcStatus{codes.InvalidArgument, "request is not a valid SubscribeRequest", "malformed_request"}
	statusInvalidTopics    = grpcStatus{codes.InvalidArgument, errInvalidTopics.Message, errInvalidTopics.Code}
	// A stream that fell --drop-limit notifications behind, the
	// WebSocket's 1013 (try again later).
	statusSlowConsumer = grpcStatus{codes.ResourceExhausted, "subscriber fell behind: too many notifications dropped in a row", "slow_consumer"}
	// The server shuts down, the WebSocket's 1001 (going away).
	statusGoingAway = grpcStatus{codes.Unavailable, "the server is shutting down", "going_away"}
)

// closeStatus is the status a stream ends with when its connection was
// closed with code (the WebSocket close code the hub chose).
func closeStatus(code int) grpcStatus {
	if code == websocket.CloseTryAgainLater {
		return statusSlowConsumer
	}
	return statusGoingAway
}

// err sends s's trailer and returns it as the handler's error.
func (s grpcStatus) err(stream grpc.ServerStream) error {
	stream.SetTrailer(metadata.Pairs(TrailerErrorCode, s.errCode))
	return status.Error(s.code, s.message)
}

// NewGRPCServer returns a gRPC server serving FanoutService on hub, with
// call metrics in reg and server reflection. Serve it on its own listener
// (grpcx.Serve); the hub's CloseAll ends every stream.
func NewGRPCServer(hub *Hub, reg prometheus.Registerer) *grpc.Server {
	srv := grpcx.NewServer(maxSubscribeRequestBytes)
	srv.RegisterService(&fanoutServiceDesc, &grpcFanout{hub: hub, calls: grpcx.NewMetrics(reg)})
	grpcx.EnableReflection(srv)
	return srv
}

// fanoutServiceDesc is what protoc-gen-go-grpc would generate for
// fanout.proto, with a handler that takes the raw request.
var fanoutServiceDesc = grpc.ServiceDesc{
	ServiceName: GRPCService,
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Subscribe",
		Handler:       subscribeHandler,
		ServerStreams: true,
	}},
	Metadata: "parallax/fanout/v1/fanout.proto",
}

type grpcFanout struct {
	hub   *Hub
	calls *grpcx.Metrics
}

func subscribeHandler(srv any, stream grpc.ServerStream) (err error) {
	g := srv.(*grpcFanout)
	defer g.calls.Observe(GRPCService, "Subscribe", time.Now(), &err)
	var in grpcx.RawMessage
	if err := stream.RecvMsg(&in); err != nil {
		// grpc-go has its answer: no message, two messages, a message
		// over the limit, broken framing (the Rust twin answers alike).
		return err
	}
	sub, st := ParseSubscribeRequest(in)
	if st != nil {
		return st.err(stream)
	}
	c := newStreamConn(g.hub)
	if !g.hub.register(c, sub.Topics) {
		return statusGoingAway.err(stream)
	}
	defer g.hub.unregister(c)
	// The headers tell the client it is subscribed: it receives every
	// notification broadcast from now on (the WebSocket's subscription
	// frame).
	if err := stream.SendHeader(nil); err != nil {
		c.closeWith(0)
		return err
	}
	return c.streamLoop(stream, sub.Limit)
}

// Subscription is a checked SubscribeRequest.
type Subscription struct {
	// Topics are sorted, without duplicates.
	Topics []string
	// Limit ends the stream with OK after that many notifications; 0: no
	// end.
	Limit uint32
}

// ParseSubscribeRequest reads a SubscribeRequest with protobuf's rules
// (unknown fields skipped, invalid UTF-8 refused) and checks its topics as
// the WebSocket's topics parameter is checked: 1 to MaxTopicsPerConn
// distinct valid names, duplicates ignored.
func ParseSubscribeRequest(message []byte) (Subscription, *grpcStatus) {
	var req fanoutv1.SubscribeRequest
	if err := proto.Unmarshal(message, &req); err != nil {
		return Subscription{}, &statusMalformedRequest
	}
	topics := slices.Clone(req.Topics)
	for _, t := range topics {
		if !ValidTopic(t) {
			return Subscription{}, &statusInvalidTopics
		}
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	if len(topics) == 0 || len(topics) > MaxTopicsPerConn {
		return Subscription{}, &statusInvalidTopics
	}
	return Subscription{Topics: topics, Limit: req.Limit}, nil
}

// newStreamConn is a connection for a gRPC stream: no WebSocket, no
// subscription frames.
func newStreamConn(hub *Hub) *Conn {
	return &Conn{
		hub:        hub,
		stream:     true,
		q:          newQueue(hub.cfg.QueueCapacity, hub.cfg.DropLimit),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// streamLoop sends queued notifications until limit were sent (0: no
// limit; the stream then ends with OK), the connection is closed (by the
// hub: slow consumer or shutdown) or the client goes away.
//
// A send blocks while the client's HTTP/2 flow-control window is full;
// meanwhile the queue fills, drops its oldest notifications and, at the
// drop limit, closes: the stream then ends with RESOURCE_EXHAUSTED once the
// blocked send returns (the client reads again, or leaves). Until then the
// stream holds this goroutine and at most one window of data, never a
// growing queue.
func (c *Conn) streamLoop(stream grpc.ServerStream, limit uint32) error {
	defer close(c.writerDone)
	ctx := stream.Context()
	for sent := uint32(0); limit == 0 || sent < limit; {
		if f := c.q.pop(); f != nil {
			msg := grpcx.RawMessage(f.pb)
			if err := stream.SendMsg(&msg); err != nil {
				c.closeWith(0)
				return err
			}
			c.q.written()
			c.hub.metrics.sent.Inc()
			c.hub.metrics.deliveryLag.Observe(time.Since(f.queued).Seconds())
			sent++
			continue
		}
		select {
		case <-c.closing:
			return closeStatus(c.closeCode).err(stream)
		case <-ctx.Done():
			c.closeWith(0)
			return status.FromContextError(context.Cause(ctx)).Err()
		case <-c.q.wake:
		}
	}
	c.closeWith(0)
	return nil
}

// NotificationMessage is the Notification message of a notification frame
// ({"id":…,"topic":…,"published_at_unix_us":…,"body":…}, as AppendFrame
// writes it and the Kafka path carries it): fields in field-number order,
// defaults omitted, body_json the body's exact bytes. It reports false
// for bytes that are not such a frame.
func NotificationMessage(frame []byte) ([]byte, bool) {
	members, ok := decodeObject(frame)
	if !ok {
		return nil, false
	}
	id, okID := decodeString(members["id"])
	topic, okTopic := decodeString(members["topic"])
	at, okAt := decodeNonNegativeInt(members["published_at_unix_us"])
	body, okBody := members["body"]
	if !okID || !okTopic || !okAt || !okBody || len(members) != 4 {
		return nil, false
	}
	out := make([]byte, 0, len(frame))
	if id != "" {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendString(out, id)
	}
	if topic != "" {
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendString(out, topic)
	}
	if at != 0 {
		out = protowire.AppendTag(out, 3, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(at))
	}
	if len(body) != 0 {
		out = protowire.AppendTag(out, 4, protowire.BytesType)
		out = protowire.AppendBytes(out, body)
	}
	return out, true
}

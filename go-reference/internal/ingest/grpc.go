package ingest

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/parallax-dev/parallax/go-reference/internal/grpcx"
	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

// The gRPC surface: parallax.ingest.v1.IngestService/Publish
// (proto/parallax/ingest/v1/ingest_service.proto), the same pipeline as
// POST /v1/events with a protobuf body — Prepare, the same publisher and
// the same metrics — and the HTTP error answers mapped to gRPC statuses in
// one table (grpcCodes; docs/contract-ingest.md, "gRPC").
//
// The request message reaches the handler as its raw bytes (rawCodec), not
// as a decoded *ingestv1.EventBatch: Prepare then reads it with the
// contract's protobuf rules, exactly as it reads an HTTP body, so both
// surfaces accept and reject the same bytes. That is also why the service
// descriptor is written here rather than generated (protoc-gen-go-grpc's
// handler would decode with the proto codec first).

const (
	// GRPCService is the full name of the gRPC service.
	GRPCService = "parallax.ingest.v1.IngestService"
	// GRPCPublishMethod is the full method name of Publish.
	GRPCPublishMethod = "/" + GRPCService + "/Publish"

	// TrailerErrorCode carries the contract's error code (malformed_body,
	// too_many_events, …) beside the gRPC status, so clients can tell
	// apart errors that share a status.
	TrailerErrorCode = "parallax-error-code"
	// TrailerRetryPushback is gRPC's Retry-After: how long a client's
	// retry policy waits before retrying (gRFC A6).
	TrailerRetryPushback = "grpc-retry-pushback-ms"
)

// grpcCodes maps each error answer of the contract, by code, to its gRPC
// status code. The gRPC message is the HTTP error body's message.
//
// body_too_large has no row: a message over the receive limit (8 MiB, as
// the HTTP body) is refused by grpc-go from its length prefix, before the
// handler runs, with RESOURCE_EXHAUSTED and grpc-go's own message.
var grpcCodes = map[string]codes.Code{
	"malformed_body": codes.InvalidArgument,
	// A batch that will never be accepted as it is: the caller's argument,
	// not a quota that may free up.
	"too_many_events":   codes.InvalidArgument,
	"kafka_unavailable": codes.Unavailable,
}

// NewGRPCServer returns a gRPC server serving IngestService with the
// handler's publisher, produce timeout and metrics (registered in
// opts.Registry once, whichever of NewHandler and NewGRPCServer comes
// first), and server reflection. Serve it on its own listener
// (grpcx.Serve); GracefulStop drains it.
func NewGRPCServer(opts Options) *grpc.Server {
	// The HTTP body limit: a larger message is refused from its length
	// prefix, before it is read.
	srv := grpcx.NewServer(MaxBodyBytes)
	srv.RegisterService(&ingestServiceDesc, &grpcIngest{
		publisher:      opts.Publisher,
		produceTimeout: opts.ProduceTimeout,
		metrics:        NewMetrics(opts.Registry),
		calls:          grpcx.NewMetrics(opts.Registry),
	})
	grpcx.EnableReflection(srv)
	return srv
}

// ingestServiceDesc is what protoc-gen-go-grpc would generate for
// ingest_service.proto, with a handler that takes the raw message.
var ingestServiceDesc = grpc.ServiceDesc{
	ServiceName: GRPCService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Publish",
		Handler:    publishHandler,
	}},
	Metadata: "parallax/ingest/v1/ingest_service.proto",
}

func publishHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (reply any, err error) {
	g := srv.(*grpcIngest)
	defer g.calls.Observe(GRPCService, "Publish", time.Now(), &err)
	in := new(rawMessage)
	if err := dec(in); err != nil {
		// The library has already answered: a message over the limit
		// with RESOURCE_EXHAUSTED "grpc: received message larger than
		// max (N vs. 8388608)", broken framing or a missing message
		// with its own status (the Rust twin answers the same).
		return nil, err
	}
	if interceptor == nil {
		return g.publish(ctx, *in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: GRPCPublishMethod}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return g.publish(ctx, *req.(*rawMessage))
	})
}

type grpcIngest struct {
	publisher      Publisher
	produceTimeout time.Duration
	metrics        *Metrics
	calls          *grpcx.Metrics
}

// publish is POST /v1/events for a protobuf body: Prepare (malformed_body,
// too_many_events, validation), every record published and acknowledged
// (kafka_unavailable), and the deterministic IngestResponse.
func (g *grpcIngest) publish(ctx context.Context, body []byte) (*rawMessage, error) {
	batch, herr := Prepare(MediaProtobuf, body)
	if herr != nil {
		return nil, grpcError(ctx, herr)
	}
	g.metrics.rejected.Add(float64(len(batch.Rejected)))

	if n := len(batch.Records); n > 0 {
		// As over HTTP, the batch's fate does not depend on the client: a
		// cancelled call or a grpc-timeout that runs out neither cancels
		// the records nor cuts the wait short.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.produceTimeout)
		err := g.publisher.Publish(pctx, batch.Records)
		cancel()
		if err != nil {
			failed := n
			if pe, ok := errors.AsType[*PublishError](err); ok {
				failed = pe.Failed
			}
			g.metrics.produceErrors.Add(float64(failed))
			g.metrics.failed.Add(float64(n))
			return nil, grpcError(ctx, errKafkaUnavailable)
		}
		g.metrics.accepted.Add(float64(n))
	}

	out, err := EncodeResponse(MediaProtobuf, &ingestv1.IngestResponse{
		Accepted: uint32(len(batch.Records)),
		Rejected: batch.Rejected,
	})
	if err != nil {
		// Unreachable, as over HTTP: only strings that decoded as UTF-8.
		return nil, grpcError(ctx, errMalformedBody)
	}
	msg := rawMessage(out)
	return &msg, nil
}

// grpcError is e as a gRPC status (grpcCodes), with its code in the
// parallax-error-code trailer and, where HTTP sends Retry-After, the same
// wait as grpc-retry-pushback-ms.
func grpcError(ctx context.Context, e *httpx.Error) error {
	code, ok := grpcCodes[e.Code]
	if !ok {
		code = codes.Internal
	}
	md := metadata.Pairs(TrailerErrorCode, e.Code)
	if e.RetryAfter != "" {
		md.Append(TrailerRetryPushback, e.RetryAfter+"000")
	}
	// Fails only outside a gRPC call; the status goes out regardless.
	_ = grpc.SetTrailer(ctx, md)
	return status.Error(code, e.Message)
}

// rawMessage is a gRPC message as its bytes (grpcx.Codec moves it).
type rawMessage = grpcx.RawMessage

// rawCodec is the codec the twins' gRPC servers share.
type rawCodec = grpcx.Codec

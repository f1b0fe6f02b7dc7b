// Package grpcx holds what the twins' gRPC servers share: the codec that
// hands handlers their messages as raw bytes, the call metrics under the
// gRPC ecosystem's names, server reflection, and serving with a bounded
// graceful stop.
//
// Handlers take raw bytes, not generated types, so each service reads its
// request with the contract's own rules and sends responses it encoded once
// (deterministically, the bytes the Rust twin writes too); see
// internal/ingest/grpc.go and internal/fanout/grpc.go. Every other type —
// the reflection service's generated messages — goes through the ordinary
// proto codec.
//
// Layout:
//   - grpcx.go: Codec, RawMessage, NewServer (reflection on), Serve;
//   - metrics.go: grpc_server_handled_total and grpc_server_handling_seconds.
package grpcx

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/reflection"

	// The file descriptors reflection serves, from protobuf's global
	// registry: the services are described by hand (the handlers take raw
	// bytes), but their .proto files are generated and registered.
	_ "github.com/parallax-dev/parallax/go-reference/internal/pb/fanoutv1"
	_ "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

// RawMessage is a gRPC message as its bytes: a request as received, a
// response already encoded.
type RawMessage []byte

// Codec moves RawMessages in and out unchanged and everything else through
// the proto codec. Named "proto" — the messages are protobuf — so clients
// see the usual application/grpc.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// protoCodec is grpc-go's own proto codec, for the messages that are not
// raw (server reflection's).
var protoCodec = encoding.GetCodecV2(proto.Name)

func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*RawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	}
	if protoCodec == nil {
		return nil, fmt.Errorf("grpcx: cannot marshal %T", v)
	}
	return protoCodec.Marshal(v)
}

func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*RawMessage); ok {
		// A copy: the library reuses its buffers once this returns.
		*m = data.Materialize()
		return nil
	}
	if protoCodec == nil {
		return fmt.Errorf("grpcx: cannot unmarshal into %T", v)
	}
	return protoCodec.Unmarshal(data, v)
}

func (Codec) Name() string { return proto.Name }

// NewServer returns a gRPC server that uses Codec, refuses messages over
// maxRecvBytes from their length prefix, and serves server reflection
// (grpc.reflection.v1 and v1alpha) for every service registered on it.
// Register the services, then call EnableReflection.
func NewServer(maxRecvBytes int, opts ...grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append([]grpc.ServerOption{
		grpc.ForceServerCodecV2(Codec{}),
		grpc.MaxRecvMsgSize(maxRecvBytes),
	}, opts...)...)
}

// EnableReflection registers grpc.reflection.v1 and v1alpha on srv. It
// describes the services registered on srv so far (their descriptors come
// from the generated packages imported above), so call it last.
func EnableReflection(srv *grpc.Server) {
	reflection.Register(srv)
}

// Serve serves srv on ln until ctx is done, then drains in-flight calls
// (GracefulStop) for at most grace, as httpx.Serve drains HTTP. Streams
// that never end on their own must be ended by the caller when ctx is done
// (the fan-out's hub does), or they take the whole grace period.
func Serve(ctx context.Context, ln net.Listener, srv *grpc.Server, grace time.Duration, log *slog.Logger) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	drained := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(grace):
		log.Warn("grace period ran out; abandoning in-flight gRPC calls", "grace", grace)
		srv.Stop()
	}
	return <-served
}

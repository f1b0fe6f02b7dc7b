// Command grpc-echo is a trivial gRPC responder for scripts/grpc-floor.sh:
// grpc-go over h2c, every call (any method) answered with one fixed
// parallax.ingest.v1.IngestResponse{accepted: 3} and status OK, after the
// request message is read. It keeps Kafka and the twins' own work out of
// a proxy's numbers, so what differs between the benchmark's paths is the
// hop.
//
//	go build -o ../../target/parallax-bin/grpc-echo . && grpc-echo 127.0.0.1:50051
package main

import (
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// answer is IngestResponse{accepted: 3}: field 1, varint 3.
var answer = []byte{0x08, 0x03}

// raw passes messages through as bytes, so no generated code is needed.
type raw struct{}

func (raw) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (raw) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (raw) Name() string { return "proto" }

var _ encoding.Codec = raw{}

func handle(_ any, stream grpc.ServerStream) error {
	var request []byte
	if err := stream.RecvMsg(&request); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	out := answer
	return stream.SendMsg(&out)
}

func main() {
	addr := "127.0.0.1:50051"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc-echo:", err)
		os.Exit(1)
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(raw{}), grpc.UnknownServiceHandler(handle))
	fmt.Println("listening on", ln.Addr())
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "grpc-echo:", err)
		os.Exit(1)
	}
}

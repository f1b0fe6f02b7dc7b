package ingest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/parallax-dev/parallax/go-reference/internal/grpcx"
	"github.com/parallax-dev/parallax/go-reference/internal/ingest/ingesttest"
	ingestv1 "github.com/parallax-dev/parallax/go-reference/internal/pb/ingestv1"
)

// grpcFixture is the HTTP handler and the gRPC server over one publisher
// and one registry, the gRPC server on an in-memory listener.
type grpcFixture struct {
	*fixture
	conn *grpc.ClientConn
}

func newGRPCFixture(t *testing.T) *grpcFixture {
	t.Helper()
	f := newFixture(t)
	srv := NewGRPCServer(Options{Publisher: f.pub, ProduceTimeout: 50 * time.Millisecond, Registry: f.reg})
	ln := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &grpcFixture{fixture: f, conn: conn}
}

// publish calls Publish with body as the message; it returns the answer's
// bytes, its status and its trailers.
func (g *grpcFixture) publish(body []byte) ([]byte, *status.Status, metadata.MD) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in, out := rawMessage(body), rawMessage(nil)
	var trailer metadata.MD
	err := g.conn.Invoke(ctx, GRPCPublishMethod, &in, &out, grpc.Trailer(&trailer))
	return out, status.Convert(err), trailer
}

func marshalBatch(t *testing.T, events ...*ingestv1.Event) []byte {
	t.Helper()
	b, err := deterministic.Marshal(&ingestv1.EventBatch{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGRPCPublishAnswersTheHTTPProtobufBody(t *testing.T) {
	g := newGRPCFixture(t)
	body := marshalBatch(t, ingesttest.Event(1, 0), &ingestv1.Event{EventId: "bad"})
	out, st, _ := g.publish(body)
	if st.Code() != codes.OK {
		t.Fatalf("status %v", st)
	}
	w := g.post("application/x-protobuf", body)
	if w.Code != http.StatusOK || !bytes.Equal(out, w.Body.Bytes()) {
		t.Fatalf("gRPC answer %x, HTTP %d %x", out, w.Code, w.Body.Bytes())
	}
	if len(g.pub.batches) != 2 || len(g.pub.batches[0]) != 1 {
		t.Fatalf("published %d batches", len(g.pub.batches))
	}
	// Both surfaces count into the same series.
	if n := testutil.ToFloat64(NewMetrics(g.reg).accepted); n != 2 {
		t.Fatalf("accepted %v, want 2", n)
	}
	if n := testutil.ToFloat64(grpcx.NewMetrics(g.reg).Handled(GRPCService, "Publish", "OK")); n != 1 {
		t.Fatalf("grpc_server_handled_total{grpc_code=OK} %v, want 1", n)
	}
}

func TestGRPCErrorsMapToStatusesWithTheContractCode(t *testing.T) {
	tooMany := make([]*ingestv1.Event, MaxEvents+1)
	for i := range tooMany {
		tooMany[i] = ingesttest.Event(1, i)
	}
	for _, tc := range []struct {
		name    string
		body    []byte
		code    codes.Code
		message string
		errCode string
	}{
		{"malformed", []byte{0x0a, 0x05, 0x01}, codes.InvalidArgument, "request body is not a valid EventBatch", "malformed_body"},
		{"too many events", marshalBatch(t, tooMany...), codes.InvalidArgument, "batch holds more than 10000 events", "too_many_events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGRPCFixture(t)
			out, st, trailer := g.publish(tc.body)
			if st.Code() != tc.code || st.Message() != tc.message || out != nil {
				t.Fatalf("got %v %q, answer %x", st.Code(), st.Message(), out)
			}
			if got := trailer.Get(TrailerErrorCode); len(got) != 1 || got[0] != tc.errCode {
				t.Fatalf("trailer %s = %v", TrailerErrorCode, got)
			}
			if len(g.pub.batches) != 0 {
				t.Fatal("published a refused batch")
			}
		})
	}
}

func TestGRPCMessageOver8MiBIsResourceExhaustedBeforeTheHandler(t *testing.T) {
	g := newGRPCFixture(t)
	_, st, trailer := g.publish(make([]byte, MaxBodyBytes+1))
	if st.Code() != codes.ResourceExhausted || st.Message() != "grpc: received message larger than max (8388609 vs. 8388608)" {
		t.Fatalf("got %v", st)
	}
	if got := trailer.Get(TrailerErrorCode); len(got) != 0 {
		t.Fatalf("trailer %s = %v", TrailerErrorCode, got)
	}
}

func TestGRPCKafkaFailureIsUnavailableWithRetryPushback(t *testing.T) {
	g := newGRPCFixture(t)
	g.pub.err = &PublishError{Failed: 1, Total: 1, Err: errors.New("broker down")}
	_, st, trailer := g.publish(marshalBatch(t, ingesttest.Event(1, 0)))
	if st.Code() != codes.Unavailable || st.Message() != "Kafka did not acknowledge the batch; retry later" {
		t.Fatalf("got %v", st)
	}
	if got := trailer.Get(TrailerRetryPushback); len(got) != 1 || got[0] != "1000" {
		t.Fatalf("trailer %s = %v", TrailerRetryPushback, got)
	}
	if n := testutil.ToFloat64(NewMetrics(g.reg).failed); n != 1 {
		t.Fatalf("failed %v, want 1", n)
	}
}

func TestGRPCUnknownMethodIsUnimplemented(t *testing.T) {
	g := newGRPCFixture(t)
	in, out := rawMessage(nil), rawMessage(nil)
	err := g.conn.Invoke(context.Background(), "/"+GRPCService+"/Nope", &in, &out)
	if st := status.Convert(err); st.Code() != codes.Unimplemented {
		t.Fatalf("got %v", st)
	}
}

func TestMetricsRegisterOncePerRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := NewMetrics(reg), NewMetrics(reg)
	a.accepted.Add(1)
	b.accepted.Add(2)
	if n, _ := reg.Gather(); len(n) != 2 {
		t.Fatalf("%d families", len(n))
	}
}

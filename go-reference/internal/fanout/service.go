package fanout

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/parallax-dev/parallax/go-reference/internal/grpcx"
	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

// Config is the service's configuration: the contract's command line.
type Config struct {
	Hub HubConfig
	// KafkaBrokers enables the Kafka path; empty means local mode.
	KafkaBrokers []string
	// KafkaTopic is the topic of the Kafka path.
	KafkaTopic string
	// ShutdownGrace bounds the drain after SIGTERM: in-flight requests and
	// the close handshakes of the WebSockets.
	ShutdownGrace time.Duration
	// GRPC, when set, is the listener FanoutService (gRPC) is served on
	// (--grpc-listen).
	GRPC net.Listener
}

// Serve runs the fan-out service on ln until ctx is done, then shuts down:
// it stops accepting, closes every WebSocket with 1001 while in-flight HTTP
// requests finish, waits for both (together bounded by the grace period),
// stops the Kafka path and returns nil — or the error that stopped serving.
func Serve(ctx context.Context, ln net.Listener, cfg Config, log *slog.Logger) error {
	reg := httpx.NewRegistry()
	hub := NewHub(cfg.Hub, NewMetrics(reg))
	opts := Options{Hub: hub, Registry: reg}

	// The consumer stops with ctx, or when serving fails on its own.
	consumeCtx, stopConsuming := context.WithCancel(ctx)
	defer stopConsuming()
	var bus *KafkaBus
	consumerDone := make(chan struct{})
	if len(cfg.KafkaBrokers) > 0 {
		var err error
		if bus, err = NewKafkaBus(KafkaConfig{Brokers: cfg.KafkaBrokers, Topic: cfg.KafkaTopic}, hub, log); err != nil {
			return err
		}
		opts.Publisher = bus
		go func() { defer close(consumerDone); bus.Run(consumeCtx) }()
	}

	// http.Server.Shutdown does not know hijacked connections, so the
	// WebSockets are closed here, as soon as shutdown begins, while
	// httpx.Serve drains the HTTP requests.
	began := make(chan time.Time, 1)
	stopWatch := context.AfterFunc(ctx, func() {
		began <- time.Now()
		hub.CloseAll()
	})
	// gRPC stops at the same signal, or when HTTP fails; the hub's
	// CloseAll ends its streams.
	grpcCtx, stopGRPC := context.WithCancel(ctx)
	defer stopGRPC()
	grpcDone := make(chan error, 1)
	if cfg.GRPC != nil {
		srv := NewGRPCServer(hub, reg)
		go func() { grpcDone <- grpcx.Serve(grpcCtx, cfg.GRPC, srv, cfg.ShutdownGrace, log) }()
	} else {
		grpcDone <- nil
	}
	serveErr := httpx.Serve(ctx, ln, NewHandler(opts), cfg.ShutdownGrace, log)
	start := time.Now()
	if stopWatch() { // Serve failed on its own: shut the rest down anyway
		hub.CloseAll()
	} else {
		start = <-began
	}

	graceCtx, cancel := context.WithDeadline(context.Background(), start.Add(cfg.ShutdownGrace))
	defer cancel()
	if err := hub.Wait(graceCtx); err != nil {
		log.Warn("grace period ran out; cut WebSockets still closing", "grace", cfg.ShutdownGrace)
	}
	stopGRPC()
	if err := <-grpcDone; serveErr == nil {
		serveErr = err
	}
	if bus != nil {
		stopConsuming()
		<-consumerDone
		if err := bus.Close(graceCtx); err != nil {
			log.Warn("kafka producer flush incomplete", "err", err)
		}
	}
	return serveErr
}

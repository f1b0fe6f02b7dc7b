// Command ingest is the Go reference of the event-ingestion service
// (docs/contract-ingest.md): POST /v1/events publishes validated events to
// Kafka. Flags win over the INGEST_* environment variables, which win over
// the defaults. SIGINT/SIGTERM stop accepting, drain in-flight requests for
// at most the grace period, flush the producer, and exit 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parallax-dev/parallax/go-reference/internal/cmdutil"
	"github.com/parallax-dev/parallax/go-reference/internal/grpcx"
	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
	"github.com/parallax-dev/parallax/go-reference/internal/ingest"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	if err := run(cfg, log); err != nil {
		log.Error("ingest stopped", "err", err)
		os.Exit(1)
	}
}

func run(cfg config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	publisher, err := ingest.NewKafkaPublisher(ingest.KafkaConfig{
		Brokers:         cfg.brokers,
		Topic:           cfg.topic,
		Linger:          cfg.linger,
		DeliveryTimeout: cfg.produceTimeout,
	}, log)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	opts := ingest.Options{
		Publisher:      publisher,
		ProduceTimeout: cfg.produceTimeout,
		Registry:       httpx.NewRegistry(),
	}
	handler := ingest.NewHandler(opts)

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	grpcDone := make(chan error, 1)
	if cfg.grpcListen != "" {
		gln, err := net.Listen("tcp", cfg.grpcListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--grpc-listen: %w", err)
		}
		// Logged before "listening on", the line that says the service
		// is ready.
		log.Info("serving gRPC on " + gln.Addr().String())
		go func() { grpcDone <- grpcx.Serve(ctx, gln, ingest.NewGRPCServer(opts), cfg.grace, log) }()
	} else {
		grpcDone <- nil
	}
	log.Info("listening on " + ln.Addr().String())
	serveErr := httpx.Serve(ctx, ln, handler, cfg.grace, log)
	stop() // a second signal kills the process while flushing
	if err := <-grpcDone; serveErr == nil {
		serveErr = err
	}

	flushCtx, cancel := context.WithTimeout(context.Background(), cfg.produceTimeout)
	defer cancel()
	if err := publisher.Close(flushCtx); err != nil {
		log.Warn("producer flush incomplete", "err", err)
	}
	if serveErr != nil {
		return serveErr
	}
	log.Info("shut down cleanly")
	return nil
}

type config struct {
	listen         string
	grpcListen     string
	brokers        []string
	topic          string
	produceTimeout time.Duration
	linger         time.Duration
	grace          time.Duration
}

// parseConfig reads flags over environment variables over defaults (the
// contract's command-line table). An empty environment variable counts as
// unset.
func parseConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	env := cmdutil.Env(getenv)
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(output)
	listen := fs.String("listen", env("INGEST_LISTEN", "127.0.0.1:8080"), "`HOST:PORT` to serve HTTP on (INGEST_LISTEN)")
	grpcListen := fs.String("grpc-listen", env("INGEST_GRPC_LISTEN", ""), "`HOST:PORT` to serve gRPC on; empty: no gRPC (INGEST_GRPC_LISTEN)")
	brokers := fs.String("kafka-brokers", env("INGEST_KAFKA_BROKERS", "127.0.0.1:9092"), "bootstrap brokers `H:P[,H:P]` (INGEST_KAFKA_BROKERS)")
	topic := fs.String("topic", env("INGEST_TOPIC", "events"), "`topic` accepted events are published to (INGEST_TOPIC)")
	produceMS := fs.String("produce-timeout-ms", env("INGEST_PRODUCE_TIMEOUT_MS", "5000"), "`ms` one batch may wait for Kafka acks before 503 (INGEST_PRODUCE_TIMEOUT_MS)")
	lingerMS := fs.String("linger-ms", env("INGEST_LINGER_MS", "5"), "producer linger in `ms` (INGEST_LINGER_MS)")
	graceMS := fs.String("shutdown-grace-ms", env("INGEST_SHUTDOWN_GRACE_MS", "10000"), "`ms` in-flight requests may take after SIGTERM (INGEST_SHUTDOWN_GRACE_MS)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cfg := config{listen: *listen, grpcListen: *grpcListen, topic: *topic}
	for b := range strings.SplitSeq(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.brokers = append(cfg.brokers, b)
		}
	}
	if len(cfg.brokers) == 0 {
		return config{}, errors.New("--kafka-brokers: no broker given")
	}
	if cfg.topic == "" {
		return config{}, errors.New("--topic: empty")
	}
	var err error
	if cfg.produceTimeout, err = cmdutil.Millis("produce-timeout-ms", *produceMS, 1); err != nil {
		return config{}, err
	}
	if cfg.linger, err = cmdutil.Millis("linger-ms", *lingerMS, 0); err != nil {
		return config{}, err
	}
	if cfg.grace, err = cmdutil.Millis("shutdown-grace-ms", *graceMS, 0); err != nil {
		return config{}, err
	}
	return cfg, nil
}

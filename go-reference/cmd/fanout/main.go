// Command fanout is the Go reference of the notification fan-out service
// (docs/contract-fanout.md): WebSocket subscribers of topics, and POST
// /v1/notify broadcasting to them — locally, or through Kafka so that
// several processes serve one audience. Flags win over the FANOUT_*
// environment variables, which win over the defaults. SIGINT/SIGTERM stop
// accepting, close every WebSocket with 1001, drain in-flight requests for
// at most the grace period, and exit 0.
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
	"github.com/parallax-dev/parallax/go-reference/internal/fanout"
	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	if err := run(cfg, log); err != nil {
		log.Error("fanout stopped", "err", err)
		os.Exit(1)
	}
}

func run(cfg config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := httpx.Listen(ctx, cfg.listen, cfg.reusePort)
	if err != nil {
		return err
	}
	if cfg.grpcListen != "" {
		gln, err := net.Listen("tcp", cfg.grpcListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--grpc-listen: %w", err)
		}
		// Logged before "listening on", the line that says the service
		// is ready.
		log.Info("serving gRPC on " + gln.Addr().String())
		cfg.service.GRPC = gln
	}
	mode := "local"
	if len(cfg.service.KafkaBrokers) > 0 {
		mode = "kafka"
	}
	log.Info("listening on "+ln.Addr().String(), "mode", mode, "reuse_port", cfg.reusePort)
	if err := fanout.Serve(ctx, ln, cfg.service, log); err != nil {
		return err
	}
	log.Info("shut down cleanly")
	return nil
}

type config struct {
	listen     string
	grpcListen string
	reusePort  bool
	service    fanout.Config
}

// parseConfig reads flags over environment variables over defaults (the
// contract's command-line table). An empty environment variable counts as
// unset.
func parseConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	env := cmdutil.Env(getenv)
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	fs.SetOutput(output)
	listen := fs.String("listen", env("FANOUT_LISTEN", "127.0.0.1:8082"), "`HOST:PORT` to serve HTTP and WebSocket on (FANOUT_LISTEN)")
	grpcListen := fs.String("grpc-listen", env("FANOUT_GRPC_LISTEN", ""), "`HOST:PORT` to serve gRPC (FanoutService/Subscribe) on; empty: no gRPC (FANOUT_GRPC_LISTEN)")
	reusePort := env("FANOUT_REUSE_PORT", "false")
	fs.Var(switchValue{&reusePort}, "reuse-port", "bind with SO_REUSEPORT so several processes share one port; --reuse-port=false turns it off (FANOUT_REUSE_PORT: true or false)")
	capacity := fs.String("queue-capacity", env("FANOUT_QUEUE_CAPACITY", "256"), "`frames` queued per connection before the oldest is dropped (FANOUT_QUEUE_CAPACITY)")
	dropLimit := fs.String("drop-limit", env("FANOUT_DROP_LIMIT", "64"), "consecutive `drops` after which a slow connection is closed with 1013 (FANOUT_DROP_LIMIT)")
	ping := fs.String("ping-interval-secs", env("FANOUT_PING_INTERVAL_SECS", "30"), "server ping period in `seconds`; a peer silent for 2 periods is closed (FANOUT_PING_INTERVAL_SECS)")
	brokers := fs.String("kafka-brokers", env("FANOUT_KAFKA_BROKERS", ""), "`H:P[,..]` enables the Kafka path (FANOUT_KAFKA_BROKERS)")
	topic := fs.String("kafka-topic", env("FANOUT_KAFKA_TOPIC", "notifications"), "`topic` of the Kafka path (FANOUT_KAFKA_TOPIC)")
	graceMS := fs.String("shutdown-grace-ms", env("FANOUT_SHUTDOWN_GRACE_MS", "10000"), "drain time in `ms` after SIGTERM (FANOUT_SHUTDOWN_GRACE_MS)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cfg := config{listen: *listen, grpcListen: *grpcListen}
	switch reusePort {
	case "true":
		cfg.reusePort = true
	case "false":
	default:
		return config{}, fmt.Errorf("--reuse-port: want true or false, got %q", reusePort)
	}
	var err error
	if cfg.service.Hub.QueueCapacity, err = integer("queue-capacity", *capacity, 1, 1<<20); err != nil {
		return config{}, err
	}
	if cfg.service.Hub.DropLimit, err = integer("drop-limit", *dropLimit, 1, 1<<30); err != nil {
		return config{}, err
	}
	secs, err := integer("ping-interval-secs", *ping, 1, 86400)
	if err != nil {
		return config{}, err
	}
	cfg.service.Hub.PingInterval = time.Duration(secs) * time.Second
	for b := range strings.SplitSeq(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.service.KafkaBrokers = append(cfg.service.KafkaBrokers, b)
		}
	}
	if *brokers != "" && len(cfg.service.KafkaBrokers) == 0 {
		return config{}, errors.New("--kafka-brokers: no broker given")
	}
	if cfg.service.KafkaTopic = *topic; cfg.service.KafkaTopic == "" {
		return config{}, errors.New("--kafka-topic: empty")
	}
	if cfg.service.ShutdownGrace, err = cmdutil.Millis("shutdown-grace-ms", *graceMS, 0); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// switchValue is a flag that is set to "true" when given bare (--flag), or
// to any value as --flag=VALUE; parseConfig then checks the value.
type switchValue struct{ v *string }

func (s switchValue) String() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

func (s switchValue) Set(v string) error { *s.v = v; return nil }

// IsBoolFlag makes the flag package accept it bare.
func (s switchValue) IsBoolFlag() bool { return true }

// integer is cmdutil.Integer for int-typed settings.
func integer(name, v string, least, most int) (int, error) {
	n, err := cmdutil.Integer(name, v, int64(least), int64(most))
	return int(n), err
}

// Command session-cache is the Go reference of the session-cache service
// (docs/contract-cache.md): an in-memory, sharded LRU store with TTLs behind
// PUT/GET/HEAD/DELETE /v1/sessions/{id}. Flags win over the CACHE_*
// environment variables, which win over the defaults. SIGINT/SIGTERM stop
// accepting, drain in-flight requests for at most the grace period, stop
// the expiry sweep, and exit 0.
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
	"sync"
	"syscall"
	"time"

	"github.com/parallax-dev/parallax/go-reference/internal/cache"
	"github.com/parallax-dev/parallax/go-reference/internal/cmdutil"
	"github.com/parallax-dev/parallax/go-reference/internal/httpx"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "session-cache:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	if err := run(cfg, log); err != nil {
		log.Error("session-cache stopped", "err", err)
		os.Exit(1)
	}
}

func run(cfg config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	store := cache.NewStore(cache.Config{CapacityBytes: cfg.capacityBytes, Shards: cfg.shards})
	handler := cache.NewHandler(cache.Options{
		Store:      store,
		DefaultTTL: cfg.defaultTTL,
		Registry:   httpx.NewRegistry(),
	})
	if cfg.extraCPU > 0 {
		var err error
		if handler, err = cache.ExtraCPU(handler, cfg.extraCPU); err != nil {
			return err
		}
		log.Warn("fault injection: every request burns this much CPU", "cpu", cfg.extraCPU)
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	// The sweeper belongs to run: it stops with ctx, and run waits for it.
	var sweeper sync.WaitGroup
	sweeper.Go(func() { store.RunSweeper(ctx, cfg.sweepInterval) })
	defer sweeper.Wait()

	log.Info("listening on "+ln.Addr().String(),
		"shards", cfg.shards, "shard_capacity_bytes", store.ShardCapacity())
	if err := httpx.Serve(ctx, ln, handler, cfg.grace, log); err != nil {
		stop() // Serve failed on its own: stop the sweeper too
		return err
	}
	log.Info("shut down cleanly")
	return nil
}

type config struct {
	listen        string
	capacityBytes int64
	shards        int
	defaultTTL    time.Duration
	sweepInterval time.Duration
	grace         time.Duration
	// extraCPU is the hidden fault injection (--debug-extra-cpu-us): CPU
	// time every request burns first, for the gate's sensitivity test; 0
	// everywhere else.
	extraCPU time.Duration
}

// hiddenFlags are parsed like the others but left out of -help: fault
// injection for the harness's own tests, as the Rust twin hides them.
var hiddenFlags = map[string]bool{"debug-extra-cpu-us": true}

// usageWithoutHidden prints fs's flags as flag.PrintDefaults does, without
// the hidden ones.
func usageWithoutHidden(fs *flag.FlagSet) func() {
	return func() {
		visible := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		visible.SetOutput(fs.Output())
		fs.VisitAll(func(f *flag.Flag) {
			if !hiddenFlags[f.Name] {
				visible.Var(f.Value, f.Name, f.Usage)
			}
		})
		fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
		visible.PrintDefaults()
	}
}

// parseConfig reads flags over environment variables over defaults (the
// contract's command-line table). An empty environment variable counts as
// unset.
func parseConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	env := cmdutil.Env(getenv)
	fs := flag.NewFlagSet("session-cache", flag.ContinueOnError)
	fs.SetOutput(output)
	listen := fs.String("listen", env("CACHE_LISTEN", "127.0.0.1:8081"), "`HOST:PORT` to serve HTTP on (CACHE_LISTEN)")
	capacity := fs.String("capacity-bytes", env("CACHE_CAPACITY_BYTES", "268435456"), "total accounted `bytes`, split evenly over the shards (CACHE_CAPACITY_BYTES)")
	shards := fs.String("shards", env("CACHE_SHARDS", "64"), "number of shards, 1-65536 (CACHE_SHARDS)")
	ttl := fs.String("default-ttl-secs", env("CACHE_DEFAULT_TTL_SECS", "3600"), "TTL in `seconds` of a PUT without X-Session-TTL, 1-604800 (CACHE_DEFAULT_TTL_SECS)")
	sweepMS := fs.String("sweep-interval-ms", env("CACHE_SWEEP_INTERVAL_MS", "1000"), "period in `ms` of the background expiry sweep (CACHE_SWEEP_INTERVAL_MS)")
	graceMS := fs.String("shutdown-grace-ms", env("CACHE_SHUTDOWN_GRACE_MS", "10000"), "`ms` in-flight requests may take after SIGTERM (CACHE_SHUTDOWN_GRACE_MS)")
	extraCPU := fs.String("debug-extra-cpu-us", "0", "hidden: µs of thread CPU every request burns first")
	fs.Usage = usageWithoutHidden(fs)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cfg := config{listen: *listen}
	var err error
	if cfg.capacityBytes, err = cmdutil.Integer("capacity-bytes", *capacity, 1, 1<<63-1); err != nil {
		return config{}, err
	}
	n, err := cmdutil.Integer("shards", *shards, 1, 65536)
	if err != nil {
		return config{}, err
	}
	cfg.shards = int(n)
	if n, err = cmdutil.Integer("default-ttl-secs", *ttl, 1, cache.MaxTTLSeconds); err != nil {
		return config{}, err
	}
	cfg.defaultTTL = time.Duration(n) * time.Second
	if cfg.sweepInterval, err = cmdutil.Millis("sweep-interval-ms", *sweepMS, 1); err != nil {
		return config{}, err
	}
	if cfg.grace, err = cmdutil.Millis("shutdown-grace-ms", *graceMS, 0); err != nil {
		return config{}, err
	}
	if n, err = cmdutil.Integer("debug-extra-cpu-us", *extraCPU, 0, 1_000_000_000); err != nil {
		return config{}, err
	}
	cfg.extraCPU = time.Duration(n) * time.Microsecond
	return cfg, nil
}

package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parallax-dev/parallax/go-reference/internal/fanout"
)

// TestMain lets the tests start this binary as the fanout command itself
// (FANOUT_TEST_RUN_MAIN=1), to run several real processes.
func TestMain(m *testing.M) {
	if os.Getenv("FANOUT_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaultsAreTheContractDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		listen: "127.0.0.1:8082",
		service: fanout.Config{
			Hub:           fanout.HubConfig{QueueCapacity: 256, DropLimit: 64, PingInterval: 30 * time.Second},
			KafkaTopic:    "notifications",
			ShutdownGrace: 10 * time.Second,
		},
	}
	if !equal(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func equal(a, b config) bool {
	return a.listen == b.listen && a.reusePort == b.reusePort && a.service.Hub == b.service.Hub &&
		slices.Equal(a.service.KafkaBrokers, b.service.KafkaBrokers) &&
		a.service.KafkaTopic == b.service.KafkaTopic && a.service.ShutdownGrace == b.service.ShutdownGrace
}

var allEnv = map[string]string{
	"FANOUT_LISTEN":             "0.0.0.0:1",
	"FANOUT_REUSE_PORT":         "true",
	"FANOUT_QUEUE_CAPACITY":     "8",
	"FANOUT_DROP_LIMIT":         "2",
	"FANOUT_PING_INTERVAL_SECS": "5",
	"FANOUT_KAFKA_BROKERS":      "k1:9092, k2:9092",
	"FANOUT_KAFKA_TOPIC":        "fan",
	"FANOUT_SHUTDOWN_GRACE_MS":  "0",
}

func TestConfigEnvironmentOverridesDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(allEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		listen:    "0.0.0.0:1",
		reusePort: true,
		service: fanout.Config{
			Hub:           fanout.HubConfig{QueueCapacity: 8, DropLimit: 2, PingInterval: 5 * time.Second},
			KafkaBrokers:  []string{"k1:9092", "k2:9092"},
			KafkaTopic:    "fan",
			ShutdownGrace: 0,
		},
	}
	if !equal(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigFlagsWinOverEnvironment(t *testing.T) {
	args := []string{
		"--listen", "127.0.0.1:0",
		"--reuse-port=false",
		"--queue-capacity", "1",
		"--drop-limit=1",
		"--ping-interval-secs", "1",
		"--kafka-brokers", "127.0.0.1:9092",
		"--kafka-topic", "t",
		"--shutdown-grace-ms", "500",
	}
	cfg, err := parseConfig(args, envOf(allEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		listen: "127.0.0.1:0",
		service: fanout.Config{
			Hub:           fanout.HubConfig{QueueCapacity: 1, DropLimit: 1, PingInterval: time.Second},
			KafkaBrokers:  []string{"127.0.0.1:9092"},
			KafkaTopic:    "t",
			ShutdownGrace: 500 * time.Millisecond,
		},
	}
	if !equal(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigBareReusePortFlagMeansTrue(t *testing.T) {
	cfg, err := parseConfig([]string{"--reuse-port"}, envOf(map[string]string{"FANOUT_REUSE_PORT": "false"}), io.Discard)
	if err != nil || !cfg.reusePort {
		t.Fatalf("got %v, %v", cfg.reusePort, err)
	}
}

func TestConfigEmptyEnvironmentVariableCountsAsUnset(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(map[string]string{"FANOUT_QUEUE_CAPACITY": "", "FANOUT_REUSE_PORT": ""}), io.Discard)
	if err != nil || cfg.service.Hub.QueueCapacity != 256 || cfg.reusePort {
		t.Fatalf("got %+v, %v", cfg, err)
	}
}

func TestConfigRejectsBadValuesNamingTheFlag(t *testing.T) {
	for _, args := range [][]string{
		{"--reuse-port=yes"},
		{"--reuse-port=1"},
		{"--queue-capacity", "0"},
		{"--queue-capacity", "-1"},
		{"--queue-capacity", "lots"},
		{"--drop-limit", "0"},
		{"--ping-interval-secs", "0"},
		{"--ping-interval-secs", "1.5"},
		{"--kafka-brokers", " , "},
		{"--kafka-topic", ""},
		{"--shutdown-grace-ms", "-1"},
	} {
		_, err := parseConfig(args, envOf(nil), io.Discard)
		if err == nil {
			t.Errorf("accepted %q", args)
			continue
		}
		name, _, _ := strings.Cut(args[0], "=")
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%q: error %q does not name the flag", args, err)
		}
	}
}

func TestConfigRejectsBadEnvironmentValuesNamingTheFlag(t *testing.T) {
	for name, flag := range map[string]string{
		"FANOUT_REUSE_PORT":         "--reuse-port",
		"FANOUT_QUEUE_CAPACITY":     "--queue-capacity",
		"FANOUT_DROP_LIMIT":         "--drop-limit",
		"FANOUT_PING_INTERVAL_SECS": "--ping-interval-secs",
		"FANOUT_SHUTDOWN_GRACE_MS":  "--shutdown-grace-ms",
	} {
		_, err := parseConfig(nil, envOf(map[string]string{name: "bad"}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s=bad: err %v", name, err)
		}
	}
}

func TestConfigRejectsUnknownFlagsAndStrayArguments(t *testing.T) {
	for _, args := range [][]string{{"--nope"}, {"extra"}, {"--reuse-port", "true"}} {
		if _, err := parseConfig(args, envOf(nil), io.Discard); err == nil {
			t.Errorf("accepted %q", args)
		}
	}
}

// process is this test binary running as the fanout command.
type process struct {
	cmd  *exec.Cmd
	addr string
}

var listening = regexp.MustCompile(`listening on ([^\s"]+)`)

func start(t *testing.T, env ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{"FANOUT_TEST_RUN_MAIN=1"}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return &process{cmd: cmd, addr: a}
	case <-time.After(10 * time.Second):
		t.Fatal("no 'listening on' line")
		return nil
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *process) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit after SIGTERM")
		return -1
	}
}

func TestTwoProcessesShareOnePortWithReusePortAndExitCleanlyOnSIGTERM(t *testing.T) {
	first := start(t, "FANOUT_LISTEN=127.0.0.1:0", "FANOUT_REUSE_PORT=true")
	second := start(t, "FANOUT_LISTEN="+first.addr, "FANOUT_REUSE_PORT=true")
	if second.addr != first.addr {
		t.Fatalf("bound %s and %s", first.addr, second.addr)
	}
	// Both serve: the kernel spreads connections over the two listeners.
	resp, err := http.Get("http://" + first.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+first.addr+"/v1/subscribe?topics=a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, p := range []*process{first, second} {
		if code := p.stop(t); code != 0 {
			t.Fatalf("exit code %d", code)
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				t.Fatalf("connection ended with %v, want a 1001 close", err)
			}
			break
		}
	}
}

func TestWithoutReusePortASecondProcessCannotBind(t *testing.T) {
	first := start(t, "FANOUT_LISTEN=127.0.0.1:0")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FANOUT_TEST_RUN_MAIN=1", "FANOUT_LISTEN="+first.addr)
	if err := cmd.Run(); err == nil {
		t.Fatal("second process bound the port")
	}
	if code := first.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

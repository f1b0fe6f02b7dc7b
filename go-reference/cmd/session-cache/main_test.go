package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaultsAreTheContractDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		listen:        "127.0.0.1:8081",
		capacityBytes: 268435456,
		shards:        64,
		defaultTTL:    time.Hour,
		sweepInterval: time.Second,
		grace:         10 * time.Second,
	}
	if cfg != want {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

var allEnv = map[string]string{
	"CACHE_LISTEN":            "0.0.0.0:1",
	"CACHE_CAPACITY_BYTES":    "1000",
	"CACHE_SHARDS":            "8",
	"CACHE_DEFAULT_TTL_SECS":  "60",
	"CACHE_SWEEP_INTERVAL_MS": "250",
	"CACHE_SHUTDOWN_GRACE_MS": "0",
}

func TestConfigEnvironmentOverridesDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(allEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		listen:        "0.0.0.0:1",
		capacityBytes: 1000,
		shards:        8,
		defaultTTL:    time.Minute,
		sweepInterval: 250 * time.Millisecond,
		grace:         0,
	}
	if cfg != want {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigFlagsWinOverEnvironment(t *testing.T) {
	args := []string{
		"--listen", "127.0.0.1:0",
		"--capacity-bytes", "65536",
		"--shards=65536",
		"--default-ttl-secs", "604800",
		"--sweep-interval-ms", "1",
		"--shutdown-grace-ms", "500",
	}
	cfg, err := parseConfig(args, envOf(allEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		listen:        "127.0.0.1:0",
		capacityBytes: 65536,
		shards:        65536,
		defaultTTL:    604800 * time.Second,
		sweepInterval: time.Millisecond,
		grace:         500 * time.Millisecond,
	}
	if cfg != want {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigEmptyEnvironmentVariableCountsAsUnset(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(map[string]string{"CACHE_SHARDS": ""}), io.Discard)
	if err != nil || cfg.shards != 64 {
		t.Fatalf("got %d, %v", cfg.shards, err)
	}
}

func TestConfigRejectsBadValuesNamingTheFlag(t *testing.T) {
	for _, args := range [][]string{
		{"--capacity-bytes", "0"},
		{"--capacity-bytes", "-1"},
		{"--capacity-bytes", "256MiB"},
		{"--shards", "0"},
		{"--shards", "65537"},
		{"--default-ttl-secs", "0"},
		{"--default-ttl-secs", "604801"},
		{"--sweep-interval-ms", "0"},
		{"--sweep-interval-ms", "1s"},
		{"--shutdown-grace-ms", "-1"},
	} {
		_, err := parseConfig(args, envOf(nil), io.Discard)
		if err == nil {
			t.Errorf("accepted %q", args)
			continue
		}
		if !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%q: error %q does not name the flag", args, err)
		}
	}
}

func TestConfigRejectsUnknownFlagsAndStrayArguments(t *testing.T) {
	for _, args := range [][]string{{"--nope"}, {"extra"}} {
		if _, err := parseConfig(args, envOf(nil), io.Discard); err == nil {
			t.Errorf("accepted %q", args)
		}
	}
}

func TestConfigRejectsBadEnvironmentValuesNamingTheFlag(t *testing.T) {
	_, err := parseConfig(nil, envOf(map[string]string{"CACHE_SHARDS": "many"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--shards") {
		t.Fatalf("err %v", err)
	}
}

func TestConfigHiddenFaultFlagParsesButStaysOutOfHelp(t *testing.T) {
	cfg, err := parseConfig([]string{"--debug-extra-cpu-us", "25"}, envOf(nil), io.Discard)
	if err != nil || cfg.extraCPU != 25*time.Microsecond {
		t.Fatalf("got %v, %v; want 25µs", cfg.extraCPU, err)
	}
	if _, err := parseConfig([]string{"--debug-extra-cpu-us", "-1"}, envOf(nil), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--debug-extra-cpu-us") {
		t.Fatalf("a negative value: err %v", err)
	}
	var help strings.Builder
	if _, err := parseConfig([]string{"-help"}, envOf(nil), &help); err == nil {
		t.Fatal("-help must stop parsing")
	}
	if !strings.Contains(help.String(), "-shards") || strings.Contains(help.String(), "debug") {
		t.Fatalf("help must list the flags without the hidden one:\n%s", help.String())
	}
}

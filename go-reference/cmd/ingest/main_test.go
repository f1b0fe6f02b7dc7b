package main

import (
	"io"
	"reflect"
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
		listen:         "127.0.0.1:8080",
		brokers:        []string{"127.0.0.1:9092"},
		topic:          "events",
		produceTimeout: 5 * time.Second,
		linger:         5 * time.Millisecond,
		grace:          10 * time.Second,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

var allEnv = map[string]string{
	"INGEST_LISTEN":             "0.0.0.0:1",
	"INGEST_KAFKA_BROKERS":      "a:1,b:2",
	"INGEST_TOPIC":              "env-topic",
	"INGEST_PRODUCE_TIMEOUT_MS": "100",
	"INGEST_LINGER_MS":          "0",
	"INGEST_SHUTDOWN_GRACE_MS":  "200",
}

func TestConfigEnvironmentOverridesDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(allEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		listen:         "0.0.0.0:1",
		brokers:        []string{"a:1", "b:2"},
		topic:          "env-topic",
		produceTimeout: 100 * time.Millisecond,
		linger:         0,
		grace:          200 * time.Millisecond,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigFlagsWinOverEnvironment(t *testing.T) {
	args := []string{
		"--listen", "127.0.0.1:0",
		"--kafka-brokers", "c:3, d:4",
		"--topic=flag-topic",
		"--produce-timeout-ms", "2000",
		"--linger-ms", "7",
		"--shutdown-grace-ms", "0",
	}
	cfg, err := parseConfig(args, envOf(allEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		listen:         "127.0.0.1:0",
		brokers:        []string{"c:3", "d:4"},
		topic:          "flag-topic",
		produceTimeout: 2 * time.Second,
		linger:         7 * time.Millisecond,
		grace:          0,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigEmptyEnvironmentVariableCountsAsUnset(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(map[string]string{"INGEST_TOPIC": ""}), io.Discard)
	if err != nil || cfg.topic != "events" {
		t.Fatalf("got %q, %v", cfg.topic, err)
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	for name, args := range map[string][]string{
		"non-numeric timeout":  {"--produce-timeout-ms", "5s"},
		"zero produce timeout": {"--produce-timeout-ms", "0"},
		"negative linger":      {"--linger-ms", "-1"},
		"negative grace":       {"--shutdown-grace-ms", "-1"},
		"no brokers":           {"--kafka-brokers", " , "},
		"empty topic":          {"--topic", ""},
		"unknown flag":         {"--nope"},
		"stray argument":       {"extra"},
	} {
		if _, err := parseConfig(args, envOf(nil), io.Discard); err == nil {
			t.Errorf("%s: accepted %q", name, args)
		}
	}
}

func TestConfigRejectsBadEnvironmentValues(t *testing.T) {
	if _, err := parseConfig(nil, envOf(map[string]string{"INGEST_LINGER_MS": "abc"}), io.Discard); err == nil {
		t.Fatal("accepted INGEST_LINGER_MS=abc")
	}
}

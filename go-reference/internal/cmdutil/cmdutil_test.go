package cmdutil

import (
	"testing"
	"time"
)

func TestEnvTreatsEmptyAsUnset(t *testing.T) {
	env := Env(func(name string) string { return map[string]string{"SET": "x", "EMPTY": ""}[name] })
	if got := env("SET", "d"); got != "x" {
		t.Errorf("SET = %q", got)
	}
	if got := env("EMPTY", "d"); got != "d" {
		t.Errorf("EMPTY = %q", got)
	}
}

func TestIntegerChecksRangeAndNamesTheFlag(t *testing.T) {
	if n, err := Integer("shards", "64", 1, 65536); err != nil || n != 64 {
		t.Fatalf("got %d, %v", n, err)
	}
	for _, bad := range []string{"0", "65537", "x", "", "1.5"} {
		if _, err := Integer("shards", bad, 1, 65536); err == nil || err.Error()[:9] != "--shards:" {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestMillisParsesWholeMilliseconds(t *testing.T) {
	if d, err := Millis("linger-ms", "5", 0); err != nil || d != 5*time.Millisecond {
		t.Fatalf("got %v, %v", d, err)
	}
	if _, err := Millis("produce-timeout-ms", "0", 1); err == nil {
		t.Error("0 accepted below least 1")
	}
}

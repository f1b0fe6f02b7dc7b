package cache

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

func TestBurnCPUUsesTheAskedCPUTimeAndNotMuchMore(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := threadCPU()
	if err != nil {
		t.Fatal(err)
	}
	BurnCPU(20 * time.Millisecond)
	after, _ := threadCPU()
	used := after - before
	if used < 20*time.Millisecond || used >= 40*time.Millisecond {
		t.Fatalf("burned %v of thread CPU, want 20 ms (under 40 ms)", used)
	}
}

func TestExtraCPUCostsEachRequestThatMuchCPU(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	slowed, err := ExtraCPU(ok, 15*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// ServeHTTP runs on this (locked) goroutine's thread.
	cpuOf := func(h http.Handler) time.Duration {
		before, _ := threadCPU()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("status %d, want 204: the wrapped handler must still answer", rec.Code)
		}
		after, _ := threadCPU()
		return after - before
	}
	if plain := cpuOf(ok); plain >= 5*time.Millisecond {
		t.Fatalf("plain request used %v of CPU", plain)
	}
	if got := cpuOf(slowed); got < 15*time.Millisecond || got >= 35*time.Millisecond {
		t.Fatalf("slowed request used %v of CPU, want 15 ms (under 35 ms)", got)
	}
}

package cache

import (
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Fault injection for the harness's own tests (the Rust twin's
// rust-services/session-cache/src/faults.rs has the same flag and says the
// same): a deliberately regressed build, made from the normal one by the
// hidden --debug-extra-cpu-us, for `parallax gate` to catch.
//
// Every request first burns a fixed amount of the CPU time of the OS thread
// serving it. Not a sleep: the gate compares CPU-seconds per request from
// each backend's cgroup, and a sleep costs none; a fixed wall-clock delay
// is also a smaller share of what a loaded machine measures. Spinning until
// the thread's own CPU clock (CLOCK_THREAD_CPUTIME_ID) has advanced d adds
// d of CPU per request whatever the load, since descheduled time does not
// count. The goroutine is locked to its thread while it spins, so the
// thread's clock is this goroutine's alone (a preempted, locked goroutine's
// thread runs nothing else). The work is an FNV-1a-style hash chain, each
// round depending on the last, its result stored atomically so the compiler
// cannot drop it; the clock is read every roundsPerCheck rounds.

// roundsPerCheck is the number of hash rounds between two clock readings.
const roundsPerCheck = 256

// burnSink keeps the hash chain's result alive.
var burnSink atomic.Uint64

// ExtraCPU wraps next so that every request first burns d of its thread's
// CPU time. It fails when the thread CPU clock cannot be read here.
func ExtraCPU(next http.Handler, d time.Duration) (http.Handler, error) {
	if _, err := threadCPU(); err != nil {
		return nil, fmt.Errorf("--debug-extra-cpu-us needs the thread CPU clock: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		BurnCPU(d)
		next.ServeHTTP(w, r)
	}), nil
}

// BurnCPU spins until the calling goroutine's thread has used d more CPU
// time, and returns the hash chain's value.
func BurnCPU(d time.Duration) uint64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, _ := threadCPU()
	h := uint64(0xcbf29ce484222325)
	for {
		for i := uint64(0); i < roundsPerCheck; i++ {
			h = (h ^ i) * 0x100000001b3
		}
		burnSink.Store(h)
		if now, _ := threadCPU(); now-start >= d {
			return h
		}
	}
}

// threadCPU is the calling thread's CPU time (user + system) so far.
func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

package cache

import (
	"context"
	"runtime"
	"time"
)

// sweepBatch bounds the entries the sweep examines per hold of a shard's
// lock. Examining one is a few nanoseconds, so a request waiting for the
// lock waits at most a few microseconds behind the sweep.
const sweepBatch = 256

// RunSweeper calls Sweep every interval until ctx is done. Run it on its own
// goroutine; it returns once ctx is done (not in the middle of a sweep).
func (s *Store) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	s.runSweeper(ctx, t.C)
}

// runSweeper sweeps on every tick until ctx is done; tests drive the ticks.
func (s *Store) runSweeper(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			s.Sweep()
		}
	}
}

// Sweep removes expired entries from every shard, one shard at a time, and
// returns how many it removed (each counted as an expired eviction).
//
// It walks each shard's LRU list from the back and never holds a shard's
// lock for more than sweepBatch entries: between batches it unlocks and
// yields so requests waiting on the shard go first. One pass examines at
// most as many entries as the shard held when the pass began, so it ends
// even under constant writes; an entry it misses is found by the next pass,
// or on access.
func (s *Store) Sweep() (removed int) {
	for i := range s.shards {
		removed += s.shards[i].sweep(s.now, sweepBatch)
	}
	return removed
}

func (sh *shard) sweep(clock func() time.Time, batch int) (removed int) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	budget := sh.lru.Len()
	el := sh.lru.Back()
	for el != nil && budget > 0 {
		now := clock()
		for n := 0; el != nil && n < batch && budget > 0; n++ {
			budget--
			prev := el.Prev()
			if el.Value.(*entry).expired(now) {
				sh.evict(el, now)
				removed++
			}
			el = prev
		}
		if el == nil || budget == 0 {
			break
		}
		sh.mu.Unlock()
		runtime.Gosched() // let the goroutine the unlock woke take the lock
		sh.mu.Lock()
		// el may have left the list while the lock was free; then its
		// links are gone and the walk starts over from the back.
		if e := el.Value.(*entry); sh.items[e.id] != el {
			el = sh.lru.Back()
		}
	}
	return removed
}

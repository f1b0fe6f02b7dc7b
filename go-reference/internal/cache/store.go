package cache

import (
	"container/list"
	"errors"
	"hash/fnv"
	"strings"
	"sync"
	"time"
)

// EntryOverheadBytes is the fixed per-entry part of an entry's accounted
// size: the contract's estimate of a map slot, list links and timestamps.
const EntryOverheadBytes = 64

// ErrEntryTooLarge is Put's answer for an entry whose accounted size exceeds
// its shard's capacity. The store is left unchanged.
var ErrEntryTooLarge = errors.New("cache: entry exceeds the capacity of its shard")

// AccountedSize is what an entry counts against its shard's capacity and
// cache_bytes: len(id) + len(value) + len(content type) + 64.
func AccountedSize(id string, valueLen int, contentType string) int64 {
	return int64(len(id)) + int64(valueLen) + int64(len(contentType)) + EntryOverheadBytes
}

// Config sizes a Store.
type Config struct {
	// CapacityBytes is the total accounted size the store may hold, split
	// evenly over the shards (integer division).
	CapacityBytes int64
	// Shards is the number of independently locked shards, at least 1.
	Shards int
	// Now is the store's clock; nil means time.Now, whose readings carry
	// the monotonic clock (so wall-clock jumps do not move expiries).
	// Tests inject a fake clock.
	Now func() time.Time
}

// Store is a sharded LRU cache of values with per-entry TTLs. It is safe for
// concurrent use.
//
// An id lives in shard fnv1a64(id) mod Shards. Each shard keeps its own LRU
// list and byte count and evicts only its own entries, so operations on
// different shards never contend.
type Store struct {
	shards   []shard
	capacity int64 // of each shard
	now      func() time.Time
}

// shard is one independently locked part of the store.
type shard struct {
	// mu guards every field below. A plain Mutex rather than an RWMutex:
	// a GET hit moves its entry to the front of the LRU list, so every
	// operation writes. Critical sections are O(1) map and list updates;
	// nothing is copied or allocated in bulk under it (values are shared,
	// not copied, see Get), and the sweep gives it up every sweepBatch
	// entries.
	mu sync.Mutex
	// items maps an id to its element of lru.
	items map[string]*list.Element
	// lru holds *entry values, most recently used at the front.
	lru   list.List
	bytes int64
	// evictions counts entries the cache removed by itself, by reason.
	evictedCapacity uint64
	evictedExpired  uint64

	// Keeps neighbouring shards' locks and counters off one cache line.
	_ [64]byte
}

type entry struct {
	id          string
	value       []byte // never modified once stored: readers share it
	contentType string
	expires     time.Time
	size        int64
}

// expired reports whether e has expired at now: now ≥ expiry.
func (e *entry) expired(now time.Time) bool { return !now.Before(e.expires) }

// NewStore returns an empty store. It panics if cfg.Shards < 1 or
// cfg.CapacityBytes < 0: callers validate configuration first.
func NewStore(cfg Config) *Store {
	if cfg.Shards < 1 || cfg.CapacityBytes < 0 {
		panic("cache: NewStore needs Shards >= 1 and CapacityBytes >= 0")
	}
	s := &Store{
		shards:   make([]shard, cfg.Shards),
		capacity: cfg.CapacityBytes / int64(cfg.Shards),
		now:      cfg.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.shards {
		s.shards[i].items = make(map[string]*list.Element)
	}
	return s
}

// ShardCapacity is the accounted size each shard may hold.
func (s *Store) ShardCapacity() int64 { return s.capacity }

// fnv1a64 is the 64-bit FNV-1a hash of id (offset basis 0xcbf29ce484222325,
// prime 0x100000001b3). hash/fnv's hasher is devirtualized and inlined here,
// and the []byte conversion does not copy: no allocation.
func fnv1a64(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id)) // hash.Hash never returns an error
	return h.Sum64()
}

// shardIndex is the shard of id among n: fnv1a64(id) mod n.
func shardIndex(id string, n int) int {
	return int(fnv1a64(id) % uint64(n))
}

func (s *Store) shardOf(id string) *shard {
	return &s.shards[shardIndex(id, len(s.shards))]
}

// Put stores value under id with the given content type, expiring ttl from
// now, and makes it its shard's most recently used entry. An existing entry
// under id is replaced (value, content type and expiry); if it had expired,
// it counts as an expired eviction, so every expired entry is counted
// exactly once whichever way it leaves. Put keeps value: the caller must not
// modify it afterwards.
//
// Then, while the shard holds more than its capacity, its least recently
// used entry other than the one just written is evicted (reason capacity,
// or expired if it had expired).
//
// An entry larger than a whole shard is refused with ErrEntryTooLarge and
// leaves any existing entry under id untouched.
func (s *Store) Put(id string, value []byte, contentType string, ttl time.Duration) error {
	size := AccountedSize(id, len(value), contentType)
	if size > s.capacity {
		return ErrEntryTooLarge
	}
	now := s.now()
	expires := now.Add(ttl)
	sh := s.shardOf(id)

	sh.mu.Lock()
	defer sh.mu.Unlock()
	written, ok := sh.items[id]
	if ok {
		e := written.Value.(*entry)
		if e.expired(now) {
			// PUT is an access too: the expired entry leaves (counted once,
			// as on GET or DELETE) and the new one takes its place.
			sh.evictedExpired++
		}
		sh.bytes += size - e.size
		e.value, e.contentType, e.expires, e.size = value, contentType, expires, size
		sh.lru.MoveToFront(written)
	} else {
		// The id usually points into the request line; a copy keeps the
		// map key from pinning it (and its query string) in memory.
		id = strings.Clone(id)
		written = sh.lru.PushFront(&entry{id: id, value: value, contentType: contentType, expires: expires, size: size})
		sh.items[id] = written
		sh.bytes += size
	}
	for sh.bytes > s.capacity {
		victim := sh.lru.Back()
		if victim == written {
			break // unreachable: written alone fits (size ≤ capacity)
		}
		sh.evict(victim, now)
	}
	return nil
}

// Get returns the value and content type stored under id and makes the
// entry its shard's most recently used. A missing entry, or one that has
// expired (which Get removes, counted as an expired eviction), is a miss.
//
// The returned value is shared with the store, not copied: the caller must
// not modify it. That is safe because a stored value is never modified —
// Put replaces the slice, and a reader still holding the old one keeps it
// alive.
func (s *Store) Get(id string) (value []byte, contentType string, ok bool) {
	now := s.now()
	sh := s.shardOf(id)

	sh.mu.Lock()
	defer sh.mu.Unlock()
	el, ok := sh.items[id]
	if !ok {
		return nil, "", false
	}
	e := el.Value.(*entry)
	if e.expired(now) {
		sh.evict(el, now)
		return nil, "", false
	}
	sh.lru.MoveToFront(el)
	return e.value, e.contentType, true
}

// Delete removes the entry under id and reports whether it was there. An
// expired entry is removed too, counted as an expired eviction, and reported
// as absent.
func (s *Store) Delete(id string) bool {
	now := s.now()
	sh := s.shardOf(id)

	sh.mu.Lock()
	defer sh.mu.Unlock()
	el, ok := sh.items[id]
	if !ok {
		return false
	}
	if el.Value.(*entry).expired(now) {
		sh.evict(el, now)
		return false
	}
	sh.remove(el)
	return true
}

// remove unlinks el from the shard. The caller holds sh.mu.
func (sh *shard) remove(el *list.Element) *entry {
	e := el.Value.(*entry)
	delete(sh.items, e.id)
	sh.lru.Remove(el)
	sh.bytes -= e.size
	return e
}

// evict removes el and counts it as expired if it had expired at now, else
// as a capacity eviction. The caller holds sh.mu.
func (sh *shard) evict(el *list.Element, now time.Time) {
	if sh.remove(el).expired(now) {
		sh.evictedExpired++
	} else {
		sh.evictedCapacity++
	}
}

// Stats is a snapshot of the store's size and eviction counts.
type Stats struct {
	// Entries held, expired ones included until removed.
	Entries int
	// Bytes is the accounted size of the entries held.
	Bytes int64
	// EvictedCapacity counts entries evicted to make room after a PUT.
	EvictedCapacity uint64
	// EvictedExpired counts expired entries removed on access (GET, HEAD,
	// DELETE, or a PUT replacing one), by the sweep, or as the LRU victim
	// of a PUT.
	EvictedExpired uint64
}

// Stats sums the shards' counters, locking one shard at a time: each
// shard's numbers are consistent, the total is not an atomic snapshot.
func (s *Store) Stats() Stats {
	var st Stats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st.Entries += sh.lru.Len()
		st.Bytes += sh.bytes
		st.EvictedCapacity += sh.evictedCapacity
		st.EvictedExpired += sh.evictedExpired
		sh.mu.Unlock()
	}
	return st
}

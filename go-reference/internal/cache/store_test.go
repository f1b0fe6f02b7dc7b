package cache

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a store clock that moves only when told to.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_767_225_600, 0)} }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// newTestStore returns a store on a fake clock.
func newTestStore(capacity int64, shards int) (*Store, *fakeClock) {
	clock := newFakeClock()
	return NewStore(Config{CapacityBytes: capacity, Shards: shards, Now: clock.Now}), clock
}

// Entries of the single-shard tests: a one-byte id, a 35-byte value and an
// empty content type account for exactly 100 bytes.
const (
	entry100 = 100
	hour     = time.Hour
)

func value35(tag byte) []byte { return bytes.Repeat([]byte{tag}, 35) }

func mustPut(t *testing.T, s *Store, id string, value []byte, contentType string, ttl time.Duration) {
	t.Helper()
	if err := s.Put(id, value, contentType, ttl); err != nil {
		t.Fatalf("Put(%q): %v", id, err)
	}
}

// present lists which of ids are held, without touching LRU order or
// expiring anything.
func present(s *Store, ids ...string) string {
	var held []string
	for _, id := range ids {
		sh := s.shardOf(id)
		sh.mu.Lock()
		if _, ok := sh.items[id]; ok {
			held = append(held, id)
		}
		sh.mu.Unlock()
	}
	return strings.Join(held, " ")
}

// checkInvariants verifies every shard's map, list and byte count agree.
func checkInvariants(t *testing.T, s *Store) {
	t.Helper()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		var bytes int64
		for el := sh.lru.Front(); el != nil; el = el.Next() {
			e := el.Value.(*entry)
			if sh.items[e.id] != el {
				t.Errorf("shard %d: %q in the list but not the map", i, e.id)
			}
			if shardIndex(e.id, len(s.shards)) != i {
				t.Errorf("shard %d holds %q of shard %d", i, e.id, shardIndex(e.id, len(s.shards)))
			}
			if e.size != AccountedSize(e.id, len(e.value), e.contentType) {
				t.Errorf("shard %d: %q accounted %d", i, e.id, e.size)
			}
			bytes += e.size
		}
		if len(sh.items) != sh.lru.Len() {
			t.Errorf("shard %d: map %d entries, list %d", i, len(sh.items), sh.lru.Len())
		}
		if bytes != sh.bytes {
			t.Errorf("shard %d: counted %d bytes, entries sum to %d", i, sh.bytes, bytes)
		}
		if sh.bytes > s.capacity {
			t.Errorf("shard %d: %d bytes over capacity %d", i, sh.bytes, s.capacity)
		}
		sh.mu.Unlock()
	}
}

func TestFNV1a64MatchesTheReferenceVectors(t *testing.T) {
	for in, want := range map[string]uint64{
		"":       0xcbf29ce484222325,
		"a":      0xaf63dc4c8601ec8c,
		"foobar": 0x85944171f73967e8,
	} {
		if got := fnv1a64(in); got != want {
			t.Errorf("fnv1a64(%q) = %#x, want %#x", in, got, want)
		}
	}
}

func TestShardIsFNV1a64OfTheIDModuloTheShardCount(t *testing.T) {
	if got := shardIndex("a", 64); got != 0xaf63dc4c8601ec8c%64 {
		t.Fatalf("shard of a among 64: %d", got)
	}
	if got := shardIndex("a", 1000); got != int(uint64(0xaf63dc4c8601ec8c)%1000) {
		t.Fatalf("shard of a among 1000: %d", got)
	}
	if got := shardIndex("anything", 1); got != 0 {
		t.Fatalf("shard among 1: %d", got)
	}
}

func TestAccountedSizeIsIDPlusValuePlusContentTypePlus64(t *testing.T) {
	if got := AccountedSize("abc", 10, "text/plain"); got != 3+10+10+64 {
		t.Fatalf("got %d", got)
	}
	if got := AccountedSize("a", 35, ""); got != entry100 {
		t.Fatalf("got %d", got)
	}
}

func TestShardCapacityIsTheCapacityDividedEvenlyRoundedDown(t *testing.T) {
	s, _ := newTestStore(1000, 3)
	if got := s.ShardCapacity(); got != 333 {
		t.Fatalf("got %d", got)
	}
}

func TestGetReturnsWhatPutStored(t *testing.T) {
	s, _ := newTestStore(1<<20, 4)
	mustPut(t, s, "sess-1", []byte("hello"), "text/plain", hour)
	value, ct, ok := s.Get("sess-1")
	if !ok || string(value) != "hello" || ct != "text/plain" {
		t.Fatalf("got %q %q %v", value, ct, ok)
	}
}

func TestGetOfAnUnknownIDIsAMiss(t *testing.T) {
	s, _ := newTestStore(1<<20, 4)
	if _, _, ok := s.Get("nope"); ok {
		t.Fatal("hit")
	}
}

func TestPutReplacesValueContentTypeAndTTL(t *testing.T) {
	s, clock := newTestStore(1<<20, 1)
	mustPut(t, s, "a", []byte("old"), "text/plain", time.Second)
	mustPut(t, s, "a", []byte("newer"), "application/json", hour)
	clock.Advance(time.Minute)
	value, ct, ok := s.Get("a")
	if !ok || string(value) != "newer" || ct != "application/json" {
		t.Fatalf("got %q %q %v", value, ct, ok)
	}
	if st := s.Stats(); st.Entries != 1 || st.Bytes != AccountedSize("a", 5, "application/json") {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatsCountEntriesAndAccountedBytes(t *testing.T) {
	s, _ := newTestStore(1<<20, 8)
	mustPut(t, s, "a", []byte("12345"), "text/plain", hour)
	mustPut(t, s, "bb", nil, "", hour)
	want := AccountedSize("a", 5, "text/plain") + AccountedSize("bb", 0, "")
	if st := s.Stats(); st.Entries != 2 || st.Bytes != want {
		t.Fatalf("stats %+v, want 2 entries %d bytes", st, want)
	}
	s.Delete("a")
	if st := s.Stats(); st.Entries != 1 || st.Bytes != AccountedSize("bb", 0, "") {
		t.Fatalf("stats after delete %+v", st)
	}
}

func TestDeleteRemovesTheEntryWithoutCountingAnEviction(t *testing.T) {
	s, _ := newTestStore(1<<20, 1)
	mustPut(t, s, "a", []byte("x"), "", hour)
	if !s.Delete("a") {
		t.Fatal("Delete reported absent")
	}
	if _, _, ok := s.Get("a"); ok {
		t.Fatal("still there")
	}
	if s.Delete("a") {
		t.Fatal("second Delete reported present")
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestCapacityEvictionRemovesTheLeastRecentlyWrittenEntry(t *testing.T) {
	s, _ := newTestStore(3*entry100, 1)
	for _, id := range []string{"a", "b", "c", "d"} {
		mustPut(t, s, id, value35(id[0]), "", hour)
	}
	if got := present(s, "a", "b", "c", "d"); got != "b c d" {
		t.Fatalf("held %q", got)
	}
	if st := s.Stats(); st.EvictedCapacity != 1 || st.EvictedExpired != 0 || st.Bytes != 3*entry100 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGetHitMakesAnEntryTheMostRecentlyUsed(t *testing.T) {
	s, _ := newTestStore(3*entry100, 1)
	for _, id := range []string{"a", "b", "c"} {
		mustPut(t, s, id, value35(id[0]), "", hour)
	}
	s.Get("a")
	mustPut(t, s, "d", value35('d'), "", hour)
	if got := present(s, "a", "b", "c", "d"); got != "a c d" {
		t.Fatalf("held %q", got)
	}
}

func TestAMissDoesNotChangeTheLRUOrder(t *testing.T) {
	s, _ := newTestStore(2*entry100, 1)
	mustPut(t, s, "a", value35('a'), "", hour)
	mustPut(t, s, "b", value35('b'), "", hour)
	s.Get("z")
	s.Delete("z")
	mustPut(t, s, "c", value35('c'), "", hour)
	if got := present(s, "a", "b", "c"); got != "b c" {
		t.Fatalf("held %q", got)
	}
}

func TestReplacingAnEntryMakesItTheMostRecentlyUsed(t *testing.T) {
	s, _ := newTestStore(3*entry100, 1)
	for _, id := range []string{"a", "b", "c"} {
		mustPut(t, s, id, value35(id[0]), "", hour)
	}
	mustPut(t, s, "a", value35('A'), "", hour)
	mustPut(t, s, "d", value35('d'), "", hour)
	if got := present(s, "a", "b", "c", "d"); got != "a c d" {
		t.Fatalf("held %q", got)
	}
}

func TestCapacityEvictionRemovesAsManyEntriesAsNeededOldestFirst(t *testing.T) {
	s, _ := newTestStore(3*entry100, 1)
	for _, id := range []string{"a", "b", "c"} {
		mustPut(t, s, id, value35(id[0]), "", hour)
	}
	// 150 more bytes need two of the 100-byte entries gone: a, then b.
	mustPut(t, s, "d", make([]byte, 150-65), "", hour)
	if got := present(s, "a", "b", "c", "d"); got != "c d" {
		t.Fatalf("held %q", got)
	}
	if st := s.Stats(); st.EvictedCapacity != 2 || st.Bytes != 100+150 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCapacityEvictionNeverEvictsTheEntryJustWritten(t *testing.T) {
	s, _ := newTestStore(3*entry100, 1)
	for _, id := range []string{"a", "b"} {
		mustPut(t, s, id, value35(id[0]), "", hour)
	}
	// An entry of exactly the shard's capacity fits, alone.
	mustPut(t, s, "c", make([]byte, 300-65), "", hour)
	if got := present(s, "a", "b", "c"); got != "c" {
		t.Fatalf("held %q", got)
	}
	if st := s.Stats(); st.Entries != 1 || st.Bytes != 300 || st.EvictedCapacity != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGrowingAnEntryByReplacementEvictsOthersNotItself(t *testing.T) {
	s, _ := newTestStore(3*entry100, 1)
	for _, id := range []string{"a", "b", "c"} {
		mustPut(t, s, id, value35(id[0]), "", hour)
	}
	// a is the least recently used, but it is the entry being written.
	mustPut(t, s, "a", make([]byte, 200-65), "", hour)
	if got := present(s, "a", "b", "c"); got != "a c" {
		t.Fatalf("held %q", got)
	}
}

func TestEntryLargerThanItsShardIsRefusedAndKeepsTheOldEntry(t *testing.T) {
	s, _ := newTestStore(3*entry100, 1)
	mustPut(t, s, "a", []byte("old"), "text/plain", hour)
	mustPut(t, s, "b", value35('b'), "", hour)
	if err := s.Put("a", make([]byte, 301-65), "", hour); err != ErrEntryTooLarge {
		t.Fatalf("err %v", err)
	}
	if value, ct, ok := s.Get("a"); !ok || string(value) != "old" || ct != "text/plain" {
		t.Fatalf("got %q %q %v", value, ct, ok)
	}
	if got := present(s, "a", "b"); got != "a b" {
		t.Fatalf("held %q", got)
	}
	if st := s.Stats(); st.EvictedCapacity != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEntryTooLargeCountsContentTypeAndIDToo(t *testing.T) {
	s, _ := newTestStore(100, 1)
	if err := s.Put("a", make([]byte, 35), "", hour); err != nil {
		t.Fatalf("100 bytes: %v", err)
	}
	if err := s.Put("a", make([]byte, 35), "x", hour); err != ErrEntryTooLarge {
		t.Fatalf("101 bytes via content type: %v", err)
	}
	if err := s.Put("ab", make([]byte, 35), "", hour); err != ErrEntryTooLarge {
		t.Fatalf("101 bytes via id: %v", err)
	}
}

func TestEntryTooLargeIsJudgedAgainstTheShardNotTheTotal(t *testing.T) {
	s, _ := newTestStore(400, 4) // 100 per shard
	if err := s.Put("a", make([]byte, 36), "", hour); err != ErrEntryTooLarge {
		t.Fatalf("err %v", err)
	}
}

func TestEntriesOfDifferentShardsDoNotEvictEachOther(t *testing.T) {
	// Among 2 shards, "a" and "b" hash to different ones.
	if shardIndex("a", 2) == shardIndex("b", 2) {
		t.Fatal("test ids share a shard")
	}
	s, _ := newTestStore(2*entry100, 2) // one 100-byte entry per shard
	mustPut(t, s, "a", value35('a'), "", hour)
	mustPut(t, s, "b", value35('b'), "", hour)
	if got := present(s, "a", "b"); got != "a b" {
		t.Fatalf("held %q", got)
	}
}

func TestEntryExpiresExactlyItsTTLAfterItWasWritten(t *testing.T) {
	s, clock := newTestStore(1<<20, 1)
	mustPut(t, s, "a", []byte("x"), "", 10*time.Second)
	clock.Advance(10*time.Second - time.Nanosecond)
	if _, _, ok := s.Get("a"); !ok {
		t.Fatal("expired early")
	}
	clock.Advance(time.Nanosecond)
	if _, _, ok := s.Get("a"); ok {
		t.Fatal("alive at its expiry")
	}
}

func TestGetOfAnExpiredEntryRemovesItAsAnExpiredEviction(t *testing.T) {
	s, clock := newTestStore(1<<20, 1)
	mustPut(t, s, "a", []byte("x"), "", time.Second)
	clock.Advance(time.Second)
	s.Get("a")
	if st := s.Stats(); st.Entries != 0 || st.Bytes != 0 || st.EvictedExpired != 1 || st.EvictedCapacity != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAGetHitDoesNotExtendTheTTL(t *testing.T) {
	s, clock := newTestStore(1<<20, 1)
	mustPut(t, s, "a", []byte("x"), "", 2*time.Second)
	clock.Advance(time.Second)
	s.Get("a")
	clock.Advance(time.Second)
	if _, _, ok := s.Get("a"); ok {
		t.Fatal("hit after its TTL")
	}
}

func TestDeleteOfAnExpiredEntryRemovesItAsExpiredAndReportsAbsent(t *testing.T) {
	s, clock := newTestStore(1<<20, 1)
	mustPut(t, s, "a", []byte("x"), "", time.Second)
	clock.Advance(2 * time.Second)
	if s.Delete("a") {
		t.Fatal("reported present")
	}
	if st := s.Stats(); st.Entries != 0 || st.EvictedExpired != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReplacingAnExpiredEntryCountsItAsAnExpiredEviction(t *testing.T) {
	s, clock := newTestStore(1<<20, 1)
	mustPut(t, s, "a", []byte("x"), "", time.Second)
	clock.Advance(2 * time.Second)
	mustPut(t, s, "a", []byte("yy"), "", hour)
	if value, _, ok := s.Get("a"); !ok || string(value) != "yy" {
		t.Fatalf("got %q %v", value, ok)
	}
	if st := s.Stats(); st.Entries != 1 || st.Bytes != AccountedSize("a", 2, "") || st.EvictedExpired != 1 || st.EvictedCapacity != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReplacingALiveEntryIsNotAnEviction(t *testing.T) {
	s, clock := newTestStore(1<<20, 1)
	mustPut(t, s, "a", []byte("x"), "", 2*time.Second)
	clock.Advance(time.Second)
	mustPut(t, s, "a", []byte("y"), "", hour)
	if st := s.Stats(); st.EvictedExpired != 0 || st.EvictedCapacity != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestACapacityVictimThatHadExpiredCountsAsExpired(t *testing.T) {
	s, clock := newTestStore(2*entry100, 1)
	mustPut(t, s, "a", value35('a'), "", time.Second)
	mustPut(t, s, "b", value35('b'), "", hour)
	clock.Advance(time.Second)
	mustPut(t, s, "c", value35('c'), "", hour)
	if got := present(s, "a", "b", "c"); got != "b c" {
		t.Fatalf("held %q", got)
	}
	if st := s.Stats(); st.EvictedExpired != 1 || st.EvictedCapacity != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCapacityEvictionFollowsLRUOrderNotExpiry(t *testing.T) {
	s, clock := newTestStore(2*entry100, 1)
	mustPut(t, s, "a", value35('a'), "", hour)
	mustPut(t, s, "b", value35('b'), "", time.Second)
	clock.Advance(time.Second)
	// b has expired but a is the least recently used: a goes.
	mustPut(t, s, "c", value35('c'), "", hour)
	if got := present(s, "a", "b", "c"); got != "b c" {
		t.Fatalf("held %q", got)
	}
	if st := s.Stats(); st.EvictedCapacity != 1 || st.EvictedExpired != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSweepRemovesExactlyTheExpiredEntriesAsExpiredEvictions(t *testing.T) {
	s, clock := newTestStore(1<<20, 4)
	mustPut(t, s, "short-1", []byte("x"), "", time.Second)
	mustPut(t, s, "short-2", []byte("x"), "", 2*time.Second)
	mustPut(t, s, "long", []byte("x"), "", hour)
	clock.Advance(2 * time.Second)
	if n := s.Sweep(); n != 2 {
		t.Fatalf("swept %d", n)
	}
	if got := present(s, "short-1", "short-2", "long"); got != "long" {
		t.Fatalf("held %q", got)
	}
	if st := s.Stats(); st.Entries != 1 || st.EvictedExpired != 2 || st.Bytes != AccountedSize("long", 1, "") {
		t.Fatalf("stats %+v", st)
	}
}

func TestSweepCoversAShardOfManyBatches(t *testing.T) {
	s, clock := newTestStore(1<<30, 1)
	const n = 10*sweepBatch + 7
	for i := range n {
		ttl := hour
		if i%3 == 0 {
			ttl = time.Second
		}
		mustPut(t, s, fmt.Sprintf("id-%d", i), []byte("x"), "", ttl)
	}
	clock.Advance(time.Second)
	if got, want := s.Sweep(), (n+2)/3; got != want {
		t.Fatalf("swept %d, want %d", got, want)
	}
	if st := s.Stats(); st.Entries != n-(n+2)/3 {
		t.Fatalf("stats %+v", st)
	}
	checkInvariants(t, s)
}

func TestSweepLeavesLRUOrderAlone(t *testing.T) {
	s, _ := newTestStore(2*entry100, 1)
	mustPut(t, s, "a", value35('a'), "", hour)
	mustPut(t, s, "b", value35('b'), "", hour)
	s.Sweep()
	mustPut(t, s, "c", value35('c'), "", hour)
	if got := present(s, "a", "b", "c"); got != "b c" {
		t.Fatalf("held %q", got)
	}
}

func TestSweeperSweepsOnEveryTickAndStopsWithItsContext(t *testing.T) {
	s, clock := newTestStore(1<<20, 4)
	mustPut(t, s, "a", []byte("x"), "", time.Second)
	mustPut(t, s, "b", []byte("x"), "", 3*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time) // unbuffered: a send returns once the sweeper took it
	done := make(chan struct{})
	go func() {
		s.runSweeper(ctx, tick)
		close(done)
	}()

	clock.Advance(time.Second)
	tick <- time.Time{}
	tick <- time.Time{} // taken only once the first sweep finished
	if got := present(s, "a", "b"); got != "b" {
		t.Fatalf("after one sweep: held %q", got)
	}
	cancel()
	<-done
}

func TestStoreStaysConsistentUnderConcurrentUse(t *testing.T) {
	// Real clock; a third of the writes expire at once, so gets, deletes,
	// capacity evictions and sweeps all race on two shards, each holding
	// more entries than one sweep batch.
	const keys, workers, ops = 4096, 8, 20000
	s := NewStore(Config{CapacityBytes: keys * 100, Shards: 2})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range ops {
				id := fmt.Sprintf("k%d", rng.IntN(keys))
				switch r := rng.IntN(10); {
				case r < 5:
					ttl := hour
					if rng.IntN(3) == 0 {
						ttl = time.Nanosecond
					}
					_ = s.Put(id, make([]byte, rng.IntN(100)), "text/plain", ttl)
				case r < 8:
					s.Get(id)
				default:
					s.Delete(id)
				}
			}
		})
	}
	stop := make(chan struct{})
	var sweeps sync.WaitGroup
	sweeps.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				s.Sweep()
			}
		}
	})
	wg.Wait()
	close(stop)
	sweeps.Wait()
	checkInvariants(t, s)
}

package cache

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// The warm-cache workload, mirrored by the Rust twin's criterion bench.
const (
	benchKeys       = 100_000
	benchValueBytes = 512
	benchShards     = 64
	benchCapacity   = 256 << 20 // every key fits: no capacity evictions
	benchGetPercent = 90
)

// BenchmarkStoreWarm90PercentGets is the store under the session-cache's
// typical load, without HTTP: 100,000 keys ("session-000000"…) already
// written with 512-byte values, content type application/json and a one-hour
// TTL, in the default 64 shards and 256 MiB; then each operation picks a key
// uniformly at random and is a Get (90%) or a Put replacing it with a value
// of the same size (10%). It runs on every P (b.RunParallel), so ops/s is
// for the whole machine; vary it with -cpu.
func BenchmarkStoreWarm90PercentGets(b *testing.B) {
	s := NewStore(Config{CapacityBytes: benchCapacity, Shards: benchShards})
	keys := make([]string, benchKeys)
	value := bytes.Repeat([]byte{'v'}, benchValueBytes)
	for i := range keys {
		keys[i] = fmt.Sprintf("session-%06d", i)
		if err := s.Put(keys[i], value, "application/json", time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 0x5eed))
		for pb.Next() {
			key := keys[rng.IntN(benchKeys)]
			if rng.IntN(100) < benchGetPercent {
				if _, _, ok := s.Get(key); !ok {
					b.Error("miss on a warm cache")
					return
				}
			} else if err := s.Put(key, value, "application/json", time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	if st := s.Stats(); st.Entries != benchKeys || st.EvictedCapacity+st.EvictedExpired != 0 {
		b.Fatalf("stats %+v", st)
	}
}

//! The cache on a warm working set, 90% GET / 10% PUT, without HTTP: twin of
//! Go's `BenchmarkStoreWarm90PercentGets` (go-reference/internal/cache).
//!
//! Same workload: 100,000 ids `session-000000`… already written with
//! 512-byte values, content type `application/json` and a one-hour TTL, in
//! the default 64 shards and 256 MiB (everything fits: no evictions); each
//! operation picks an id uniformly at random and is a GET (90%) or a PUT
//! replacing it with a value of the same size (10%).
//!
//! - `warm_90_get/1_thread`: one thread; compare with
//!   `go test ./internal/cache -bench StoreWarm90PercentGets -cpu 1`.
//! - `warm_90_get/all_threads`: one thread per CPU, like Go's
//!   `b.RunParallel` at the default `-cpu`; time per operation is for the
//!   whole machine, so ops/s = 1 / time.
//!
//! `cargo bench -p parallax-session-cache --bench cache`

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use parallax_session_cache::shard::Lookup;
use parallax_session_cache::Cache;

const KEYS: usize = 100_000;
const VALUE_BYTES: usize = 512;
const SHARDS: u32 = 64;
const CAPACITY_BYTES: u64 = 256 << 20;
const GET_PERCENT: u64 = 90;
const TTL: Duration = Duration::from_secs(3600);
const CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/json");

/// A warm cache, its ids and one value per id.
///
/// Each id has its own value allocation, as in the service (where every PUT
/// body is its own): one `Bytes` shared by all ids would put every GET's
/// reference-count update on one cache line and measure that line bouncing
/// between cores instead of the cache.
struct Workload {
    cache: Cache,
    keys: Vec<String>,
    values: Vec<Bytes>,
}

impl Workload {
    fn new() -> Self {
        let cache = Cache::new(CAPACITY_BYTES, SHARDS);
        let keys: Vec<String> = (0..KEYS).map(|i| format!("session-{i:06}")).collect();
        let values: Vec<Bytes> = (0..KEYS)
            .map(|_| Bytes::from(vec![b'v'; VALUE_BYTES]))
            .collect();
        for (key, value) in keys.iter().zip(&values) {
            cache.put(key, value.clone(), CONTENT_TYPE, TTL).unwrap();
        }
        Self {
            cache,
            keys,
            values,
        }
    }

    /// One operation chosen by `r`, a uniformly random number.
    fn op(&self, r: u64) {
        let i = (r >> 8) as usize % KEYS;
        let key = &self.keys[i];
        if (r & 0xff) % 100 < GET_PERCENT {
            match self.cache.get(key) {
                Lookup::Hit(hit) => {
                    std::hint::black_box(hit);
                }
                other => panic!("miss on a warm cache: {other:?}"),
            }
        } else {
            self.cache
                .put(key, self.values[i].clone(), CONTENT_TYPE, TTL)
                .unwrap();
        }
    }

    fn check(&self) {
        let stats = self.cache.stats();
        assert_eq!(stats.entries, KEYS as u64);
        assert_eq!(stats.evicted_capacity + stats.evicted_expired, 0);
    }
}

/// splitmix64: a cheap, well-mixed generator, one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn warm_90_get(c: &mut Criterion) {
    let work = Workload::new();
    let mut group = c.benchmark_group("warm_90_get");
    group.throughput(Throughput::Elements(1));

    let mut rng = Rng(1);
    group.bench_function("1_thread", |b| b.iter(|| work.op(rng.next())));

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seed = AtomicU64::new(1);
    group.bench_function("all_threads", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(threads as u64);
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    let mut rng = Rng(seed.fetch_add(1, Ordering::Relaxed) << 32);
                    let work = &work;
                    s.spawn(move || {
                        for _ in 0..per_thread {
                            work.op(rng.next());
                        }
                    });
                }
            });
            // Time per operation for the machine as a whole, times `iters`.
            let ops = (per_thread * threads as u64) as f64;
            Duration::from_secs_f64(started.elapsed().as_secs_f64() * iters as f64 / ops)
        })
    });
    group.finish();
    work.check();
}

criterion_group!(benches, warm_90_get);
criterion_main!(benches);

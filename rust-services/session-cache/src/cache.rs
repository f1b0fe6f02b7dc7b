//! The sharded cache: which shard holds an id, one lock per shard, and the
//! totals the metrics report.
//!
//! The shard of an id is `fnv1a64(id) mod shards`, fixed by the contract so
//! the Go twin puts every id in the same shard and evicts the same entries.
//! (The article's snippet hashed with a fresh `ahash::RandomState` per
//! lookup, which sends the same key to a random shard each time.)
//!
//! # Locking
//! Each shard sits behind its own `parking_lot::Mutex`. Not a `RwLock`:
//! every operation, GET included, reorders the LRU list, so all of them
//! write. Not an async mutex: no `.await` ever happens while a shard is
//! locked — each method here locks, does O(1) work on plain data, and
//! unlocks — so a blocking lock is both correct and cheaper (mini-redis
//! makes the same choice for its map). The clock is read before locking.

use std::time::Duration;

use axum::http::HeaderValue;
use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::time::Instant;

use crate::shard::{EntryTooLarge, Lookup, Removal, Shard, Stats};

/// FNV-1a offset basis (64-bit).
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a prime (64-bit).
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET_BASIS;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// A shard's lock on cache lines of its own, so two cores working on
/// neighbouring shards do not bounce one line between them (128 bytes:
/// x86 prefetches lines in pairs).
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// A byte-bounded, sharded LRU cache with per-entry TTLs.
pub struct Cache {
    shards: Box<[Padded]>,
    shard_capacity: u64,
}

impl Cache {
    /// A cache of `shards` shards holding `capacity_bytes / shards` accounted
    /// bytes each.
    ///
    /// # Panics
    /// When `shards` is 0 (the config refuses it at start-up).
    pub fn new(capacity_bytes: u64, shards: u32) -> Self {
        assert!(shards > 0, "a cache needs at least one shard");
        let shard_capacity = capacity_bytes / u64::from(shards);
        Self {
            shards: (0..shards)
                .map(|_| Padded(Mutex::new(Shard::new(shard_capacity))))
                .collect(),
            shard_capacity,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Accounted bytes each shard may hold.
    pub fn shard_capacity(&self) -> u64 {
        self.shard_capacity
    }

    /// The shard that holds `id`: `fnv1a64(id) mod shards`.
    pub fn shard_of(&self, id: &str) -> usize {
        (fnv1a64(id.as_bytes()) % self.shards.len() as u64) as usize
    }

    /// Looks `id` up; see [`Shard::get`].
    pub fn get(&self, id: &str) -> Lookup {
        let now = Instant::now();
        self.lock(id).get(id, now)
    }

    /// Stores `value` under `id` for `ttl`; see [`Shard::put`].
    pub fn put(
        &self,
        id: &str,
        value: Bytes,
        content_type: HeaderValue,
        ttl: Duration,
    ) -> Result<(), EntryTooLarge> {
        let now = Instant::now();
        self.lock(id).put(id, value, content_type, now + ttl, now)
    }

    /// Removes `id`; see [`Shard::remove`].
    pub fn remove(&self, id: &str) -> Removal {
        let now = Instant::now();
        self.lock(id).remove(id, now)
    }

    /// One bounded slice of the expiry sweep of shard `shard`; see
    /// [`Shard::sweep`]. The lock is held for that slice only.
    pub fn sweep_slice(&self, shard: usize, from: usize, budget: usize) -> Option<usize> {
        let now = Instant::now();
        self.shards[shard].0.lock().sweep(from, budget, now)
    }

    /// Totals over all shards, each locked briefly in turn (so the sum is
    /// not one atomic snapshot — fine for metrics).
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for shard in self.shards.iter() {
            total += shard.0.lock().stats();
        }
        total
    }

    fn lock(&self, id: &str) -> MutexGuard<'_, Shard> {
        self.shards[self.shard_of(id)].0.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCTET: HeaderValue = HeaderValue::from_static("application/octet-stream");
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_shard_is_fnv1a64_of_the_id_mod_the_shard_count() {
        let cache = Cache::new(1 << 20, 64);
        for id in ["a", "abc", "session-42", "~._-"] {
            assert_eq!(
                cache.shard_of(id) as u64,
                fnv1a64(id.as_bytes()) % 64,
                "{id}"
            );
        }
        // 0xaf63dc4c8601ec8c mod 7 = 5: the same on every run and both twins.
        assert_eq!(Cache::new(700, 7).shard_of("a"), 5);
    }

    #[test]
    fn the_same_id_always_lands_on_the_same_shard() {
        let cache = Cache::new(1 << 20, 256);
        let first = cache.shard_of("user-1234");
        assert!((0..100).all(|_| cache.shard_of("user-1234") == first));
    }

    #[test]
    fn capacity_is_split_evenly_with_integer_division() {
        let cache = Cache::new(1000, 3);
        assert_eq!(cache.shard_capacity(), 333);
        assert_eq!(cache.shard_count(), 3);
    }

    #[tokio::test]
    async fn entries_of_different_shards_do_not_evict_each_other() {
        let cache = Cache::new(2 * 200, 2);
        // Find two ids per shard.
        let mut by_shard: [Vec<String>; 2] = Default::default();
        for i in 0.. {
            let id = format!("id{i}");
            let shard = cache.shard_of(&id);
            if by_shard[shard].len() < 2 {
                by_shard[shard].push(id);
            }
            if by_shard.iter().all(|ids| ids.len() == 2) {
                break;
            }
        }
        let value = Bytes::from(vec![0; 80]);
        for id in by_shard.iter().flatten() {
            cache.put(id, value.clone(), OCTET, HOUR).unwrap();
        }
        // Each shard (200 bytes) holds one ~170-byte entry: the second
        // PUT in a shard evicted the first of that shard only.
        let stats = cache.stats();
        assert_eq!(stats.entries, 2);
        assert_eq!(stats.evicted_capacity, 2);
        for ids in &by_shard {
            assert_eq!(cache.get(&ids[0]), Lookup::Miss);
            assert!(matches!(cache.get(&ids[1]), Lookup::Hit(_)));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_runs_on_the_monotonic_clock() {
        let cache = Cache::new(1 << 20, 4);
        cache
            .put("k", Bytes::from_static(b"v"), OCTET, Duration::from_secs(2))
            .unwrap();
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(matches!(cache.get("k"), Lookup::Hit(_)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get("k"), Lookup::Expired);
    }

    #[test]
    fn stats_sum_over_shards() {
        let cache = Cache::new(1 << 20, 8);
        for i in 0..100 {
            cache
                .put(&format!("k{i}"), Bytes::from_static(b"1234"), OCTET, HOUR)
                .unwrap();
        }
        let stats = cache.stats();
        assert_eq!(stats.entries, 100);
        let id_bytes: u64 = (0..100).map(|i| format!("k{i}").len() as u64).sum();
        assert_eq!(stats.bytes, id_bytes + 100 * (4 + 24 + 64));
    }
}

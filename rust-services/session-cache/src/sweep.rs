//! The background expiry sweep.
//!
//! Expired entries are removed lazily when touched, but an entry nobody asks
//! for again would sit in memory until LRU pressure reached it; the sweep
//! removes them every `--sweep-interval-ms`.
//!
//! # Bounded lock holds
//! A pass visits the shards one after another, and within a shard scans its
//! slab in slices of [`SLICE_SLOTS`] slots, taking the shard's lock for one
//! slice at a time and yielding to the runtime between slices (see
//! [`Shard::sweep`](crate::shard::Shard::sweep)). A request waits behind at
//! most one slice: 256 expiry comparisons plus the removals among them.
//! Cost: one comparison per slot per pass — O(live + vacant slots) per
//! interval, a few nanoseconds each — and nothing added to the request path
//! (an expiry index would cost O(log n) on every PUT instead).
//!
//! # Lifetime
//! [`spawn`] returns a [`Sweeper`] guard that owns the task: dropping it
//! stops the sweep, as mini-redis's `DbDropGuard` stops its purge task, so
//! no test or shutdown path can leak a task that keeps the cache alive.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;

use crate::cache::Cache;

/// Slots scanned per lock hold.
pub const SLICE_SLOTS: usize = 256;

/// Owns the sweep task; dropping it stops the task.
#[derive(Debug)]
pub struct Sweeper {
    /// Dropping (or sending on) this ends the task at its next await.
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts sweeping `cache` every `every` on the current tokio runtime.
///
/// # Panics
/// Outside a tokio runtime, or when `every` is zero.
pub fn spawn(cache: Arc<Cache>, every: Duration) -> Sweeper {
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let mut ticks = tokio::time::interval(every);
    // After a long pass, wait a full interval rather than catching up.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::spawn(async move {
        ticks.tick().await; // the first tick is immediate: skip it
        loop {
            tokio::select! {
                _ = &mut stop_rx => return,
                _ = ticks.tick() => {}
            }
            // Dropping a pass midway is safe: no lock is held across an await.
            tokio::select! {
                _ = &mut stop_rx => return,
                () = sweep_once(&cache) => {}
            }
        }
    });
    Sweeper {
        stop: Some(stop_tx),
    }
}

/// One full pass over every shard, a slice at a time.
pub async fn sweep_once(cache: &Cache) {
    for shard in 0..cache.shard_count() {
        let mut from = 0;
        while let Some(next) = cache.sweep_slice(shard, from, SLICE_SLOTS) {
            from = next;
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use bytes::Bytes;

    use super::*;
    use crate::shard::Lookup;

    const OCTET: HeaderValue = HeaderValue::from_static("application/octet-stream");

    fn put(cache: &Cache, id: &str, ttl_secs: u64) {
        cache
            .put(
                id,
                Bytes::from_static(b"v"),
                OCTET,
                Duration::from_secs(ttl_secs),
            )
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_removes_expired_entries_without_access() {
        let cache = Arc::new(Cache::new(1 << 20, 4));
        put(&cache, "short", 2);
        put(&cache, "long", 60);
        let _sweeper = spawn(cache.clone(), Duration::from_secs(1));

        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(cache.stats().entries, 2, "nothing expired at 1 s");

        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = cache.stats();
        assert_eq!(stats.entries, 1, "the 2 s entry went in the 2 s pass");
        assert_eq!(stats.evicted_expired, 1);
        assert!(matches!(cache.get("long"), Lookup::Hit(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn one_pass_covers_shards_larger_than_a_slice() {
        let cache = Cache::new(1 << 30, 2);
        for i in 0..(3 * SLICE_SLOTS) {
            put(&cache, &format!("k{i}"), 1);
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        sweep_once(&cache).await;
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.stats().evicted_expired, 3 * SLICE_SLOTS as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_guard_stops_the_task() {
        let cache = Arc::new(Cache::new(1 << 20, 1));
        let sweeper = spawn(cache.clone(), Duration::from_millis(10));
        assert_eq!(Arc::strong_count(&cache), 2, "the task holds the cache");
        drop(sweeper);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(Arc::strong_count(&cache), 1, "the task ended");
    }
}

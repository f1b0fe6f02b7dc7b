//! One shard: a map, an O(1) LRU list, byte accounting and TTLs.
//!
//! A shard is plain single-threaded data; [`cache`](crate::cache) puts each
//! one behind its own lock. It never reads a clock: every operation takes
//! `now`, so its tests state time explicitly and never sleep.
//!
//! # Why not a cache crate
//! The contract fixes the eviction order to what a Go `map` plus
//! `container/list` does — strict LRU, PUT/GET/HEAD hits move to the front,
//! evict from the back but never the entry just written — and the
//! conformance suite compares the two twins' evictions. It also fixes the
//! weight of an entry (`len(id) + len(value) + len(content_type) + 64`) and
//! needs per-entry TTLs with a sweep that holds the lock only for bounded
//! slices of work. Against that:
//! - `moka` admits by TinyLFU (a new entry may be rejected or evict a
//!   different one than LRU would) and applies evictions and expiry
//!   asynchronously from its own maintenance — not reproducible by the Go twin.
//! - `quick_cache` is weighted, but evicts by CLOCK-PRO/S3-FIFO-style
//!   hot/cold queues, not LRU order; it has no TTL.
//! - `lru` has exactly the right order and O(1) operations, and
//!   `LruCache::unbounded()` plus our own byte counter would give the
//!   capacity rule. What it lacks is a stable handle on an entry: a sweep
//!   can only walk the list with one borrow — the whole shard under one lock
//!   hold — or keep a second index of expiry times that copies every key.
//!
//! So the shard is our own, in ~200 lines without `unsafe`: entries live in
//! a slab (`Vec` of slots, reused through a free list) and are chained into
//! a doubly linked recency list by slot number. Slot numbers are stable, so
//! the sweep scans the slab in bounded batches and resumes at a slot number
//! after releasing the lock (see [`Shard::sweep`]). The key → slot index is
//! a `hashbrown::HashTable<u32>` that hashes the key stored in the slot, so
//! each key is stored once, and is seeded once per shard (the article's
//! snippet built a new random hasher per lookup).
//!
//! Every request-path operation is O(1): one hash lookup plus a constant
//! number of link updates; a PUT additionally evicts as many entries as it
//! must to fit, each in O(1).

use std::hash::BuildHasher;
use std::ops::AddAssign;

use axum::http::HeaderValue;
use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable};
use tokio::time::Instant;

/// The documented per-entry overhead in the accounted size: map slot, list
/// links, timestamps. Part of the contract, identical on both twins.
pub const ENTRY_OVERHEAD_BYTES: u64 = 64;

/// The accounted size of an entry, as the contract defines it.
pub const fn accounted_size(id_len: usize, value_len: usize, content_type_len: usize) -> u64 {
    id_len as u64 + value_len as u64 + content_type_len as u64 + ENTRY_OVERHEAD_BYTES
}

/// "No slot": the end of the recency list.
const NIL: u32 = u32::MAX;

/// A stored value as a hit returns it: both fields are reference-counted, so
/// handing them out copies no bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub value: Bytes,
    pub content_type: HeaderValue,
}

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(Hit),
    /// No entry under the key.
    Miss,
    /// The entry had expired; it has now been removed (a miss to the client).
    Expired,
}

/// The answer to a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// The entry had expired; it has been removed (a miss to the client).
    Expired,
    Missing,
}

/// A PUT whose entry alone would exceed the shard's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an entry of {size} accounted bytes exceeds the shard capacity of {capacity} bytes")]
pub struct EntryTooLarge {
    pub size: u64,
    pub capacity: u64,
}

/// What a shard holds and has evicted. Summed over shards for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live entries (expired ones count until they are removed).
    pub entries: u64,
    /// Accounted bytes of those entries.
    pub bytes: u64,
    /// Entries removed to make room for a PUT.
    pub evicted_capacity: u64,
    /// Expired entries removed: on access, by the sweep, by capacity
    /// eviction, or replaced by a PUT.
    pub evicted_expired: u64,
}

impl AddAssign for Stats {
    fn add_assign(&mut self, other: Self) {
        self.entries += other.entries;
        self.bytes += other.bytes;
        self.evicted_capacity += other.evicted_capacity;
        self.evicted_expired += other.evicted_expired;
    }
}

/// One entry and its place in the recency list.
struct Node {
    key: Box<str>,
    value: Bytes,
    content_type: HeaderValue,
    expires_at: Instant,
    /// Towards the most recently used end.
    prev: u32,
    /// Towards the least recently used end.
    next: u32,
}

impl Node {
    fn size(&self) -> u64 {
        accounted_size(self.key.len(), self.value.len(), self.content_type.len())
    }

    fn expired(&self, now: Instant) -> bool {
        now >= self.expires_at
    }
}

/// A byte-bounded LRU map with per-entry expiry.
pub struct Shard {
    capacity: u64,
    hasher: DefaultHashBuilder,
    /// Key → slot number; hashes and compares the key stored in the slot.
    index: HashTable<u32>,
    slots: Vec<Option<Node>>,
    /// Vacant slot numbers, reused before the slab grows.
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next to evict.
    tail: u32,
    stats: Stats,
}

impl Shard {
    /// An empty shard holding at most `capacity` accounted bytes.
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            hasher: DefaultHashBuilder::default(),
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            stats: Stats::default(),
        }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Looks `key` up; a hit becomes the most recently used entry, an
    /// expired entry is removed.
    pub fn get(&mut self, key: &str, now: Instant) -> Lookup {
        let Some(slot) = self.find(key) else {
            return Lookup::Miss;
        };
        if self.node(slot).expired(now) {
            self.remove_slot(slot);
            self.stats.evicted_expired += 1;
            return Lookup::Expired;
        }
        self.move_to_front(slot);
        let node = self.node(slot);
        Lookup::Hit(Hit {
            value: node.value.clone(),
            content_type: node.content_type.clone(),
        })
    }

    /// Stores an entry under `key` (replacing any entry there) as the most
    /// recently used, then evicts from the least recently used end, never
    /// the entry just written, until the shard fits its capacity.
    ///
    /// An entry larger than the whole shard is refused and nothing changes.
    /// Replacing an entry that had already expired counts it as expired, so
    /// every expired entry is counted exactly once whichever way it leaves.
    pub fn put(
        &mut self,
        key: &str,
        value: Bytes,
        content_type: HeaderValue,
        expires_at: Instant,
        now: Instant,
    ) -> Result<(), EntryTooLarge> {
        let size = accounted_size(key.len(), value.len(), content_type.len());
        if size > self.capacity {
            return Err(EntryTooLarge {
                size,
                capacity: self.capacity,
            });
        }
        let hash = self.hasher.hash_one(key);
        let slot = match self.find_hashed(hash, key) {
            Some(slot) => {
                let node = self.node_mut(slot);
                let (old_size, was_expired) = (node.size(), node.expired(now));
                node.value = value;
                node.content_type = content_type;
                node.expires_at = expires_at;
                self.stats.bytes = self.stats.bytes - old_size + size;
                if was_expired {
                    self.stats.evicted_expired += 1;
                }
                self.move_to_front(slot);
                slot
            }
            None => {
                let slot = self.insert(
                    hash,
                    Node {
                        key: key.into(),
                        value,
                        content_type,
                        expires_at,
                        prev: NIL,
                        next: NIL,
                    },
                );
                self.stats.entries += 1;
                self.stats.bytes += size;
                self.push_front(slot);
                slot
            }
        };
        self.evict_to_capacity(slot, now);
        Ok(())
    }

    /// Removes the entry under `key`.
    pub fn remove(&mut self, key: &str, now: Instant) -> Removal {
        let Some(slot) = self.find(key) else {
            return Removal::Missing;
        };
        let node = self.remove_slot(slot);
        if node.expired(now) {
            self.stats.evicted_expired += 1;
            Removal::Expired
        } else {
            Removal::Removed
        }
    }

    /// Removes the expired entries among slots `from .. from + budget`:
    /// a bounded slice of work, so the caller can release the lock between
    /// slices. Returns the slot to resume at, or `None` once past the end.
    ///
    /// Slot numbers are stable, so resuming after other operations is sound:
    /// an entry written meanwhile into an already-scanned slot waits for the
    /// next sweep, and one removed meanwhile is simply not there. Cost: one
    /// expiry comparison per slot per sweep (live or vacant), plus O(1) per
    /// removal; nothing on the request path.
    pub fn sweep(&mut self, from: usize, budget: usize, now: Instant) -> Option<usize> {
        let end = from.saturating_add(budget).min(self.slots.len());
        for slot in from..end {
            let expired = self.slots[slot].as_ref().is_some_and(|n| n.expired(now));
            if expired {
                self.remove_slot(slot as u32);
                self.stats.evicted_expired += 1;
            }
        }
        (end < self.slots.len()).then_some(end)
    }

    /// The keys from most to least recently used. O(n): for tests and
    /// diagnostics, never the request path.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        let mut slot = self.head;
        std::iter::from_fn(move || {
            if slot == NIL {
                return None;
            }
            let node = self.node(slot);
            slot = node.next;
            Some(&*node.key)
        })
    }

    fn evict_to_capacity(&mut self, keep: u32, now: Instant) {
        while self.stats.bytes > self.capacity {
            let victim = self.tail;
            // `keep` fits on its own (checked by `put`), so the loop ends
            // before reaching it; the guard only makes that local.
            if victim == NIL || victim == keep {
                break;
            }
            let node = self.remove_slot(victim);
            if node.expired(now) {
                self.stats.evicted_expired += 1;
            } else {
                self.stats.evicted_capacity += 1;
            }
        }
    }

    fn find(&self, key: &str) -> Option<u32> {
        self.find_hashed(self.hasher.hash_one(key), key)
    }

    fn find_hashed(&self, hash: u64, key: &str) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&slot| {
                slots[slot as usize]
                    .as_ref()
                    .is_some_and(|n| &*n.key == key)
            })
            .copied()
    }

    /// Puts `node` in a vacant slot and indexes it; it is not linked yet.
    fn insert(&mut self, hash: u64, node: Node) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(node);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&s| s != NIL)
                    .expect("a shard holds fewer than 2^32 - 1 entries");
                self.slots.push(Some(node));
                slot
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(&*slots[s as usize].as_ref().expect("indexed slot").key)
        });
        slot
    }

    /// Unlinks, unindexes and frees `slot`, returning its node.
    fn remove_slot(&mut self, slot: u32) -> Node {
        self.unlink(slot);
        let node = self.slots[slot as usize]
            .take()
            .expect("removed slot is occupied");
        let hash = self.hasher.hash_one(&*node.key);
        self.index
            .find_entry(hash, |&s| s == slot)
            .expect("every occupied slot is indexed")
            .remove();
        self.free.push(slot);
        self.stats.entries -= 1;
        self.stats.bytes -= node.size();
        node
    }

    fn move_to_front(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.push_front(slot);
        }
    }

    fn push_front(&mut self, slot: u32) {
        let old_head = self.head;
        {
            let node = self.node_mut(slot);
            node.prev = NIL;
            node.next = old_head;
        }
        if old_head == NIL {
            self.tail = slot;
        } else {
            self.node_mut(old_head).prev = slot;
        }
        self.head = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let node = self.node(slot);
            (node.prev, node.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.node_mut(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.node_mut(next).prev = prev;
        }
    }

    fn node(&self, slot: u32) -> &Node {
        self.slots[slot as usize]
            .as_ref()
            .expect("linked slot is occupied")
    }

    fn node_mut(&mut self, slot: u32) -> &mut Node {
        self.slots[slot as usize]
            .as_mut()
            .expect("linked slot is occupied")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const OCTET: HeaderValue = HeaderValue::from_static("application/octet-stream");
    const HOUR: Duration = Duration::from_secs(3600);

    /// A shard, a fixed start time and helpers that read like the contract.
    struct Fixture {
        shard: Shard,
        t0: Instant,
    }

    impl Fixture {
        fn new(capacity: u64) -> Self {
            Self {
                shard: Shard::new(capacity),
                t0: Instant::now(),
            }
        }

        fn at(&self, secs: u64) -> Instant {
            self.t0 + Duration::from_secs(secs)
        }

        /// PUT `value` under `key` at time `at` with TTL `ttl` seconds.
        fn put_at(&mut self, at: u64, key: &str, value: &[u8], ttl: u64) {
            let now = self.at(at);
            self.shard
                .put(
                    key,
                    Bytes::copy_from_slice(value),
                    OCTET,
                    now + Duration::from_secs(ttl),
                    now,
                )
                .expect("fits");
        }

        fn put(&mut self, key: &str, value: &[u8]) {
            self.put_at(0, key, value, HOUR.as_secs());
        }

        fn get_at(&mut self, at: u64, key: &str) -> Lookup {
            let now = self.at(at);
            self.shard.get(key, now)
        }

        fn get(&mut self, key: &str) -> Lookup {
            self.get_at(0, key)
        }

        fn keys(&self) -> Vec<&str> {
            self.shard.keys().collect()
        }
    }

    /// Accounted size of a one-byte key, `n`-byte value and octet-stream type.
    fn size(n: usize) -> u64 {
        accounted_size(1, n, OCTET.len())
    }

    fn hit(value: &[u8]) -> Lookup {
        Lookup::Hit(Hit {
            value: Bytes::copy_from_slice(value),
            content_type: OCTET,
        })
    }

    #[test]
    fn accounted_size_is_id_plus_value_plus_content_type_plus_64() {
        assert_eq!(accounted_size(3, 10, 24), 3 + 10 + 24 + 64);
    }

    #[test]
    fn get_returns_the_stored_value_and_content_type() {
        let mut f = Fixture::new(1 << 20);
        let json = HeaderValue::from_static("application/json");
        let now = f.t0;
        f.shard
            .put(
                "k",
                Bytes::from_static(b"{}"),
                json.clone(),
                now + HOUR,
                now,
            )
            .unwrap();
        assert_eq!(
            f.get("k"),
            Lookup::Hit(Hit {
                value: Bytes::from_static(b"{}"),
                content_type: json
            })
        );
        assert_eq!(f.get("other"), Lookup::Miss);
    }

    #[test]
    fn puts_and_hits_move_entries_to_the_front() {
        let mut f = Fixture::new(1 << 20);
        f.put("a", b"1");
        f.put("b", b"2");
        f.put("c", b"3");
        assert_eq!(f.keys(), ["c", "b", "a"]);
        f.get("a");
        assert_eq!(f.keys(), ["a", "c", "b"]);
        f.put("b", b"22");
        assert_eq!(f.keys(), ["b", "a", "c"]);
    }

    #[test]
    fn a_miss_changes_no_order() {
        let mut f = Fixture::new(1 << 20);
        f.put("a", b"1");
        f.put("b", b"2");
        f.get("zzz");
        assert_eq!(f.keys(), ["b", "a"]);
    }

    #[test]
    fn bytes_and_entries_follow_puts_replacements_and_removals() {
        let mut f = Fixture::new(1 << 20);
        f.put("a", b"12345");
        f.put("b", b"1");
        assert_eq!(f.shard.stats().entries, 2);
        assert_eq!(f.shard.stats().bytes, size(5) + size(1));

        f.put("a", b"12");
        assert_eq!(f.shard.stats().entries, 2);
        assert_eq!(f.shard.stats().bytes, size(2) + size(1));

        assert_eq!(f.shard.remove("a", f.t0), Removal::Removed);
        assert_eq!(f.shard.stats().entries, 1);
        assert_eq!(f.shard.stats().bytes, size(1));
        assert_eq!(f.shard.remove("a", f.t0), Removal::Missing);
    }

    #[test]
    fn replacing_changes_value_content_type_and_ttl() {
        let mut f = Fixture::new(1 << 20);
        f.put_at(0, "k", b"old", 10);
        let now = f.at(5);
        let text = HeaderValue::from_static("text/plain");
        f.shard
            .put(
                "k",
                Bytes::from_static(b"new"),
                text.clone(),
                now + HOUR,
                now,
            )
            .unwrap();
        // The old TTL (10 s) would have expired it by now.
        assert_eq!(
            f.get_at(20, "k"),
            Lookup::Hit(Hit {
                value: Bytes::from_static(b"new"),
                content_type: text
            })
        );
    }

    #[test]
    fn an_entry_larger_than_the_shard_is_refused_and_leaves_the_old_one() {
        let capacity = size(10);
        let mut f = Fixture::new(capacity);
        f.put("k", b"old");
        let now = f.t0;
        let err = f
            .shard
            .put("k", Bytes::from(vec![0; 11]), OCTET, now + HOUR, now)
            .unwrap_err();
        assert_eq!(
            err,
            EntryTooLarge {
                size: size(11),
                capacity
            }
        );
        assert_eq!(f.get("k"), hit(b"old"));
        assert_eq!(f.shard.stats().bytes, size(3));
    }

    #[test]
    fn an_entry_exactly_the_shard_capacity_fits() {
        let mut f = Fixture::new(size(10));
        f.put("k", &[0; 10]);
        assert_eq!(f.shard.stats().bytes, f.shard.capacity());
    }

    #[test]
    fn overflow_evicts_least_recently_used_first() {
        let mut f = Fixture::new(3 * size(1));
        f.put("a", b"1");
        f.put("b", b"2");
        f.put("c", b"3");
        f.get("a");
        f.put("d", b"4");
        assert_eq!(f.keys(), ["d", "a", "c"]);
        assert_eq!(f.shard.stats().evicted_capacity, 1);
        assert_eq!(f.shard.stats().bytes, 3 * size(1));
    }

    #[test]
    fn overflow_evicts_as_many_entries_as_needed() {
        let mut f = Fixture::new(4 * size(1));
        for key in ["a", "b", "c", "d"] {
            f.put(key, b"x");
        }
        f.put("e", &vec![0; 2 * size(1) as usize]);
        assert_eq!(f.keys(), ["e", "d"]);
        assert_eq!(f.shard.stats().evicted_capacity, 3);
    }

    #[test]
    fn overflow_never_evicts_the_entry_just_written() {
        // "a" grows so that the two no longer fit: "b" goes, not "a".
        let mut f = Fixture::new(2 * size(1));
        f.put("a", b"1");
        f.put("b", b"1");
        f.put("a", &[0; 10]);
        assert_eq!(f.keys(), ["a"]);
        assert_eq!(f.shard.stats().evicted_capacity, 1);
    }

    #[test]
    fn growing_a_replaced_entry_evicts_others_not_itself() {
        // "a" is the least recently used when it is rewritten larger.
        let mut f = Fixture::new(3 * size(1));
        f.put("a", b"1");
        f.put("b", b"2");
        f.put("c", b"3");
        f.put("a", &[0; 2]);
        assert_eq!(f.keys(), ["a", "c"]);
    }

    #[test]
    fn an_expired_entry_is_a_miss_and_removed_on_get() {
        let mut f = Fixture::new(1 << 20);
        f.put_at(0, "k", b"v", 2);
        assert_eq!(f.get_at(1, "k"), hit(b"v"));
        // Expired when now >= expiry: exactly at 2 s.
        assert_eq!(f.get_at(2, "k"), Lookup::Expired);
        assert_eq!(f.shard.stats().entries, 0);
        assert_eq!(f.shard.stats().bytes, 0);
        assert_eq!(f.shard.stats().evicted_expired, 1);
        assert_eq!(f.get_at(3, "k"), Lookup::Miss);
    }

    #[test]
    fn removing_an_expired_entry_reports_it_expired() {
        let mut f = Fixture::new(1 << 20);
        f.put_at(0, "k", b"v", 2);
        let later = f.at(5);
        assert_eq!(f.shard.remove("k", later), Removal::Expired);
        assert_eq!(f.shard.stats().entries, 0);
        assert_eq!(f.shard.stats().evicted_expired, 1);
    }

    #[test]
    fn replacing_an_expired_entry_counts_it_expired_once() {
        let mut f = Fixture::new(1 << 20);
        f.put_at(0, "k", b"v", 2);
        f.put_at(5, "k", b"w", 10);
        assert_eq!(f.shard.stats().evicted_expired, 1);
        assert_eq!(f.shard.stats().entries, 1);
        assert_eq!(f.get_at(6, "k"), hit(b"w"));
    }

    #[test]
    fn capacity_eviction_of_an_expired_entry_counts_as_expired() {
        let mut f = Fixture::new(2 * size(1));
        f.put_at(0, "a", b"1", 1);
        f.put_at(0, "b", b"2", 100);
        f.put_at(5, "c", b"3", 100);
        assert_eq!(f.keys(), ["c", "b"]);
        let stats = f.shard.stats();
        assert_eq!((stats.evicted_capacity, stats.evicted_expired), (0, 1));
    }

    #[test]
    fn sweep_removes_only_expired_entries() {
        let mut f = Fixture::new(1 << 20);
        f.put_at(0, "short", b"1", 1);
        f.put_at(0, "long", b"2", 100);
        f.put_at(0, "short2", b"3", 2);
        let now = f.at(2);
        assert_eq!(f.shard.sweep(0, usize::MAX, now), None);
        assert_eq!(f.keys(), ["long"]);
        assert_eq!(f.shard.stats().evicted_expired, 2);
        assert_eq!(f.shard.stats().bytes, size(1) + 3);
    }

    #[test]
    fn sweep_works_in_bounded_slices_and_resumes() {
        let mut f = Fixture::new(1 << 20);
        for i in 0..10 {
            f.put_at(0, &format!("k{i}"), b"v", 1);
        }
        let now = f.at(1);
        assert_eq!(f.shard.sweep(0, 4, now), Some(4));
        assert_eq!(f.shard.stats().entries, 6);
        assert_eq!(f.shard.sweep(4, 4, now), Some(8));
        assert_eq!(f.shard.sweep(8, 4, now), None);
        assert_eq!(f.shard.stats().entries, 0);
        assert_eq!(f.shard.stats().evicted_expired, 10);
    }

    #[test]
    fn freed_slots_are_reused_and_the_order_stays_right() {
        let mut f = Fixture::new(1 << 20);
        f.put("a", b"1");
        f.put("b", b"2");
        f.put("c", b"3");
        f.shard.remove("b", f.t0);
        f.put("d", b"4");
        f.put("e", b"5");
        assert_eq!(f.keys(), ["e", "d", "c", "a"]);
        assert_eq!(f.shard.slots.len(), 4);
        for key in ["a", "c", "d", "e"] {
            assert!(matches!(f.get(key), Lookup::Hit(_)), "{key}");
        }
    }

    #[test]
    fn evictions_follow_the_same_order_as_a_reference_model() {
        // A naive list model of the contract (front = most recent) driven by
        // a pseudo-random sequence must agree with the shard at every step.
        let capacity = 20 * size(4);
        let mut f = Fixture::new(capacity);
        let mut model: Vec<(String, u64)> = Vec::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("{}", x % 40);
            // One GET for every two PUTs.
            match x % 3 {
                0 => {
                    let model_hit = model.iter().position(|(k, _)| *k == key);
                    if let Some(i) = model_hit {
                        let e = model.remove(i);
                        model.insert(0, e);
                    }
                    assert_eq!(matches!(f.get(&key), Lookup::Hit(_)), model_hit.is_some());
                }
                _ => {
                    let len = (x >> 32) as usize % 64;
                    let entry_size = accounted_size(key.len(), len, OCTET.len());
                    model.retain(|(k, _)| *k != key);
                    model.insert(0, (key.clone(), entry_size));
                    while model.iter().map(|(_, s)| s).sum::<u64>() > capacity {
                        model.pop();
                    }
                    f.put(&key, &vec![0; len]);
                }
            }
            let model_keys: Vec<&str> = model.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(f.keys(), model_keys);
        }
    }
}

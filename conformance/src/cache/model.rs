//! The contract's storage model, written from `docs/contract-cache.md`
//! alone: `fnv1a64(id) mod shards` picks the shard, each shard holds
//! `capacity_bytes / shards` accounted bytes, and a PUT that overfills its
//! shard evicts least-recently-used entries other than the one it wrote.
//!
//! Expiry is outside the model: sequences run against it use TTLs far longer
//! than the sequence.

use super::workload::Operation;
use super::{accounted_size, shard_of, DEFAULT_CONTENT_TYPE};

/// A stored entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub value: Vec<u8>,
    pub content_type: String,
}

impl Entry {
    pub fn size(&self) -> u64 {
        accounted_size(&self.id, self.value.len(), &self.content_type)
    }
}

/// What the contract says the service answers to one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// `204` to a PUT.
    Stored,
    /// `413 entry_too_large` to a PUT.
    EntryTooLarge,
    /// `200` to a GET or HEAD, with the entry.
    Hit(Entry),
    /// `404 not_found_session` to a GET, HEAD or DELETE.
    Miss,
    /// `204` to a DELETE.
    Deleted,
}

impl Expected {
    pub fn status(&self) -> u16 {
        match self {
            Expected::Stored | Expected::Deleted => 204,
            Expected::EntryTooLarge => 413,
            Expected::Hit(_) => 200,
            Expected::Miss => 404,
        }
    }
}

/// One shard: its entries from least to most recently used.
#[derive(Clone, Debug, Default)]
struct Shard {
    lru: Vec<Entry>,
    bytes: u64,
}

impl Shard {
    fn position(&self, id: &str) -> Option<usize> {
        self.lru.iter().position(|e| e.id == id)
    }

    fn remove(&mut self, index: usize) -> Entry {
        let entry = self.lru.remove(index);
        self.bytes -= entry.size();
        entry
    }

    fn push_most_recent(&mut self, entry: Entry) {
        self.bytes += entry.size();
        self.lru.push(entry);
    }

    /// Moves the entry at `index` to the most recently used end.
    fn touch(&mut self, index: usize) -> &Entry {
        let entry = self.lru.remove(index);
        self.lru.push(entry);
        self.lru.last().expect("just pushed")
    }
}

/// The cache as the contract describes it.
#[derive(Clone, Debug)]
pub struct Model {
    shards: Vec<Shard>,
    shard_capacity: u64,
    capacity_evictions: u64,
}

impl Model {
    /// A cache started with `--capacity-bytes capacity_bytes --shards shards`.
    pub fn new(capacity_bytes: u64, shards: u64) -> Model {
        Model {
            shards: vec![Shard::default(); usize::try_from(shards).expect("shards fit usize")],
            shard_capacity: capacity_bytes / shards,
            capacity_evictions: 0,
        }
    }

    fn shard(&mut self, id: &str) -> &mut Shard {
        let index = shard_of(id, self.shards.len() as u64);
        &mut self.shards[index]
    }

    /// `PUT`: refuses an entry larger than a shard, else replaces any entry
    /// under the id, makes it the most recent, and evicts the least recent
    /// others while the shard is over capacity.
    pub fn put(&mut self, id: &str, value: &[u8], content_type: Option<&str>) -> Expected {
        let entry = Entry {
            id: id.to_owned(),
            value: value.to_vec(),
            content_type: content_type.unwrap_or(DEFAULT_CONTENT_TYPE).to_owned(),
        };
        let capacity = self.shard_capacity;
        if entry.size() > capacity {
            return Expected::EntryTooLarge;
        }
        let shard = self.shard(id);
        if let Some(index) = shard.position(id) {
            shard.remove(index);
        }
        shard.push_most_recent(entry);
        let mut evicted = 0;
        // The just-written entry is the last one and fits on its own, so the
        // loop ends before reaching it.
        while shard.bytes > capacity {
            shard.remove(0);
            evicted += 1;
        }
        self.capacity_evictions += evicted;
        Expected::Stored
    }

    /// `GET` or `HEAD`: a hit makes the entry the most recent.
    pub fn get(&mut self, id: &str) -> Expected {
        let shard = self.shard(id);
        match shard.position(id) {
            Some(index) => Expected::Hit(shard.touch(index).clone()),
            None => Expected::Miss,
        }
    }

    /// `DELETE`.
    pub fn delete(&mut self, id: &str) -> Expected {
        let shard = self.shard(id);
        match shard.position(id) {
            Some(index) => {
                shard.remove(index);
                Expected::Deleted
            }
            None => Expected::Miss,
        }
    }

    /// Applies `operation`; what the service must answer.
    pub fn apply(&mut self, operation: &Operation) -> Expected {
        match operation {
            Operation::Put {
                id,
                value,
                content_type,
            } => self.put(id, value, content_type.as_deref()),
            Operation::Get { id } | Operation::Head { id } => self.get(id),
            Operation::Delete { id } => self.delete(id),
        }
    }

    /// `capacity_bytes / shards`.
    pub fn shard_capacity(&self) -> u64 {
        self.shard_capacity
    }

    /// How large an entry under `id` may be without evicting anything: the
    /// shard's free bytes, counting those an existing entry under `id`
    /// would give back.
    pub fn room_for(&self, id: &str) -> u64 {
        let shard = &self.shards[shard_of(id, self.shards.len() as u64)];
        let replaced = shard.position(id).map_or(0, |i| shard.lru[i].size());
        self.shard_capacity - (shard.bytes - replaced)
    }

    /// `cache_entries`.
    pub fn entries(&self) -> usize {
        self.shards.iter().map(|s| s.lru.len()).sum()
    }

    /// `cache_bytes`.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }

    /// `cache_evictions_total{reason="capacity"}`.
    pub fn capacity_evictions(&self) -> u64 {
        self.capacity_evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three entries of 100 accounted bytes fill a 300-byte single shard.
    fn hundred_bytes(id: &str) -> Vec<u8> {
        vec![b'v'; 100 - accounted_size(id, 0, DEFAULT_CONTENT_TYPE) as usize]
    }

    #[test]
    fn evicts_the_least_recently_used_but_never_the_entry_just_written() {
        let mut model = Model::new(300, 1);
        for id in ["a", "b", "c"] {
            assert_eq!(model.put(id, &hundred_bytes(id), None), Expected::Stored);
        }
        assert!(matches!(model.get("a"), Expected::Hit(_)));

        assert_eq!(model.put("d", &hundred_bytes("d"), None), Expected::Stored);

        assert_eq!(model.get("b"), Expected::Miss);
        assert_eq!((model.entries(), model.bytes()), (3, 300));
        assert_eq!(model.capacity_evictions(), 1);

        assert_eq!(model.put("e", &[b'v'; 200], None), Expected::Stored);
        assert_eq!(model.entries(), 1, "everything else made room for e");
    }

    #[test]
    fn refuses_an_entry_larger_than_a_shard_and_keeps_the_old_one() {
        let mut model = Model::new(300, 1);
        model.put("a", b"old", Some("text/plain"));

        assert_eq!(model.put("a", &[0; 300], None), Expected::EntryTooLarge);

        match model.get("a") {
            Expected::Hit(entry) => assert_eq!(entry.value, b"old"),
            other => panic!("{other:?}"),
        }
    }
}

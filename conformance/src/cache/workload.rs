//! Seeded, reproducible sequences of cache operations: the same seed gives
//! the same sequence on every run and for every twin.

use std::fmt;

use super::model::Model;
use super::{accounted_size, delete, get, head, put, DEFAULT_CONTENT_TYPE};
use crate::http::Request;

/// One request of a sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    Put {
        id: String,
        value: Vec<u8>,
        /// `None`: sent without `Content-Type`.
        content_type: Option<String>,
    },
    Get {
        id: String,
    },
    Head {
        id: String,
    },
    Delete {
        id: String,
    },
}

impl Operation {
    pub fn request(&self) -> Request {
        match self {
            Operation::Put {
                id,
                value,
                content_type,
            } => {
                let request = put(id, value.clone());
                match content_type {
                    Some(content_type) => request.content_type(content_type),
                    None => request,
                }
            }
            Operation::Get { id } => get(id),
            Operation::Head { id } => head(id),
            Operation::Delete { id } => delete(id),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Put {
                id,
                value,
                content_type,
            } => write!(
                f,
                "PUT {id} ({} bytes, Content-Type {content_type:?})",
                value.len()
            ),
            Operation::Get { id } => write!(f, "GET {id}"),
            Operation::Head { id } => write!(f, "HEAD {id}"),
            Operation::Delete { id } => write!(f, "DELETE {id}"),
        }
    }
}

/// SplitMix64: a tiny, well-mixed generator, so the suite needs no `rand`
/// and a seed means the same numbers forever.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (the tiny modulo bias does not matter here).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    /// `len` printable ASCII bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| b'!' + self.below(94) as u8).collect()
    }
}

/// The shape of a sequence, and the cache it is meant for.
#[derive(Clone, Debug)]
pub struct Workload {
    pub seed: u64,
    pub operations: usize,
    pub ids: usize,
    /// Smallest and largest value of an ordinary PUT, in bytes.
    pub value_bytes: (usize, usize),
    /// `--shards` of the cache.
    pub shards: u64,
    /// `--capacity-bytes` of the cache.
    pub capacity_bytes: u64,
}

/// Content types a sequence stores; `None` is sent without the header and
/// stored as `application/octet-stream`.
const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("text/plain"),
    Some("application/json"),
    Some("application/vnd.parallax.session+json; v=2"),
];

impl Workload {
    /// Id `n` of the sequence: lengths vary so the accounting is exercised.
    pub fn id(n: usize) -> String {
        format!("sess-{n:02}{}", "~._-".repeat(n % 4))
    }

    /// The cache's flags.
    pub fn flags(&self) -> [(&'static str, u64); 2] {
        [
            ("--shards", self.shards),
            ("--capacity-bytes", self.capacity_bytes),
        ]
    }

    /// The contract's model of the cache, empty.
    pub fn model(&self) -> Model {
        Model::new(self.capacity_bytes, self.shards)
    }

    /// The operations: 45 % PUT, 35 % GET, 10 % HEAD, 10 % DELETE, with
    /// uniform ids. Three PUTs in ten are sized, with the model's help, to
    /// fill the room left in their shard or the whole shard, exactly or one
    /// byte more — where an off-by-one in accounting, capacity or eviction
    /// shows.
    pub fn sequence(&self) -> Vec<Operation> {
        let mut rng = Rng::new(self.seed);
        let mut model = self.model();
        (0..self.operations)
            .map(|_| {
                let id = Self::id(rng.below(self.ids));
                let operation = match rng.below(100) {
                    0..=44 => {
                        let content_type = CONTENT_TYPES[rng.below(CONTENT_TYPES.len())];
                        let stored_type = content_type.unwrap_or(DEFAULT_CONTENT_TYPE);
                        // Boundary sizes, one byte either side.
                        let target = match rng.below(10) {
                            0..=1 => Some(model.room_for(&id)),
                            2 => Some(model.shard_capacity()),
                            _ => None,
                        };
                        let len = match target {
                            Some(target) => {
                                let overhead = accounted_size(&id, 0, stored_type);
                                let size = target + rng.below(2) as u64;
                                usize::try_from(size.saturating_sub(overhead)).expect("fits")
                            }
                            None => rng.between(self.value_bytes.0, self.value_bytes.1),
                        };
                        Operation::Put {
                            id,
                            value: rng.bytes(len),
                            content_type: content_type.map(str::to_owned),
                        }
                    }
                    45..=79 => Operation::Get { id },
                    80..=89 => Operation::Head { id },
                    _ => Operation::Delete { id },
                };
                model.apply(&operation);
                operation
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_sequence_every_time() {
        let workload = Workload {
            seed: 7,
            operations: 50,
            ids: 5,
            value_bytes: (1, 9),
            shards: 2,
            capacity_bytes: 400,
        };
        assert_eq!(workload.sequence(), workload.sequence());
        assert_ne!(
            workload.sequence(),
            Workload {
                seed: 8,
                ..workload
            }
            .sequence()
        );
    }

    #[test]
    fn splitmix64_matches_its_reference_output() {
        // First outputs of the reference C implementation seeded with 0.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }
}

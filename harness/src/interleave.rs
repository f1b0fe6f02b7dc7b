//! The order in which direct-mode blocks go to the two backends.
//!
//! One long block per backend (A then B) lets anything that changes over
//! the run — another process's build, thermal state, a page cache filling
//! — land on one side only, and the verdict then measures the machine, not
//! the backends. Short blocks alternating `A B B A` (repeated) put every
//! linear drift equally on both sides; a seeded random order (each pair
//! of blocks `A B` or `B A` by a coin) also breaks any periodic noise that
//! happens to line up with a fixed pattern. Each backend gets the same
//! number of blocks, and block `k` of each backend is sent the same slots
//! (hence the same requests), so the two histograms — merged over their
//! blocks — describe the same traffic.

use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};

/// How the blocks are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// `A B B A`, repeated.
    #[default]
    Abba,
    /// Each pair `A B` or `B A` by a coin seeded with this.
    Random(u64),
}

impl std::str::FromStr for Order {
    type Err = String;

    /// `abba`, or `random` / `random:SEED`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "abba" => Ok(Order::Abba),
            "random" => Ok(Order::Random(1)),
            other => match other.strip_prefix("random:").map(str::parse) {
                Some(Ok(seed)) => Ok(Order::Random(seed)),
                _ => Err(format!(
                    "`{s}` is not an order: give `abba`, `random` or `random:SEED` (an integer)"
                )),
            },
        }
    }
}

/// One block of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// 0 for the baseline (A), 1 for the candidate (B).
    pub backend: usize,
    /// This backend's block number (0, 1, ...): block `k` of both backends
    /// gets the same slots.
    pub index: usize,
}

/// `pairs` blocks per backend (`2 * pairs` in all), in `order`.
pub fn schedule(pairs: usize, order: Order) -> Vec<Block> {
    let mut rng = match order {
        Order::Random(seed) => Some(SmallRng::seed_from_u64(seed)),
        Order::Abba => None,
    };
    let mut blocks = Vec::with_capacity(2 * pairs);
    for k in 0..pairs {
        let b_first = match &mut rng {
            // A B, B A, A B, ...: A B B A A B B A.
            None => k % 2 == 1,
            Some(rng) => rng.random_bool(0.5),
        };
        let (first, second) = if b_first { (1, 0) } else { (0, 1) };
        blocks.push(Block {
            backend: first,
            index: k,
        });
        blocks.push(Block {
            backend: second,
            index: k,
        });
    }
    blocks
}

/// How many block pairs a measured `duration_secs` splits into with blocks
/// of about `block_secs` (at least 2 pairs: one `A B B A`), and the length
/// of each block.
pub fn split(duration_secs: f64, block_secs: f64) -> (usize, f64) {
    let pairs = ((duration_secs / block_secs.max(0.1)).round() as usize).max(2);
    (pairs, duration_secs / pairs as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(blocks: &[Block]) -> String {
        blocks
            .iter()
            .map(|b| if b.backend == 0 { 'A' } else { 'B' })
            .collect()
    }

    #[test]
    fn abba_repeats_and_pairs_share_their_index() {
        let s = schedule(4, Order::Abba);
        assert_eq!(letters(&s), "ABBAABBA");
        for pair in s.chunks(2) {
            assert_eq!(pair[0].index, pair[1].index);
            assert_ne!(pair[0].backend, pair[1].backend);
        }
    }

    #[test]
    fn random_order_is_seeded_balanced_and_not_always_abba() {
        let a = schedule(32, Order::Random(7));
        assert_eq!(a, schedule(32, Order::Random(7)), "same seed, same order");
        assert_ne!(a, schedule(32, Order::Random(8)));
        assert_ne!(letters(&a), letters(&schedule(32, Order::Abba)));
        for backend in 0..2 {
            let indices: Vec<usize> = a
                .iter()
                .filter(|b| b.backend == backend)
                .map(|b| b.index)
                .collect();
            assert_eq!(indices, (0..32).collect::<Vec<_>>());
        }
        // Who goes first in a pair is a fair coin: not all one way.
        let b_first = a.chunks(2).filter(|p| p[0].backend == 1).count();
        assert!((6..=26).contains(&b_first), "{b_first} of 32");
    }

    #[test]
    fn orders_parse_and_bad_ones_say_what_to_give() {
        assert_eq!("abba".parse(), Ok(Order::Abba));
        assert_eq!("random:42".parse(), Ok(Order::Random(42)));
        let e = "random:x".parse::<Order>().unwrap_err();
        assert!(e.contains("random:SEED"), "{e}");
    }

    #[test]
    fn a_run_splits_into_at_least_one_abba() {
        assert_eq!(split(15.0, 2.0), (8, 15.0 / 8.0));
        assert_eq!(split(2.0, 5.0), (2, 1.0));
    }
}

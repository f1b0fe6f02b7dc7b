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

/// The order in which the two backends warm up before `schedule`.
///
/// What runs just before a block shapes it (caches, the scheduler's view,
/// the other side's leftovers), so each backend's blocks should follow a
/// block of their own backend as often as the other's do. In the schedule
/// itself that holds but for the ends; the first block follows the last
/// warm-up, which decides the balance. Warming A then B before `A B B A A B
/// B A …` gave B's blocks one more turn after themselves than A's (and A's
/// first block B's leftovers): the order here is the one whose counts are
/// equal, or nearest equal for a random order; on a tie, the backend of the
/// first measured block warms last.
pub fn warm_up_order(schedule: &[Block]) -> [usize; 2] {
    let first = schedule.first().map_or(0, |b| b.backend);
    let imbalance = |warm: [usize; 2]| {
        let [a, b] = after_own(warm, schedule);
        a.abs_diff(b)
    };
    let last = [1 - first, first];
    let other = [first, 1 - first];
    if imbalance(other) < imbalance(last) {
        other
    } else {
        last
    }
}

/// For each backend, how many of its blocks follow a block of its own
/// backend, the last warm-up (`warm[1]`) counting as the block before the
/// first.
pub fn after_own(warm: [usize; 2], schedule: &[Block]) -> [usize; 2] {
    let mut own = [0, 0];
    let mut before = warm[1];
    for b in schedule {
        if b.backend == before {
            own[b.backend] += 1;
        }
        before = b.backend;
    }
    own
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
    fn the_warm_up_order_makes_both_backends_follow_themselves_equally_often() {
        for pairs in 2..=9 {
            let s = schedule(pairs, Order::Abba);
            let warm = warm_up_order(&s);
            let [a, b] = after_own(warm, &s);
            assert_eq!(a, b, "{pairs} pairs, warm-up {warm:?}");
        }
        // The run's default, 6 pairs (12 s in 2 s blocks): A's first block
        // after A's own warm-up; A first then B, as before, gave B one more.
        let s = schedule(6, Order::Abba);
        assert_eq!(warm_up_order(&s), [1, 0]);
        assert_eq!(after_own([1, 0], &s), [3, 3]);
        assert_eq!(after_own([0, 1], &s), [2, 3]);
        for seed in 0..50 {
            let s = schedule(6, Order::Random(seed));
            let [a, b] = after_own(warm_up_order(&s), &s);
            let best = [[0, 1], [1, 0]]
                .map(|w| {
                    let [a, b] = after_own(w, &s);
                    a.abs_diff(b)
                })
                .into_iter()
                .min()
                .unwrap();
            assert_eq!(a.abs_diff(b), best, "seed {seed}");
        }
    }

    #[test]
    fn a_run_splits_into_at_least_one_abba() {
        assert_eq!(split(15.0, 2.0), (8, 15.0 / 8.0));
        assert_eq!(split(2.0, 5.0), (2, 1.0));
    }
}

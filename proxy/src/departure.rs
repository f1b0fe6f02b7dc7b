//! Which copy of a mirrored request leaves first (`mirror_order`).
//!
//! The primary's copy leaves from the client's task and the shadow's from
//! the mirror task spawned beside it, so with no rule the scheduler picks
//! the order — and picks it the same way nearly every time: measured with
//! two test upstreams on a two-worker runtime, the shadow's copy reached
//! its backend first in 39 of 40 requests. On a loaded machine that role
//! alone moved an A/A run's median by ~10 % (the issue behind this
//! setting). A benchmark wants neither side always second:
//!
//! - `unordered` (default): no waiting on either side — production's
//!   choice, the client path never waits for the mirror.
//! - `primary-first`: the mirror task waits until the primary's copy has
//!   been handed to its connection; the shadow never sees a request before
//!   the primary does.
//! - `alternate`: primary-first and shadow-first by turns (the client path
//!   waits for every other shadow copy to be handed over): for benchmarks.
//!
//! There is no "together": two tasks cannot start two sends at one instant,
//! and "at once" would be an order the scheduler picks, the same way each
//! time. "Handed over" is the first poll of the call: the request is queued
//! to its connection (or the connect has begun); the two connections then
//! still race for the CPU, so the order is a strong bias, not a guarantee.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// `mirror_order`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MirrorOrder {
    /// Neither side waits for the other (production).
    #[default]
    Unordered,
    /// The shadow's copy waits until the primary's is handed over.
    PrimaryFirst,
    /// Primary first and shadow first by turns (benchmarks).
    Alternate,
}

/// When one side's copy leaves, against the other's.
#[derive(Debug, Default)]
pub enum Turn {
    /// Whenever it is polled.
    #[default]
    Any,
    /// First: the other side may go once this call was polled once.
    First(oneshot::Sender<()>),
    /// After the other side's first poll (or once it gave up).
    After(oneshot::Receiver<()>),
}

/// Runs `call` in its turn.
///
/// A plain future around `call` rather than an `async fn`: the mirrored
/// request's future is large (~15 KB), and an `async fn` holding it in three
/// arms made the shadow's task future several times its size, copied on
/// every spawn (callgrind: 84K → 201K instructions per mirrored request,
/// most of it `memcpy`). This one is `call` plus a few words.
pub fn take_turn<F: Future>(turn: Turn, call: F) -> InTurn<F> {
    let wait = match turn {
        Turn::Any => Wait::Go,
        Turn::First(done) => Wait::Lead(Some(done)),
        Turn::After(other) => Wait::Follow(other),
    };
    InTurn { call, wait }
}

pin_project_lite::pin_project! {
    /// `call`, run in its turn: what [`take_turn`] returns.
    pub struct InTurn<F> {
        #[pin]
        call: F,
        wait: Wait,
    }
}

enum Wait {
    /// Poll the call.
    Go,
    /// Poll the call once, then let the other side go.
    Lead(Option<oneshot::Sender<()>>),
    /// Wait for the other side's first poll (or for it to give up).
    Follow(oneshot::Receiver<()>),
    /// The other side went: step behind its connection task once
    /// (tokio's `yield_now`, which defers the wake-up until the driver's
    /// ready tasks ran; boxed because its type has no name — ordered modes
    /// only, never the default).
    Yield(Pin<Box<dyn Future<Output = ()> + Send>>),
}

impl<F: Future> Future for InTurn<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        loop {
            match this.wait {
                Wait::Go => return this.call.poll(cx),
                Wait::Lead(done) => {
                    let first = this.call.as_mut().poll(cx);
                    if let Some(done) = done.take() {
                        let _ = done.send(());
                    }
                    *this.wait = Wait::Go;
                    return first;
                }
                Wait::Follow(other) => {
                    // Closed when the other side ended without a turn: go anyway.
                    let _ = std::task::ready!(Pin::new(other).poll(cx));
                    *this.wait = Wait::Yield(Box::pin(tokio::task::yield_now()));
                }
                Wait::Yield(yielded) => {
                    // The other side's connection task was woken just before
                    // us, and tokio runs the task woken last first (its LIFO
                    // slot): a yield puts us behind it, so its request is
                    // written first.
                    std::task::ready!(yielded.as_mut().poll(cx));
                    *this.wait = Wait::Go;
                }
            }
        }
    }
}

/// A service's order and the count that alternates it.
#[derive(Debug, Default)]
pub struct Departures {
    order: MirrorOrder,
    /// Mirrored requests so far. Relaxed: only its parity is used, and two
    /// requests racing for it still alternate.
    count: AtomicU64,
}

impl Departures {
    pub fn new(order: MirrorOrder) -> Self {
        Self {
            order,
            count: AtomicU64::new(0),
        }
    }

    /// The next mirrored request's turns: (primary's, shadow's).
    pub fn next(&self) -> (Turn, Turn) {
        let primary_first = match self.order {
            MirrorOrder::Unordered => return (Turn::Any, Turn::Any),
            MirrorOrder::PrimaryFirst => true,
            MirrorOrder::Alternate => self.count.fetch_add(1, Ordering::Relaxed).is_multiple_of(2),
        };
        let (done, after) = oneshot::channel();
        if primary_first {
            (Turn::First(done), Turn::After(after))
        } else {
            (Turn::After(after), Turn::First(done))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Which side's call starts first under `order`, for `n` requests,
    /// the shadow's task spawned first (as the proxy does).
    async fn firsts(order: MirrorOrder, n: usize) -> Vec<&'static str> {
        let departures = Departures::new(order);
        let mut out = Vec::new();
        for _ in 0..n {
            let log = Arc::new(Mutex::new(Vec::new()));
            let (primary, shadow) = departures.next();
            let l = Arc::clone(&log);
            let task = tokio::spawn(take_turn(shadow, async move {
                l.lock().unwrap().push("shadow");
            }));
            tokio::task::yield_now().await;
            let l = Arc::clone(&log);
            take_turn(primary, async move { l.lock().unwrap().push("primary") }).await;
            task.await.unwrap();
            let first = log.lock().unwrap()[0];
            out.push(first);
        }
        out
    }

    #[tokio::test]
    async fn primary_first_holds_the_shadow_back() {
        let f = firsts(MirrorOrder::PrimaryFirst, 6).await;
        assert!(f.iter().all(|s| *s == "primary"), "{f:?}");
    }

    #[tokio::test]
    async fn alternate_takes_turns_starting_with_the_primary() {
        let f = firsts(MirrorOrder::Alternate, 6).await;
        assert_eq!(f, ["primary", "shadow"].repeat(3));
    }

    #[tokio::test]
    async fn unordered_lets_the_scheduler_pick() {
        // The shadow's task, spawned and yielded to, runs first every time:
        // the bias `alternate` removes.
        let f = firsts(MirrorOrder::Unordered, 4).await;
        assert!(f.iter().all(|s| *s == "shadow"), "{f:?}");
    }

    #[tokio::test]
    async fn a_side_that_ends_without_its_turn_does_not_hold_the_other() {
        let (primary, shadow) = Departures::new(MirrorOrder::PrimaryFirst).next();
        drop(primary);
        assert_eq!(take_turn(shadow, async { 7 }).await, 7);
    }
}

//! A thread that releases an open model's slots on time, below a
//! millisecond, to async senders.
//!
//! tokio's timer wheel ticks in whole milliseconds and rounds a deadline up
//! to the next tick, so senders that sleep on it until their slot all wake
//! on the same tick: at 5,000 requests/s each millisecond's five requests
//! leave together and queue behind each other in the service, and the
//! service is charged for a burst the schedule never asked for (the
//! session-5 floor runs: `parallax load http` read 1.2 ms against the
//! target itself, and +289/+373 µs through the proxy where evenly spaced
//! arrivals read +64/+70). goose, whose users the open model drives, has
//! no scheduler of its own to lend (its `--throttle-requests` is a cap on
//! a closed loop), so the pacing has to sit in front of it, as the open
//! model's slots already do.
//!
//! A [`Metronome`] is one OS thread per run. It sleeps until `early` before
//! the next slot's time on a futex with a timeout (`park_timeout`), its
//! timer slack set to 1 ns (`/proc/thread-self/timerslack_ns`; by default
//! the kernel may add 50 µs to any sleep of a normal thread), and then
//! releases the slot: one permit of a semaphore the senders wait on
//! ([`Metronome::tick`]), which wakes exactly one waiting sender (tokio's
//! semaphore queues waiters in order). The thread sleeps between slots and
//! never spins, so its cost is one wake-up per slot (a few µs of CPU), and
//! a sender's wait is one cross-thread wake on top. Every slot already due
//! when it wakes (it was descheduled, or the rate is above what it wakes
//! for) is released at once.
//!
//! A permit is a slot, not a particular one: the sender that gets it takes
//! the next slot number from its own counter, as before, and measures
//! latency from that slot's time. Permits nobody is waiting for (every
//! sender is busy) stay until a sender is free, and the slot it then takes
//! is late by the wait — coordinated omission is corrected exactly as when
//! senders slept on their own.
//!
//! After the last slot the gate opens for good, so every later `tick`
//! returns at once and the sender finds the schedule empty; dropping the
//! metronome stops its thread and opens the gate too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// When slot `k` (counted from 0 for this metronome) is due, as an offset
/// from the start; `None` past the last one.
pub trait Due: FnMut(u64) -> Option<Duration> + Send + 'static {}
impl<F: FnMut(u64) -> Option<Duration> + Send + 'static> Due for F {}

/// Permits added when the gate opens: far more than any schedule's slots,
/// and within what tokio's semaphore accepts.
const OPEN: usize = Semaphore::MAX_PERMITS / 2;

/// What the thread and the senders share.
struct Gate {
    /// One permit per released slot. A semaphore rather than a channel:
    /// the slots carry no data (a sender numbers its own), any number of
    /// senders wait on it, and a release wakes one of them, in order.
    permits: Semaphore,
    /// Set once the last slot is out, or the owner stopped the thread:
    /// `tick` no longer waits.
    open: AtomicBool,
    /// Asks the thread to stop (with an `unpark`, so a long sleep ends).
    stop: AtomicBool,
}

impl Gate {
    fn open(&self) {
        if !self.open.swap(true, Ordering::AcqRel) {
            self.permits.add_permits(OPEN);
        }
    }
}

/// Releases slots on a thread of its own; senders wait with [`tick`].
///
/// [`tick`]: Metronome::tick
pub struct Metronome {
    gate: Arc<Gate>,
    thread: Option<JoinHandle<()>>,
}

impl Metronome {
    /// Starts the thread: slot `k` is released at `start + due(k) - early`
    /// (or at once when that has passed), until `due` says the schedule is
    /// over. `early` is room for the hand-off to a sender; a sender that
    /// sends before its slot's time is measured from its send.
    pub fn start(start: Instant, early: Duration, due: impl Due) -> std::io::Result<Self> {
        let gate = Arc::new(Gate {
            permits: Semaphore::new(0),
            open: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let thread = std::thread::Builder::new()
            .name("parallax-metronome".into())
            .spawn({
                let gate = Arc::clone(&gate);
                move || release(&gate, start, early, due)
            })?;
        Ok(Self {
            gate,
            thread: Some(thread),
        })
    }

    /// Waits until a slot is released and takes it; at once when the gate
    /// is open (the schedule is over: the caller finds no slot left).
    pub async fn tick(&self) {
        if self.gate.open.load(Ordering::Acquire) {
            return;
        }
        // Never closed, so never an error; one would only mean no slots.
        if let Ok(permit) = self.gate.permits.acquire().await {
            permit.forget();
        }
    }

    /// Whether every slot has been released (or the metronome stopped).
    pub fn is_open(&self) -> bool {
        self.gate.open.load(Ordering::Acquire)
    }
}

impl Drop for Metronome {
    fn drop(&mut self) {
        self.gate.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        self.gate.open();
    }
}

/// The thread: sleep to each slot, release what is due, open the gate at
/// the end.
fn release(gate: &Gate, start: Instant, early: Duration, mut due: impl Due) {
    // Best effort: without it a sleep may end up to 50 µs late. Only this
    // thread's slack changes.
    let _ = std::fs::write("/proc/thread-self/timerslack_ns", "1");
    let at = |offset: Duration| (start + offset).checked_sub(early).unwrap_or(start);
    let mut next = due(0).map(at);
    let mut k = 0u64;
    while let Some(wake) = next {
        if gate.stop.load(Ordering::Acquire) {
            break;
        }
        let now = Instant::now();
        if wake > now {
            // A futex wait with a timeout: it honours the timer slack as
            // nanosleep does, and `Drop` can end it with an unpark. A
            // spurious return just goes round again.
            std::thread::park_timeout(wake - now);
            continue;
        }
        // This slot and every later one already due.
        let mut ready = 0;
        while next.is_some_and(|w| w <= now) {
            ready += 1;
            k += 1;
            next = due(k).map(at);
        }
        gate.permits.add_permits(ready);
    }
    gate.open();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(rate: f64, slots: u64) -> impl Due {
        move |k| (k < slots).then(|| Duration::from_secs_f64(k as f64 / rate))
    }

    #[tokio::test]
    async fn each_tick_returns_at_its_slot_and_the_gate_opens_after_the_last() {
        let start = Instant::now() + Duration::from_millis(20);
        let metronome = Metronome::start(start, Duration::ZERO, uniform(1000.0, 20)).unwrap();
        let mut at = Vec::new();
        for _ in 0..20 {
            metronome.tick().await;
            at.push(Instant::now());
        }
        for (k, t) in at.iter().enumerate() {
            let due = start + Duration::from_millis(k as u64);
            assert!(*t >= due, "slot {k} released {:?} early", due - *t);
        }
        // The schedule is over: ticks no longer wait.
        let before = Instant::now();
        for _ in 0..1000 {
            metronome.tick().await;
        }
        assert!(before.elapsed() < Duration::from_millis(100));
        assert!(metronome.is_open());
    }

    #[tokio::test]
    async fn slots_nobody_waited_for_are_kept_for_the_next_tick() {
        let start = Instant::now();
        let metronome = Metronome::start(start, Duration::ZERO, uniform(1000.0, 10_000)).unwrap();
        // Ten slots pass while nobody waits; ten ticks then return at once.
        std::thread::sleep(Duration::from_millis(12));
        let before = Instant::now();
        for _ in 0..10 {
            metronome.tick().await;
        }
        assert!(before.elapsed() < Duration::from_micros(900));
    }

    #[tokio::test]
    async fn dropping_it_stops_a_long_sleep_at_once() {
        let start = Instant::now() + Duration::from_secs(3600);
        let metronome = Metronome::start(start, Duration::ZERO, uniform(1.0, 10)).unwrap();
        let before = Instant::now();
        drop(metronome);
        assert!(before.elapsed() < Duration::from_secs(1));
    }
}

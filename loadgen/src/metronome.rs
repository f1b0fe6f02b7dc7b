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
//! # On a current-thread runtime: a timerfd on its reactor
//! The thread costs two wake-ups per slot, its own and the cross-thread
//! wake of the runtime's parked worker for the released sender (on a
//! multi-thread runtime a third: the woken worker wakes another to steal).
//! On a VM, where waking a halted vCPU is dear, that made `parallax load
//! http` cost 114–124 µs of CPU per request at 5,000/s. Where the caller
//! runs on a current-thread runtime, [`Metronome::start_on_reactor`]
//! releases the slots from a task instead: it arms a timerfd (an hrtimer:
//! no timer slack, below a microsecond) for the next slot and waits on it
//! through the runtime's own epoll, so the runtime's thread, parked in
//! `epoll_wait`, wakes at the slot, the task adds the permit and the
//! sender runs on the same thread in the same turn: one wake-up per slot,
//! none cross-thread (89–95 µs per request; release → send 39–42 against
//! 88–104 µs). On a current-thread runtime a busy thread cannot send a
//! released slot any sooner than it notices the timer, so nothing is lost
//! to the thread there. Not on a multi-thread runtime: there the reactor is
//! polled only by a worker with nothing else to do (or every
//! `event_interval` turns), and with the workers saturated the slots
//! bunched (docs/benchmarks.md), which the thread never does; so there, and
//! wherever the kernel refuses a timerfd, it is the thread.
//! [`Metronome::start`] is always the thread (`pacing::run`).
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

/// Releases slots (on a thread of its own, or a timerfd on a
/// current-thread runtime); senders wait with [`tick`].
///
/// [`tick`]: Metronome::tick
pub struct Metronome {
    gate: Arc<Gate>,
    releaser: Releaser,
}

/// What releases the slots.
enum Releaser {
    /// A thread of its own (any runtime).
    Thread(Option<JoinHandle<()>>),
    /// A task on a current-thread runtime, woken by a timerfd.
    Reactor(tokio::task::JoinHandle<()>),
}

impl Metronome {
    /// Starts the thread: slot `k` is released at `start + due(k) - early`
    /// (or at once when that has passed), until `due` says the schedule is
    /// over. `early` is room for the hand-off to a sender; a sender that
    /// sends before its slot's time is measured from its send.
    pub fn start(start: Instant, early: Duration, due: impl Due) -> std::io::Result<Self> {
        Self::start_with(start, early, due, false)
    }

    /// As [`start`], but on a current-thread runtime the slots are released
    /// by a task woken by a timerfd on the runtime's own reactor rather
    /// than by a thread (module docs: one wake-up per slot instead of two,
    /// and none of them cross-thread). On any other runtime, or where the
    /// kernel refuses a timerfd, the thread as in [`start`].
    ///
    /// Must be called within a tokio runtime.
    ///
    /// [`start`]: Metronome::start
    pub fn start_on_reactor(
        start: Instant,
        early: Duration,
        due: impl Due,
    ) -> std::io::Result<Self> {
        Self::start_with(start, early, due, true)
    }

    fn start_with(
        start: Instant,
        early: Duration,
        due: impl Due,
        on_reactor: bool,
    ) -> std::io::Result<Self> {
        let gate = Arc::new(Gate {
            permits: Semaphore::new(0),
            open: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let slots = Slots::new(start, early, due);
        if let Some(timer) = on_reactor
            .then(reactor::Timer::on_current_thread_runtime)
            .flatten()
        {
            let task = tokio::spawn(reactor::release(Arc::clone(&gate), timer, slots));
            return Ok(Self {
                gate,
                releaser: Releaser::Reactor(task),
            });
        }
        let thread = std::thread::Builder::new()
            .name("parallax-metronome".into())
            .spawn({
                let gate = Arc::clone(&gate);
                move || release(&gate, slots)
            })?;
        Ok(Self {
            gate,
            releaser: Releaser::Thread(Some(thread)),
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
        match &mut self.releaser {
            Releaser::Thread(thread) => {
                if let Some(thread) = thread.take() {
                    thread.thread().unpark();
                    let _ = thread.join();
                }
            }
            Releaser::Reactor(task) => task.abort(),
        }
        self.gate.open();
    }
}

/// The schedule as the releaser walks it: when the next slot is to be
/// released, and how many are due by now.
struct Slots<D> {
    start: Instant,
    early: Duration,
    due: D,
    /// Slots released so far.
    k: u64,
    /// When slot `k` is to be released; `None` once the schedule is over.
    next: Option<Instant>,
}

impl<D: Due> Slots<D> {
    fn new(start: Instant, early: Duration, mut due: D) -> Self {
        let next = due(0).map(|offset| Self::at(start, early, offset));
        Self {
            start,
            early,
            due,
            k: 0,
            next,
        }
    }

    fn at(start: Instant, early: Duration, offset: Duration) -> Instant {
        (start + offset).checked_sub(early).unwrap_or(start)
    }

    /// Takes every slot due by `now` (this one and every later one already
    /// due) and says how many.
    fn take_due(&mut self, now: Instant) -> usize {
        let mut ready = 0;
        while self.next.is_some_and(|w| w <= now) {
            ready += 1;
            self.k += 1;
            let (start, early) = (self.start, self.early);
            self.next = (self.due)(self.k).map(|offset| Self::at(start, early, offset));
        }
        ready
    }
}

/// The thread: sleep to each slot, release what is due, open the gate at
/// the end.
fn release(gate: &Gate, mut slots: Slots<impl Due>) {
    // Best effort: without it a sleep may end up to 50 µs late. Only this
    // thread's slack changes.
    let _ = std::fs::write("/proc/thread-self/timerslack_ns", "1");
    while let Some(wake) = slots.next {
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
        gate.permits.add_permits(slots.take_due(now));
    }
    gate.open();
}

/// The releaser on a current-thread runtime: a timerfd on the runtime's
/// own reactor.
mod reactor {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };
    use tokio::io::unix::AsyncFd;
    use tokio::runtime::{Handle, RuntimeFlavor};

    use super::{Due, Gate, Slots};

    pub(super) struct Timer(AsyncFd<OwnedFd>);

    impl Timer {
        /// A timerfd registered with the current runtime's reactor, when
        /// that runtime is a current-thread one; `None` otherwise or when
        /// the kernel refuses one.
        pub(super) fn on_current_thread_runtime() -> Option<Self> {
            let handle = Handle::try_current().ok()?;
            if handle.runtime_flavor() != RuntimeFlavor::CurrentThread {
                return None;
            }
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )
            .ok()?;
            let _guard = handle.enter();
            // `AsyncFd::register`'s safety condition (the descriptor stays
            // open and the same while registered) holds for an `OwnedFd`
            // nobody else can close; `new` is that call without the
            // `unsafe` block this workspace forbids.
            #[allow(deprecated)]
            AsyncFd::new(fd).ok().map(Self)
        }

        /// Arms it to expire once, `after` from now (not zero: that would
        /// disarm it).
        fn arm(&self, after: Duration) -> io::Result<()> {
            let after = after.max(Duration::from_nanos(1));
            let spec = Itimerspec {
                it_interval: Timespec::default(),
                it_value: Timespec {
                    tv_sec: after.as_secs() as _,
                    tv_nsec: after.subsec_nanos() as _,
                },
            };
            timerfd_settime(self.0.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
            Ok(())
        }

        /// Waits until it has expired.
        async fn expired(&self) -> io::Result<()> {
            loop {
                let mut guard = self.0.readable().await?;
                let mut count = [0u8; 8];
                match guard.try_io(|fd| {
                    rustix::io::read(fd.get_ref(), &mut count).map_err(io::Error::from)
                }) {
                    Ok(result) => {
                        // The read took every expiry and the timer is
                        // one-shot: nothing is left to read until it is
                        // armed again, so the next wait need not try a
                        // read that can only fail (one syscall per slot).
                        guard.clear_ready();
                        return result.map(drop);
                    }
                    // Not expired yet: the readiness was stale.
                    Err(_would_block) => continue,
                }
            }
        }
    }

    pub(super) async fn release(gate: Arc<Gate>, timer: Timer, mut slots: Slots<impl Due>) {
        while let Some(wake) = slots.next {
            let now = Instant::now();
            if wake > now {
                let waited = match timer.arm(wake - now) {
                    Ok(()) => timer.expired().await,
                    Err(e) => Err(e),
                };
                if waited.is_err() {
                    // Never seen; tokio's millisecond timer keeps the
                    // schedule, coarsely, rather than losing it.
                    tokio::time::sleep_until(wake.into()).await;
                }
                continue;
            }
            gate.permits.add_permits(slots.take_due(now));
        }
        gate.open();
    }
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

    fn on_reactor(metronome: &Metronome) -> bool {
        matches!(metronome.releaser, Releaser::Reactor(_))
    }

    /// Each tick's time at 5,000 slots a second: the median gap, and the
    /// share of gaps under 20 µs (slots released together).
    async fn gaps_at_5000_per_second(metronome: &Metronome, slots: usize) -> (Duration, f64) {
        let mut at = Vec::with_capacity(slots);
        for _ in 0..slots {
            metronome.tick().await;
            at.push(Instant::now());
        }
        let mut gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort();
        let together = gaps
            .iter()
            .filter(|g| **g < Duration::from_micros(20))
            .count();
        (gaps[gaps.len() / 2], together as f64 / gaps.len() as f64)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_a_current_thread_runtime_a_timerfd_releases_slots_below_a_millisecond() {
        let start = Instant::now() + Duration::from_millis(20);
        let metronome =
            Metronome::start_on_reactor(start, Duration::ZERO, uniform(5000.0, 1000)).unwrap();
        assert!(on_reactor(&metronome));
        // 200 µs apart; tokio's own timer would release them five at a
        // time on whole milliseconds (median gap 0).
        let (median, together) = gaps_at_5000_per_second(&metronome, 1000).await;
        assert!(
            (150..=250).contains(&median.as_micros()),
            "median gap {median:?}"
        );
        assert!(together <= 0.1, "{:.1} % together", together * 100.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_multi_thread_runtime_a_thread_releases_slots_below_a_millisecond() {
        let start = Instant::now() + Duration::from_millis(20);
        let metronome =
            Metronome::start_on_reactor(start, Duration::ZERO, uniform(5000.0, 1000)).unwrap();
        assert!(!on_reactor(&metronome));
        let (median, together) = gaps_at_5000_per_second(&metronome, 1000).await;
        assert!(
            (150..=250).contains(&median.as_micros()),
            "median gap {median:?}"
        );
        assert!(together <= 0.1, "{:.1} % together", together * 100.0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dropping_it_on_a_current_thread_runtime_opens_the_gate() {
        let start = Instant::now() + Duration::from_secs(3600);
        let metronome =
            Metronome::start_on_reactor(start, Duration::ZERO, uniform(1.0, 10)).unwrap();
        assert!(on_reactor(&metronome));
        let gate = Arc::clone(&metronome.gate);
        drop(metronome);
        assert!(gate.open.load(Ordering::Acquire));
        assert_eq!(gate.permits.available_permits(), OPEN);
    }
}

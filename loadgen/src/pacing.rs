//! Open-model pacing: requests are sent on a schedule, not when the previous
//! answer arrives.
//!
//! A closed loop (send, wait, send again) slows down exactly when the service
//! does, so a stall hides the requests that would have queued behind it —
//! coordinated omission. Here request `n` is due at `start + n / rate` (after
//! an optional linear ramp) whatever happens to earlier requests. Senders
//! take the next unclaimed slot, sleep until it, send, and record the latency
//! measured **from the slot's intended time**, so a request that had to wait
//! for a free sender carries that wait in its latency, as a real client
//! arriving on time would.
//!
//! A slot that is already later than [`Plan::late_after`] when a sender takes
//! it is counted as late (k6 calls these `dropped_iterations`) but is still
//! sent: a late count means the driver had too few senders or too little CPU
//! to keep the schedule, and the rate it reports is then not the rate asked
//! for.
//!
//! Senders do not sleep on tokio's timer: it ticks in whole milliseconds
//! and rounds deadlines up, so at high rates every millisecond's slots
//! would leave together, a burst the schedule never asked for. A
//! [`Metronome`] thread releases each slot [`Plan::early_by`] before its
//! time, to within a wake-up, and a waiting sender sends at once; latency
//! is measured from the earlier of the slot's time and the actual send,
//! i.e. from the real send when early (the true service time) and from the
//! slot when late (corrected for coordinated omission).
//!
//! A run is bounded by [`Schedule::duration`] and [`Schedule::max_requests`],
//! and stops by itself: once [`Plan::overrun`] has passed after the
//! schedule's end, senders stop taking slots and what is left is counted in
//! [`Report::not_sent`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::metronome::Metronome;

/// Latencies are kept in microseconds from 1 µs to 60 s at 3 significant
/// digits; slower answers are recorded as 60 s.
const HISTOGRAM_MAX_US: u64 = 60_000_000;

/// When each request is due, as an offset from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Arrival rate once ramped up, requests per second.
    pub rate_per_sec: f64,
    /// The rate rises linearly from 0 to `rate_per_sec` over this long
    /// (zero: full rate from the start).
    pub ramp: Duration,
    /// Slots are due from the start up to (not including) this offset.
    pub duration: Duration,
    /// And there are at most this many of them.
    pub max_requests: u64,
}

impl Schedule {
    /// Offset of slot `n` from the start, or `None` when `n` is past the end
    /// of the schedule.
    ///
    /// With rate `r` and ramp `T`, `N(t) = r t² / 2T` slots are due by `t`
    /// during the ramp and `r T / 2 + r (t - T)` after it; this inverts that.
    pub fn offset(&self, n: u64) -> Option<Duration> {
        if n >= self.max_requests || self.rate_per_sec <= 0.0 {
            return None;
        }
        let (rate, ramp, n) = (self.rate_per_sec, self.ramp.as_secs_f64(), n as f64);
        let ramp_slots = rate * ramp / 2.0;
        let secs = if n < ramp_slots {
            (2.0 * ramp * n / rate).sqrt()
        } else {
            ramp + (n - ramp_slots) / rate
        };
        let offset = Duration::from_secs_f64(secs);
        (offset < self.duration).then_some(offset)
    }

    /// How many slots the schedule holds.
    pub fn len(&self) -> u64 {
        // Binary search for the first slot past the end: `offset` is monotonic.
        let (mut lo, mut hi) = (0u64, self.max_requests);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.offset(mid).is_some() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A schedule and the rules for keeping and measuring it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub schedule: Schedule,
    /// Slots due before this offset are sent but left out of the report's
    /// latencies, outcomes and late count (caches, pools, JITs settle).
    pub warmup: Duration,
    /// A slot taken more than this after its time is counted as late.
    pub late_after: Duration,
    /// A slot is released to a sender this long before its time: room for
    /// the wake-up of the sender's task (see the module docs).
    pub early_by: Duration,
    /// How long after the schedule's end senders may still take slots.
    pub overrun: Duration,
}

/// One connection's worth of sending: it owns whatever it needs (a
/// connection, an RNG) and is driven by a single task, so it needs no locks.
pub trait Sender: Send + 'static {
    /// What one request came to; counted per distinct value.
    type Outcome: Ord + Copy + Send + 'static;

    /// Sends request `n` (the slot number) and waits for its answer.
    fn send(&mut self, n: u64) -> impl Future<Output = Self::Outcome> + Send;
}

/// What a paced run measured (warm-up excluded except in `warmup`).
#[derive(Debug, Clone)]
pub struct Report<O> {
    /// Latency of every measured request in µs, from its slot's time.
    pub latency_us: Histogram<u64>,
    /// Measured requests by outcome.
    pub outcomes: BTreeMap<O, u64>,
    /// Warm-up requests by outcome (a failure is a failure, warm or not).
    pub warmup_outcomes: BTreeMap<O, u64>,
    /// Requests sent and answered (or failed) after the warm-up.
    pub measured: u64,
    /// Requests sent during the warm-up.
    pub warmup: u64,
    /// Measured slots that were taken later than `late_after`.
    pub late: u64,
    /// Slots never sent because the run passed its overrun.
    pub not_sent: u64,
    /// From the end of the warm-up to the last measured completion.
    pub measured_elapsed: Duration,
}

impl<O> Report<O> {
    /// Measured requests per second actually completed.
    pub fn achieved_rate(&self) -> f64 {
        let secs = self.measured_elapsed.as_secs_f64();
        if secs > 0.0 {
            self.measured as f64 / secs
        } else {
            0.0
        }
    }
}

/// A [`Plan::early_by`] for most runs: about one wake-up of a parked
/// tokio worker on an idle VM, so a typical slot leaves on its time.
pub const EARLY_BY: Duration = Duration::from_micros(20);

/// A new, empty latency histogram with the bounds every report uses.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("constant bounds are valid")
}

/// Runs `plan` with one task per sender and returns the report and the
/// senders (so a scenario can read back anything they kept).
///
/// Concurrency is the number of senders: a request is in flight only while
/// a sender waits for it, so `senders.len()` must cover `rate × latency`
/// with room for stalls, or slots turn late.
pub async fn run<S: Sender>(plan: Plan, senders: Vec<S>) -> (Report<S::Outcome>, Vec<S>) {
    run_from(Instant::now(), plan, senders).await
}

/// [`run`] with the schedule starting at `start` (now or soon), for
/// senders that time something of their own from their slots' times.
///
/// # Panics
/// When the metronome's thread cannot be started (the process is out of
/// threads).
pub async fn run_from<S: Sender>(
    start: Instant,
    plan: Plan,
    senders: Vec<S>,
) -> (Report<S::Outcome>, Vec<S>) {
    let schedule = plan.schedule;
    let metronome = Metronome::start(start.into_std(), plan.early_by, move |k| schedule.offset(k))
        .expect("cannot start the pacing thread");
    run_released(
        start,
        plan,
        senders,
        Release::Metronome(Arc::new(metronome)),
    )
    .await
}

/// How senders learn that their next slot is due.
#[derive(Clone)]
enum Release {
    /// Released by a [`Metronome`] (µs).
    Metronome(Arc<Metronome>),
    /// Each sender sleeps on tokio's timer (whole ms): under a paused
    /// clock, where the tests check the schedule's arithmetic exactly.
    #[cfg(test)]
    Timer,
}

impl Release {
    /// Waits for the next slot's release (the timer sleeps later, to the
    /// slot's own time).
    async fn tick(&self) {
        match self {
            Release::Metronome(metronome) => metronome.tick().await,
            #[cfg(test)]
            Release::Timer => {}
        }
    }
}

async fn run_released<S: Sender>(
    start: Instant,
    plan: Plan,
    senders: Vec<S>,
    release: Release,
) -> (Report<S::Outcome>, Vec<S>) {
    // The only shared state: which slot is next. Relaxed is enough — each
    // slot number is handed out once, and nothing else is published by it.
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let (next, release) = (Arc::clone(&next), release.clone());
            tokio::spawn(drive(sender, plan, start, next, release))
        })
        .collect();
    drop(release);

    let mut report = Report {
        latency_us: latency_histogram(),
        outcomes: BTreeMap::new(),
        warmup_outcomes: BTreeMap::new(),
        measured: 0,
        warmup: 0,
        late: 0,
        not_sent: 0,
        measured_elapsed: Duration::ZERO,
    };
    let mut senders = Vec::with_capacity(tasks.len());
    let mut last_done = None::<Instant>;
    for task in tasks {
        let (sender, part) = task.await.expect("a sender task panicked");
        senders.push(sender);
        report
            .latency_us
            .add(&part.latency_us)
            .expect("histograms share bounds");
        for (outcome, count) in part.outcomes {
            *report.outcomes.entry(outcome).or_default() += count;
        }
        for (outcome, count) in part.warmup_outcomes {
            *report.warmup_outcomes.entry(outcome).or_default() += count;
        }
        report.measured += part.measured;
        report.warmup += part.warmup;
        report.late += part.late;
        last_done = last_done.max(part.last_done);
    }
    report.not_sent = plan
        .schedule
        .len()
        .saturating_sub(report.measured + report.warmup);
    if let Some(done) = last_done {
        report.measured_elapsed = done.saturating_duration_since(start + plan.warmup);
    }
    (report, senders)
}

/// One sender's share of the report.
struct Part<O> {
    latency_us: Histogram<u64>,
    outcomes: BTreeMap<O, u64>,
    warmup_outcomes: BTreeMap<O, u64>,
    measured: u64,
    warmup: u64,
    late: u64,
    last_done: Option<Instant>,
}

async fn drive<S: Sender>(
    mut sender: S,
    plan: Plan,
    start: Instant,
    next: Arc<AtomicU64>,
    release: Release,
) -> (S, Part<S::Outcome>) {
    let stop_taking = start + plan.schedule.duration + plan.overrun;
    let mut part = Part {
        latency_us: latency_histogram(),
        outcomes: BTreeMap::new(),
        warmup_outcomes: BTreeMap::new(),
        measured: 0,
        warmup: 0,
        late: 0,
        last_done: None,
    };
    loop {
        // A released slot is one this sender may take; the number is
        // still the next unclaimed one, which is due by now.
        release.tick().await;
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Some(offset) = plan.schedule.offset(n) else {
            break;
        };
        let due = start + offset;
        let taken = Instant::now();
        if taken >= stop_taking {
            break;
        }
        let measured = offset >= plan.warmup;
        if measured && taken > due + plan.late_after {
            part.late += 1;
        }
        #[cfg(test)]
        if matches!(release, Release::Timer) && due > taken + plan.early_by {
            tokio::time::sleep_until(due - plan.early_by).await;
        }
        let sent = Instant::now();
        let outcome = sender.send(n).await;
        let done = Instant::now();
        if !measured {
            part.warmup += 1;
            *part.warmup_outcomes.entry(outcome).or_default() += 1;
            continue;
        }
        let latency = done.duration_since(due.min(sent));
        part.latency_us
            .saturating_record((latency.as_micros() as u64).max(1));
        *part.outcomes.entry(outcome).or_default() += 1;
        part.measured += 1;
        part.last_done = Some(done);
    }
    (sender, part)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// [`super::run`] with senders sleeping on tokio's (paused) clock, so
    /// the schedule's arithmetic is checked to the microsecond; the
    /// metronome's own timing is tested in its module and, over a real
    /// server, in tests/scenarios.rs.
    async fn run<S: Sender>(plan: Plan, senders: Vec<S>) -> (Report<S::Outcome>, Vec<S>) {
        run_released(Instant::now(), plan, senders, Release::Timer).await
    }

    fn schedule(rate_per_sec: f64, duration: Duration) -> Schedule {
        Schedule {
            rate_per_sec,
            ramp: Duration::ZERO,
            duration,
            max_requests: u64::MAX,
        }
    }

    /// Exact timing: no early sends, a generous late threshold and overrun.
    fn plan(schedule: Schedule) -> Plan {
        Plan {
            schedule,
            warmup: Duration::ZERO,
            late_after: 1000 * MS,
            early_by: Duration::ZERO,
            overrun: 1000 * MS,
        }
    }

    /// Answers every request after a fixed time and notes when it was sent.
    struct Fixed {
        latency: Duration,
        sent: Arc<Mutex<Vec<(u64, Instant)>>>,
    }

    impl Fixed {
        fn new(latency: Duration) -> Self {
            Self {
                latency,
                sent: Arc::default(),
            }
        }
    }

    impl Sender for Fixed {
        type Outcome = ();
        async fn send(&mut self, n: u64) {
            self.sent.lock().unwrap().push((n, Instant::now()));
            tokio::time::sleep(self.latency).await;
        }
    }

    /// Whether a recorded value is `ms` milliseconds, within the histogram's
    /// precision.
    fn is_ms(h: &Histogram<u64>, recorded: u64, ms: u64) -> bool {
        h.equivalent(recorded, ms * 1000)
    }

    #[test]
    fn slot_n_is_due_at_n_over_the_rate() {
        let s = schedule(1000.0, Duration::from_secs(1));
        assert_eq!(s.offset(0), Some(Duration::ZERO));
        assert_eq!(s.offset(1), Some(MS));
        assert_eq!(s.offset(250), Some(250 * MS));
        assert_eq!(s.offset(999), Some(999 * MS));
        assert_eq!(s.offset(1000), None, "the end of the schedule is exclusive");
        assert_eq!(s.len(), 1000);
    }

    #[test]
    fn max_requests_bounds_the_schedule() {
        let s = Schedule {
            max_requests: 10,
            ..schedule(1000.0, Duration::from_secs(1))
        };
        assert_eq!(s.offset(9), Some(9 * MS));
        assert_eq!(s.offset(10), None);
        assert_eq!(s.len(), 10);
    }

    #[test]
    fn a_linear_ramp_sends_half_the_slots_then_runs_at_full_rate() {
        let s = Schedule {
            ramp: Duration::from_secs(2),
            ..schedule(100.0, Duration::from_secs(3))
        };
        // N(t) = r t² / 2T: 100 slots during the 2 s ramp, the 25th at 1 s.
        assert_eq!(s.offset(25), Some(Duration::from_secs(1)));
        assert_eq!(s.offset(100), Some(Duration::from_secs(2)));
        // After the ramp, 1/rate apart.
        assert_eq!(s.offset(101), Some(Duration::from_millis(2010)));
        assert_eq!(s.len(), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_senders_send_each_request_at_its_slot() {
        let start = Instant::now();
        let sender = Fixed::new(MS);
        let sent = Arc::clone(&sender.sent);
        let (report, _) = run(plan(schedule(100.0, 50 * MS)), vec![sender]).await;

        let sent = sent.lock().unwrap().clone();
        let offsets: Vec<_> = sent.iter().map(|(n, at)| (*n, *at - start)).collect();
        assert_eq!(
            offsets,
            vec![
                (0, Duration::ZERO),
                (1, 10 * MS),
                (2, 20 * MS),
                (3, 30 * MS),
                (4, 40 * MS)
            ]
        );
        assert_eq!(report.measured, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_measured_from_the_slots_intended_time() {
        // One sender, slots 10 ms apart, each answer takes 25 ms: slot 1 (due
        // at 10 ms) goes out at 25 ms and is answered at 50 ms, so it took
        // 40 ms from its slot, not the 25 ms a closed loop would record.
        let (report, _) = run(plan(schedule(100.0, 30 * MS)), vec![Fixed::new(25 * MS)]).await;

        let h = &report.latency_us;
        assert_eq!(h.len(), 3);
        assert!(is_ms(h, h.min(), 25), "slot 0: due 0 ms, done 25 ms");
        assert!(
            is_ms(h, h.value_at_quantile(0.5), 40),
            "slot 1: due 10, done 50"
        );
        assert!(is_ms(h, h.max(), 55), "slot 2: due 20 ms, done 75 ms");
    }

    #[tokio::test(start_paused = true)]
    async fn slots_taken_past_the_threshold_are_late_but_still_sent() {
        // As above: slot 1 is taken 15 ms late, slot 2 30 ms late.
        let plan = Plan {
            late_after: 5 * MS,
            ..plan(schedule(100.0, 30 * MS))
        };
        let sender = Fixed::new(25 * MS);
        let sent = Arc::clone(&sender.sent);
        let (report, _) = run(plan, vec![sender]).await;

        assert_eq!(report.late, 2);
        assert_eq!(report.measured, 3);
        assert_eq!(sent.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn warmup_slots_are_sent_but_not_measured() {
        let plan = Plan {
            warmup: 50 * MS,
            ..plan(schedule(100.0, 100 * MS))
        };
        let sender = Fixed::new(MS);
        let sent = Arc::clone(&sender.sent);
        let (report, _) = run(plan, vec![sender]).await;

        assert_eq!(sent.lock().unwrap().len(), 10);
        assert_eq!(report.warmup, 5);
        assert_eq!(report.measured, 5);
        assert_eq!(report.latency_us.len(), 5);
        assert_eq!(report.outcomes.get(&()), Some(&5));
        assert_eq!(report.warmup_outcomes.get(&()), Some(&5));
    }

    #[tokio::test(start_paused = true)]
    async fn early_sends_are_measured_from_the_actual_send() {
        // Waking 1 ms early makes slot n go out at n·10 − 1 ms; its latency
        // is the 2 ms the answer took, not 1 ms from the slot.
        let plan = Plan {
            early_by: MS,
            ..plan(schedule(100.0, 50 * MS))
        };
        let (report, _) = run(plan, vec![Fixed::new(2 * MS)]).await;

        let h = &report.latency_us;
        assert!(is_ms(h, h.min(), 2) && is_ms(h, h.max(), 2));
    }

    #[tokio::test(start_paused = true)]
    async fn more_senders_keep_a_slow_service_on_schedule() {
        // 25 ms answers every 10 ms need three requests in flight.
        let plan = Plan {
            late_after: MS,
            ..plan(schedule(100.0, 100 * MS))
        };
        let senders = (0..3).map(|_| Fixed::new(25 * MS)).collect();
        let (report, _) = run(plan, senders).await;

        assert_eq!(report.late, 0);
        assert!(is_ms(&report.latency_us, report.latency_us.max(), 25));
        assert_eq!(report.measured, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn the_run_stops_after_its_overrun_and_counts_what_it_never_sent() {
        // The first answer takes 1 s; by then the 100 ms schedule plus a
        // 50 ms overrun is over, so slots 1–9 are never sent.
        let plan = Plan {
            overrun: 50 * MS,
            ..plan(schedule(100.0, 100 * MS))
        };
        let start = Instant::now();
        let (report, _) = run(plan, vec![Fixed::new(Duration::from_secs(1))]).await;

        assert_eq!(report.measured, 1);
        assert_eq!(report.not_sent, 9);
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_achieved_rate_counts_measured_requests_over_measured_time() {
        let plan = Plan {
            warmup: 100 * MS,
            ..plan(schedule(100.0, 1100 * MS))
        };
        let (report, _) = run(plan, vec![Fixed::new(10 * MS)]).await;

        // 100 measured slots from 100 ms to 1090 ms, the last done at 1100 ms.
        assert_eq!(report.measured, 100);
        assert_eq!(report.measured_elapsed, Duration::from_secs(1));
        assert_eq!(report.achieved_rate(), 100.0);
    }
}

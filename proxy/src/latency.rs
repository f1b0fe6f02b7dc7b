//! Exact latency percentiles over a sliding window, from HDR histograms.
//!
//! Prometheus histograms answer with bucket-interpolated quantiles; the
//! benchmark targets (added p50 ≤ 100 µs) need better. Each backend of each
//! service keeps [`SLOTS`] HDR histograms (1 µs–60 s, 3 significant digits)
//! covering `window / SLOTS` each; the oldest is cleared as time moves on,
//! and a snapshot merges them all. So `/admin/latency` reports the last
//! `window` (to within one slot) with 0.1 % precision.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

/// Slots per window.
pub const SLOTS: u32 = 6;
/// Largest recorded value, µs (longer latencies are clamped to it).
const MAX_MICROS: u64 = 60_000_000;

/// One backend's sliding window.
#[derive(Debug)]
pub struct SlidingLatency {
    // A blocking mutex: recording is a few array increments and no `.await`
    // happens while it is held; a slot rotation clears one histogram.
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    slots: Vec<Histogram<u64>>,
    slot_width: Duration,
    /// Start of the current slot.
    current_start: Instant,
    current: usize,
}

/// Percentiles of one window, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl SlidingLatency {
    pub fn new(window: Duration, now: Instant) -> Self {
        let slot = Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds");
        Self {
            ring: Mutex::new(Ring {
                slots: vec![slot; SLOTS as usize],
                slot_width: (window / SLOTS).max(Duration::from_millis(1)),
                current_start: now,
                current: 0,
            }),
        }
    }

    /// Records one latency observed at `now`.
    pub fn record(&self, now: Instant, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut ring = self.ring.lock();
        ring.advance(now);
        let current = ring.current;
        ring.slots[current].saturating_record(micros);
    }

    /// Everything recorded in the window ending at `now`, as one histogram
    /// (µs). Within one slot's width two snapshots differ by exactly what
    /// was recorded between them, which is how `parallax run` cuts a
    /// measured phase out of a proxy's life.
    pub fn histogram(&self, now: Instant) -> Histogram<u64> {
        let mut ring = self.ring.lock();
        ring.advance(now);
        let mut merged = ring.slots[0].clone();
        for slot in &ring.slots[1..] {
            merged.add(slot).expect("same bounds");
        }
        merged
    }

    /// The percentiles of everything recorded in the window ending at `now`.
    pub fn summary(&self, now: Instant) -> Summary {
        let merged = self.histogram(now);
        let q = |q: f64| {
            if merged.is_empty() {
                0
            } else {
                merged.value_at_quantile(q)
            }
        };
        Summary {
            count: merged.len(),
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if merged.is_empty() { 0 } else { merged.max() },
        }
    }
}

impl Ring {
    /// Moves the current slot forward to the one holding `now`, clearing
    /// the slots it passes over.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.current_start);
        if elapsed < self.slot_width {
            return;
        }
        let steps = (elapsed.as_nanos() / self.slot_width.as_nanos()) as u64;
        let n = self.slots.len();
        for _ in 0..steps.min(n as u64) {
            self.current = (self.current + 1) % n;
            self.slots[self.current].reset();
        }
        let into_slot = elapsed.as_nanos() % self.slot_width.as_nanos();
        self.current_start = now - Duration::from_nanos(into_slot as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    #[test]
    fn percentiles_are_exact_to_three_digits() {
        let t0 = Instant::now();
        let l = SlidingLatency::new(WINDOW, t0);
        for us in 1..=1000 {
            l.record(t0, Duration::from_micros(us));
        }
        let s = l.summary(t0);
        assert_eq!(s.count, 1000);
        assert!((499..=501).contains(&s.p50_us), "{s:?}");
        assert!((989..=991).contains(&s.p99_us), "{s:?}");
        assert!((998..=1000).contains(&s.p999_us), "{s:?}");
        assert!((999..=1001).contains(&s.max_us), "{s:?}");
    }

    #[test]
    fn old_samples_leave_the_window() {
        let t0 = Instant::now();
        let l = SlidingLatency::new(WINDOW, t0);
        l.record(t0, Duration::from_millis(500));
        l.record(t0 + Duration::from_secs(30), Duration::from_millis(1));
        assert_eq!(l.summary(t0 + Duration::from_secs(59)).count, 2);
        // The first slot (0-10 s) is cleared when the window moves past it.
        let s = l.summary(t0 + Duration::from_secs(61));
        assert_eq!(s.count, 1);
        assert!(s.max_us < 2000, "{s:?}");
        assert_eq!(l.summary(t0 + Duration::from_secs(600)).count, 0);
    }

    #[test]
    fn an_empty_window_reports_zeros() {
        let t0 = Instant::now();
        let s = SlidingLatency::new(WINDOW, t0).summary(t0);
        assert_eq!(s.count, 0);
        assert_eq!(s.p99_us, 0);
    }
}

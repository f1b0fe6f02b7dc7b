//! Capacity at an SLO: the highest offered rate a backend holds.
//!
//! One p99 ratio from one rate is a noisy verdict on a shared machine: it
//! moves with whatever else runs, and at a comfortable rate it measures
//! neither side's limits (Go's GC never shows at 10 % load). The rate at
//! which a backend stops holding its objective — `p99<20ms` with under 1 %
//! of the open model's slots sent late — is one number per backend, and the
//! ratio of two such numbers moves far less than a tail percentile does.
//!
//! Two ways to find it, both pure logic here (the runner supplies the
//! probe, a short measured block at one rate):
//! - a **ladder** `--rate 2000..64000x1.5`: 2000, 3000, 4500, … up to
//!   64000, stopping at the first rate that fails;
//! - a **search** (`--find-capacity`): the same ladder up, then bisection
//!   (geometric) between the last rate held and the first that failed until
//!   they are within a tolerance (5 % by default). When even the first rung
//!   fails (a busy machine), the search halves the rate, down to 1/16 of
//!   the start, before bisecting.
//!
//! A rate "holds" when the SLO's percentile is within its bound and late
//! plus failed slots are under `max_late_ratio` of the slots.

use std::str::FromStr;

/// `--rate`: one rate, or a ladder `START..ENDxFACTOR`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSpec {
    /// One rate.
    Fixed(f64),
    /// Rates from `start` multiplied by `factor` while at most `end`
    /// (`end` itself is the last rung when the factors overshoot it).
    Ladder(Ladder),
}

/// A geometric ladder of rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ladder {
    pub start: f64,
    pub end: f64,
    pub factor: f64,
}

impl Ladder {
    /// Every rung, in order.
    pub fn rungs(&self) -> Vec<f64> {
        let mut rates = Vec::new();
        let mut r = self.start;
        while r < self.end * (1.0 - 1e-9) {
            rates.push(round_rate(r));
            r *= self.factor;
        }
        rates.push(round_rate(self.end));
        rates
    }
}

/// Rates are shown and reused as numbers a person can read: 3 significant
/// digits.
fn round_rate(r: f64) -> f64 {
    if r <= 0.0 {
        return r;
    }
    let digits = r.log10().floor() as i32 - 2;
    let unit = 10f64.powi(digits);
    let mantissa = (r / unit).round();
    // Dividing by an exact power of ten gives the nearest double (95.8),
    // multiplying by 0.1 does not (95.80000000000001).
    if digits < 0 {
        mantissa / 10f64.powi(-digits)
    } else {
        mantissa * unit
    }
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a rate: give a number (2000) or a ladder START..ENDxFACTOR (2000..64000x1.5)"
            )
        };
        let Some((start, rest)) = s.split_once("..") else {
            let r: f64 = s.trim().parse().map_err(|_| bad())?;
            if !(r.is_finite() && r > 0.0) {
                return Err(format!("--rate {s}: must be above 0"));
            }
            return Ok(RateSpec::Fixed(r));
        };
        let (end, factor) = rest.split_once(['x', '*']).ok_or_else(bad)?;
        let parse = |t: &str| t.trim().parse::<f64>().map_err(|_| bad());
        let ladder = Ladder {
            start: parse(start)?,
            end: parse(end)?,
            factor: parse(factor)?,
        };
        if !(ladder.start > 0.0 && ladder.end >= ladder.start && ladder.end.is_finite()) {
            return Err(format!(
                "--rate {s}: the ladder must go up from a rate above 0 (START <= END)"
            ));
        }
        if !(ladder.factor > 1.0 && ladder.factor.is_finite()) {
            return Err(format!(
                "--rate {s}: the factor must be above 1 (e.g. x1.5)"
            ));
        }
        Ok(RateSpec::Ladder(ladder))
    }
}

/// A latency objective: `p99<20ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// The quantile (0.99).
    pub quantile: f64,
    /// The bound, µs (exclusive).
    pub below_us: u64,
}

impl Slo {
    /// Whether a latency at the SLO's quantile keeps it.
    pub fn kept(&self, at_quantile_us: u64) -> bool {
        at_quantile_us < self.below_us
    }
}

impl std::fmt::Display for Slo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.quantile * 100.0;
        let name = if (q - q.round()).abs() < 1e-9 {
            format!("p{}", q.round())
        } else {
            format!("p{}", format!("{q}").replace('.', ""))
        };
        if self.below_us.is_multiple_of(1000) {
            write!(f, "{name}<{}ms", self.below_us / 1000)
        } else {
            write!(f, "{name}<{}us", self.below_us)
        }
    }
}

impl FromStr for Slo {
    type Err = String;

    /// `pNN<BOUND` with `p50`, `p90`, `p99`, `p999` (99.9 %), … and a bound
    /// in `us`, `ms` or `s`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "--slo {s}: {why}; give a percentile and a bound, e.g. 'p99<20ms' or 'p999<100ms'"
            )
        };
        let t = s.replace(' ', "");
        let (p, bound) = t.split_once('<').ok_or_else(|| bad("no `<`"))?;
        let digits = p
            .strip_prefix('p')
            .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| bad("the percentile must read pNN (p50, p99, p999)"))?;
        // p99 = 0.99, p999 = 0.999, p50 = 0.5.
        let quantile: f64 = format!("0.{digits}")
            .parse()
            .map_err(|_| bad("bad percentile"))?;
        let (number, scale) = if let Some(n) = bound.strip_suffix("us") {
            (n, 1.0)
        } else if let Some(n) = bound.strip_suffix("µs") {
            (n, 1.0)
        } else if let Some(n) = bound.strip_suffix("ms") {
            (n, 1e3)
        } else if let Some(n) = bound.strip_suffix('s') {
            (n, 1e6)
        } else {
            return Err(bad("the bound needs a unit (us, ms or s)"));
        };
        let v: f64 = number
            .parse()
            .map_err(|_| bad("the bound is not a number"))?;
        if !(v > 0.0 && v.is_finite()) {
            return Err(bad("the bound must be above 0"));
        }
        Ok(Slo {
            quantile,
            below_us: (v * scale).round() as u64,
        })
    }
}

/// How a capacity is looked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub ladder: Ladder,
    /// Bisect after the first failure (a search) or stop there (a ladder).
    pub bisect: bool,
    /// Bisection stops when failed / held is at most `1 + tolerance`.
    pub tolerance: f64,
    /// At most this many bisection probes.
    pub max_bisections: usize,
    pub slo: Slo,
    /// Largest share of late or failed slots a held rate may have.
    pub max_late_ratio: f64,
}

impl Plan {
    /// Whether one probe's figures hold the plan's objective.
    pub fn holds(&self, slots: u64, late: u64, errors: u64, at_quantile_us: u64) -> bool {
        slots > 0
            && ((late + errors) as f64) < self.max_late_ratio * slots as f64
            && self.slo.kept(at_quantile_us)
    }
}

/// One backend's search: which rate to try next, given what held.
#[derive(Debug, Clone)]
pub struct Search {
    plan: Plan,
    rungs: Vec<f64>,
    /// Next rung of the ladder to try (while climbing).
    rung: usize,
    /// Highest rate held so far.
    held: Option<f64>,
    /// Lowest rate that failed so far.
    failed: Option<f64>,
    bisections: usize,
    /// Every rate tried and whether it held, in order.
    pub tried: Vec<(f64, bool)>,
}

impl Search {
    pub fn new(plan: Plan) -> Self {
        Self {
            rungs: plan.ladder.rungs(),
            plan,
            rung: 0,
            held: None,
            failed: None,
            bisections: 0,
            tried: Vec::new(),
        }
    }

    /// The next rate to try; `None` when the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        match (self.held, self.failed) {
            // Climbing: the next rung, if any.
            (_, None) => self.rungs.get(self.rung).copied(),
            // Even the first rung failed: a ladder says so rather than
            // guessing below its start; a search halves the rate, down to
            // 1/16 of the start.
            (None, Some(failed)) => {
                let lower = round_rate(failed / 2.0);
                (self.plan.bisect && lower >= self.plan.ladder.start / 16.0).then_some(lower)
            }
            (Some(lo), Some(hi)) => {
                if !self.plan.bisect
                    || self.bisections >= self.plan.max_bisections
                    || hi / lo <= 1.0 + self.plan.tolerance
                {
                    return None;
                }
                let mid = round_rate((lo * hi).sqrt());
                // Rounding can land on an end when they are close.
                (mid > lo && mid < hi).then_some(mid)
            }
        }
    }

    /// What the probe at `rate` showed.
    pub fn record(&mut self, rate: f64, held: bool) {
        self.tried.push((rate, held));
        if self.failed.is_none() {
            self.rung += 1;
        } else if self.held.is_some() {
            self.bisections += 1;
        }
        if held {
            self.held = Some(self.held.map_or(rate, |h| h.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
    }

    /// The highest rate held (`None`: none did).
    pub fn capacity(&self) -> Option<f64> {
        self.held
    }

    /// True when nothing tried failed: the capacity is at least the top of
    /// the ladder, not a measured ceiling.
    pub fn at_least(&self) -> bool {
        self.failed.is_none() && self.held.is_some()
    }

    pub fn done(&self) -> bool {
        self.next_rate().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(bisect: bool) -> Plan {
        Plan {
            ladder: Ladder {
                start: 2000.0,
                end: 64000.0,
                factor: 1.5,
            },
            bisect,
            tolerance: 0.05,
            max_bisections: 8,
            slo: "p99<20ms".parse().unwrap(),
            max_late_ratio: 0.01,
        }
    }

    /// Runs a search against a backend that holds every rate up to `limit`.
    fn run(plan: Plan, limit: f64) -> Search {
        let mut s = Search::new(plan);
        let mut guard = 0;
        while let Some(rate) = s.next_rate() {
            s.record(rate, rate <= limit);
            guard += 1;
            assert!(guard < 50, "the search ends");
        }
        s
    }

    #[test]
    fn ladders_parse_and_climb_geometrically_to_their_end() {
        let RateSpec::Ladder(l) = "2000..64000x1.5".parse().unwrap() else {
            panic!("a ladder");
        };
        let rungs = l.rungs();
        assert_eq!(&rungs[..4], &[2000.0, 3000.0, 4500.0, 6750.0]);
        assert_eq!(*rungs.last().unwrap(), 64000.0);
        assert_eq!(round_rate(95.79), 95.8, "no float noise in printed rates");
        assert_eq!(round_rate(70.71), 70.7);
        assert!(rungs.windows(2).all(|w| w[1] > w[0]));
        assert_eq!("500".parse(), Ok(RateSpec::Fixed(500.0)));
        for bad in ["fast", "10..5x2", "1..10x1", "1..10", "0..10x2"] {
            let e = bad.parse::<RateSpec>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn slos_parse_with_their_units_and_print_back() {
        let s: Slo = "p99<20ms".parse().unwrap();
        assert_eq!((s.quantile, s.below_us), (0.99, 20_000));
        assert_eq!(s.to_string(), "p99<20ms");
        let s: Slo = "p999 < 1.5s".parse().unwrap();
        assert_eq!((s.quantile, s.below_us), (0.999, 1_500_000));
        let s: Slo = "p50<800us".parse().unwrap();
        assert_eq!((s.quantile, s.below_us), (0.5, 800));
        assert!(s.kept(799) && !s.kept(800));
        for bad in ["p99", "p99<20", "99<20ms", "pxx<1ms", "p99<-1ms"] {
            let e = bad.parse::<Slo>().unwrap_err();
            assert!(e.contains("p99<20ms"), "{e}");
        }
    }

    #[test]
    fn a_ladder_stops_at_the_first_failure() {
        let s = run(plan(false), 10_000.0);
        assert_eq!(s.capacity(), Some(6750.0));
        assert!(!s.at_least());
        let rates: Vec<f64> = s.tried.iter().map(|t| t.0).collect();
        assert_eq!(rates, [2000.0, 3000.0, 4500.0, 6750.0, 10100.0]);
    }

    #[test]
    fn a_search_bisects_to_within_the_tolerance() {
        let s = run(plan(true), 10_000.0);
        let cap = s.capacity().unwrap();
        assert!((10_000.0 / 1.06..=10_000.0).contains(&cap), "{cap}");
        // Every probe above the limit failed and every one at or below held.
        assert!(s.tried.iter().all(|(r, held)| *held == (*r <= 10_000.0)));
        assert!(s.tried.len() <= 4 + 8 + 1, "{:?}", s.tried);
    }

    #[test]
    fn the_top_of_the_ladder_held_is_a_lower_bound_and_nothing_held_is_none() {
        let s = run(plan(true), 1e9);
        assert_eq!(s.capacity(), Some(64000.0));
        assert!(s.at_least());
        let s = run(plan(false), 100.0);
        assert_eq!(s.capacity(), None);
        assert_eq!(s.tried.len(), 1, "a ladder does not guess below its start");
        let s = run(plan(true), 100.0);
        assert_eq!(s.capacity(), None);
        let rates: Vec<f64> = s.tried.iter().map(|t| t.0).collect();
        assert_eq!(
            rates,
            [2000.0, 1000.0, 500.0, 250.0, 125.0],
            "halved to 1/16"
        );
    }

    #[test]
    fn a_search_whose_first_rung_fails_goes_down_then_bisects() {
        let s = run(plan(true), 700.0);
        let cap = s.capacity().unwrap();
        assert!(
            (700.0 / 1.06..=700.0).contains(&cap),
            "{cap}: {:?}",
            s.tried
        );
        assert!(!s.at_least());
        assert_eq!(
            &s.tried[..3],
            &[(2000.0, false), (1000.0, false), (500.0, true)]
        );
    }

    #[test]
    fn a_rate_holds_only_within_the_slo_and_the_late_budget() {
        let p = plan(true);
        assert!(p.holds(1000, 9, 0, 19_999));
        assert!(!p.holds(1000, 10, 0, 100), "1 % late is not under 1 %");
        assert!(!p.holds(1000, 5, 5, 100), "failures count with late slots");
        assert!(!p.holds(1000, 0, 0, 20_000));
        assert!(!p.holds(0, 0, 0, 0), "nothing measured holds nothing");
    }
}

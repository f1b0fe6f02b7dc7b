//! Telling real differences from noise with a secondary.
//!
//! Some fields differ on every call even between two instances of the same
//! build (generated ids, timestamps, random choices). With a *secondary* — a
//! second instance of the primary receiving the same request — the engine
//! learns, per field, how often primary and secondary disagree ("noise
//! rate") and how often primary and shadow disagree ("raw rate").
//!
//! # The rule
//! Fields are keyed by path with array indices generalised (`/items/3/id` →
//! `/items/*/id`) and by the kind of difference: primaries that disagree on
//! `/requestId`'s value explain the shadow's different value there, not a
//! shadow that sends it as a number or leaves it out. Rates are counted
//! over a decaying window of the route's last comparisons (counts halve
//! whenever `window` comparisons have accumulated). A difference between primary and shadow at field *f* is
//! **noise** when
//!
//! > noise_rate(f) ≥ (1 − `relative_tolerance`) × raw_rate(f)
//!
//! i.e. the two primaries disagree about *f* nearly as often as primary and
//! shadow do (default tolerance 0.2: at least 80 % as often). A field the
//! primaries never disagree on is never noise, however rarely the shadow
//! differs. A comparison's outcome is `match` (no difference), `noise` (every
//! difference is noise) or `mismatch` (at least one is not).

use std::collections::HashMap;

use serde::Serialize;

use crate::Difference;

/// The outcome of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Match,
    Mismatch,
    Noise,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::Noise => "noise",
        }
    }
}

/// A classified comparison: the primary-vs-shadow differences, each marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub outcome: Outcome,
    /// Differences that count against the shadow.
    pub mismatches: Vec<Difference>,
    /// Differences explained by primary-vs-secondary noise.
    pub noise: Vec<Difference>,
}

impl Verdict {
    /// A verdict without a secondary: every difference is a mismatch.
    pub fn without_secondary(differences: Vec<Difference>) -> Self {
        let outcome = if differences.is_empty() {
            Outcome::Match
        } else {
            Outcome::Mismatch
        };
        Self {
            outcome,
            mismatches: differences,
            noise: Vec::new(),
        }
    }
}

/// Per-route statistics of raw and noise differences by field.
#[derive(Debug)]
pub struct NoiseModel {
    window: f64,
    relative_tolerance: f64,
    comparisons: f64,
    fields: HashMap<String, Rates>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Rates {
    raw: f64,
    noise: f64,
}

impl Default for NoiseModel {
    fn default() -> Self {
        Self::new(1000, 0.2)
    }
}

impl NoiseModel {
    /// `window`: comparisons after which counts halve; `relative_tolerance`:
    /// see the module docs.
    pub fn new(window: usize, relative_tolerance: f64) -> Self {
        Self {
            window: window.max(1) as f64,
            relative_tolerance: relative_tolerance.clamp(0.0, 1.0),
            comparisons: 0.0,
            fields: HashMap::new(),
        }
    }

    /// Records one three-way comparison and classifies its raw differences.
    pub fn classify(&mut self, raw: Vec<Difference>, noise: &[Difference]) -> Verdict {
        self.comparisons += 1.0;
        for d in &raw {
            self.fields.entry(field(d)).or_default().raw += 1.0;
        }
        for d in noise {
            self.fields.entry(field(d)).or_default().noise += 1.0;
        }
        let (explained, unexplained): (Vec<_>, Vec<_>) = raw.into_iter().partition(|d| {
            // A comparison cut short proves nothing either way: never noise.
            if d.kind == crate::Kind::Limit {
                return false;
            }
            let rates = self.fields.get(&field(d)).copied().unwrap_or_default();
            rates.noise > 0.0 && rates.noise >= (1.0 - self.relative_tolerance) * rates.raw
        });
        if self.comparisons >= self.window {
            self.decay();
        }
        let outcome = match (unexplained.is_empty(), explained.is_empty()) {
            (false, _) => Outcome::Mismatch,
            (true, false) => Outcome::Noise,
            (true, true) => Outcome::Match,
        };
        Verdict {
            outcome,
            mismatches: unexplained,
            noise: explained,
        }
    }

    fn decay(&mut self) {
        self.comparisons /= 2.0;
        self.fields.retain(|_, r| {
            r.raw /= 2.0;
            r.noise /= 2.0;
            r.raw + r.noise >= 0.5
        });
    }
}

/// The statistics key of a difference: its path with array indices as `*`,
/// and its kind, so a field whose value varies between primaries does not
/// excuse the shadow changing its type or dropping it.
fn field(d: &Difference) -> String {
    let mut key = crate::pointer::fold_indices(&d.path);
    key.push(' ');
    key.push_str(d.kind.as_str());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn diff(path: &str) -> Difference {
        Difference {
            path: path.into(),
            kind: Kind::Value,
            primary: None,
            shadow: None,
        }
    }

    #[test]
    fn no_differences_is_a_match() {
        assert_eq!(
            NoiseModel::default().classify(vec![], &[]).outcome,
            Outcome::Match
        );
    }

    #[test]
    fn a_field_that_also_differs_between_primaries_is_noise() {
        let mut model = NoiseModel::default();
        for _ in 0..50 {
            let v = model.classify(vec![diff("/requestId")], &[diff("/requestId")]);
            assert_eq!(v.outcome, Outcome::Noise);
        }
    }

    #[test]
    fn a_field_the_primaries_agree_on_is_a_mismatch_however_rare() {
        let mut model = NoiseModel::default();
        for _ in 0..100 {
            model.classify(vec![], &[]);
        }
        let v = model.classify(vec![diff("/amount")], &[]);
        assert_eq!(v.outcome, Outcome::Mismatch);
        assert_eq!(v.mismatches[0].path, "/amount");
    }

    #[test]
    fn a_shadow_that_differs_far_more_often_than_the_noise_is_a_mismatch() {
        let mut model = NoiseModel::default();
        let mut last = Outcome::Match;
        for i in 0..100 {
            // Primaries disagree on /score 10 % of the time, the shadow always.
            let noise = if i % 10 == 0 {
                vec![diff("/score")]
            } else {
                vec![]
            };
            last = model.classify(vec![diff("/score")], &noise).outcome;
        }
        assert_eq!(last, Outcome::Mismatch);
    }

    #[test]
    fn noise_in_one_field_does_not_hide_a_mismatch_in_another() {
        let mut model = NoiseModel::default();
        let v = model.classify(vec![diff("/id"), diff("/total")], &[diff("/id")]);
        assert_eq!(v.outcome, Outcome::Mismatch);
        assert_eq!(v.noise.len(), 1);
        assert_eq!(v.mismatches.len(), 1);
    }

    #[test]
    fn noise_in_a_field_value_does_not_excuse_another_kind_there() {
        let mut model = NoiseModel::default();
        for _ in 0..20 {
            model.classify(vec![diff("/requestId")], &[diff("/requestId")]);
        }
        let typed = Difference {
            kind: Kind::Type,
            ..diff("/requestId")
        };
        let v = model.classify(vec![typed], &[diff("/requestId")]);
        assert_eq!(v.outcome, Outcome::Mismatch);
    }

    #[test]
    fn a_limit_is_never_noise() {
        let mut model = NoiseModel::default();
        let limit = Difference {
            kind: Kind::Limit,
            ..diff("body")
        };
        for _ in 0..10 {
            let v = model.classify(vec![limit.clone()], std::slice::from_ref(&limit));
            assert_eq!(v.outcome, Outcome::Mismatch);
        }
    }

    #[test]
    fn array_indices_share_statistics() {
        let mut model = NoiseModel::default();
        let v = model.classify(vec![diff("/items/3/id")], &[diff("/items/0/id")]);
        assert_eq!(v.outcome, Outcome::Noise);
    }

    #[test]
    fn old_evidence_decays() {
        let mut model = NoiseModel::new(10, 0.2);
        for _ in 0..40 {
            model.classify(vec![diff("/x")], &[diff("/x")]);
        }
        // The field stops being noisy between primaries; the shadow still differs.
        let mut last = Outcome::Noise;
        for _ in 0..40 {
            last = model.classify(vec![diff("/x")], &[]).outcome;
        }
        assert_eq!(last, Outcome::Mismatch);
    }
}

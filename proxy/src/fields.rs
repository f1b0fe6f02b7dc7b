//! Which fields differ, how often: per route, the paths of the differences
//! found, in bounded memory.
//!
//! A route's answers can hold ids in their paths (`/users/8812/name` in a
//! map keyed by user id), so the table of paths cannot grow with what it
//! sees. It keeps the top `capacity` paths by the **Space-Saving**
//! algorithm (Metwally, Agrawal, El Abbadi, 2005): a path not in a full
//! table replaces the one with the smallest count and inherits that count
//! plus one, remembering the inherited part as its `error`. Any path that
//! differs more often than `comparisons / capacity` is guaranteed to be in
//! the table, and each count overestimates the truth by at most its
//! `error`. Array indices are generalised first (`/items/3/price` →
//! `/items/*/price`), as the noise model does.
//!
//! A path is counted once per comparison, so `raw / comparisons` is the
//! share of comparisons where it differed between primary and shadow, and
//! `secondary / comparisons_with_secondary` the share where the two
//! primaries disagreed — the noise rate beside the raw rate. This is served
//! as JSON at `/admin/fields`, never as Prometheus labels (paths are not a
//! bounded label set).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use parallax_compare::pointer::fold_indices;
use parallax_compare::{Difference, Verdict};
use parking_lot::Mutex;
use serde::Serialize;

/// Paths kept per route.
pub const CAPACITY: usize = 64;

/// One route's table. A blocking mutex: each update is a few map
/// operations with no `.await` while held.
#[derive(Debug)]
pub struct FieldStats {
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    capacity: usize,
    comparisons: u64,
    comparisons_with_secondary: u64,
    fields: HashMap<String, Field>,
}

/// One path's counts.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    /// The path with array indices as `*` (`status`, `header:<name>`,
    /// `body`, or a JSON pointer).
    pub path: String,
    /// Comparisons where primary and shadow differed here (Space-Saving
    /// estimate; at most `error` too high).
    pub raw: u64,
    /// Of them, counted as mismatch.
    pub mismatch: u64,
    /// Of them, explained as noise by the secondary.
    pub noise: u64,
    /// Comparisons where primary and secondary differed here.
    pub secondary: u64,
    /// Differences by kind (`value`, `missing`, `extra`, `type`, …).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Upper bound of the overestimate in `raw` (0 unless the path entered
    /// a full table).
    pub error: u64,
    pub first_seen_unix_ms: u64,
    pub last_seen_unix_ms: u64,
}

/// A route's table as served.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub comparisons: u64,
    pub comparisons_with_secondary: u64,
    pub capacity: usize,
    /// Most differing first.
    pub fields: Vec<Field>,
}

impl Default for FieldStats {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl FieldStats {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Table {
                capacity: capacity.max(1),
                ..Table::default()
            }),
        }
    }

    /// Records one comparison: its verdict (primary against shadow) and,
    /// with a secondary, the primary-against-secondary differences.
    pub fn record(&self, verdict: &Verdict, secondary: Option<&[Difference]>) {
        self.record_at(verdict, secondary, unix_ms());
    }

    fn record_at(&self, verdict: &Verdict, secondary: Option<&[Difference]>, now: u64) {
        let mut table = self.inner.lock();
        table.comparisons += 1;
        let mut seen = HashSet::new();
        for (d, classified_noise) in verdict
            .mismatches
            .iter()
            .map(|d| (d, false))
            .chain(verdict.noise.iter().map(|d| (d, true)))
        {
            let key = fold_indices(&d.path);
            let first = seen.insert(key.clone());
            let field = table.entry(key, now);
            *field.kinds.entry(d.kind.as_str()).or_default() += 1;
            if first {
                field.raw += 1;
                if classified_noise {
                    field.noise += 1;
                } else {
                    field.mismatch += 1;
                }
            }
        }
        if let Some(secondary) = secondary {
            table.comparisons_with_secondary += 1;
            let keys: HashSet<String> = secondary.iter().map(|d| fold_indices(&d.path)).collect();
            for key in keys {
                table.entry(key, now).secondary += 1;
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let table = self.inner.lock();
        let mut fields: Vec<Field> = table.fields.values().cloned().collect();
        fields.sort_by(|a, b| {
            (b.raw, b.secondary)
                .cmp(&(a.raw, a.secondary))
                .then_with(|| a.path.cmp(&b.path))
        });
        Snapshot {
            comparisons: table.comparisons,
            comparisons_with_secondary: table.comparisons_with_secondary,
            capacity: table.capacity,
            fields,
        }
    }
}

impl Table {
    /// The entry of `key`, making room by Space-Saving when full.
    fn entry(&mut self, key: String, now: u64) -> &mut Field {
        if !self.fields.contains_key(&key) && self.fields.len() >= self.capacity {
            let (victim, floor) = self
                .fields
                .iter()
                .map(|(k, f)| (k.clone(), f.raw + f.secondary))
                .min_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)))
                .expect("a full table is not empty");
            self.fields.remove(&victim);
            self.fields.insert(
                key.clone(),
                Field {
                    raw: floor,
                    error: floor,
                    ..Field::new(key.clone(), now)
                },
            );
        }
        let field = self
            .fields
            .entry(key.clone())
            .or_insert_with(|| Field::new(key, now));
        field.last_seen_unix_ms = now;
        field
    }
}

impl Field {
    fn new(path: String, now: u64) -> Self {
        Self {
            path,
            raw: 0,
            mismatch: 0,
            noise: 0,
            secondary: 0,
            kinds: BTreeMap::new(),
            error: 0,
            first_seen_unix_ms: now,
            last_seen_unix_ms: now,
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallax_compare::{Kind, Outcome};

    fn d(path: &str, kind: Kind) -> Difference {
        Difference {
            path: path.into(),
            kind,
            primary: None,
            shadow: None,
        }
    }

    fn verdict(mismatches: Vec<Difference>, noise: Vec<Difference>) -> Verdict {
        Verdict {
            outcome: if mismatches.is_empty() {
                Outcome::Noise
            } else {
                Outcome::Mismatch
            },
            mismatches,
            noise,
        }
    }

    #[test]
    fn paths_are_ranked_by_how_often_they_differ_with_indices_generalised() {
        let stats = FieldStats::default();
        for i in 0..10 {
            let mut m = vec![d(&format!("/items/{i}/price"), Kind::Value)];
            if i % 2 == 0 {
                m.push(d("/currency", Kind::Missing));
            }
            stats.record(&verdict(m, vec![]), None);
        }
        stats.record(&verdict(vec![], vec![]), None);
        let s = stats.snapshot();
        assert_eq!(s.comparisons, 11);
        assert_eq!(s.fields[0].path, "/items/*/price");
        assert_eq!(s.fields[0].raw, 10);
        assert_eq!(s.fields[0].kinds["value"], 10);
        assert_eq!(s.fields[1].path, "/currency");
        assert_eq!(s.fields[1].raw, 5);
    }

    #[test]
    fn a_path_is_counted_once_per_comparison_but_every_kind_is() {
        let stats = FieldStats::default();
        stats.record(
            &verdict(
                vec![d("/items/0/id", Kind::Value), d("/items/1/id", Kind::Type)],
                vec![],
            ),
            None,
        );
        let f = &stats.snapshot().fields[0];
        assert_eq!((f.raw, f.mismatch), (1, 1));
        assert_eq!(f.kinds.values().sum::<u64>(), 2);
    }

    #[test]
    fn noise_and_secondary_rates_sit_beside_the_raw_rate() {
        let stats = FieldStats::default();
        for _ in 0..4 {
            stats.record(
                &verdict(vec![], vec![d("/requestId", Kind::Value)]),
                Some(&[d("/requestId", Kind::Value)]),
            );
        }
        let s = stats.snapshot();
        assert_eq!(s.comparisons_with_secondary, 4);
        let f = &s.fields[0];
        assert_eq!((f.raw, f.noise, f.mismatch, f.secondary), (4, 4, 0, 4));
    }

    #[test]
    fn ids_in_paths_cannot_grow_the_table_and_heavy_paths_survive() {
        let stats = FieldStats::new(8);
        for i in 0..10_000u64 {
            let mut m = vec![d(&format!("/users/u{i}/name"), Kind::Value)];
            if i % 3 == 0 {
                m.push(d("/total", Kind::Value));
            }
            stats.record_at(&verdict(m, vec![]), None, i);
        }
        let s = stats.snapshot();
        assert_eq!(s.fields.len(), 8);
        let total = s.fields.iter().find(|f| f.path == "/total").expect("kept");
        // 3,334 true occurrences; the estimate is within its error.
        assert!(
            total.raw >= 3334 && total.raw - total.error <= 3334,
            "{total:?}"
        );
        assert_eq!(s.fields[0].path, "/total");
    }

    #[test]
    fn first_and_last_seen_are_kept() {
        let stats = FieldStats::default();
        stats.record_at(&verdict(vec![d("/a", Kind::Value)], vec![]), None, 5);
        stats.record_at(&verdict(vec![d("/a", Kind::Value)], vec![]), None, 9);
        let f = &stats.snapshot().fields[0];
        assert_eq!((f.first_seen_unix_ms, f.last_seen_unix_ms), (5, 9));
    }
}

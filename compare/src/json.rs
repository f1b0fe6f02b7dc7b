//! Structural JSON diff: walks both documents together and reports each
//! difference at its JSON pointer, classified as missing, extra, type or
//! value.
//!
//! # What counts as equal
//! - Numbers by exact decimal value ([`crate::number`]): `1` = `1.0`, but
//!   `9007199254740993` ≠ `9007199254740992`. A route's tolerance applies
//!   only where one side is written as a float.
//! - Objects by member, whatever the order; the route's normalisers may
//!   treat `null`, `[]`, `{}` and an absent member alike, a number and the
//!   same number in a string alike, and two RFC 3339 timestamps of the same
//!   instant alike ([`crate::rules::Normalisers`]).
//! - Arrays in order, *aligned*: a common prefix and suffix are skipped and
//!   the middle is aligned by a longest common subsequence (bounded), so one
//!   element inserted at index 0 is one `extra` difference, not one value
//!   difference per element. Array rules compare chosen arrays keyed by a
//!   pointer (`/items` by `/id`) or as multisets.
//!
//! # Bounded cost
//! One comparison keeps at most `max_differences` differences (the rest are
//! counted in one `limit` difference) and visits at most `max_work` values,
//! alignment probes included. When the work runs out the engine stops and
//! reports a `limit` difference at the path it reached: a comparison that
//! was not finished is never a match. Depth is bounded when parsing
//! ([`crate::value::parse`]), so the walk's recursion is too.
//!
//! Ignored paths are dropped as they are found, before they count against
//! any bound, and an array element whose only differences are ignored
//! aligns as equal.

use std::collections::{HashMap, VecDeque};

use crate::number;
use crate::pointer::push_into;
use crate::rules::{ArrayOrder, Rules};
use crate::value::Json;
use crate::{Difference, Kind};

/// Longest rendering of a value kept in a difference.
pub const VALUE_PREVIEW: usize = 1024;

/// Largest `n × m` of the unequal middle of two arrays that is aligned by a
/// longest common subsequence; larger ones compare by position.
pub const MAX_ALIGNMENT_CELLS: usize = 250_000;

/// Appends every difference between `primary` and `shadow` under `rules`.
pub fn diff(primary: &Json, shadow: &Json, rules: &Rules, out: &mut Vec<Difference>) {
    diff_at("", primary, shadow, rules, out)
}

/// As [`diff`], for documents found at JSON pointer `path`.
pub fn diff_at(
    path: &str,
    primary: &Json,
    shadow: &Json,
    rules: &Rules,
    out: &mut Vec<Difference>,
) {
    let mut differ = Differ {
        rules,
        out,
        path: path.to_owned(),
        kept: 0,
        dropped: 0,
        work: 0,
        exhausted: None,
        probe: false,
        found: false,
    };
    differ.values(primary, shadow);
    differ.finish();
}

/// Whether the two documents have no difference under `rules`.
pub fn equal(primary: &Json, shadow: &Json, rules: &Rules) -> bool {
    let mut out = Vec::new();
    diff(primary, shadow, rules, &mut out);
    out.is_empty()
}

struct Differ<'a> {
    rules: &'a Rules,
    out: &'a mut Vec<Difference>,
    /// The JSON pointer being compared, grown and cut in place.
    path: String,
    kept: usize,
    dropped: usize,
    work: u64,
    /// Where the work budget ran out.
    exhausted: Option<String>,
    /// Probing: only whether a difference exists is wanted.
    probe: bool,
    found: bool,
}

impl Differ<'_> {
    fn stopped(&self) -> bool {
        self.exhausted.is_some() || (self.probe && self.found)
    }

    fn finish(self) {
        let limits = &self.rules.limits;
        if self.dropped > 0 {
            self.out.push(Difference {
                path: "body".into(),
                kind: Kind::Limit,
                primary: Some(format!(
                    "{} more differences not kept (max_differences = {})",
                    self.dropped, limits.max_differences
                )),
                shadow: None,
            });
        }
        if let Some(at) = self.exhausted {
            self.out.push(Difference {
                path: if at.is_empty() { "body".into() } else { at },
                kind: Kind::Limit,
                primary: Some(format!(
                    "comparison stopped here after visiting {} values (max_work): the rest was not compared",
                    limits.max_work
                )),
                shadow: None,
            });
        }
    }

    fn record(&mut self, kind: Kind, primary: Option<&Json>, shadow: Option<&Json>) {
        if self.rules.ignores(&self.path) {
            return;
        }
        if self.probe {
            self.found = true;
            return;
        }
        if self.kept >= self.rules.limits.max_differences {
            self.dropped += 1;
            return;
        }
        self.kept += 1;
        self.out.push(Difference {
            path: self.path.clone(),
            kind,
            primary: primary.map(|v| v.render(VALUE_PREVIEW)),
            shadow: shadow.map(|v| v.render(VALUE_PREVIEW)),
        });
    }

    /// Runs `f` with `segment` appended to the path.
    fn at(&mut self, segment: &str, f: impl FnOnce(&mut Self)) {
        let len = self.path.len();
        push_into(&mut self.path, segment);
        f(self);
        self.path.truncate(len);
    }

    fn at_index(&mut self, index: usize, f: impl FnOnce(&mut Self)) {
        let len = self.path.len();
        self.path.push('/');
        self.path.push_str(itoa(index).as_str());
        f(self);
        self.path.truncate(len);
    }

    /// Whether `a` and `b`, found at element `index` of the current array,
    /// have no (unignored) difference. Running out of work counts as a
    /// difference.
    fn probe_equal(&mut self, index: usize, a: &Json, b: &Json) -> bool {
        let (probe, found) = (self.probe, self.found);
        self.probe = true;
        self.found = false;
        self.at_index(index, |d| d.values(a, b));
        let equal = !self.found && self.exhausted.is_none();
        self.probe = probe;
        self.found = found;
        equal
    }

    /// Whether the normalisers treat `v` as `null`: `null` itself, `[]`
    /// (`empty_array_equals_null`), `{}` or an object whose members all
    /// count as absent (`empty_object_equals_null`).
    fn is_nullish(&self, v: &Json) -> bool {
        let n = &self.rules.normalise;
        match v {
            Json::Null => true,
            Json::Array(items) => items.is_empty() && n.empty_array_equals_null,
            Json::Object(members) => {
                n.empty_object_equals_null && members.iter().all(|(_, m)| self.absent_is_fine(m))
            }
            _ => false,
        }
    }

    fn values(&mut self, a: &Json, b: &Json) {
        if self.stopped() {
            return;
        }
        self.work += 1;
        if self.work > self.rules.limits.max_work {
            self.exhausted = Some(self.path.clone());
            return;
        }
        if self.is_nullish(a) && self.is_nullish(b) {
            return;
        }
        let tolerance = self.rules.tolerance;
        match (a, b) {
            (Json::Bool(x), Json::Bool(y)) => {
                if x != y {
                    self.record(Kind::Value, Some(a), Some(b));
                }
            }
            (Json::Number(x), Json::Number(y)) => {
                if !number::equal(x, y, tolerance) {
                    self.record(Kind::Value, Some(a), Some(b));
                }
            }
            (Json::String(x), Json::String(y)) => {
                if x != y && !self.same_instant(x, y) {
                    self.record(Kind::Value, Some(a), Some(b));
                }
            }
            (Json::String(s), Json::Number(n)) | (Json::Number(n), Json::String(s))
                if self.rules.normalise.numbers_as_strings && number::is_number(s) =>
            {
                if !number::equal(s, n, tolerance) {
                    self.record(Kind::Value, Some(a), Some(b));
                }
            }
            (Json::Object(x), Json::Object(y)) => self.objects(x, y),
            (Json::Array(x), Json::Array(y)) => self.arrays(x, y),
            _ => self.record(Kind::Type, Some(a), Some(b)),
        }
    }

    fn same_instant(&self, x: &str, y: &str) -> bool {
        let Some(rule) = self.rules.normalise.timestamps else {
            return false;
        };
        let parse = |s: &str| {
            // Cheap refusal before chrono: RFC 3339 is `YYYY-MM-DDT…`.
            if s.len() < 20 || s.as_bytes().get(4) != Some(&b'-') {
                return None;
            }
            chrono::DateTime::parse_from_rfc3339(s).ok()
        };
        let (Some(a), Some(b)) = (parse(x), parse(y)) else {
            return false;
        };
        if rule.zone == crate::rules::Zone::Offset && a.offset() != b.offset() {
            return false;
        }
        let unit = rule.precision.nanos();
        let cut = |t: &chrono::DateTime<chrono::FixedOffset>| {
            (t.timestamp(), t.timestamp_subsec_nanos() / unit)
        };
        cut(&a) == cut(&b)
    }

    fn objects(&mut self, x: &[(String, Json)], y: &[(String, Json)]) {
        let (mut i, mut j) = (0, 0);
        while (i < x.len() || j < y.len()) && !self.stopped() {
            match (x.get(i), y.get(j)) {
                (Some((ka, va)), Some((kb, vb))) if ka == kb => {
                    self.at(ka, |d| d.values(va, vb));
                    i += 1;
                    j += 1;
                }
                (Some((ka, va)), Some((kb, _))) if ka < kb => {
                    self.only_primary(ka, va);
                    i += 1;
                }
                (Some((ka, va)), None) => {
                    self.only_primary(ka, va);
                    i += 1;
                }
                (_, Some((kb, vb))) => {
                    self.only_shadow(kb, vb);
                    j += 1;
                }
                (None, None) => unreachable!("the loop condition"),
            }
        }
    }

    fn absent_is_fine(&self, v: &Json) -> bool {
        self.rules.normalise.null_equals_absent && self.is_nullish(v)
    }

    fn only_primary(&mut self, key: &str, v: &Json) {
        if !self.absent_is_fine(v) {
            self.at(key, |d| d.record(Kind::Missing, Some(v), None));
        }
    }

    fn only_shadow(&mut self, key: &str, v: &Json) {
        if !self.absent_is_fine(v) {
            self.at(key, |d| d.record(Kind::Extra, None, Some(v)));
        }
    }

    fn arrays(&mut self, x: &[Json], y: &[Json]) {
        match self.rules.array_order(&self.path) {
            Some(ArrayOrder::Keyed(key)) => {
                let key = key.clone();
                self.keyed(x, y, &key)
            }
            Some(ArrayOrder::Multiset) => self.multiset(x, y),
            None => self.ordered(x, y),
        }
    }

    fn ordered(&mut self, x: &[Json], y: &[Json]) {
        let (n, m) = (x.len(), y.len());
        let mut prefix = 0;
        while prefix < n.min(m) && self.probe_equal(prefix, &x[prefix], &y[prefix]) {
            prefix += 1;
        }
        let mut suffix = 0;
        while suffix < (n - prefix).min(m - prefix)
            && self.probe_equal(n - 1 - suffix, &x[n - 1 - suffix], &y[m - 1 - suffix])
        {
            suffix += 1;
        }
        if self.stopped() {
            return;
        }
        let (xs, ys) = (&x[prefix..n - suffix], &y[prefix..m - suffix]);
        if xs.len() == ys.len() {
            for (k, (a, b)) in xs.iter().zip(ys).enumerate() {
                self.at_index(prefix + k, |d| d.values(a, b));
            }
        } else if xs.len() * ys.len() <= MAX_ALIGNMENT_CELLS {
            self.aligned(prefix, xs, ys);
        } else {
            // Too large to align: the lengths, then by position.
            let (pn, sm) = (Json::Number(itoa(n).into()), Json::Number(itoa(m).into()));
            self.record(Kind::ArrayLength, Some(&pn), Some(&sm));
            for (k, (a, b)) in xs.iter().zip(ys).enumerate() {
                self.at_index(prefix + k, |d| d.values(a, b));
            }
        }
    }

    /// Aligns `xs` and `ys` (starting at index `offset` of both arrays)
    /// by the fewest edits: an equal pair is free; pairing two unequal
    /// elements (compared field by field), dropping one (`missing`) or
    /// adding one (`extra`) costs one. Among alignments of equal cost the
    /// one with the most equal pairs wins, which makes the choice the same
    /// whichever side is the primary.
    fn aligned(&mut self, offset: usize, xs: &[Json], ys: &[Json]) {
        let (n, m) = (xs.len(), ys.len());
        let mut eq = vec![false; n * m];
        for i in 0..n {
            for j in 0..m {
                eq[i * m + j] = self.probe_equal(offset + i, &xs[i], &ys[j]);
                if self.stopped() {
                    return;
                }
            }
        }
        // best[i][j]: (edits, -equal pairs) aligning xs[i..] with ys[j..].
        let w = m + 1;
        let mut best = vec![(0u32, 0i32); (n + 1) * w];
        for i in (0..=n).rev() {
            for j in (0..=m).rev() {
                best[i * w + j] = if i == n {
                    ((m - j) as u32, 0)
                } else if j == m {
                    ((n - i) as u32, 0)
                } else {
                    let diag = best[(i + 1) * w + j + 1];
                    let pair = if eq[i * m + j] {
                        (diag.0, diag.1 - 1)
                    } else {
                        (diag.0 + 1, diag.1)
                    };
                    let drop = best[(i + 1) * w + j];
                    let add = best[i * w + j + 1];
                    pair.min((drop.0 + 1, drop.1)).min((add.0 + 1, add.1))
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while (i < n || j < m) && !self.stopped() {
            let here = best[i * w + j];
            if i < n && j < m {
                let diag = best[(i + 1) * w + j + 1];
                if eq[i * m + j] && here == (diag.0, diag.1 - 1) {
                    i += 1;
                    j += 1;
                    continue;
                }
                if !eq[i * m + j] && here == (diag.0 + 1, diag.1) {
                    let (a, b) = (&xs[i], &ys[j]);
                    self.at_index(offset + i, |d| d.values(a, b));
                    i += 1;
                    j += 1;
                    continue;
                }
            }
            if i < n && (j == m || here == (best[(i + 1) * w + j].0 + 1, best[(i + 1) * w + j].1)) {
                let a = &xs[i];
                self.at_index(offset + i, |d| d.record(Kind::Missing, Some(a), None));
                i += 1;
            } else {
                let b = &ys[j];
                self.at_index(offset + j, |d| d.record(Kind::Extra, None, Some(b)));
                j += 1;
            }
        }
    }

    /// Elements pair by the value at `key`; of repeated keys, in order.
    /// Elements without the key pair with each other by position.
    fn keyed(&mut self, x: &[Json], y: &[Json], key: &[String]) {
        let numbers_as_strings = self.rules.normalise.numbers_as_strings;
        let key_of = |e: &Json| -> Option<String> {
            Some(match e.at(key)? {
                Json::Number(n) => format!("n{}", number::canonical(n)),
                Json::String(s) if numbers_as_strings && number::is_number(s) => {
                    format!("n{}", number::canonical(s))
                }
                Json::String(s) => format!("s{s}"),
                other => format!("j{}", other.render(usize::MAX)),
            })
        };
        let mut by_key: HashMap<String, VecDeque<usize>> = HashMap::new();
        let mut shadow_keyless = VecDeque::new();
        for (j, e) in y.iter().enumerate() {
            match key_of(e) {
                Some(k) => by_key.entry(k).or_default().push_back(j),
                None => shadow_keyless.push_back(j),
            }
        }
        let mut used = vec![false; y.len()];
        let mut missing = Vec::new();
        for (i, a) in x.iter().enumerate() {
            let partner = match key_of(a) {
                Some(k) => by_key.get_mut(&k).and_then(VecDeque::pop_front),
                None => shadow_keyless.pop_front(),
            };
            match partner {
                Some(j) => {
                    used[j] = true;
                    self.at_index(i, |d| d.values(a, &y[j]));
                }
                None => missing.push(i),
            }
            if self.stopped() {
                return;
            }
        }
        for i in missing {
            self.at_index(i, |d| d.record(Kind::Missing, Some(&x[i]), None));
        }
        for (j, e) in y.iter().enumerate().filter(|(j, _)| !used[*j]) {
            self.at_index(j, |d| d.record(Kind::Extra, None, Some(e)));
        }
    }

    /// Each element pairs with an equal one, in any order.
    fn multiset(&mut self, x: &[Json], y: &[Json]) {
        let mut used = vec![false; y.len()];
        let mut missing = Vec::new();
        for (i, a) in x.iter().enumerate() {
            let partner = (0..y.len()).find(|&j| !used[j] && self.probe_equal(i, a, &y[j]));
            if self.stopped() {
                return;
            }
            match partner {
                Some(j) => used[j] = true,
                None => missing.push(i),
            }
        }
        for i in missing {
            self.at_index(i, |d| d.record(Kind::Missing, Some(&x[i]), None));
        }
        for (j, e) in y.iter().enumerate().filter(|(j, _)| !used[*j]) {
            self.at_index(j, |d| d.record(Kind::Extra, None, Some(e)));
        }
    }
}

fn itoa(n: usize) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Limits, Normalisers, Precision, Timestamps, Zone};
    use crate::value::parse;

    fn j(s: &str) -> Json {
        parse(s.as_bytes(), 256).unwrap()
    }

    fn kinds_with(rules: &Rules, a: &str, b: &str) -> Vec<(String, Kind)> {
        let mut out = Vec::new();
        diff(&j(a), &j(b), rules, &mut out);
        out.into_iter().map(|d| (d.path, d.kind)).collect()
    }

    fn kinds(a: &str, b: &str) -> Vec<(String, Kind)> {
        kinds_with(&Rules::default(), a, b)
    }

    fn go_rust() -> Rules {
        Rules::builder()
            .normalise(Normalisers::go_rust())
            .build()
            .unwrap()
    }

    #[test]
    fn equal_documents_have_no_differences() {
        assert!(kinds(r#"{"a":[1,{"b":null}]}"#, r#"{"a":[1,{"b":null}]}"#).is_empty());
    }

    #[test]
    fn key_order_does_not_matter() {
        assert!(kinds(r#"{"a":1,"b":2}"#, r#"{"b":2,"a":1}"#).is_empty());
    }

    #[test]
    fn a_field_missing_in_the_shadow_is_missing() {
        assert_eq!(
            kinds(r#"{"a":1,"b":2}"#, r#"{"a":1}"#),
            vec![("/b".into(), Kind::Missing)]
        );
    }

    #[test]
    fn a_field_only_in_the_shadow_is_extra() {
        assert_eq!(
            kinds("{}", r#"{"x":true}"#),
            vec![("/x".into(), Kind::Extra)]
        );
    }

    #[test]
    fn different_types_at_a_path_are_a_type_difference() {
        assert_eq!(
            kinds(r#"{"a":"1"}"#, r#"{"a":1}"#),
            vec![("/a".into(), Kind::Type)]
        );
    }

    #[test]
    fn different_scalars_are_a_value_difference() {
        assert_eq!(
            kinds(r#"{"a":{"b":"x"}}"#, r#"{"a":{"b":"y"}}"#),
            vec![("/a/b".into(), Kind::Value)]
        );
    }

    #[test]
    fn big_integers_are_compared_exactly() {
        assert_eq!(
            kinds(r#"{"id":9007199254740993}"#, r#"{"id":9007199254740992}"#),
            vec![("/id".into(), Kind::Value)]
        );
        assert_eq!(
            kinds("12345678901234567890", "12345678901234567891"),
            vec![("".into(), Kind::Value)]
        );
        assert!(kinds("[1, 2.50]", "[1.0, 2.5]").is_empty());
    }

    #[test]
    fn a_tolerance_accepts_close_floats_but_never_different_integers() {
        let rules = Rules::builder().tolerance(0.001, 0.0).build().unwrap();
        assert!(kinds_with(&rules, r#"{"p":0.1}"#, r#"{"p":0.1004}"#).is_empty());
        assert_eq!(kinds_with(&rules, r#"{"p":1}"#, r#"{"p":2}"#).len(), 1);
    }

    #[test]
    fn one_insertion_at_the_front_is_one_extra_element() {
        assert_eq!(
            kinds("[1,2,3,4,5]", "[0,1,2,3,4,5]"),
            vec![("/0".into(), Kind::Extra)]
        );
        assert_eq!(
            kinds(
                r#"{"l":[{"a":1},{"a":2},{"a":3}]}"#,
                r#"{"l":[{"a":1},{"a":3}]}"#
            ),
            vec![("/l/1".into(), Kind::Missing)]
        );
    }

    #[test]
    fn a_changed_element_among_insertions_is_a_value_difference() {
        assert_eq!(
            kinds("[1,2,3,4]", "[9,1,2,7,4]"),
            vec![("/0".into(), Kind::Extra), ("/2".into(), Kind::Value)]
        );
    }

    #[test]
    fn same_length_arrays_compare_by_position() {
        assert_eq!(
            kinds("[1,2,3]", "[1,5,3]"),
            vec![("/1".into(), Kind::Value)]
        );
    }

    #[test]
    fn keyed_arrays_pair_by_the_key_in_any_order() {
        let rules = Rules::builder().keyed("/items", "/id").build().unwrap();
        let a = r#"{"items":[{"id":1,"q":1},{"id":2,"q":2},{"id":3,"q":3}]}"#;
        let b = r#"{"items":[{"id":3,"q":3},{"id":1,"q":1},{"id":2,"q":5},{"id":4,"q":4}]}"#;
        assert_eq!(
            kinds_with(&rules, a, b),
            vec![
                ("/items/1/q".into(), Kind::Value),
                ("/items/3".into(), Kind::Extra)
            ]
        );
    }

    #[test]
    fn multiset_arrays_ignore_order_but_not_count() {
        let rules = Rules::builder().multiset("/tags").build().unwrap();
        assert!(kinds_with(
            &rules,
            r#"{"tags":["a","b","c"]}"#,
            r#"{"tags":["c","a","b"]}"#
        )
        .is_empty());
        assert_eq!(
            kinds_with(&rules, r#"{"tags":["a","a"]}"#, r#"{"tags":["a"]}"#),
            vec![("/tags/1".into(), Kind::Missing)]
        );
    }

    #[test]
    fn go_rust_preset_reconciles_nil_slices_omitempty_and_string_numbers() {
        let rules = go_rust();
        // Go: nil slice, nil map, omitempty pointer, `json:",string"` int64.
        let go = r#"{"tags":null,"meta":null,"id":"9007199254740993"}"#;
        // Rust: Vec::new(), HashMap::new(), skipped None, i64.
        let rust = r#"{"tags":[],"meta":{},"nick":null,"id":9007199254740993}"#;
        assert!(kinds_with(&rules, go, rust).is_empty());
        // ... but not a different number, nor a non-empty array against null.
        assert_eq!(
            kinds_with(
                &rules,
                r#"{"id":"9007199254740993"}"#,
                r#"{"id":9007199254740992}"#
            )
            .len(),
            1
        );
        assert_eq!(
            kinds_with(&rules, r#"{"tags":null}"#, r#"{"tags":[1]}"#),
            vec![("/tags".into(), Kind::Type)]
        );
    }

    #[test]
    fn timestamps_compare_as_instants_at_a_precision() {
        let rules = go_rust();
        // Go RFC3339Nano in local time against chrono in UTC.
        assert!(kinds_with(
            &rules,
            r#""2026-12-05T10:00:00.1234+01:00""#,
            r#""2026-12-05T09:00:00.123400000Z""#
        )
        .is_empty());
        assert_eq!(
            kinds_with(
                &rules,
                r#""2026-12-05T10:00:00Z""#,
                r#""2026-12-05T10:00:01Z""#
            )
            .len(),
            1
        );
        let ms = Rules::builder()
            .normalise(Normalisers {
                timestamps: Some(Timestamps {
                    precision: Precision::Milliseconds,
                    zone: Zone::Offset,
                }),
                ..Normalisers::default()
            })
            .build()
            .unwrap();
        assert!(kinds_with(
            &ms,
            r#""2026-12-05T10:00:00.1239Z""#,
            r#""2026-12-05T10:00:00.123Z""#
        )
        .is_empty());
        assert_eq!(
            kinds_with(
                &ms,
                r#""2026-12-05T10:00:00Z""#,
                r#""2026-12-05T11:00:00+01:00""#
            )
            .len(),
            1
        );
    }

    #[test]
    fn ignored_differences_do_not_count_against_the_cap_or_break_alignment() {
        let rules = Rules::builder()
            .ignore("/*/at")
            .limits(Limits {
                max_differences: 2,
                ..Limits::default()
            })
            .build()
            .unwrap();
        let a: Vec<String> = (0..50).map(|i| format!(r#"{{"v":{i},"at":1}}"#)).collect();
        let mut b = a.clone();
        for e in &mut b {
            *e = e.replace(r#""at":1"#, r#""at":2"#);
        }
        b.insert(0, r#"{"v":-1,"at":2}"#.into());
        let got = kinds_with(
            &rules,
            &format!("[{}]", a.join(",")),
            &format!("[{}]", b.join(",")),
        );
        assert_eq!(got, vec![("/0".into(), Kind::Extra)]);
    }

    #[test]
    fn differences_beyond_the_cap_are_counted_in_one_limit() {
        let a = format!(
            "[{}]",
            (0..1000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let b = format!(
            "[{}]",
            (1..1001)
                .map(|i| (i * 7).to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut out = Vec::new();
        diff(&j(&a), &j(&b), &Rules::default(), &mut out);
        assert_eq!(out.len(), 101);
        let last = out.last().unwrap();
        assert_eq!(last.kind, Kind::Limit);
        assert!(
            last.primary.as_ref().unwrap().contains("900 more"),
            "{last:?}"
        );
    }

    #[test]
    fn running_out_of_work_is_reported_never_a_match() {
        let rules = Rules::builder()
            .limits(Limits {
                max_work: 50,
                ..Limits::default()
            })
            .build()
            .unwrap();
        let a = format!("[{}]", vec!["1"; 100].join(","));
        let b = format!("[{}]", vec!["1"; 100].join(",")).replacen('1', "2", 1);
        let got = kinds_with(&rules, &a, &b);
        assert!(got.iter().any(|(_, k)| *k == Kind::Limit), "{got:?}");
    }
}

//! Properties of the comparison engine, checked on generated documents.
//!
//! - A document against itself has no difference, under any rules.
//! - Documents that differ only in what a normaliser reconciles (spelling
//!   of numbers, key order, Go's `null` for empty collections, omitted
//!   nulls, numbers in strings, a timestamp's offset) have no difference
//!   under that normaliser.
//! - One planted change (a number off by one in its last digit, a changed
//!   string, a removed member, an inserted element) is always found: the
//!   engine never calls it a match.
//! - Swapping primary and shadow swaps missing and extra and keeps
//!   emptiness.
//! - Whatever the input, the differences kept stay within their bound.

use parallax_compare::json::{diff, equal};
use parallax_compare::rules::{Limits, Normalisers};
use parallax_compare::value::{parse, Json};
use parallax_compare::{Kind, Rules};
use proptest::prelude::*;

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        // Beyond u64 and past 2^53 where f64 loses digits.
        "[1-9][0-9]{15,30}".prop_map(|s| s),
        (any::<i32>(), 0u32..6).prop_map(|(n, d)| format!("{n}.{}", "5".repeat(d as usize + 1))),
        (1u32..999, -30i32..30).prop_map(|(m, e)| format!("{m}e{e}")),
    ]
}

fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        number().prop_map(|n| Json::Number(n.into())),
        "[a-z0-9 \"\\\\/é]{0,8}".prop_map(Json::String),
    ]
}

fn document() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// Documents without arrays: every difference has one place.
fn objects() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop::collection::btree_map("[a-z]{1,3}", inner, 0..6)
            .prop_map(|m| Json::Object(m.into_iter().collect()))
    })
}

fn count(d: &[parallax_compare::Difference], kind: Kind) -> usize {
    d.iter().filter(|x| x.kind == kind).count()
}

fn rules() -> impl Strategy<Value = Rules> {
    prop_oneof![
        Just(Rules::default()),
        Just(
            Rules::builder()
                .normalise(Normalisers::go_rust())
                .build()
                .unwrap()
        ),
        Just(Rules::builder().multiset("/**").build().unwrap()),
        Just(Rules::builder().keyed("/**", "/a").build().unwrap()),
        Just(Rules::builder().tolerance(0.5, 0.01).build().unwrap()),
    ]
}

fn differences(a: &Json, b: &Json, rules: &Rules) -> Vec<parallax_compare::Difference> {
    let mut out = Vec::new();
    diff(a, b, rules, &mut out);
    out
}

/// What Go would emit for what Rust emits (or the reverse): numbers
/// respelt, empty collections as `null`, `null` members dropped.
fn go_spelling(v: &Json) -> Json {
    match v {
        Json::Number(n) if !n.contains(['.', 'e', 'E']) => Json::Number(format!("{n}.0e0").into()),
        Json::Array(items) if items.is_empty() => Json::Null,
        Json::Object(members) if members.is_empty() => Json::Null,
        Json::Array(items) => Json::Array(items.iter().map(go_spelling).collect()),
        Json::Object(members) => Json::Object(
            members
                .iter()
                .filter(|(_, v)| !matches!(v, Json::Null))
                .map(|(k, v)| (k.clone(), go_spelling(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every leaf path of `v` with its value.
fn leaves(v: &Json, path: String, out: &mut Vec<(String, Json)>) {
    match v {
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                leaves(item, format!("{path}/{i}"), out);
            }
        }
        Json::Object(members) => {
            for (k, item) in members {
                leaves(item, format!("{path}/{k}"), out);
            }
        }
        leaf => out.push((path, leaf.clone())),
    }
}

/// `v` with the leaf at `path` replaced.
fn replace(v: &Json, path: &str, with: &Json) -> Json {
    fn walk(v: &Json, segments: &[&str], with: &Json) -> Json {
        match (v, segments.split_first()) {
            (_, None) => with.clone(),
            (Json::Array(items), Some((s, rest))) => {
                let i: usize = s.parse().unwrap();
                let mut items = items.clone();
                items[i] = walk(&items[i], rest, with);
                Json::Array(items)
            }
            (Json::Object(members), Some((s, rest))) => Json::Object(
                members
                    .iter()
                    .map(|(k, x)| {
                        if k == s {
                            (k.clone(), walk(x, rest, with))
                        } else {
                            (k.clone(), x.clone())
                        }
                    })
                    .collect(),
            ),
            _ => unreachable!("paths come from leaves()"),
        }
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    walk(v, &segments, with)
}

/// A leaf that no rule set calls equal to `v`.
fn changed(v: &Json) -> Json {
    match v {
        Json::Null => Json::Bool(false),
        Json::Bool(b) => Json::Bool(!b),
        Json::Number(n) => {
            // The last digit of the significand, plus one (mod 10), keeping
            // the spelling otherwise: the smallest change there is.
            let mut text = n.to_string();
            let end = text.find(['e', 'E']).unwrap_or(text.len());
            let last = text[..end].rfind(|c: char| c.is_ascii_digit()).unwrap();
            let d = text.as_bytes()[last] - b'0';
            text.replace_range(last..=last, &((d + 1) % 10).to_string());
            Json::Number(text.into())
        }
        Json::String(s) => Json::String(format!("{s}!")),
        _ => unreachable!("leaves only"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_document_against_itself_has_no_difference(doc in document(), rules in rules()) {
        prop_assert!(differences(&doc, &doc, &rules).is_empty());
    }

    #[test]
    fn parsing_the_rendering_gives_the_same_document(doc in document()) {
        let text = doc.render(usize::MAX);
        let parsed = parse(text.as_bytes(), 256).unwrap();
        prop_assert!(equal(&doc, &parsed, &Rules::default()));
    }

    #[test]
    fn go_spellings_are_equal_under_the_go_rust_preset(doc in document()) {
        let rules = Rules::builder().normalise(Normalisers::go_rust()).build().unwrap();
        let go = go_spelling(&doc);
        prop_assert!(differences(&doc, &go, &rules).is_empty(), "{} vs {}", doc.render(400), go.render(400));
        prop_assert!(differences(&go, &doc, &rules).is_empty());
    }

    #[test]
    fn a_planted_change_is_always_found(doc in document(), pick in any::<prop::sample::Index>(), rules in rules()) {
        let mut all = Vec::new();
        leaves(&doc, String::new(), &mut all);
        prop_assume!(!all.is_empty());
        let (path, leaf) = &all[pick.index(all.len())];
        let with = changed(leaf);
        let planted = replace(&doc, path, &with);
        // A tolerance may accept a changed float digit: use strict rules
        // for floats, any rules otherwise.
        let rules = match leaf {
            Json::Number(n) if n.contains(['.', 'e', 'E']) => Rules::default(),
            // null ≡ false is not a normaliser, but null-vs-absent is: keep
            // the member present so "absent" never applies.
            _ => rules,
        };
        let found = differences(&doc, &planted, &rules);
        prop_assert!(!found.is_empty(), "{path}: {} -> {} not found in {}", leaf.render(100), with.render(100), doc.render(400));
    }

    #[test]
    fn swapping_sides_keeps_emptiness(a in document(), b in document(), rules in rules()) {
        let ab = differences(&a, &b, &rules);
        let ba = differences(&b, &a, &rules);
        prop_assert_eq!(ab.is_empty(), ba.is_empty());
    }

    #[test]
    fn swapping_sides_swaps_missing_and_extra(a in objects(), b in objects(), rules in rules()) {
        let ab = differences(&a, &b, &rules);
        let ba = differences(&b, &a, &rules);
        for kind in [Kind::Value, Kind::Type] {
            prop_assert_eq!(count(&ab, kind), count(&ba, kind));
        }
        prop_assert_eq!(count(&ab, Kind::Missing), count(&ba, Kind::Extra));
        prop_assert_eq!(count(&ab, Kind::Extra), count(&ba, Kind::Missing));
    }

    #[test]
    fn aligned_arrays_cost_the_same_edits_both_ways(a in prop::collection::vec(leaf(), 0..12), b in prop::collection::vec(leaf(), 0..12)) {
        let (a, b) = (Json::Array(a), Json::Array(b));
        let rules = Rules::default();
        let ab = differences(&a, &b, &rules);
        let ba = differences(&b, &a, &rules);
        prop_assert_eq!(ab.len(), ba.len());
        prop_assert_eq!(count(&ab, Kind::Missing), count(&ba, Kind::Extra));
        prop_assert_eq!(count(&ab, Kind::Extra), count(&ba, Kind::Missing));
    }

    #[test]
    fn the_differences_kept_stay_within_the_bound(a in document(), b in document(), max in 1usize..5) {
        let rules = Rules::builder().limits(Limits { max_differences: max, ..Limits::default() }).build().unwrap();
        let found = differences(&a, &b, &rules);
        let kept = found.iter().filter(|d| d.kind != Kind::Limit).count();
        prop_assert!(kept <= max);
        prop_assert!(found.len() <= max + 2);
    }
}

#[test]
fn a_megabyte_of_differing_numbers_costs_bounded_time() {
    let n = 200_000;
    let a = format!(
        "[{}]",
        (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    );
    let b = format!(
        "[{}]",
        (0..n)
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(a.len() > 1 << 20);
    let (a, b) = (
        parse(a.as_bytes(), 256).unwrap(),
        parse(b.as_bytes(), 256).unwrap(),
    );
    let started = std::time::Instant::now();
    let found = differences(&a, &b, &Rules::default());
    // Not a timing test: the bound is on work, and the work is linear here.
    assert_eq!(found.len(), 101);
    eprintln!("1 MiB of differing numbers: {:?}", started.elapsed());
}

#[test]
fn a_megabyte_array_with_one_insertion_is_one_difference() {
    let n = 200_000;
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let a = format!("[{}]", items.join(","));
    let b = format!("[-1,{}]", items.join(","));
    let (a, b) = (
        parse(a.as_bytes(), 256).unwrap(),
        parse(b.as_bytes(), 256).unwrap(),
    );
    let found = differences(&a, &b, &Rules::default());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].path.as_str(), found[0].kind), ("/0", Kind::Extra));
}

#[test]
fn multisets_of_a_megabyte_run_out_of_work_and_say_so() {
    let n = 200_000;
    let a = format!(
        "[{}]",
        (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    );
    let b = format!(
        "[{}]",
        (0..n)
            .rev()
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let (a, b) = (
        parse(a.as_bytes(), 256).unwrap(),
        parse(b.as_bytes(), 256).unwrap(),
    );
    let rules = Rules::builder().multiset("").build().unwrap();
    let found = differences(&a, &b, &rules);
    assert!(
        found.iter().any(|d| d.kind == Kind::Limit),
        "{:?}",
        &found[..found.len().min(3)]
    );
}

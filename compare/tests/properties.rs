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
//! - An answer's fields (`Observed`'s `Fields`, spans over one buffer)
//!   answer every lookup as the pair list they replaced did, and
//!   `compare` gives the pair list's differences on whole answers.

use bytes::Bytes;
use parallax_compare::json::{diff, equal};
use parallax_compare::rules::{Limits, Normalisers};
use parallax_compare::value::{parse, Json};
use parallax_compare::{compare, Difference, FieldSpan, Fields, Kind, Observed, Rules};
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

// ---------------------------------------------------------------------------
// `Observed`'s fields against the pair-list model they replaced.
//
// Until issue 16's session 6 an answer's fields were `Vec<(String, String)>`:
// names lower-cased, values as UTF-8 (invalid bytes replaced); the proxy's
// raw path made that list from its header lines grouped as a `HeaderMap`
// lists them. `PairModel` is that code, kept here as the reference. The
// comparison reads an answer's fields only through `header`, `field` and
// `media_type` (and `Content-Type` / `Content-Encoding` through them), so
// those agreeing on every name, and `compare` agreeing on whole answers,
// is the property that no verdict changed.

/// The old `Observed`'s fields, verbatim in behaviour.
#[derive(Debug, Clone)]
struct PairModel {
    headers: Vec<(String, String)>,
    trailers: Vec<(String, String)>,
}

impl PairModel {
    fn new(headers: &[(String, String)], trailers: &[(String, String)]) -> Self {
        let lower = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        };
        Self {
            headers: lower(headers),
            trailers: lower(trailers),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.header(name).or_else(|| {
            self.trailers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
    }

    fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// The header differences the old `compare` found under `rules`.
    fn header_differences(&self, shadow: &PairModel, rules: &Rules) -> Vec<Difference> {
        let mut out = Vec::new();
        for name in &rules.headers {
            let a = self.field(name).map(|v| rules.normalise(v).into_owned());
            let b = shadow.field(name).map(|v| rules.normalise(v).into_owned());
            if a != b {
                out.push(Difference {
                    path: format!("header:{name}"),
                    kind: Kind::Header,
                    primary: a,
                    shadow: b,
                });
            }
        }
        out.retain(|d| !rules.ignores(&d.path));
        out
    }
}

/// The old raw path's list of `name: value\r\n` lines (the proxy's
/// `response::header_list` and `field_list` before `Fields`).
fn old_line_list(lines: &[u8]) -> Vec<(String, String)> {
    let fields: Vec<(&[u8], &[u8])> = lines
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let value = &line[colon + 1..];
            Some((&line[..colon], value.strip_prefix(b" ").unwrap_or(value)))
        })
        .collect();
    let mut out = Vec::new();
    for (i, &(name, _)) in fields.iter().enumerate() {
        if fields[..i]
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        for (_, value) in fields[i..]
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            out.push((lower.clone(), String::from_utf8_lossy(value).into_owned()));
        }
    }
    out
}

/// Field names the comparison looks up, in several spellings, and others.
const NAMES: &[&str] = &[
    "content-type",
    "Content-Type",
    "CONTENT-TYPE",
    "content-encoding",
    "Content-Encoding",
    "grpc-status",
    "Grpc-Status",
    "grpc-message",
    "grpc-encoding",
    "x-req",
    "X-Req",
    "set-cookie",
    "date",
    "x-empty",
];

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_owned),
        1 => "[a-zA-Z][a-zA-Z0-9-]{0,6}",
    ]
}

/// Values as text: media types the engine branches on, in any case, with
/// parameters and spaces; codings; arbitrary text, empty, non-ASCII.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "application/json",
                "Application/JSON; charset=utf-8",
                " application/json ;q=1",
                "text/plain",
                "application/grpc",
                "APPLICATION/GRPC+proto",
                "application/grpcx",
                "application/problem+json",
                "identity",
                "x-unknown",
                "",
                "0",
                "14",
            ][..]
        )
        .prop_map(str::to_owned),
        "[ -~]{0,10}",
        "[a-zé€ ;/]{0,6}",
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((field_name(), field_value()), 0..7)
}

/// Raw header lines as a head's lines may hold them: fields with values
/// of any bytes but CR and LF (obs-text, invalid UTF-8, a leading space),
/// lines without a colon, bare LF line ends, and no final line end.
fn raw_lines() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        4 => (field_name(), prop::collection::vec(any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'), 0..8), any::<bool>())
            .prop_map(|(n, v, crlf)| {
                let mut l = n.into_bytes();
                l.extend_from_slice(b": ");
                l.extend_from_slice(&v);
                l.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                l
            }),
        2 => (field_name(), field_value()).prop_map(|(n, v)| format!("{n}: {v}\r\n").into_bytes()),
        1 => (field_name(), field_value()).prop_map(|(n, v)| format!("{n}:{v}\r\n").into_bytes()),
        1 => "[a-z ]{0,5}".prop_map(|s| format!("{s}\r\n").into_bytes()),
    ];
    (prop::collection::vec(line, 0..8), any::<bool>()).prop_map(|(lines, cut)| {
        let mut all: Vec<u8> = lines.concat();
        if cut && all.ends_with(b"\r\n") {
            all.truncate(all.len() - 2);
        }
        all
    })
}

const BODIES: &[&[u8]] = &[
    b"{\"a\":1}",
    b"{\"a\":2}",
    b"{\"a\": 1}",
    b"plain text",
    b"",
    b"\x00\x00\x00\x00\x00",
];

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(BODIES).prop_map(<[u8]>::to_vec)
}

fn header_rules() -> impl Strategy<Value = Rules> {
    (
        prop::collection::vec(field_name(), 0..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(names, replace, ignore)| {
            let mut b = Rules::builder();
            for n in &names {
                b = b.header(n);
            }
            if replace {
                b = b.replace("[0-9]", "N");
            }
            if ignore {
                b = b.ignore("header:x-req");
            }
            b.build().unwrap()
        })
}

fn observed(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    trailers: &[(String, String)],
) -> Observed {
    let pairs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };
    let (h, t) = (pairs(headers), pairs(trailers));
    Observed::new(
        status,
        h.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body.to_vec(),
    )
    .with_trailers(t.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Every name the comparison or a test might ask for.
fn asked(extra: &[(String, String)], rules: &Rules) -> Vec<String> {
    NAMES
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().map(|(k, _)| k.clone()))
        .chain(rules.headers.iter().cloned())
        .chain(["nope".to_owned(), String::new()])
        .collect()
}

fn assert_agrees(new: &Observed, model: &PairModel, names: &[String]) -> Result<(), TestCaseError> {
    for name in names {
        prop_assert_eq!(new.header(name), model.header(name), "header {:?}", name);
        prop_assert_eq!(new.field(name), model.field(name), "field {:?}", name);
    }
    prop_assert_eq!(new.media_type(), model.media_type());
    prop_assert_eq!(new.headers.to_list(), model.headers.clone());
    prop_assert_eq!(new.trailers.to_list(), model.trailers.clone());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fields_from_pairs_answer_as_the_pair_list_did(
        headers in pairs(), trailers in pairs(), rules in header_rules(),
    ) {
        let new = observed(200, &headers, b"", &trailers);
        let model = PairModel::new(&headers, &trailers);
        let mut names = asked(&headers, &rules);
        names.extend(trailers.iter().map(|(k, _)| k.clone()));
        assert_agrees(&new, &model, &names)?;
    }

    #[test]
    fn fields_from_head_lines_answer_as_the_old_line_list_did(
        lines in raw_lines(), rules in header_rules(),
    ) {
        let new = Observed {
            status: 200,
            headers: Fields::from_lines(lines.clone()),
            body: Bytes::new(),
            trailers: Fields::default(),
        };
        let list = old_line_list(&lines);
        let model = PairModel::new(&list, &[]);
        assert_agrees(&new, &model, &asked(&list, &rules))?;
        // Equal to the same fields given as the old list's pairs.
        prop_assert_eq!(&new, &observed(200, &list, b"", &[]));
    }

    #[test]
    fn fields_from_a_parsers_spans_are_the_fields_from_a_scan(lines in raw_lines()) {
        // Where the old line list finds each name and value, as a parser
        // would hand them over.
        let mut spans = Vec::new();
        let mut start = 0;
        for line in lines.split(|&b| b == b'\n') {
            let end = start + line.strip_suffix(b"\r").map_or(line.len(), <[u8]>::len);
            if let Some(colon) = line[..end - start].iter().position(|&b| b == b':') {
                let value = start + colon + 1;
                let value = if lines.get(value) == Some(&b' ') { value + 1 } else { value };
                spans.push(FieldSpan { name: start..start + colon, value: value..end.max(value) });
            }
            start += line.len() + 1;
        }
        let spanned = Fields::from_spans(lines.clone(), spans);
        let scanned = Fields::from_lines(lines.clone());
        prop_assert_eq!(spanned.iter().collect::<Vec<_>>(), scanned.iter().collect::<Vec<_>>());
        prop_assert_eq!(spanned.to_list(), old_line_list(&lines));
    }

    #[test]
    fn compare_on_fields_gives_the_pair_lists_verdict(
        (a, b) in (raw_lines(), raw_lines()),
        (ta, tb) in (pairs(), pairs()),
        (body_a, body_b) in (body(), body()),
        (status_a, same_status) in (prop::sample::select(&[200u16, 404][..]), any::<bool>()),
        rules in header_rules(),
    ) {
        let status_b = if same_status { status_a } else { 503 };
        let from_lines = |lines: &[u8], status, body: &[u8], trailers: &[(String, String)]| Observed {
            status,
            headers: Fields::from_lines(lines.to_vec()),
            body: Bytes::copy_from_slice(body),
            trailers: Fields::from_pairs(trailers.iter().map(|(k, v)| (k, v))),
        };
        let (la, lb) = (old_line_list(&a), old_line_list(&b));
        let new = compare(
            &from_lines(&a, status_a, &body_a, &ta),
            &from_lines(&b, status_b, &body_b, &tb),
            &rules,
        );
        let old = compare(
            &observed(status_a, &la, &body_a, &ta),
            &observed(status_b, &lb, &body_b, &tb),
            &rules,
        );
        prop_assert_eq!(&new, &old);
        // The allow-list's differences are exactly the pair-list model's
        // (gRPC's own field differences, `grpc-status` and the like, are
        // `Kind::Header` too, and covered by the whole comparison above).
        let model = PairModel::new(&la, &ta).header_differences(&PairModel::new(&lb, &tb), &rules);
        let headers: Vec<Difference> = new
            .iter()
            .filter(|d| d.path.starts_with("header:"))
            .cloned()
            .collect();
        prop_assert_eq!(headers, model);
        // Identical answers never differ.
        prop_assert!(compare(&from_lines(&a, 200, &body_a, &ta), &from_lines(&a, 200, &body_a, &ta), &rules).is_empty());
    }
}

/// Names that differ only in case are one name; the first value wins in
/// both models, whichever spelling came first.
#[test]
fn names_differing_only_in_case_are_one_field() {
    let lines = b"X-A: 1\r\nx-a: 2\r\nContent-type: text/plain\r\nX-a: 3\r\n";
    let fields = Fields::from_lines(lines.to_vec());
    assert_eq!(fields.to_list(), old_line_list(lines));
    assert_eq!(fields.get("X-A"), Some("1"));
    assert_eq!(fields.len(), 4);
}

/// An allowed header present on one side only is a difference: the
/// engine never reads an absent field as equal to an empty one.
#[test]
fn an_empty_allowed_field_differs_from_an_absent_one() {
    let rules = Rules::builder().header("x-empty").build().unwrap();
    let with = Observed {
        status: 200,
        headers: Fields::from_lines(b"X-Empty: \r\n".to_vec()),
        body: Bytes::new(),
        trailers: Fields::default(),
    };
    let without = Observed::new(200, [], Vec::new());
    let d = compare(&with, &without, &rules);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].primary.as_deref(), Some(""));
    assert_eq!(d[0].shadow, None);
}

//! The terminal report: one side-by-side table per scenario.
//!
//! One row per backend and one ratio row per candidate (candidate divided by
//! baseline; below 1.00x means the candidate uses less), then the proxy's
//! comparison and the Kafka join. This is what `parallax run` prints at the
//! end, so it favours reading at a glance over completeness: the full data is
//! in `results.json` and the HTML report.

use std::fmt::Write as _;

use crate::results::{BackendResult, Comparison, Mode, Role, RunResults, ScenarioResult};

/// The whole run as text: a header line, then one block per scenario.
pub fn render(run: &RunResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "parallax {} run, {} on {} ({} CPUs, {}, kernel {})",
        mode_name(run.mode),
        run.created_at,
        run.machine.hostname,
        run.machine.cpus,
        bytes(run.machine.memory_bytes),
        run.machine.kernel
    );
    if !run.command.is_empty() {
        let _ = writeln!(out, "$ {}", run.command);
    }
    for s in &run.scenarios {
        out.push('\n');
        scenario(&mut out, s);
    }
    out
}

/// One scenario's table, as [`render`] shows it: printed the moment a
/// scenario of a longer run ends, so the first table does not wait for the
/// last scenario.
pub fn render_scenario(s: &ScenarioResult) -> String {
    let mut out = String::new();
    scenario(&mut out, s);
    out
}

/// The mode in words.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Shadow => "shadow (baseline primary, candidate shadow, through the proxy)",
        Mode::Direct => "direct (each backend alone, A B B A)",
        Mode::Aa => "A/A (the baseline against itself: the harness's noise)",
    }
}

/// What a CPU or RSS cell shows when it was not measured (a backend given
/// by URL without a pid or process metrics): never a made-up zero.
pub const NOT_MEASURED: &str = "n/m";

/// The column headers of the side-by-side table.
pub const COLUMNS: [&str; 11] = [
    "backend", "role", "rate/s", "p50", "p99", "p99.9", "max", "CPU-s", "peak RSS", "errors",
    "late",
];

/// The cells of the side-by-side table: one row per backend, then a ratio
/// row per candidate. Shared with the HTML report.
pub fn rows(s: &ScenarioResult) -> Vec<[String; 11]> {
    let mut rows: Vec<[String; 11]> = s.backends.iter().map(backend_row).collect();
    if let Some(base) = s.baseline() {
        for cand in s.candidates() {
            rows.push(ratio_row(cand, base));
        }
    }
    if let Some(n) = &s.noise {
        rows.push(noise_row(n));
    }
    rows
}

/// The A/A runs' ratios as ranges, under the ratio rows: how far apart
/// two identical backends came out, to read the ratios against.
fn noise_row(n: &crate::Noise) -> [String; 11] {
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        match v.len() {
            0 => "-".to_owned(),
            1 => format!("{lo:.2}x"),
            _ => format!("{lo:.2}-{hi:.2}x"),
        }
    };
    let mut row: [String; 11] = Default::default();
    row[0] = format!(
        "A/A ({} run{})",
        n.sources.len(),
        if n.sources.len() == 1 { "" } else { "s" }
    );
    row[1] = "noise".into();
    row[3] = range(&n.p50_ratio);
    row[4] = range(&n.p99_ratio);
    row
}

/// The capacity search's outcome: each backend's capacity and the ratio,
/// with the A/A capacity spread where known.
pub fn capacity_lines(s: &ScenarioResult) -> Vec<String> {
    let Some(cap) = &s.capacity else {
        return Vec::new();
    };
    let each: Vec<String> = cap
        .backends
        .iter()
        .map(|b| {
            let c = b.capacity_per_sec.map_or("none held".to_owned(), |c| {
                format!(
                    "{}{}/s",
                    if b.at_least { ">= " } else { "" },
                    count(c.round() as u64)
                )
            });
            format!("{} {c} ({} probes)", b.name, b.probes.len())
        })
        .collect();
    let mut line = format!(
        "capacity at {} with under {}% late slots ({}): {}",
        cap.slo,
        cap.max_late_ratio * 100.0,
        cap.method,
        each.join(", ")
    );
    if let (Some(base), Some(cand)) = (s.baseline(), s.candidates().next()) {
        if let Some(r) = cap.ratio(&base.name, &cand.name) {
            let _ = write!(line, "; {}/{} = {r:.2}x", cand.name, base.name);
        }
    }
    if let Some(n) = s.noise.as_ref().filter(|n| !n.capacity_ratio.is_empty()) {
        let (lo, hi) = n
            .capacity_ratio
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        let _ = write!(
            line,
            " (A/A: {lo:.2}-{hi:.2}x over {} runs)",
            n.capacity_ratio.len()
        );
    }
    vec![line]
}

fn backend_row(b: &BackendResult) -> [String; 11] {
    [
        b.name.clone(),
        match b.role {
            Role::Baseline => "baseline".into(),
            Role::Candidate => "candidate".into(),
        },
        count(b.achieved_rate_per_sec.round() as u64),
        micros(b.latency.p50_us),
        micros(b.latency.p99_us),
        micros(b.latency.p999_us),
        micros(b.latency.max_us),
        b.cpu_seconds
            .map_or_else(|| NOT_MEASURED.into(), |c| format!("{c:.2}")),
        b.peak_rss_bytes.map_or_else(|| NOT_MEASURED.into(), bytes),
        count(b.errors),
        count(b.late),
    ]
}

fn ratio_row(cand: &BackendResult, base: &BackendResult) -> [String; 11] {
    let r = |c: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}x", c / b)
        } else {
            "-".into()
        }
    };
    let (cl, bl) = (&cand.latency, &base.latency);
    [
        format!("{}/{}", cand.name, base.name),
        "ratio".into(),
        r(cand.achieved_rate_per_sec, base.achieved_rate_per_sec),
        r(cl.p50_us as f64, bl.p50_us as f64),
        r(cl.p99_us as f64, bl.p99_us as f64),
        r(cl.p999_us as f64, bl.p999_us as f64),
        r(cl.max_us as f64, bl.max_us as f64),
        match (cand.cpu_seconds, base.cpu_seconds) {
            (Some(c), Some(b)) => r(c, b),
            _ => "-".into(),
        },
        match (cand.peak_rss_bytes, base.peak_rss_bytes) {
            (Some(c), Some(b)) => r(c as f64, b as f64),
            _ => "-".into(),
        },
        String::new(),
        String::new(),
    ]
}

/// The scenario's title line.
pub fn title(s: &ScenarioResult) -> String {
    let mut t = format!(
        "{}: {} at {}/s target, {:.0} s measured",
        s.scenario,
        s.unit,
        count(s.target_rate_per_sec.round() as u64),
        s.duration_secs
    );
    if s.warmup_secs > 0.0 {
        let _ = write!(t, " after {:.0} s warm-up", s.warmup_secs);
    }
    t
}

/// Differences shown per scenario, at most.
pub const DIFFERENCE_ROWS: usize = 20;

/// The mismatches by route and path: a header row, then one per path
/// (most frequent first), with one example of each side's value.
pub fn difference_rows(c: &Comparison) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "route".into(),
        "path".into(),
        "kind".into(),
        "pairs".into(),
        "baseline".into(),
        "candidate".into(),
    ]];
    let shown = |v: &Option<String>| {
        let v = v.as_deref().unwrap_or("(absent)");
        match v.char_indices().nth(40) {
            Some((cut, _)) => format!("{}…", &v[..cut]),
            None => v.to_owned(),
        }
    };
    for d in c.differences.iter().take(DIFFERENCE_ROWS) {
        rows.push(vec![
            d.route.clone(),
            d.path.clone(),
            d.kind.clone(),
            count(d.count),
            shown(&d.baseline),
            shown(&d.candidate),
        ]);
    }
    rows
}

/// The backends' extra figures ([`crate::ExtraMetric`]) side by side: a
/// header row (figure, one column per backend, then candidate/baseline for
/// each candidate), then one row per name in the order first seen. `None`
/// when no backend has any.
pub fn extra_rows(s: &ScenarioResult) -> Option<Vec<Vec<String>>> {
    let mut names: Vec<(&str, &str)> = Vec::new();
    for m in s.backends.iter().flat_map(|b| &b.extra) {
        if !names.iter().any(|(n, _)| *n == m.name) {
            names.push((&m.name, &m.unit));
        }
    }
    if names.is_empty() {
        return None;
    }
    let base = s.baseline();
    let cands: Vec<&BackendResult> = s.candidates().collect();
    let mut header = vec!["figure".to_owned()];
    header.extend(s.backends.iter().map(|b| b.name.clone()));
    if let Some(base) = base {
        header.extend(cands.iter().map(|c| format!("{}/{}", c.name, base.name)));
    }
    let mut rows = vec![header];
    for (name, unit) in names {
        let value = |b: &BackendResult| b.extra(name).and_then(|m| m.value);
        let mut row = vec![name.to_owned()];
        row.extend(
            s.backends.iter().map(|b| {
                value(b).map_or_else(|| NOT_MEASURED.to_owned(), |v| extra_value(v, unit))
            }),
        );
        if let Some(base) = base {
            row.extend(cands.iter().map(|c| match (value(c), value(base)) {
                (Some(c), Some(b)) if b != 0.0 => format!("{:.2}x", c / b),
                _ => "-".into(),
            }));
        }
        rows.push(row);
    }
    Some(rows)
}

/// An extra figure in its unit.
fn extra_value(v: f64, unit: &str) -> String {
    match unit {
        "bytes" => bytes(v.max(0.0).round() as u64),
        // A difference (`added_p50_us`) may be negative.
        "us" if v < 0.0 => format!("-{}", extra_value(-v, unit)),
        "us" => {
            if v < 1_000.0 {
                format!("{v:.1} µs")
            } else {
                micros(v.round() as u64)
            }
        }
        "seconds" => format!("{v:.2} s"),
        "ratio" => format!("{v:.3}"),
        "percent" => format!("{v:.1} %"),
        "count" => count(v.max(0.0).round() as u64),
        "per_sec" => format!("{}/s", count(v.max(0.0).round() as u64)),
        other => format!("{v:.3} {other}"),
    }
}

/// Latency per route: a header row, then per route each backend's requests,
/// mean and p50/p99, and the candidate/baseline ratios of mean and p99.
pub fn route_rows(s: &ScenarioResult) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "route".into(),
        "backend".into(),
        "requests".into(),
        "mean".into(),
        "p50".into(),
        "p99".into(),
        "mean ratio".into(),
        "p99 ratio".into(),
    ]];
    let base_name = s.baseline().map(|b| b.name.as_str());
    for r in &s.routes {
        let base = r
            .backends
            .iter()
            .find(|b| Some(b.name.as_str()) == base_name);
        for b in &r.backends {
            let ratio = |c: f64, b: f64| {
                if b > 0.0 {
                    format!("{:.2}x", c / b)
                } else {
                    "-".into()
                }
            };
            let (mean_ratio, p99_ratio) = match base {
                Some(base) if base.name != b.name => (
                    ratio(b.mean_us, base.mean_us),
                    ratio(b.p99_us as f64, base.p99_us as f64),
                ),
                _ => (String::new(), String::new()),
            };
            let approx = if b.estimated { "~" } else { "" };
            rows.push(vec![
                r.route.clone(),
                b.name.clone(),
                count(b.requests),
                micros(b.mean_us.round() as u64),
                format!("{approx}{}", micros(b.p50_us)),
                format!("{approx}{}", micros(b.p99_us)),
                mean_ratio,
                p99_ratio,
            ]);
        }
    }
    rows
}

/// A left-aligned grid, indented by four spaces.
fn grid(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut l = String::from("    ");
        for (cell, w) in row.iter().zip(&widths) {
            l.push_str(cell);
            l.push_str(&" ".repeat(w - cell.chars().count() + 2));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
}

/// The comparison in one or two lines (no trailing newline).
pub fn comparison_lines(c: &Comparison) -> Vec<String> {
    let rate = if c.compared > 0 {
        format!(" ({:.4}%)", c.mismatched as f64 / c.compared as f64 * 100.0)
    } else {
        String::new()
    };
    let mut line = format!(
        "compared {}, matched {}, mismatched {}{rate}",
        count(c.compared),
        count(c.matched),
        count(c.mismatched)
    );
    if !c.classes.is_empty() {
        let classes: Vec<String> = c
            .classes
            .iter()
            .map(|(k, v)| format!("{k} {}", count(*v)))
            .collect();
        let _ = write!(line, " [{}]", classes.join(", "));
    }
    let _ = write!(
        line,
        ", noise {}, dropped {}",
        count(c.noise),
        count(c.dropped)
    );
    let mut lines = vec![line];
    if let Some(k) = c.kafka {
        lines.push(format!(
            "kafka join: matched {}, missing in shadow {}, extra in shadow {}, different {}",
            count(k.matched),
            count(k.missing_in_shadow),
            count(k.extra_in_shadow),
            count(k.different)
        ));
    }
    lines
}

fn scenario(out: &mut String, s: &ScenarioResult) {
    let _ = writeln!(out, "{}", title(s));
    let rows = rows(s);
    let mut widths = COLUMNS.map(|c| c.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut l = String::from("  ");
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - cell.chars().count();
            // Names left-aligned, figures right-aligned.
            if i < 2 {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            } else {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            }
            l.push_str("  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&COLUMNS);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for l in capacity_lines(s) {
        let _ = writeln!(out, "  {l}");
    }
    if let Some(c) = &s.comparison {
        for l in comparison_lines(c) {
            let _ = writeln!(out, "  {l}");
        }
        if !c.differences.is_empty() {
            let _ = writeln!(out, "  mismatches by path:");
            grid(out, &difference_rows(c));
        }
    }
    if !s.routes.is_empty() {
        let _ = writeln!(out, "  latency by route:");
        grid(out, &route_rows(s));
    }
    if let Some(rows) = extra_rows(s) {
        let _ = writeln!(out, "  more figures:");
        grid(out, &rows);
    }
    for note in &s.notes {
        let _ = writeln!(out, "  note: {note}");
    }
}

/// A latency in µs, in the unit that keeps three significant digits.
pub fn micros(us: u64) -> String {
    let v = us as f64;
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.3} ms", v / 1e3)
    } else {
        format!("{:.3} s", v / 1e6)
    }
}

/// Bytes in binary units.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A count with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{self, LogNormal};
    use crate::{Comparison, KafkaComparison};

    #[test]
    fn units_read_naturally() {
        assert_eq!(micros(812), "812 µs");
        assert_eq!(micros(1_234), "1.234 ms");
        assert_eq!(micros(2_000), "2.000 ms");
        assert_eq!(micros(3_500_000), "3.500 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
    }

    #[test]
    fn extra_figures_sit_side_by_side_with_their_ratio_and_unit() {
        use crate::{Better, ExtraMetric};
        let go = LogNormal {
            median_us: 1_000.0,
            sigma: 0.4,
        };
        let mut s = synthetic::pair("cache-churn", go, go, 1, 1_000, 2);
        assert!(extra_rows(&s).is_none(), "no extras, no block");
        let rss = |v: f64| {
            ExtraMetric::new(
                "rss_after_churn_bytes",
                v,
                "bytes",
                Some(Better::Lower),
                "RSS after the churn",
            )
        };
        s.backends[0].extra.push(rss((200 << 20) as f64));
        s.backends[1].extra.push(rss((50 << 20) as f64));
        s.backends[1].extra.push(ExtraMetric::new(
            "only_rust_us",
            12.5,
            "us",
            None,
            "a figure one side lacks",
        ));
        let rows = extra_rows(&s).unwrap();
        assert_eq!(rows[0], ["figure", "go", "rust", "rust/go"]);
        assert_eq!(
            rows[1],
            ["rss_after_churn_bytes", "200.0 MiB", "50.0 MiB", "0.25x"]
        );
        assert_eq!(rows[2], ["only_rust_us", NOT_MEASURED, "12.5 µs", "-"]);
        assert_eq!(
            extra_value(-2_572.0, "us"),
            "-2.572 ms",
            "a difference keeps its sign"
        );
        let run = synthetic::run(Mode::Direct, vec![s]);
        let text = render(&run);
        assert!(text.contains("more figures:"), "{text}");
        assert!(text.contains("rss_after_churn_bytes"), "{text}");
    }

    #[test]
    fn each_scenario_has_backend_rows_a_ratio_row_and_its_comparison() {
        let go = LogNormal {
            median_us: 1_000.0,
            sigma: 0.4,
        };
        let mut s = synthetic::pair("ingest", go, go.scaled(0.5), 1, 10_000, 5);
        s.backends[1].peak_rss_bytes = s.backends[0].peak_rss_bytes.map(|b| b / 4);
        s.comparison = Some(Comparison {
            compared: 10_000,
            matched: 9_990,
            mismatched: 10,
            noise: 3,
            dropped: 1,
            classes: [("value".to_owned(), 8), ("missing".to_owned(), 2)].into(),
            kafka: Some(KafkaComparison {
                matched: 10_000,
                ..Default::default()
            }),
            differences: vec![crate::PathDifference {
                route: "/v1/orders/{id}".into(),
                path: "/total".into(),
                kind: "type".into(),
                count: 10,
                baseline: Some("12.5".into()),
                candidate: Some("\"12.50\"".into()),
            }],
            samples: Vec::new(),
        });
        s.routes.push(crate::RouteResult {
            route: "/v1/orders/{id}".into(),
            backends: vec![
                crate::RouteBackend {
                    name: "go".into(),
                    requests: 100,
                    mean_us: 900.0,
                    p50_us: 800,
                    p99_us: 2_000,
                    estimated: false,
                },
                crate::RouteBackend {
                    name: "rust".into(),
                    requests: 100,
                    mean_us: 1_800.0,
                    p50_us: 1_600,
                    p99_us: 4_000,
                    estimated: false,
                },
            ],
        });
        s.notes.push("12 slots sent late".into());
        let text = render(&synthetic::run(Mode::Shadow, vec![s]));
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(prefix))
                .unwrap_or_else(|| panic!("no `{prefix}` line in\n{text}"))
                .to_owned()
        };
        assert!(line("go ").contains("baseline"), "{text}");
        assert!(line("rust ").contains("candidate"), "{text}");
        let ratio = line("rust/go");
        assert!(ratio.contains("0.25x"), "RSS ratio in {ratio}");
        assert!(ratio.contains("0.5"), "latency ratios in {ratio}");
        assert!(line("compared").contains("[missing 2, value 8]"), "{text}");
        assert!(line("kafka join").contains("matched 10,000"), "{text}");
        assert!(line("note:").contains("late"), "{text}");
        let diff = line("/v1/orders/{id}  /total");
        assert!(diff.contains("type") && diff.contains("10"), "{text}");
        assert!(
            diff.contains("12.5") && diff.contains("\"12.50\""),
            "{text}"
        );
        let route = line("/v1/orders/{id}  rust");
        assert!(route.contains("2.00x"), "p50 ratio per route in {text}");
    }
}

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

/// The mode in words.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Shadow => "shadow (Go primary, Rust shadow through the proxy)",
        Mode::Direct => "direct (each backend alone, A B B A)",
        Mode::Aa => "A/A (Go against Go: the harness's noise)",
    }
}

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
    rows
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
        format!("{:.2}", b.cpu_seconds),
        bytes(b.peak_rss_bytes),
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
        r(cand.cpu_seconds, base.cpu_seconds),
        r(cand.peak_rss_bytes as f64, base.peak_rss_bytes as f64),
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
    if let Some(c) = &s.comparison {
        for l in comparison_lines(c) {
            let _ = writeln!(out, "  {l}");
        }
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
    fn each_scenario_has_backend_rows_a_ratio_row_and_its_comparison() {
        let go = LogNormal {
            median_us: 1_000.0,
            sigma: 0.4,
        };
        let mut s = synthetic::pair("ingest", go, go.scaled(0.5), 1, 10_000, 5);
        s.backends[1].peak_rss_bytes = s.backends[0].peak_rss_bytes / 4;
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
    }
}

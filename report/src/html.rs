//! The HTML report: one self-contained file per run.
//!
//! Inline CSS and inline SVG only — no scripts, fonts or anything fetched —
//! so the file can be attached to a CI run or mailed and still open offline.
//! Per scenario: the side-by-side table (the same cells as the terminal
//! table), the comparison, latency over time (p50 dashed and p99 solid per
//! backend, per window) and the percentile distribution from the full
//! histograms on a "nines" axis (50 %, 90 %, 99 %, 99.9 %, 99.99 % equally
//! spaced), where tail differences are visible that averages hide.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::results::{RunResults, ScenarioResult};
use crate::table;

/// Backend colours, in backend order (colour-blind-safe Okabe-Ito hues).
const PALETTE: [&str; 6] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
];

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1000px;color:#1b1b1b;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#555;margin:.2em 0}code{background:#f3f3f3;padding:0 .3em;border-radius:3px}
table{border-collapse:collapse;margin:.8em 0;font-variant-numeric:tabular-nums}
th,td{padding:.25em .7em;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}
thead th{border-bottom:2px solid #999}tr.ratio td{color:#444;font-style:italic;background:#fafafa}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;vertical-align:baseline}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}
svg.plot{background:#fff;border:1px solid #e4e4e4;max-width:100%;height:auto}
svg.plot text{font:11px system-ui,sans-serif;fill:#333}
svg.plot .grid{stroke:#ececec}svg.plot .axis{stroke:#888}
.notes li{color:#7a4b00}
.sides{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:.6em}
.sides pre{white-space:pre-wrap;word-break:break-all;background:#f6f8fa;padding:.5em;margin:0;font-size:.85em}
details.sample{margin:.4em 0}
";

/// The whole run as one HTML document.
pub fn render(run: &RunResults) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Parallax run {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&run.created_at)
    );
    let _ = writeln!(out, "<h1>Parallax run</h1>");
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} &middot; {} &middot; {} ({} CPUs, {}, kernel {})</p>",
        esc(table::mode_name(run.mode)),
        esc(&run.created_at),
        esc(&run.machine.hostname),
        run.machine.cpus,
        esc(&table::bytes(run.machine.memory_bytes)),
        esc(&run.machine.kernel)
    );
    if !run.command.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"meta\"><code>{}</code></p>",
            esc(&run.command)
        );
    }
    for s in &run.scenarios {
        scenario(&mut out, s);
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A plain table whose first row is the header.
fn grid(out: &mut String, rows: &[Vec<String>]) {
    let Some((head, body)) = rows.split_first() else {
        return;
    };
    out.push_str("<table>\n<thead><tr>");
    for c in head {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in body {
        out.push_str("<tr>");
        for c in row {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn scenario(out: &mut String, s: &ScenarioResult) {
    let _ = writeln!(out, "<section>\n<h2>{}</h2>", esc(&table::title(s)));
    // The table.
    out.push_str("<table>\n<thead><tr>");
    for c in table::COLUMNS {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, row) in table::rows(s).iter().enumerate() {
        let is_ratio = i >= s.backends.len();
        out.push_str(if is_ratio {
            "<tr class=\"ratio\">"
        } else {
            "<tr>"
        });
        for (j, cell) in row.iter().enumerate() {
            if j == 0 && !is_ratio {
                let _ = write!(
                    out,
                    "<td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>",
                    PALETTE[i % PALETTE.len()],
                    esc(cell)
                );
            } else {
                let _ = write!(out, "<td>{}</td>", esc(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    for line in table::capacity_lines(s) {
        let _ = writeln!(out, "<p>{}</p>", esc(&line));
    }
    if let Some(c) = &s.comparison {
        for line in table::comparison_lines(c) {
            let _ = writeln!(out, "<p>{}</p>", esc(&line));
        }
        if !c.differences.is_empty() {
            out.push_str("<p>Mismatches by path:</p>\n");
            grid(out, &table::difference_rows(c));
        }
        if !c.samples.is_empty() {
            let _ = writeln!(
                out,
                "<p>Mismatch samples ({}, the first of each route):</p>",
                c.samples.len()
            );
            for sample in &c.samples {
                mismatch_sample(out, sample);
            }
        }
    }
    if !s.routes.is_empty() {
        out.push_str("<p>Latency by route:</p>\n");
        grid(out, &table::route_rows(s));
    }
    if let Some(rows) = table::extra_rows(s) {
        out.push_str("<p>More figures:</p>\n");
        grid(out, &rows);
        out.push_str("<dl class=\"extra\">\n");
        let mut seen: Vec<&str> = Vec::new();
        for m in s.backends.iter().flat_map(|b| &b.extra) {
            if !seen.contains(&m.name.as_str()) {
                seen.push(&m.name);
                let _ = writeln!(
                    out,
                    "<dt>{}</dt><dd>{}</dd>",
                    esc(&m.name),
                    esc(&m.description)
                );
            }
        }
        out.push_str("</dl>\n");
    }
    if !s.notes.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for n in &s.notes {
            let _ = writeln!(out, "<li>{}</li>", esc(n));
        }
        out.push_str("</ul>\n");
    }
    let _ = writeln!(
        out,
        "<figure>\n{}<figcaption>Latency per window: p99 solid, p50 dashed \
         (log scale).</figcaption>\n</figure>",
        timeline_plot(s)
    );
    let _ = writeln!(
        out,
        "<figure>\n{}<figcaption>Latency by percentile over the whole measured part, \
         from the recorded histograms (log scales).</figcaption>\n</figure>",
        percentile_plot(s)
    );
    if let Some(svg) = capacity_plot(s) {
        let _ = writeln!(
            out,
            "<figure>\n{svg}<figcaption>Capacity: each backend's p99 at every rate it was \
             offered (alone), against the SLO (log scales).</figcaption>\n</figure>"
        );
    }
    if let Some(figures) = usage_plots(s) {
        out.push_str(&figures);
    }
    out.push_str("</section>\n");
}

/// One sample as the proxy logged it: the request, its differences and both
/// answers side by side. Bodies are shown as logged (exact numbers).
fn mismatch_sample(out: &mut String, line: &str) {
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(default)]
        status: Option<u16>,
        #[serde(borrow)]
        body: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Difference {
        path: String,
        kind: String,
        primary: Option<String>,
        shadow: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Sample<'a> {
        #[serde(default)]
        route: String,
        #[serde(default)]
        method: String,
        #[serde(default)]
        target: String,
        #[serde(borrow)]
        primary: Message<'a>,
        #[serde(borrow)]
        shadow: Message<'a>,
        #[serde(default)]
        mismatches: Vec<Difference>,
    }
    let Ok(s) = serde_json::from_str::<Sample>(line) else {
        return;
    };
    let _ = writeln!(
        out,
        "<details class=\"sample\"><summary><code>{} {}</code> ({}): {}</summary>",
        esc(&s.method),
        esc(&s.target),
        esc(&s.route),
        esc(&s
            .mismatches
            .iter()
            .map(|d| d.path.as_str())
            .collect::<Vec<_>>()
            .join(", "))
    );
    let mut rows = vec![vec![
        "path".into(),
        "kind".into(),
        "baseline".into(),
        "candidate".into(),
    ]];
    rows.extend(s.mismatches.iter().map(|d| {
        vec![
            d.path.clone(),
            d.kind.clone(),
            d.primary.clone().unwrap_or_else(|| "–".into()),
            d.shadow.clone().unwrap_or_else(|| "–".into()),
        ]
    }));
    grid(out, &rows);
    out.push_str("<div class=\"sides\">");
    for (name, m) in [("baseline", &s.primary), ("candidate", &s.shadow)] {
        let _ = write!(
            out,
            "<figure><figcaption>{name} {}</figcaption><pre>{}</pre></figure>",
            m.status.map(|s| s.to_string()).unwrap_or_default(),
            esc(m.body.map_or("", |b| b.get()))
        );
    }
    out.push_str("</div></details>\n");
}

/// One axis of a plot.
#[derive(Debug, Clone, Copy)]
struct Axis {
    min: f64,
    max: f64,
    log: bool,
}

impl Axis {
    /// Position of `v` along the axis, 0 at `min` and 1 at `max`.
    fn frac(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.min).ln() - self.min.ln()) / (self.max.ln() - self.min.ln())
        } else {
            (v - self.min) / (self.max - self.min)
        };
        if f.is_finite() {
            f
        } else {
            0.0
        }
    }

    /// A log axis around the positive values in `values`, or `None`.
    fn log_around(values: impl Iterator<Item = f64>) -> Option<Self> {
        let (lo, hi) = values
            .filter(|v| *v > 0.0)
            .fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        (hi > 0.0).then(|| Self {
            min: lo / 1.3,
            max: hi * 1.3,
            log: true,
        })
    }
}

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 130.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 38.0;

/// An SVG plot under construction.
struct Plot {
    x: Axis,
    y: Axis,
    svg: String,
}

impl Plot {
    fn new(label: &str, x: Axis, y: Axis) -> Self {
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg class=\"plot\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
             role=\"img\" aria-label=\"{0}\">\n<title>{0}</title>\n",
            esc(label)
        );
        Self { x, y, svg }
    }

    fn px(&self, v: f64) -> f64 {
        LEFT + self.x.frac(v) * (W - LEFT - RIGHT)
    }

    fn py(&self, v: f64) -> f64 {
        H - BOTTOM - self.y.frac(v) * (H - TOP - BOTTOM)
    }

    fn x_tick(&mut self, v: f64, label: &str) {
        let x = self.px(v);
        let _ = writeln!(
            self.svg,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            H - BOTTOM,
            H - BOTTOM + 14.0,
            esc(label)
        );
    }

    /// Log-scale ticks at 1, 2, 5 × 10^k, plus other integer mantissas
    /// where they fit without crowding (narrow ranges get more labels).
    fn y_ticks(&mut self) {
        const MIN_GAP_PX: f64 = 18.0;
        let mut placed: Vec<f64> = log_ticks(self.y.min, self.y.max, &[1.0, 2.0, 5.0]);
        for v in log_ticks(self.y.min, self.y.max, &[3.0, 4.0, 6.0, 7.0, 8.0, 9.0]) {
            let y = self.py(v);
            if placed.iter().all(|p| (self.py(*p) - y).abs() >= MIN_GAP_PX) {
                placed.push(v);
            }
        }
        for v in placed {
            let y = self.py(v);
            let _ = writeln!(
                self.svg,
                "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                esc(&short_micros(v))
            );
        }
    }

    /// One tick of a linear y axis.
    fn y_tick_linear(&mut self, v: f64, label: &str) {
        let y = self.py(v);
        let _ = writeln!(
            self.svg,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(label)
        );
    }

    fn frame(&mut self, x_label: &str) {
        let _ = writeln!(
            self.svg,
            "<rect class=\"axis\" fill=\"none\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            W - LEFT - RIGHT,
            H - TOP - BOTTOM,
            (LEFT + W - RIGHT) / 2.0,
            H - 6.0,
            esc(x_label)
        );
    }

    /// A line through `points`, broken where a point is `None`.
    fn line(&mut self, points: &[Option<(f64, f64)>], colour: &str, dashed: bool) {
        for run in points.split(Option::is_none) {
            let coords: Vec<String> = run
                .iter()
                .flatten()
                .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
                .collect();
            if coords.is_empty() {
                continue;
            }
            let dash = if dashed {
                " stroke-dasharray=\"5 3\""
            } else {
                ""
            };
            let _ = writeln!(
                self.svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\"{dash} points=\"{}\"/>",
                coords.join(" ")
            );
        }
    }

    fn legend(&mut self, entries: &[(String, &str, bool)]) {
        let x = W - RIGHT + 12.0;
        for (i, (name, colour, dashed)) in entries.iter().enumerate() {
            let y = TOP + 10.0 + i as f64 * 16.0;
            let dash = if *dashed {
                " stroke-dasharray=\"5 3\""
            } else {
                ""
            };
            let _ = writeln!(
                self.svg,
                "<line x1=\"{x}\" y1=\"{y}\" x2=\"{:.1}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 20.0,
                x + 26.0,
                y + 4.0,
                esc(name)
            );
        }
    }

    fn message(&mut self, text: &str) {
        let _ = writeln!(
            self.svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            (LEFT + W - RIGHT) / 2.0,
            H / 2.0,
            esc(text)
        );
    }

    fn finish(mut self) -> String {
        self.svg.push_str("</svg>\n");
        self.svg
    }
}

fn timeline_plot(s: &ScenarioResult) -> String {
    let label = format!("{}: latency over time", s.scenario);
    let values = s
        .backends
        .iter()
        .flat_map(|b| &b.timeline)
        .filter(|w| w.requests > 0)
        .flat_map(|w| [w.p50_us as f64, w.p99_us as f64]);
    let t_max = s
        .backends
        .iter()
        .flat_map(|b| &b.timeline)
        .map(|w| w.t_secs)
        .fold(0.0_f64, f64::max)
        .max(s.duration_secs)
        .max(1.0);
    let x = Axis {
        min: 0.0,
        max: t_max,
        log: false,
    };
    let Some(y) = Axis::log_around(values) else {
        let mut p = Plot::new(
            &label,
            x,
            Axis {
                min: 1.0,
                max: 10.0,
                log: true,
            },
        );
        p.frame("seconds since the measured start");
        p.message("no timeline recorded");
        return p.finish();
    };
    let mut p = Plot::new(&label, x, y);
    p.y_ticks();
    for t in linear_ticks(t_max) {
        p.x_tick(t, &format!("{t}"));
    }
    p.frame("seconds since the measured start");
    let mut legend = Vec::new();
    for (i, b) in s.backends.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let series = |f: fn(&crate::Window) -> u64| -> Vec<Option<(f64, f64)>> {
            b.timeline
                .iter()
                .map(|w| (w.requests > 0).then(|| (w.t_secs, f(w) as f64)))
                .collect()
        };
        p.line(&series(|w| w.p99_us), colour, false);
        p.line(&series(|w| w.p50_us), colour, true);
        legend.push((format!("{} p99", b.name), colour, false));
        legend.push((format!("{} p50", b.name), colour, true));
    }
    p.legend(&legend);
    p.finish()
}

/// p99 (and the SLO's percentile, where it is another) against the offered
/// rate, every backend on one plot, from a capacity search or ladder; the
/// SLO's bound as a grey dashed line.
fn capacity_plot(s: &ScenarioResult) -> Option<String> {
    let cap = s.capacity.as_ref()?;
    let rates: Vec<f64> = cap
        .backends
        .iter()
        .flat_map(|b| b.probes.iter().map(|p| p.rate_per_sec))
        .collect();
    let (lo, hi) = rates
        .iter()
        .fold((f64::MAX, 0.0_f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    if rates.is_empty() || lo <= 0.0 {
        return None;
    }
    let bound_us = cap.slo.split_once('<').and_then(|(_, b)| parse_bound_us(b));
    let label = format!("{}: p99 against offered rate", s.scenario);
    let x = Axis {
        min: lo / 1.25,
        max: hi * 1.25,
        log: true,
    };
    let values = cap
        .backends
        .iter()
        .flat_map(|b| b.probes.iter().map(|p| p.p99_us as f64))
        .chain(bound_us);
    let y = Axis::log_around(values)?;
    let mut p = Plot::new(&label, x, y);
    p.y_ticks();
    for t in log_ticks(x.min, x.max, &[1.0, 2.0, 5.0]) {
        p.x_tick(t, &table::count(t.round() as u64));
    }
    p.frame("offered rate, per second (log scale)");
    let mut legend = Vec::new();
    for (i, b) in cap.backends.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let mut probes: Vec<&crate::CapacityProbe> = b.probes.iter().collect();
        probes.sort_by(|a, b| a.rate_per_sec.total_cmp(&b.rate_per_sec));
        let points: Vec<Option<(f64, f64)>> = probes
            .iter()
            .map(|p| Some((p.rate_per_sec, (p.p99_us as f64).max(1.0))))
            .collect();
        p.line(&points, colour, false);
        let capacity = b.capacity_per_sec.map_or("none held".into(), |c| {
            format!(
                "{}{}/s",
                if b.at_least { ">= " } else { "" },
                table::count(c as u64)
            )
        });
        legend.push((format!("{} p99 ({capacity})", b.name), colour, false));
    }
    if let Some(bound) = bound_us {
        p.line(
            &[Some((x.min, bound)), Some((x.max, bound))],
            "#888888",
            true,
        );
        legend.push((format!("SLO {}", cap.slo), "#888888", true));
    }
    p.legend(&legend);
    Some(p.finish())
}

/// `20ms`, `800us`, `1.5s` in µs.
fn parse_bound_us(text: &str) -> Option<f64> {
    let t = text.trim();
    let (n, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("µs") {
        (n, 1.0)
    } else {
        (t.strip_suffix('s')?, 1e6)
    };
    n.parse::<f64>().ok().map(|v| v * scale)
}

/// CPU (cores in use) and memory over the run per backend, from the
/// samples the runner took about once a second; `None` when none were.
fn usage_plots(s: &ScenarioResult) -> Option<String> {
    if s.backends.iter().all(|b| b.usage.len() < 2) {
        return None;
    }
    let t_max = s
        .backends
        .iter()
        .flat_map(|b| b.usage.iter().map(|u| u.t_secs))
        .fold(1.0_f64, f64::max);
    let cores = |b: &crate::BackendResult| -> Vec<Option<(f64, f64)>> {
        b.usage
            .windows(2)
            .map(|w| {
                let dt = w[1].t_secs - w[0].t_secs;
                (dt > 0.0).then(|| {
                    (
                        w[1].t_secs,
                        ((w[1].cpu_seconds - w[0].cpu_seconds) / dt).max(0.0),
                    )
                })
            })
            .collect()
    };
    let mib = |b: &crate::BackendResult| -> Vec<Option<(f64, f64)>> {
        b.usage
            .iter()
            .map(|u| Some((u.t_secs, u.memory_bytes as f64 / (1024.0 * 1024.0))))
            .collect()
    };
    let mut out = String::new();
    type Series = fn(&crate::BackendResult) -> Vec<Option<(f64, f64)>>;
    let plots: [(&str, &str, Series); 2] = [
        ("CPU, cores in use", "cores", cores),
        ("memory, MiB", "MiB", mib),
    ];
    for (what, unit, series) in plots {
        let all: Vec<Vec<Option<(f64, f64)>>> = s.backends.iter().map(series).collect();
        let y_max = all
            .iter()
            .flatten()
            .flatten()
            .map(|p| p.1)
            .fold(0.0_f64, f64::max)
            .max(1e-3)
            * 1.1;
        let x = Axis {
            min: 0.0,
            max: t_max,
            log: false,
        };
        let y = Axis {
            min: 0.0,
            max: y_max,
            log: false,
        };
        let mut p = Plot::new(&format!("{}: {what}", s.scenario), x, y);
        for t in linear_ticks(y_max) {
            p.y_tick_linear(
                t,
                format!("{t:.3}")
                    .trim_end_matches('0')
                    .trim_end_matches('.'),
            );
        }
        for t in linear_ticks(t_max) {
            p.x_tick(t, &format!("{t}"));
        }
        p.frame(&format!("seconds since the backends started ({unit})"));
        let mut legend = Vec::new();
        for (i, (b, points)) in s.backends.iter().zip(&all).enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            p.line(points, colour, false);
            legend.push((b.name.clone(), colour, false));
        }
        p.legend(&legend);
        let _ = writeln!(
            out,
            "<figure>\n{}<figcaption>{what} over the run, per backend (about one sample a second; {}).</figcaption>\n</figure>",
            p.finish(),
            esc(s.backends[0].accounting.as_deref().unwrap_or("accounting not recorded"))
        );
    }
    Some(out)
}

/// The x positions of the percentile plot, in nines (`-log10(1 - q)`).
const NINES_MAX: f64 = 4.0;

fn percentile_plot(s: &ScenarioResult) -> String {
    let label = format!("{}: latency by percentile", s.scenario);
    let x = Axis {
        min: 0.0,
        max: NINES_MAX,
        log: false,
    };
    // (backend index, name, curve) for each backend with samples.
    type Curve<'a> = (usize, &'a str, Vec<(f64, f64)>);
    let curves: Vec<Curve> = s
        .backends
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let h = b.decode_histogram().ok().filter(|h| !h.is_empty())?;
            Some((i, b.name.as_str(), percentile_curve(&h)))
        })
        .collect();
    let Some(y) = Axis::log_around(curves.iter().flat_map(|c| c.2.iter().map(|p| p.1))) else {
        let mut p = Plot::new(
            &label,
            x,
            Axis {
                min: 1.0,
                max: 10.0,
                log: true,
            },
        );
        p.frame("percentile");
        p.message("no histogram recorded");
        return p.finish();
    };
    let mut p = Plot::new(&label, x, y);
    p.y_ticks();
    for (n, text) in [
        (0.0, "0%"),
        (std::f64::consts::LOG10_2, "50%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
    ] {
        p.x_tick(n, text);
    }
    p.frame("percentile");
    let mut legend = Vec::new();
    for (i, name, curve) in &curves {
        let colour = PALETTE[i % PALETTE.len()];
        let points: Vec<Option<(f64, f64)>> = curve.iter().copied().map(Some).collect();
        p.line(&points, colour, false);
        legend.push((name.to_string(), colour, false));
    }
    p.legend(&legend);
    p.finish()
}

/// `(nines, latency µs)` from 0 to [`NINES_MAX`], stopping where the
/// histogram runs out of samples (beyond `1 - 1/n` every point is the max).
fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let last = (h.len() as f64).log10().min(NINES_MAX);
    let steps = 200;
    (0..=steps)
        .map(|i| last * i as f64 / steps as f64)
        .map(|n| {
            let q = 1.0 - 10f64.powf(-n);
            (n, h.value_at_quantile(q).max(1) as f64)
        })
        .collect()
}

/// Round linear ticks from 0 to `max` (steps of 1, 2 or 5 × 10^k).
fn linear_ticks(max: f64) -> Vec<f64> {
    let raw = max / 8.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
        .max(1e-9);
    (0..)
        .map(|i| i as f64 * step)
        .take_while(|t| *t <= max + 1e-9)
        .collect()
}

/// `mantissas` × 10^k between `min` and `max`.
fn log_ticks(min: f64, max: f64, mantissas: &[f64]) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(min.log10().floor());
    while decade <= max {
        for m in mantissas {
            let v = m * decade;
            if v >= min && v <= max {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    ticks
}

fn short_micros(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us}µs")
    } else if us < 1_000_000.0 {
        format!("{}ms", us / 1e3)
    } else {
        format!("{}s", us / 1e6)
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{self, LogNormal};
    use crate::Mode;

    const GO: LogNormal = LogNormal {
        median_us: 700.0,
        sigma: 0.6,
    };

    #[test]
    fn mismatch_samples_show_both_answers_with_exact_numbers() {
        let mut run = sample();
        let line = r#"{"route":"/v1/orders/{id}","method":"GET","target":"/v1/orders/7?api_key=[redacted]","primary":{"status":200,"headers":[],"body":{"id":12345678901234567891,"total":10}},"shadow":{"status":200,"headers":[],"body":{"id":12345678901234567891,"total":"10"}},"mismatches":[{"path":"/total","kind":"type","primary":"10","shadow":"\"10\""}],"noise":[]}"#;
        run.scenarios[0].comparison = Some(crate::Comparison {
            samples: vec![line.to_owned()],
            ..Default::default()
        });
        let html = render(&run);
        assert!(html.contains("<details class=\"sample\">"), "{html}");
        assert!(
            html.contains("12345678901234567891"),
            "exact, not 1.2345678901234568e19"
        );
        assert!(html.contains("/v1/orders/7?api_key=[redacted]"));
        assert!(html.contains("<td>/total</td><td>type</td>"));
    }

    fn sample() -> RunResults {
        synthetic::run(
            Mode::Shadow,
            vec![
                synthetic::pair("ingest", GO, GO.scaled(0.7), 1, 5_000, 10),
                synthetic::pair("cache", GO, GO.scaled(1.1), 2, 5_000, 10),
            ],
        )
    }

    #[test]
    fn each_scenario_gets_a_table_and_two_plots() {
        let html = render(&sample());
        assert_eq!(html.matches("<svg").count(), 4);
        assert_eq!(html.matches("</svg>").count(), 4);
        assert_eq!(html.matches("<table>").count(), 2);
        assert_eq!(html.matches("<section>").count(), 2);
        assert_eq!(html.matches("</section>").count(), 2);
        // p50 + p99 per backend in the timeline, one curve per backend in
        // the percentile plot, in each scenario.
        assert_eq!(html.matches("<polyline").count(), 2 * (4 + 2));
        assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    }

    #[test]
    fn the_file_is_self_contained() {
        let html = render(&sample());
        for needle in ["<script", "http:", "https:", "<link", "src="] {
            assert!(!html.contains(needle), "found {needle}");
        }
    }

    #[test]
    fn names_and_notes_are_escaped() {
        let mut run = sample();
        run.scenarios[0].backends[1].name = "<script>alert('x')</script>".into();
        run.scenarios[0].notes.push("a & b < c".into());
        run.command = "parallax run --rate \"5\"".into();
        let html = render(&run);
        assert!(!html.contains("<script"), "unescaped name");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("a &amp; b &lt; c"));
        assert!(html.contains("--rate &quot;5&quot;"));
    }

    #[test]
    fn a_backend_without_data_still_renders() {
        let mut run = sample();
        let b = &mut run.scenarios[0].backends[0];
        b.timeline.clear();
        b.histogram = synthetic::backend("go", crate::Role::Baseline, GO, 1, 0, 1).histogram;
        let html = render(&run);
        assert_eq!(html.matches("<svg").count(), 4);
        // Only the other backend is drawn in that scenario.
        assert_eq!(html.matches("<polyline").count(), 2 + 1 + 6);
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(linear_ticks(10.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let coarse = [1.0, 2.0, 5.0];
        assert_eq!(
            log_ticks(90.0, 30_000.0, &coarse),
            [100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4, 2e4]
        );
        assert_eq!(log_ticks(300.0, 1_000.0, &coarse), [500.0, 1e3]);
        assert_eq!(short_micros(2_000.0), "2ms");
    }

    #[test]
    fn a_narrow_range_gets_extra_ticks_that_do_not_crowd() {
        let mut p = Plot::new(
            "t",
            Axis {
                min: 0.0,
                max: 1.0,
                log: false,
            },
            Axis {
                min: 250.0,
                max: 4_000.0,
                log: true,
            },
        );
        p.y_ticks();
        let labels: Vec<&str> = p
            .svg
            .split("text-anchor=\"end\">")
            .skip(1)
            .map(|t| &t[..t.find('<').unwrap()])
            .collect();
        assert!(labels.len() >= 5, "{labels:?}");
        for must in ["500µs", "1ms", "2ms"] {
            assert!(labels.contains(&must), "{labels:?}");
        }
    }
}

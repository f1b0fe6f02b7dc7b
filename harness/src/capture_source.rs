//! `[traffic.capture]`: a recorded capture (`parallax-capture`: a proxy
//! recording, a GoReplay `.gor` or a HAR file) as an experiment's traffic.
//!
//! The runner's load is open-model at a fixed rate: slot `n` is sent at
//! `start + n / rate`. A capture fits that model as its requests *in
//! recorded order*: slot `n` sends the capture's `n`-th request (after the
//! filters), wrapping around when `loop` is on. So the same slots send the
//! same requests to both backends in direct mode, as request templates do.
//! Recorded inter-arrival times are not kept: `speed = F` sets the rate to
//! F times the capture's mean rate (requests over its recorded span), and
//! the requests go out evenly spaced at that rate. For the recorded timing
//! itself (bursts included), use `parallax replay --speed F` against each
//! backend.
//!
//! The capture is streamed, never loaded whole: a window of the most recent
//! requests serves the slots in flight (they are asked for nearly in
//! order), and the file is reopened when a phase starts again from slot 0
//! (direct mode's A B B A). Opening the experiment reads the capture once,
//! to count its requests and measure its span.
//!
//! Slot numbers carry the runner's bookkeeping (`runner.rs`): warm-up slots
//! count from 2^40 (a backend's own warm-up offset by `i << 32`), a step's
//! slots from `k << 36`. Positions in the capture ignore those offsets, so
//! every step starts at the capture's beginning and both backends' warm-ups
//! send the same requests (their side effects join like the rest). Warm-up
//! requests replay as loop 1,000,000 onward: with `fresh_id` set, their ids
//! differ from the measured slots', so a write is not refused as a
//! duplicate when the measured run sends it again.
//!
//! WebSocket sessions in the capture are not replayed here (the runner
//! sends HTTP requests); `parallax replay` replays them.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use goose::prelude::GooseMethod;
use parallax_capture::format::Request as Recorded;
use parallax_capture::replay::{Pace, ReplayOptions, Schedule};
use parallax_capture::rewrite::{Filter, Rewrite};
use parallax_loadgen::open::{Request, Verdict};
use parking_lot::Mutex;
use serde::Deserialize;

use crate::experiment::{invalid, Invalid};

/// `[traffic.capture]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureTraffic {
    /// The capture, relative to the experiment file: a `.plxcap` file, a
    /// recorder's configured path (`captures/orders.plxcap` stands for its
    /// segments `orders.000000.plxcap`, … in order), a `.gor` or a `.har`
    /// file. Required.
    pub path: PathBuf,
    /// The rate as a multiple of the capture's mean rate (requests over its
    /// recorded span); replaces `[load].rate`. Default: none (`[load].rate`
    /// holds).
    #[serde(default)]
    pub speed: Option<f64>,
    /// Wrap around to the capture's start when the run needs more requests
    /// than it holds. Off: a capture too short for warm-up plus duration at
    /// the rate is an error at start. Default `true`.
    #[serde(default = "yes", rename = "loop")]
    pub looping: bool,
    /// Only requests whose path matches one of these regexes. Default: all.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Only these methods. Default: all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Headers set on every request, `"Name: value"`. Default: none.
    #[serde(default)]
    pub set_headers: Vec<String>,
    /// Headers removed from every request. Default: none.
    #[serde(default)]
    pub remove_headers: Vec<String>,
    /// Target rewrites, `[REGEX, REPLACEMENT]` pairs (`$1` groups), applied
    /// in order. Default: none.
    #[serde(default)]
    pub rewrite_paths: Vec<[String; 2]>,
    /// A regex marking ids (in the target, header values and body) made
    /// fresh on every loop after the first, so a replayed write is not
    /// refused as a duplicate. Default: none.
    #[serde(default)]
    pub fresh_id: Option<String>,
    /// What a fresh id becomes: `{match}`, `{loop}`, `{loop:N}`; keep the
    /// match's width for binary bodies. Default `"{match}~{loop}"`.
    #[serde(default)]
    pub fresh_id_template: Option<String>,
    /// Which answers count as successes: `"recorded"` (the status the
    /// primary gave when it was recorded; 2xx or 3xx when none was) or
    /// `"2xx"` (any 2xx or 3xx). Default `"recorded"`.
    #[serde(default)]
    pub ok: OkStatus,
}

/// `traffic.capture.ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OkStatus {
    #[default]
    Recorded,
    #[serde(rename = "2xx")]
    Success,
}

fn yes() -> bool {
    true
}

/// The files a `path` stands for: the recorder's segments when `path`
/// itself does not exist and segments of it do.
pub fn files(path: &Path) -> Vec<PathBuf> {
    if path.exists() {
        return vec![path.to_owned()];
    }
    let segments: Vec<PathBuf> = parallax_capture::writer::existing_segments(path)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if segments.is_empty() {
        vec![path.to_owned()]
    } else {
        segments
    }
}

/// What one pass over the capture holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    /// Requests after the filters.
    pub requests: u64,
    /// Recorded time from the first to the last of them, seconds.
    pub span_secs: f64,
}

impl Extent {
    /// Requests per second as recorded.
    pub fn mean_rate(&self) -> f64 {
        if self.span_secs > 0.0 {
            (self.requests.saturating_sub(1)) as f64 / self.span_secs
        } else {
            0.0
        }
    }
}

impl CaptureTraffic {
    fn options(&self) -> Result<ReplayOptions, Invalid> {
        let field = "traffic.capture";
        let filter = Filter::new(&self.routes, &self.methods)
            .map_err(|e| invalid(format_args!("{field}.routes"), e))?;
        for (i, h) in self.set_headers.iter().enumerate() {
            Rewrite::new(std::slice::from_ref(h), &[], &[], None, None).map_err(|_| {
                invalid(
                    format_args!("{field}.set_headers[{i}]"),
                    format_args!("{h:?} is not \"Name: value\" with a valid header name"),
                )
            })?;
        }
        for (i, [re, _]) in self.rewrite_paths.iter().enumerate() {
            regex::Regex::new(re).map_err(|e| {
                invalid(
                    format_args!("{field}.rewrite_paths[{i}]"),
                    format_args!("{re:?} is not a regex: {e}"),
                )
            })?;
        }
        let paths: Vec<(String, String)> = self
            .rewrite_paths
            .iter()
            .map(|[a, b]| (a.clone(), b.clone()))
            .collect();
        let rewrite = Rewrite::new(
            &self.set_headers,
            &self.remove_headers,
            &paths,
            self.fresh_id.as_deref(),
            self.fresh_id_template.as_deref(),
        )
        .map_err(|e| invalid(format_args!("{field}.fresh_id"), e))?;
        Ok(ReplayOptions {
            pace: Pace::Rate(1.0),
            filter,
            rewrite,
            sessions: false,
            websocket: false,
            ..ReplayOptions::default()
        })
    }

    /// Checks the table and reads the capture once (`dir` resolves
    /// `path`): its extent after the filters.
    pub fn check(&self, dir: &Path) -> Result<Extent, Invalid> {
        let field = "traffic.capture";
        if let Some(s) = self.speed {
            if !(s.is_finite() && s > 0.0) {
                return Err(invalid(
                    format_args!("{field}.speed"),
                    format_args!(
                        "{s} is not a factor above 0 (e.g. 10 for ten times the recorded rate)"
                    ),
                ));
            }
        }
        let mut options = self.options()?;
        options.rewrite = Rewrite::default();
        let files = files(&dir.join(&self.path));
        let schedule = Schedule::open(&files, &options).map_err(|e| {
            invalid(
                format_args!("{field}.path"),
                format_args!("{e} (give a capture recorded by the proxy, a .gor or a .har file, relative to the experiment file)"),
            )
        })?;
        let mut requests = 0u64;
        let (mut first, mut last) = (None, 0u64);
        let mut source = schedule;
        for item in source.by_ref() {
            let item = item.map_err(|e| invalid(format_args!("{field}.path"), e))?;
            requests += 1;
            first.get_or_insert(item.request.at_us);
            last = item.request.at_us;
        }
        if requests == 0 {
            return Err(invalid(
                format_args!("{field}.path"),
                format_args!(
                    "{} holds no HTTP request{}; record some traffic first, or loosen routes/methods",
                    files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if self.routes.is_empty() && self.methods.is_empty() {
                        ""
                    } else {
                        " the filters accept"
                    }
                ),
            ));
        }
        let extent = Extent {
            requests,
            span_secs: last.saturating_sub(first.unwrap_or(0)) as f64 / 1e6,
        };
        if self.speed.is_some() && extent.mean_rate() <= 0.0 {
            return Err(invalid(
                format_args!("{field}.speed"),
                "the capture spans no time (one request, or all at one instant); give [load].rate instead",
            ));
        }
        Ok(extent)
    }

    /// The load rate `speed` asks for, if it is given.
    pub fn rate(&self, extent: &Extent) -> Option<f64> {
        self.speed.map(|s| s * extent.mean_rate())
    }
}

/// After the experiment is checked: `speed` becomes `[load].rate`, and a
/// capture with `loop = false` must hold the whole run.
pub fn settle(experiment: &mut crate::experiment::Experiment) -> Result<(), Invalid> {
    let Some(c) = experiment.traffic.capture.clone() else {
        return Ok(());
    };
    let extent = c.check(&experiment.dir())?;
    if let Some(rate) = c.rate(&extent) {
        if !experiment.load.steps.is_empty() {
            return Err(invalid(
                "traffic.capture.speed",
                "speed sets one rate, and [load] has steps; remove one of them",
            ));
        }
        experiment.load.rate = rate;
    }
    if !c.looping {
        let most = experiment
            .steps()
            .iter()
            .map(|s| (s.rate * s.duration_secs).ceil() as u64)
            .max()
            .unwrap_or(0);
        let warmup = (experiment.load.rate * experiment.load.warmup_secs).ceil() as u64;
        let need = most.max(warmup);
        if need > extent.requests {
            return Err(invalid(
                "traffic.capture.loop",
                format_args!(
                    "the run needs {need} requests and the capture holds {}; set loop = true, or lower the rate or the duration",
                    extent.requests
                ),
            ));
        }
    }
    Ok(())
}

/// Measured slots count from 0, warm-up slots from this (the runner's
/// numbering).
const WARMUP_BASE: u64 = 1 << 40;
/// The bits of a warm-up slot below the backend's offset (`i << 32`).
const WARMUP_MASK: u64 = (1 << 32) - 1;
/// The bits of a measured slot below the step's offset (`k << 36`).
const STEP_MASK: u64 = (1 << 36) - 1;
/// Warm-up slots replay as loops from this number on.
const WARMUP_LOOP: u32 = 1_000_000;
/// Requests kept for slots asked for out of order.
const WINDOW: usize = 4096;

/// The capture as the runner's requests.
pub struct CaptureWorkload {
    files: Vec<PathBuf>,
    options: ReplayOptions,
    rewrite: Rewrite,
    extent: Extent,
    ok: OkStatus,
    /// The stream and the window of recent requests. One lock around both:
    /// a slot's request is taken under it (reading on from the file when
    /// the slot is new), no `.await` inside.
    state: Mutex<State>,
}

struct State {
    schedule: Option<Schedule>,
    /// The index (within one pass) of the next request the schedule yields.
    next: u64,
    /// `(index, request)` of the most recent requests, in order.
    window: VecDeque<(u64, Recorded)>,
}

impl CaptureWorkload {
    /// Opens a checked `[traffic.capture]`.
    pub fn open(c: &CaptureTraffic, dir: &Path) -> Result<Self, Invalid> {
        let extent = c.check(dir)?;
        let mut options = c.options()?;
        let rewrite = std::mem::take(&mut options.rewrite);
        Ok(Self {
            files: files(&dir.join(&c.path)),
            options,
            rewrite,
            extent,
            ok: c.ok,
            state: Mutex::new(State {
                schedule: None,
                next: 0,
                window: VecDeque::with_capacity(WINDOW),
            }),
        })
    }

    /// What one pass holds.
    pub fn extent(&self) -> Extent {
        self.extent
    }

    /// Slot `n`'s recorded request, rewritten for its loop.
    pub fn recorded(&self, n: u64) -> Recorded {
        let (index, loop_n) = self.position(n);
        let mut r = self.at(index);
        self.rewrite.apply(&mut r, loop_n);
        r
    }

    /// Slot `n`'s request: its index within a pass, and the pass.
    fn position(&self, n: u64) -> (u64, u32) {
        let (pass_slot, loop_base) = if n >= WARMUP_BASE {
            ((n - WARMUP_BASE) & WARMUP_MASK, WARMUP_LOOP)
        } else {
            (n & STEP_MASK, 0)
        };
        let total = self.extent.requests.max(1);
        let passes = (pass_slot / total).min(u64::from(u32::MAX / 2)) as u32;
        (pass_slot % total, loop_base.saturating_add(passes))
    }

    /// The `index`-th request of a pass.
    fn at(&self, index: u64) -> Recorded {
        let mut s = self.state.lock();
        if let Some((first, _)) = s.window.front() {
            if index >= *first && index < s.next {
                let at = (index - first) as usize;
                return s.window[at].1.clone();
            }
        }
        if index < s.next || s.schedule.is_none() {
            // Behind the window (a new phase from slot 0): from the start.
            s.schedule = Schedule::open(&self.files, &self.options).ok();
            s.next = 0;
            s.window.clear();
        }
        while s.next <= index {
            let item = s.schedule.as_mut().and_then(|sch| sch.next());
            let request = match item {
                Some(Ok(item)) => item.request,
                // Read once at start; a file changed or damaged since
                // gives an empty request (answered, judged as an error).
                _ => Recorded {
                    method: "GET".into(),
                    target: "/".into(),
                    ..Recorded::default()
                },
            };
            if s.window.len() == WINDOW {
                s.window.pop_front();
            }
            let next = s.next;
            s.window.push_back((next, request));
            s.next += 1;
        }
        s.window.back().expect("just pushed").1.clone()
    }

    /// Slot `n` as the runner's request.
    pub fn request(&self, n: u64) -> Request {
        to_request(self.recorded(n))
    }

    /// Whether the answer to slot `n` counts as a success.
    pub fn judge(&self, n: u64, status: u16) -> Verdict {
        let ok = match (self.ok, self.at_status(n)) {
            (OkStatus::Recorded, Some(recorded)) => status == recorded,
            _ => (200..400).contains(&status),
        };
        if ok {
            Verdict::Ok
        } else {
            Verdict::Error
        }
    }

    fn at_status(&self, n: u64) -> Option<u16> {
        self.at(self.position(n).0).status
    }

    /// Slot `n`'s path (for the per-route latency).
    pub fn path(&self, n: u64) -> String {
        self.recorded(n).path().to_owned()
    }
}

/// Headers the runner's client sets itself, or that belong to the recorded
/// connection.
const NOT_SENT: [&str; 9] = [
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

fn to_request(r: Recorded) -> Request {
    let method = match r.method.as_str() {
        "POST" => GooseMethod::Post,
        "PUT" => GooseMethod::Put,
        "DELETE" => GooseMethod::Delete,
        "PATCH" => GooseMethod::Patch,
        "HEAD" => GooseMethod::Head,
        _ => GooseMethod::Get,
    };
    let headers = r
        .headers
        .into_iter()
        .filter(|(k, _)| !NOT_SENT.iter().any(|h| k.eq_ignore_ascii_case(h)))
        .collect();
    Request {
        method,
        path: r.target,
        body: (!r.body.is_empty()).then(|| Bytes::clone(&r.body)),
        content_type: None,
        units: 1,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallax_capture::format::{Meta, Record};
    use parallax_capture::CaptureWriter;

    fn capture(dir: &Path, n: u64) -> PathBuf {
        let path = dir.join("c.plxcap");
        let mut w =
            CaptureWriter::new(std::fs::File::create(&path).unwrap(), &Meta::new("t", 0)).unwrap();
        for i in 0..n {
            w.append(&Record::Request(Recorded {
                at_us: i * 10_000,
                conn: Some(i % 3),
                method: if i % 2 == 0 { "GET" } else { "POST" }.into(),
                target: format!("/v1/orders/o-{i}"),
                headers: vec![("content-type".into(), "application/json".into())],
                body: Bytes::from(format!("{{\"id\":\"o-{i}\"}}")),
                status: Some(if i % 2 == 0 { 200 } else { 201 }),
                ..Recorded::default()
            }))
            .unwrap();
        }
        w.finish().unwrap();
        path
    }

    fn table(text: &str) -> CaptureTraffic {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn slots_send_the_capture_in_order_and_loop_with_fresh_ids() {
        let d = std::env::temp_dir().join(format!("plx-capsrc-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        capture(&d, 10);
        let c = table(
            "path = \"c.plxcap\"\nspeed = 2\nfresh_id = 'o-[0-9]+'\nfresh_id_template = '{match}-L{loop}'",
        );
        let w = CaptureWorkload::open(&c, &d).unwrap();
        assert_eq!(w.extent().requests, 10);
        // 10 requests 10 ms apart: 100/s as recorded, 200/s at speed 2.
        assert!((c.rate(&w.extent()).unwrap() - 200.0).abs() < 1e-6);
        assert_eq!(w.request(3).path, "/v1/orders/o-3");
        assert_eq!(w.request(0).path, "/v1/orders/o-0");
        assert_eq!(w.request(9).body.as_deref(), Some(&b"{\"id\":\"o-9\"}"[..]));
        // Slot 13 is the second pass's fourth request, with fresh ids.
        assert_eq!(w.request(13).path, "/v1/orders/o-3-L1");
        // Out of order within the window, and again from the start.
        assert_eq!(w.request(12).path, "/v1/orders/o-2-L1");
        assert_eq!(w.request(1).path, "/v1/orders/o-1");
        // Warm-up slots: the capture from its start, ids of their own.
        assert_eq!(w.request(WARMUP_BASE).path, "/v1/orders/o-0-L1000000");
        // The same for either backend's warm-up, and for every step.
        assert_eq!(
            w.request(WARMUP_BASE + (1 << 32) + 11).path,
            "/v1/orders/o-1-L1000001"
        );
        assert_eq!(w.request((2 << 36) + 3).path, "/v1/orders/o-3");
        // Judged by the recorded status.
        assert_eq!(w.judge(1, 201), Verdict::Ok);
        assert_eq!(w.judge(1, 200), Verdict::Error);
        assert_eq!(w.judge(2, 200), Verdict::Ok);
        let filtered = table("path = \"c.plxcap\"\nmethods = [\"POST\"]\nloop = false");
        let w = CaptureWorkload::open(&filtered, &d).unwrap();
        assert_eq!(w.extent().requests, 5);
        assert_eq!(w.request(0).method, GooseMethod::Post);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let d = std::env::temp_dir();
        let e = CaptureWorkload::open(&table("path = \"no-such.plxcap\""), &d)
            .err()
            .unwrap();
        assert_eq!(e.field, "traffic.capture.path");
        let e = CaptureWorkload::open(&table("path = \"x\"\nspeed = 0"), &d)
            .err()
            .unwrap();
        assert_eq!(e.field, "traffic.capture.speed");
        let e = CaptureWorkload::open(&table("path = \"x\"\nset_headers = [\"bad\"]"), &d)
            .err()
            .unwrap();
        assert_eq!(e.field, "traffic.capture.set_headers[0]");
    }
}

//! `[traffic]`: weighted request templates whose paths, headers and bodies
//! draw values from named generators, as an open-model [`Workload`].
//!
//! Everything a slot sends is a function of the seed and the slot number:
//! which template (by weight), and every value it draws. So the same slots
//! send the same requests to both backends in direct mode, and a run can be
//! repeated request for request. A value used twice in one request (`{{id}}`
//! in the path and the body) is the same value. Only `now` reads the clock.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use goose::prelude::GooseMethod;
use hdrhistogram::Histogram;
use parallax_loadgen::open::{Request, Verdict, Workload};
use parallax_proxy::route::RouteTable;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Deserialize;

use crate::experiment::{invalid, Invalid, Traffic};

/// One named value generator, e.g. `{ kind = "int", min = 1, max = 1000 }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ValueSpec {
    /// A uniform integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// A key rank in `0..n` drawn from a Zipf distribution (0 the most
    /// frequent): hot keys, as real traffic has. `exponent` default `1.0`.
    Zipf {
        n: u64,
        #[serde(default = "one")]
        exponent: f64,
    },
    /// `start` plus the slot number: unique per request (measured slots
    /// count from 0; warm-up slots from 2^40). `start` default `0`.
    Sequence {
        #[serde(default)]
        start: u64,
    },
    /// A random (version 4) UUID.
    Uuid,
    /// `size` random bytes, as `"hex"` (default) or `"base64"`.
    Bytes {
        size: usize,
        #[serde(default)]
        encoding: Encoding,
    },
    /// The time the request is built: `"unix"` seconds, `"unix_ms"`
    /// (default), `"unix_us"` or `"rfc3339"`.
    Now {
        #[serde(default)]
        format: NowFormat,
    },
    /// One of `values`, uniformly.
    Choice { values: Vec<String> },
}

fn one() -> f64 {
    1.0
}

/// How random bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

/// How `now` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NowFormat {
    Unix,
    #[default]
    UnixMs,
    UnixUs,
    Rfc3339,
}

/// One request template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// For reports. Default: `"<METHOD> <path>"`.
    #[serde(default)]
    pub name: Option<String>,
    /// Relative share of the traffic. Default `1`.
    #[serde(default = "one")]
    pub weight: f64,
    /// HTTP method. Default `"GET"`.
    #[serde(default = "get")]
    pub method: String,
    /// Path and query, with `{{value}}` placeholders. Required.
    pub path: String,
    /// Request headers (values may hold placeholders). Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body, inline (placeholders allowed). Default: none.
    #[serde(default)]
    pub body: Option<String>,
    /// The body from a file, relative to the experiment file (placeholders
    /// allowed). Default: none.
    #[serde(default)]
    pub body_file: Option<PathBuf>,
    /// Statuses that count as success. Default: any 2xx or 3xx.
    #[serde(default)]
    pub ok_status: Vec<u16>,
}

fn get() -> String {
    "GET".into()
}

impl Template {
    /// `name`, else `"<METHOD> <path>"`.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{} {}", self.method, self.path))
    }
}

/// Checks the traffic section; `dir` resolves `body_file`.
pub fn validate(traffic: &Traffic, dir: &Path) -> Result<(), Invalid> {
    for (key, set, what) in [
        (
            "protobuf",
            traffic.protobuf.is_some(),
            "protobuf bodies from a descriptor set",
        ),
        (
            "websocket",
            traffic.websocket.is_some(),
            "WebSocket sessions",
        ),
        (
            "capture",
            traffic.capture.is_some(),
            "replaying a recorded capture",
        ),
    ] {
        if set {
            return Err(invalid(
                format_args!("traffic.{key}"),
                format_args!(
                    "{what} are not yet expressible in an experiment file (see \
                     docs/experiments.md, \"Not yet\"); remove this table"
                ),
            ));
        }
    }
    for (name, spec) in &traffic.values {
        let field = format!("traffic.values.{name}");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid(
                &field,
                "a value's name may hold only A-Z a-z 0-9 _ (it is used as {{name}})",
            ));
        }
        spec.check(&field)?;
    }
    if traffic.requests.is_empty() {
        return Err(invalid(
            "traffic.requests",
            "no request template; add at least one [[traffic.requests]] with a `path`",
        ));
    }
    for (i, t) in traffic.requests.iter().enumerate() {
        let field = format!("traffic.requests[{i}]");
        if !(t.weight.is_finite() && t.weight > 0.0) {
            return Err(invalid(
                format_args!("{field}.weight"),
                format_args!("{} is not a share above 0 (e.g. 1)", t.weight),
            ));
        }
        if !METHODS.contains(&t.method.as_str()) {
            return Err(invalid(
                format_args!("{field}.method"),
                format_args!("{:?} is not one of {}", t.method, METHODS.join(", ")),
            ));
        }
        if !t.path.starts_with('/') {
            return Err(invalid(
                format_args!("{field}.path"),
                format_args!(
                    "{:?} does not start with / (e.g. \"/v1/orders/{{{{id}}}}\")",
                    t.path
                ),
            ));
        }
        compile(t.path.as_bytes(), &traffic.values, &format!("{field}.path"))?;
        for (h, v) in &t.headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    format_args!("{field}.headers"),
                    format_args!("{h:?} is not a valid header name"),
                ));
            }
            compile(
                v.as_bytes(),
                &traffic.values,
                &format!("{field}.headers.{h}"),
            )?;
        }
        match (&t.body, &t.body_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(&field, "has both `body` and `body_file`; keep one"))
            }
            (Some(b), None) => {
                compile(b.as_bytes(), &traffic.values, &format!("{field}.body"))?;
            }
            (None, Some(file)) => {
                let path = dir.join(file);
                let bytes = std::fs::read(&path).map_err(|e| {
                    invalid(
                        format_args!("{field}.body_file"),
                        format_args!(
                            "cannot read {} ({e}); paths are relative to the experiment file",
                            path.display()
                        ),
                    )
                })?;
                compile(&bytes, &traffic.values, &format!("{field}.body_file"))?;
            }
            (None, None) => {}
        }
        for (j, s) in t.ok_status.iter().enumerate() {
            if !(100..=599).contains(s) {
                return Err(invalid(
                    format_args!("{field}.ok_status[{j}]"),
                    format_args!("{s} is not an HTTP status"),
                ));
            }
        }
    }
    Ok(())
}

impl ValueSpec {
    fn check(&self, field: &str) -> Result<(), Invalid> {
        match self {
            ValueSpec::Int { min, max } if min > max => Err(invalid(
                format_args!("{field}.max"),
                format_args!("{max} is below min ({min})"),
            )),
            ValueSpec::Zipf { n, exponent } => {
                if *n == 0 {
                    return Err(invalid(format_args!("{field}.n"), "must be at least 1"));
                }
                if !(exponent.is_finite() && *exponent >= 0.0) {
                    return Err(invalid(
                        format_args!("{field}.exponent"),
                        format_args!("{exponent} is not 0 or more (1.0 is classic Zipf)"),
                    ));
                }
                Ok(())
            }
            ValueSpec::Bytes { size, .. } if *size == 0 || *size > 1 << 20 => Err(invalid(
                format_args!("{field}.size"),
                format_args!("{size} is not within 1-1048576"),
            )),
            ValueSpec::Choice { values } if values.is_empty() => Err(invalid(
                format_args!("{field}.values"),
                "empty; list at least one",
            )),
            _ => Ok(()),
        }
    }
}

/// A piece of a template: literal bytes or a value's index.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(Vec<u8>),
    Value(usize),
}

/// Splits `text` at `{{name}}` placeholders; every name must be a value.
fn compile(
    text: &[u8],
    values: &BTreeMap<String, ValueSpec>,
    field: &str,
) -> Result<Vec<Piece>, Invalid> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, b"{{") {
        let after = &rest[start + 2..];
        let Some(end) = find(after, b"}}") else {
            break;
        };
        let name = String::from_utf8_lossy(&after[..end]).trim().to_owned();
        let index = values.keys().position(|k| *k == name).ok_or_else(|| {
            let known: Vec<&str> = values.keys().map(String::as_str).collect();
            invalid(
                field,
                format_args!(
                    "{{{{{name}}}}} names no value; define it under [traffic.values] (defined: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
        if start > 0 {
            pieces.push(Piece::Literal(rest[..start].to_vec()));
        }
        pieces.push(Piece::Value(index));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_vec()));
    }
    Ok(pieces)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One request as a template renders it for a slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Index of the template in `[[traffic.requests]]`.
    pub template: usize,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// A compiled template.
struct Compiled {
    method: GooseMethod,
    path: Vec<Piece>,
    headers: Vec<(String, Vec<Piece>)>,
    body: Option<Vec<Piece>>,
    ok_status: Vec<u16>,
    /// Values the template uses, by index (generated once per request).
    uses: Vec<usize>,
}

/// A compiled generator.
enum Gen {
    Int(i64, i64),
    Zipf(Zipf<f64>, u64),
    Sequence(u64),
    Uuid,
    Bytes(usize, Encoding),
    Now(NowFormat),
    Choice(Vec<String>),
}

impl Gen {
    fn new(spec: &ValueSpec) -> Self {
        match spec {
            ValueSpec::Int { min, max } => Gen::Int(*min, *max),
            ValueSpec::Zipf { n, exponent } => Gen::Zipf(
                Zipf::new(*n as f64, *exponent).expect("checked: n >= 1, exponent >= 0"),
                *n,
            ),
            ValueSpec::Sequence { start } => Gen::Sequence(*start),
            ValueSpec::Uuid => Gen::Uuid,
            ValueSpec::Bytes { size, encoding } => Gen::Bytes(*size, *encoding),
            ValueSpec::Now { format } => Gen::Now(*format),
            ValueSpec::Choice { values } => Gen::Choice(values.clone()),
        }
    }

    fn value(&self, n: u64, rng: &mut SmallRng) -> String {
        match self {
            Gen::Int(min, max) => rng.random_range(*min..=*max).to_string(),
            // Zipf yields ranks 1..=n as floats; rank 1 becomes key 0.
            Gen::Zipf(z, n) => ((z.sample(rng) as u64).clamp(1, *n) - 1).to_string(),
            Gen::Sequence(start) => start.wrapping_add(n).to_string(),
            Gen::Uuid => {
                let mut b: [u8; 16] = rng.random();
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!(
                    "{}-{}-{}-{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                )
            }
            Gen::Bytes(size, encoding) => {
                let bytes: Vec<u8> = (0..*size).map(|_| rng.random()).collect();
                match encoding {
                    Encoding::Hex => bytes.iter().map(|x| format!("{x:02x}")).collect(),
                    Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
                }
            }
            Gen::Now(format) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                match format {
                    NowFormat::Unix => now.as_secs().to_string(),
                    NowFormat::UnixMs => now.as_millis().to_string(),
                    NowFormat::UnixUs => now.as_micros().to_string(),
                    NowFormat::Rfc3339 => {
                        parallax_report::results::rfc3339_from_unix(now.as_secs())
                    }
                }
            }
            Gen::Choice(values) => values[rng.random_range(0..values.len())].clone(),
        }
    }
}

/// The traffic section as an open-model workload. It also keeps, per route
/// of the experiment's route table, a latency histogram of the measured
/// slots (for direct mode, where no proxy labels requests by route).
pub struct TemplateWorkload {
    name: &'static str,
    seed: u64,
    gens: Vec<Gen>,
    templates: Vec<Compiled>,
    /// Running sum of weights, for picking a template.
    cumulative: Vec<f64>,
    routes: RouteTable,
    /// Per route label index: µs histogram of measured slots. One short
    /// lock per answered request (no `.await` while held), as the open
    /// model's own statistics are kept.
    by_route: Mutex<Vec<Histogram<u64>>>,
}

impl TemplateWorkload {
    /// Compiles a checked traffic section; `dir` resolves `body_file`,
    /// `routes` are the route templates latency is broken down by.
    pub fn new(
        name: &str,
        traffic: &Traffic,
        dir: &Path,
        routes: &[&str],
    ) -> Result<Self, Invalid> {
        validate(traffic, dir)?;
        let mut templates = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0.0;
        for (i, t) in traffic.requests.iter().enumerate() {
            let field = format!("traffic.requests[{i}]");
            let path = compile(t.path.as_bytes(), &traffic.values, &field)?;
            let headers = t
                .headers
                .iter()
                .map(|(h, v)| Ok((h.clone(), compile(v.as_bytes(), &traffic.values, &field)?)))
                .collect::<Result<Vec<_>, Invalid>>()?;
            let body = match (&t.body, &t.body_file) {
                (Some(b), _) => Some(compile(b.as_bytes(), &traffic.values, &field)?),
                (None, Some(f)) => {
                    let bytes = std::fs::read(dir.join(f))
                        .map_err(|e| invalid(format_args!("{field}.body_file"), e))?;
                    Some(compile(&bytes, &traffic.values, &field)?)
                }
                (None, None) => None,
            };
            let mut uses: Vec<usize> = path
                .iter()
                .chain(headers.iter().flat_map(|(_, p)| p))
                .chain(body.iter().flatten())
                .filter_map(|p| match p {
                    Piece::Value(i) => Some(*i),
                    Piece::Literal(_) => None,
                })
                .collect();
            uses.sort_unstable();
            uses.dedup();
            templates.push(Compiled {
                method: method(&t.method),
                path,
                headers,
                body,
                ok_status: t.ok_status.clone(),
                uses,
            });
            total += t.weight;
            cumulative.push(total);
        }
        let routes = RouteTable::new(routes)
            .map_err(|(j, reason)| invalid(format_args!("routes[{j}].template"), reason))?;
        let by_route = (0..routes.len())
            .map(|_| parallax_loadgen::pacing::latency_histogram())
            .collect();
        Ok(Self {
            // Workload names are `&'static str`; one per experiment run.
            name: Box::leak(name.to_owned().into_boxed_str()),
            seed: traffic.seed.unwrap_or(1),
            gens: traffic.values.values().map(Gen::new).collect(),
            templates,
            cumulative,
            routes,
            by_route: Mutex::new(by_route),
        })
    }

    fn rng(&self, n: u64, salt: u64) -> SmallRng {
        SmallRng::seed_from_u64(
            self.seed
                ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ salt.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
        )
    }

    /// The template slot `n` sends.
    fn pick(&self, n: u64) -> usize {
        let total = *self.cumulative.last().expect("at least one template");
        let x = self.rng(n, u64::MAX).random::<f64>() * total;
        self.cumulative
            .iter()
            .position(|c| x < *c)
            .unwrap_or(self.cumulative.len() - 1)
    }

    /// Every value template `t` uses, drawn for slot `n`.
    fn values(&self, t: &Compiled, n: u64) -> HashMap<usize, String> {
        t.uses
            .iter()
            .map(|&i| (i, self.gens[i].value(n, &mut self.rng(n, i as u64))))
            .collect()
    }

    /// The request slot `n` sends.
    pub fn render(&self, n: u64) -> Rendered {
        let i = self.pick(n);
        let t = &self.templates[i];
        let values = self.values(t, n);
        let fill = |pieces: &[Piece]| -> Vec<u8> {
            let mut out = Vec::new();
            for p in pieces {
                match p {
                    Piece::Literal(l) => out.extend_from_slice(l),
                    Piece::Value(v) => out.extend_from_slice(values[v].as_bytes()),
                }
            }
            out
        };
        let text = |pieces: &[Piece]| String::from_utf8_lossy(&fill(pieces)).into_owned();
        let headers = t
            .headers
            .iter()
            .map(|(h, p)| (h.clone(), text(p)))
            .collect();
        Rendered {
            template: i,
            path: text(&t.path),
            headers,
            body: t.body.as_deref().map(fill),
        }
    }

    /// The route label of a path (`other` when no template matches).
    pub fn route_of(&self, path: &str) -> &str {
        let path = path.split('?').next().unwrap_or(path);
        self.routes.label(self.routes.find(path))
    }

    /// Takes the per-route histograms of the measured slots so far (label,
    /// histogram), leaving them empty.
    pub fn take_route_latency(&self) -> Vec<(String, Histogram<u64>)> {
        let mut by_route = self.by_route.lock();
        by_route
            .iter_mut()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(i, h)| {
                let taken = h.clone();
                h.reset();
                (self.routes.label(i).to_owned(), taken)
            })
            .collect()
    }
}

/// The methods a template may use (those goose sends).
pub const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"];

fn method(m: &str) -> GooseMethod {
    match m {
        "POST" => GooseMethod::Post,
        "PUT" => GooseMethod::Put,
        "DELETE" => GooseMethod::Delete,
        "PATCH" => GooseMethod::Patch,
        "HEAD" => GooseMethod::Head,
        // Validation lets only METHODS through.
        _ => GooseMethod::Get,
    }
}

impl Workload for TemplateWorkload {
    fn name(&self) -> &'static str {
        self.name
    }

    fn request(&self, n: u64) -> Request {
        let r = self.render(n);
        Request {
            method: self.templates[r.template].method,
            path: r.path,
            body: r.body.map(Bytes::from),
            content_type: None,
            units: 1,
            headers: r.headers,
        }
    }

    fn judge(&self, n: u64, status: u16, _body: &[u8]) -> Verdict {
        let t = &self.templates[self.pick(n)];
        let ok = if t.ok_status.is_empty() {
            (200..400).contains(&status)
        } else {
            t.ok_status.contains(&status)
        };
        if ok {
            Verdict::Ok
        } else {
            Verdict::Error
        }
    }

    fn observe(&self, n: u64, latency: Duration, _ok: bool, measured: bool) {
        if !measured {
            return;
        }
        let t = &self.templates[self.pick(n)];
        // Only the path decides the route; `now` values never sit in a
        // route-deciding segment in practice, and redrawing is cheap.
        let values = self.values(t, n);
        let mut path = Vec::new();
        for p in &t.path {
            match p {
                Piece::Literal(l) => path.extend_from_slice(l),
                Piece::Value(v) => path.extend_from_slice(values[v].as_bytes()),
            }
        }
        let path = String::from_utf8_lossy(&path);
        let path = path.split('?').next().unwrap_or_default();
        let route = self.routes.find(path);
        let mut by_route = self.by_route.lock();
        let h = &mut by_route[route];
        let us = (latency.as_micros() as u64).clamp(1, h.high());
        h.saturating_record(us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Experiment;

    fn traffic(text: &str) -> Traffic {
        let full = format!(
            "[baseline]\ncommand = [\"a\", \"{{port}}\"]\n[candidate]\ncommand = [\"b\", \"{{port}}\"]\n{text}"
        );
        Experiment::parse(&full, "t").unwrap().traffic
    }

    fn workload(text: &str) -> TemplateWorkload {
        TemplateWorkload::new("t", &traffic(text), Path::new("."), &["/v1/orders/{id}"]).unwrap()
    }

    #[test]
    fn values_fill_path_headers_and_body_and_repeat_within_a_request() {
        let w = workload(
            r#"
            [traffic.values]
            id = { kind = "int", min = 5, max = 5 }
            trace = { kind = "uuid" }
            [[traffic.requests]]
            method = "POST"
            path = "/v1/orders/{{id}}"
            headers = { x-trace = "{{trace}}" }
            body = '{"id": {{id}}, "trace": "{{trace}}"}'
            "#,
        );
        let r = w.request(7);
        assert_eq!(r.path, "/v1/orders/5");
        let trace = &r.headers[0].1;
        assert_eq!(trace.len(), 36);
        assert_eq!(&trace[14..15], "4", "a version 4 UUID: {trace}");
        let body = String::from_utf8(r.body.unwrap().to_vec()).unwrap();
        assert_eq!(body, format!(r#"{{"id": 5, "trace": "{trace}"}}"#));
        // The same slot draws the same values; another slot others.
        assert_eq!(w.request(7).headers, r.headers);
        assert_ne!(w.request(8).headers, r.headers);
    }

    #[test]
    fn templates_are_picked_by_weight() {
        let w = workload(
            r#"
            [[traffic.requests]]
            path = "/a"
            weight = 9
            [[traffic.requests]]
            path = "/b"
            "#,
        );
        let a = (0..10_000).filter(|n| w.request(*n).path == "/a").count();
        assert!((8_700..9_300).contains(&a), "{a} of 10000");
    }

    #[test]
    fn generators_stay_in_their_ranges() {
        let w = workload(
            r#"
            [traffic.values]
            k = { kind = "zipf", n = 10 }
            s = { kind = "sequence", start = 100 }
            b = { kind = "bytes", size = 4 }
            c = { kind = "choice", values = ["x", "y"] }
            t = { kind = "now", format = "unix" }
            [[traffic.requests]]
            path = "/{{k}}/{{s}}/{{b}}/{{c}}/{{t}}"
            "#,
        );
        let mut zero = 0;
        for n in 0..2_000 {
            let path = w.request(n).path;
            let parts: Vec<&str> = path.split('/').collect();
            let k: u64 = parts[1].parse().unwrap();
            assert!(k < 10);
            zero += usize::from(k == 0);
            assert_eq!(parts[2], (100 + n).to_string());
            assert_eq!(parts[3].len(), 8);
            assert!(["x", "y"].contains(&parts[4]));
            assert!(parts[5].parse::<u64>().unwrap() > 1_700_000_000);
        }
        assert!(zero > 500, "key 0 is the hottest: {zero} of 2000");
    }

    #[test]
    fn an_unknown_value_is_named_with_the_defined_ones() {
        let e = validate(
            &traffic("[traffic.values]\nid = { kind = \"uuid\" }\n[[traffic.requests]]\npath = \"/{{idd}}\""),
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(e.field, "traffic.requests[0].path");
        assert!(
            e.reason.contains("{{idd}}") && e.reason.contains("defined: id"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn bad_generators_and_templates_are_named() {
        let check = |text: &str| validate(&traffic(text), Path::new(".")).unwrap_err();
        let e = check("[traffic.values]\nx = { kind = \"int\", min = 5, max = 1 }\n[[traffic.requests]]\npath = \"/\"");
        assert_eq!(e.field, "traffic.values.x.max");
        let e = check("[[traffic.requests]]\npath = \"/\"\nbody = \"a\"\nbody_file = \"b\"");
        assert_eq!(e.field, "traffic.requests[0]");
        let e = check("[[traffic.requests]]\npath = \"/\"\nbody_file = \"no/such/file\"");
        assert_eq!(e.field, "traffic.requests[0].body_file");
        let e = check("[[traffic.requests]]\npath = \"v1\"");
        assert_eq!(e.field, "traffic.requests[0].path");
        let e = check("[[traffic.requests]]\npath = \"/\"\nmethod = \"get\"");
        assert_eq!(e.field, "traffic.requests[0].method");
        let e = check("");
        assert_eq!(e.field, "traffic.requests");
    }

    #[test]
    fn an_unknown_generator_kind_lists_the_kinds() {
        let text = "[baseline]\ncommand = [\"a\", \"{port}\"]\n[candidate]\ncommand = [\"b\", \"{port}\"]\n[traffic.values]\nx = { kind = \"float\" }\n[[traffic.requests]]\npath = \"/\"";
        let e = Experiment::parse(text, "t").unwrap_err().to_string();
        assert!(e.contains("float") && e.contains("zipf"), "{e}");
    }

    #[test]
    fn judge_uses_ok_status_else_2xx_and_3xx() {
        let w = workload("[[traffic.requests]]\npath = \"/a\"\nok_status = [404]");
        assert_eq!(w.judge(0, 404, b""), Verdict::Ok);
        assert_eq!(w.judge(0, 200, b""), Verdict::Error);
        let w = workload("[[traffic.requests]]\npath = \"/a\"");
        assert_eq!(w.judge(0, 302, b""), Verdict::Ok);
        assert_eq!(w.judge(0, 500, b""), Verdict::Error);
    }

    #[test]
    fn measured_latency_is_kept_per_route() {
        let w = workload(
            "[traffic.values]\nid = { kind = \"int\", min = 1, max = 9 }\n[[traffic.requests]]\npath = \"/v1/orders/{{id}}?x=1\"\nweight = 1\n[[traffic.requests]]\npath = \"/health\"",
        );
        for n in 0..100 {
            w.observe(n, Duration::from_millis(2), true, true);
            w.observe(n, Duration::from_millis(50), true, false);
        }
        let routes = w.take_route_latency();
        let labels: Vec<&str> = routes.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["/v1/orders/{id}", "other"]);
        assert_eq!(routes.iter().map(|(_, h)| h.len()).sum::<u64>(), 100);
        assert!(routes[0].1.max() < 3_000, "warm-up slots are left out");
        assert!(w.take_route_latency().is_empty(), "taken");
    }
}

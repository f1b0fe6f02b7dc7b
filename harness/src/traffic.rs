//! `[traffic]`: weighted request templates whose paths, headers and bodies
//! draw values from named generators, as an open-model [`Workload`].
//!
//! Everything a slot sends is a function of the seed and the slot number:
//! which template (by weight), and every value it draws. So the same slots
//! send the same requests to both backends in direct mode, and a run can be
//! repeated request for request. A value used twice in one request (`{{id}}`
//! in the path and the body) is the same value. Only `now` reads the clock.
//!
//! Two constructs make bulk bodies (an ingest batch of 500 events) a
//! template rather than code:
//! - `{{repeat N}} … {{end}}` writes its content N times, the copies
//!   separated by a comma (as a JSON array wants); inside it `{{i}}` is the
//!   copy's index (0-based) and every value is drawn per copy.
//! - `protobuf = { message = "pkg.Msg" }` on a template encodes the rendered
//!   body, read as proto3 JSON, as that protobuf message (from the
//!   project's own `.proto` files or a `descriptor_set` of yours), so a
//!   protobuf API is loaded from a readable template.
//!
//! # Adding a traffic source
//! A source kind is a table of [`Traffic`] (`requests`, `websocket`, …) and
//! a module that turns it into a [`Workload`] for the runner: request
//! templates are this module. A new
//! kind (a capture, gRPC calls) adds one optional field to [`Traffic`], its
//! checks to [`validate`] (errors naming `traffic.<kind>.<field>`), and its
//! module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use goose::prelude::GooseMethod;
use hdrhistogram::Histogram;
use parallax_loadgen::open::{Request, Verdict, Workload};
use parallax_proxy::route::RouteTable;
use parking_lot::Mutex;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
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
    /// Send the body as this protobuf message: the rendered body is read as
    /// proto3 JSON and encoded. Default: none (the body is sent as written).
    #[serde(default)]
    pub protobuf: Option<ProtobufBody>,
}

/// `protobuf = { message = "parallax.ingest.v1.EventBatch" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtobufBody {
    /// The fully qualified message name. Required.
    pub message: String,
    /// A binary `FileDescriptorSet` holding it (`protoc --include_imports
    /// --descriptor_set_out=x.pb`, `buf build -o x.pb`), relative to the
    /// experiment file. Default: this project's own `.proto` files
    /// (`parallax.ingest.v1.*`).
    #[serde(default)]
    pub descriptor_set: Option<PathBuf>,
}

impl ProtobufBody {
    /// The message's descriptor; errors name `field`.
    fn descriptor(&self, dir: &Path, field: &str) -> Result<MessageDescriptor, Invalid> {
        let pool = match &self.descriptor_set {
            None => parallax_compare::protobuf::project().clone(),
            Some(p) => parallax_compare::protobuf::load(&dir.join(p).display().to_string())
                .map_err(|e| invalid(format_args!("{field}.descriptor_set"), e))?,
        };
        pool.get_message_by_name(&self.message).ok_or_else(|| {
            let known: Vec<String> = pool
                .all_messages()
                .map(|m| m.full_name().to_owned())
                .filter(|m| !m.starts_with("google."))
                .take(12)
                .collect();
            invalid(
                format_args!("{field}.message"),
                format_args!(
                    "{:?} is not a message of the descriptor set; give its fully qualified name (known: {})",
                    self.message,
                    known.join(", ")
                ),
            )
        })
    }
}

/// `[traffic.websocket]`: sessions every backend holds while the request
/// templates make it publish. Each publish request is a broadcast: it is
/// expected to reach every session once, as a text frame carrying
/// `"published_at_unix_us": <Unix µs>` (from `{{now}}` with
/// `format = "unix_us"` in the publish body), which times its delivery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketTraffic {
    /// Path and query of the upgrade request, e.g.
    /// `"/v1/subscribe?topics=news"`. Required.
    pub path: String,
    /// Headers of the upgrade request. Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Text messages each session sends right after connecting (e.g. a
    /// subscribe command). Default: none.
    #[serde(default)]
    pub messages: Vec<String>,
    /// Sessions per backend, measured alone. Default `100`.
    #[serde(default = "hundred")]
    pub clients: usize,
    /// Sessions through the proxy in shadow mode, where every frame of the
    /// candidate is compared with the baseline's (each costs the proxy
    /// three descriptors of its 20,000). Default: `clients`, at most 1000.
    #[serde(default)]
    pub shadow_clients: Option<usize>,
    /// How the proxy pairs the baseline's and the candidate's frames (its
    /// `ws_match`): a JSON pointer whose value identifies a frame, or
    /// `"sequence"` for pairing by position. Default `"/id"`.
    #[serde(default = "id_pointer", rename = "match")]
    pub match_by: String,
    /// Sessions per worker process (one process may hold 20,000
    /// descriptors). Default `10000`.
    #[serde(default = "ten_thousand")]
    pub per_worker: usize,
    /// Source addresses 127.0.0.2 … 127.0.0.(1+N), round-robin (one
    /// reaches a port from ~28K ephemeral ports). Default `4`.
    #[serde(default = "four")]
    pub sources: u8,
}

fn hundred() -> usize {
    100
}

fn ten_thousand() -> usize {
    10_000
}

fn four() -> u8 {
    4
}

fn id_pointer() -> String {
    "/id".into()
}

impl WebSocketTraffic {
    /// Sessions through the proxy.
    pub fn shadow_clients(&self) -> usize {
        self.shadow_clients.unwrap_or(self.clients.min(1000))
    }

    fn validate(&self) -> Result<(), Invalid> {
        let f = "traffic.websocket";
        if !self.path.starts_with('/') {
            return Err(invalid(
                format_args!("{f}.path"),
                format_args!(
                    "{:?} does not start with / (e.g. \"/v1/subscribe?topics=news\")",
                    self.path
                ),
            ));
        }
        if self.path.contains("{{") {
            return Err(invalid(
                format_args!("{f}.path"),
                "takes no {{values}}: every session connects to the same path",
            ));
        }
        for (h, v) in &self.headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err()
                || http::HeaderValue::from_str(v).is_err()
            {
                return Err(invalid(
                    format_args!("{f}.headers.{h}"),
                    "is not a valid header name and value",
                ));
            }
        }
        if self.clients == 0 {
            return Err(invalid(
                format_args!("{f}.clients"),
                "0 sessions would receive nothing; e.g. 100",
            ));
        }
        if self.shadow_clients == Some(0) {
            return Err(invalid(
                format_args!("{f}.shadow_clients"),
                "0 sessions would compare nothing; e.g. 100",
            ));
        }
        if self.per_worker == 0 || self.per_worker > 19_000 {
            return Err(invalid(
                format_args!("{f}.per_worker"),
                format_args!(
                    "{} is not within 1-19000 (a process holds at most 20,000 descriptors)",
                    self.per_worker
                ),
            ));
        }
        if self.sources == 0 || self.sources > 200 {
            return Err(invalid(
                format_args!("{f}.sources"),
                format_args!("{} is not within 1-200", self.sources),
            ));
        }
        let pointer = self.match_by.starts_with('/') && !self.match_by.contains('*');
        if !pointer && self.match_by != "sequence" {
            return Err(invalid(
                format_args!("{f}.match"),
                format_args!(
                    "{:?} is neither \"sequence\" nor a JSON pointer without globs (e.g. \"/id\")",
                    self.match_by
                ),
            ));
        }
        Ok(())
    }
}

/// Encodes proto3 JSON as `descriptor`'s message.
fn encode_protobuf(descriptor: &MessageDescriptor, json: &[u8]) -> Result<Vec<u8>, String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize(descriptor.clone(), &mut de).map_err(|e| {
        format!(
            "the rendered body is not proto3 JSON of {}: {e}",
            descriptor.full_name()
        )
    })?;
    de.end()
        .map_err(|e| format!("trailing text after the JSON body: {e}"))?;
    Ok(message.encode_to_vec())
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
    if let Some(ws) = &traffic.websocket {
        ws.validate()?;
    }
    if let Some(capture) = &traffic.capture {
        if !traffic.requests.is_empty() {
            return Err(invalid(
                "traffic.capture",
                "a capture replaces the request templates; remove [[traffic.requests]] or this table",
            ));
        }
        return capture.check(dir).map(|_| ());
    }
    for (name, spec) in &traffic.values {
        let field = format!("traffic.values.{name}");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid(
                &field,
                "a value's name may hold only A-Z a-z 0-9 _ (it is used as {{name}})",
            ));
        }
        if RESERVED.contains(&name.as_str()) {
            return Err(invalid(
                &field,
                format_args!(
                    "{name:?} is reserved ({{{{i}}}}, {{{{repeat N}}}} and {{{{end}}}} are template syntax); rename it"
                ),
            ));
        }
        spec.check(&field)?;
    }
    if let Some(grpc) = &traffic.grpc {
        return crate::grpc::validate(traffic, grpc, dir);
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
        for h in t.headers.keys() {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(
                    format_args!("{field}.headers"),
                    format_args!("{h:?} is not a valid header name"),
                ));
            }
        }
        let compiled = Compiled::new(t, &traffic.values, dir, &field)?;
        if let Some(descriptor) = &compiled.protobuf {
            // Two slots rendered and encoded now, so a body that is not
            // proto3 JSON of the message fails here, naming the template.
            let gens: Vec<Gen> = traffic.values.values().map(Gen::new).collect();
            for n in [0, 1] {
                let mut draw = Draw {
                    gens: &gens,
                    seed: traffic.seed.unwrap_or(1),
                    n,
                    outer: vec![None; gens.len()],
                };
                let mut json = Vec::new();
                draw.fill(compiled.body.as_deref().unwrap_or_default(), &mut json);
                encode_protobuf(descriptor, &json).map_err(|e| {
                    invalid(
                        format_args!("{field}.protobuf"),
                        format_args!(
                            "{e}; the body must be proto3 JSON (camelCase or proto field names, int64 as number or string, bytes as base64)"
                        ),
                    )
                })?;
            }
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

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(Vec<u8>),
    /// A value, by index in `[traffic.values]`.
    Value(usize),
    /// `{{i}}`: the index of the enclosing `{{repeat}}`'s copy.
    Index,
    /// `{{repeat N}} … {{end}}`.
    Repeat(u32, Vec<Piece>),
}

/// Names `{{…}}` reserves for itself (not usable as value names).
pub const RESERVED: [&str; 3] = ["i", "repeat", "end"];

/// The most copies one `{{repeat}}` may write.
pub const MAX_REPEAT: u32 = 100_000;

/// Splits `text` at `{{name}}` placeholders and `{{repeat N}} … {{end}}`
/// blocks; every name must be a value.
fn compile(
    text: &[u8],
    values: &BTreeMap<String, ValueSpec>,
    field: &str,
) -> Result<Vec<Piece>, Invalid> {
    let mut rest = text;
    let pieces = compile_until(&mut rest, values, field, false)?;
    Ok(pieces)
}

/// Compiles from `rest` up to its end, or (inside a repeat) up to the
/// matching `{{end}}`, which it consumes.
fn compile_until(
    rest: &mut &[u8],
    values: &BTreeMap<String, ValueSpec>,
    field: &str,
    in_repeat: bool,
) -> Result<Vec<Piece>, Invalid> {
    let mut pieces = Vec::new();
    while let Some(start) = find(rest, b"{{") {
        let after = &rest[start + 2..];
        let Some(end) = find(after, b"}}") else {
            break;
        };
        let token = String::from_utf8_lossy(&after[..end]).trim().to_owned();
        if start > 0 {
            pieces.push(Piece::Literal(rest[..start].to_vec()));
        }
        *rest = &after[end + 2..];
        if token == "end" {
            if in_repeat {
                return Ok(pieces);
            }
            return Err(invalid(field, "{{end}} without a {{repeat N}} before it"));
        }
        if token == "i" {
            if !in_repeat {
                return Err(invalid(
                    field,
                    "{{i}} is the copy's index inside {{repeat N}} … {{end}}; it has no value outside one",
                ));
            }
            pieces.push(Piece::Index);
            continue;
        }
        if let Some(count) = token.strip_prefix("repeat") {
            if in_repeat {
                return Err(invalid(
                    field,
                    "a {{repeat}} inside a {{repeat}}: nest no repeats (one level of copies)",
                ));
            }
            let count: u32 = match count.trim().parse() {
                Ok(n) if (1..=MAX_REPEAT).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        field,
                        format_args!(
                            "{{{{{token}}}}}: give the number of copies, 1-{MAX_REPEAT} (e.g. {{{{repeat 500}}}})"
                        ),
                    ))
                }
            };
            let body = compile_until(rest, values, field, true)?;
            pieces.push(Piece::Repeat(count, body));
            continue;
        }
        let index = values.keys().position(|k| *k == token).ok_or_else(|| {
            let known: Vec<&str> = values.keys().map(String::as_str).collect();
            invalid(
                field,
                format_args!(
                    "{{{{{token}}}}} names no value; define it under [traffic.values] (defined: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
        pieces.push(Piece::Value(index));
    }
    if in_repeat {
        return Err(invalid(field, "{{repeat N}} without its {{end}}"));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_vec()));
        *rest = &[];
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
    /// The protobuf message the body is encoded as.
    protobuf: Option<MessageDescriptor>,
    /// Whether a `content-type` header is given (else a protobuf body gets
    /// `application/x-protobuf`).
    has_content_type: bool,
}

impl Compiled {
    /// Compiles template `t` (already checked by [`validate`] up to its
    /// body); `field` names it in errors.
    fn new(
        t: &Template,
        values: &BTreeMap<String, ValueSpec>,
        dir: &Path,
        field: &str,
    ) -> Result<Self, Invalid> {
        let path = compile(t.path.as_bytes(), values, &format!("{field}.path"))?;
        let headers = t
            .headers
            .iter()
            .map(|(h, v)| {
                Ok((
                    h.clone(),
                    compile(v.as_bytes(), values, &format!("{field}.headers.{h}"))?,
                ))
            })
            .collect::<Result<Vec<_>, Invalid>>()?;
        let body = match (&t.body, &t.body_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(field, "has both `body` and `body_file`; keep one"))
            }
            (Some(b), None) => Some(compile(b.as_bytes(), values, &format!("{field}.body"))?),
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
                Some(compile(&bytes, values, &format!("{field}.body_file"))?)
            }
            (None, None) => None,
        };
        let protobuf = match &t.protobuf {
            None => None,
            Some(_) if body.is_none() => {
                return Err(invalid(
                    format_args!("{field}.protobuf"),
                    "there is no body to encode; give `body` or `body_file` as proto3 JSON",
                ))
            }
            Some(p) => Some(p.descriptor(dir, &format!("{field}.protobuf"))?),
        };
        Ok(Self {
            method: method(&t.method),
            path,
            headers,
            body,
            ok_status: t.ok_status.clone(),
            protobuf,
            has_content_type: t
                .headers
                .keys()
                .any(|h| h.eq_ignore_ascii_case("content-type")),
        })
    }
}

/// Draws values for one slot: each value at most once per request (or per
/// `{{repeat}}` copy), so a value used twice is the same value.
struct Draw<'a> {
    gens: &'a [Gen],
    seed: u64,
    n: u64,
    /// Drawn values of the request (outside any repeat).
    outer: Vec<Option<String>>,
}

impl Draw<'_> {
    fn value(
        &mut self,
        v: usize,
        copy: Option<u32>,
        inner: &mut [Option<String>],
        out: &mut Vec<u8>,
    ) {
        let (cache, salt) = match copy {
            None => (self.outer.as_mut_slice(), v as u64),
            Some(c) => (inner, v as u64 | ((u64::from(c) + 1) << 32)),
        };
        let (gens, seed, n) = (self.gens, self.seed, self.n);
        let value = cache[v].get_or_insert_with(|| gens[v].value(n, &mut slot_rng(seed, n, salt)));
        out.extend_from_slice(value.as_bytes());
    }

    fn fill(&mut self, pieces: &[Piece], out: &mut Vec<u8>) {
        self.fill_in(pieces, None, &mut [], out);
    }

    fn fill_in(
        &mut self,
        pieces: &[Piece],
        copy: Option<u32>,
        inner: &mut [Option<String>],
        out: &mut Vec<u8>,
    ) {
        for p in pieces {
            match p {
                Piece::Literal(l) => out.extend_from_slice(l),
                Piece::Value(v) => self.value(*v, copy, inner, out),
                Piece::Index => out.extend_from_slice(copy.unwrap_or(0).to_string().as_bytes()),
                Piece::Repeat(count, body) => {
                    let mut cache = vec![None; self.gens.len()];
                    for c in 0..*count {
                        if c > 0 {
                            out.push(b',');
                        }
                        cache.iter_mut().for_each(|v| *v = None);
                        self.fill_in(body, Some(c), &mut cache, out);
                    }
                }
            }
        }
    }
}

/// The generator of slot `n`'s draws; `salt` tells the draws apart.
fn slot_rng(seed: u64, n: u64, salt: u64) -> SmallRng {
    SmallRng::seed_from_u64(
        seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
    )
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
    /// Protobuf bodies that did not encode (see [`Self::render`]).
    bad_bodies: AtomicU64,
    /// `[traffic.capture]`: the requests come from it instead of the
    /// templates.
    capture: Option<crate::capture_source::CaptureWorkload>,
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
            templates.push(Compiled::new(t, &traffic.values, dir, &field)?);
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
            bad_bodies: AtomicU64::new(0),
            capture: traffic
                .capture
                .as_ref()
                .map(|c| crate::capture_source::CaptureWorkload::open(c, dir))
                .transpose()?,
        })
    }

    /// The template slot `n` sends.
    fn pick(&self, n: u64) -> usize {
        let total = *self.cumulative.last().expect("at least one template");
        let x = slot_rng(self.seed, n, u64::MAX).random::<f64>() * total;
        self.cumulative
            .iter()
            .position(|c| x < *c)
            .unwrap_or(self.cumulative.len() - 1)
    }

    fn draw(&self, n: u64) -> Draw<'_> {
        Draw {
            gens: &self.gens,
            seed: self.seed,
            n,
            outer: vec![None; self.gens.len()],
        }
    }

    /// The request slot `n` sends; a body that does not encode as its
    /// protobuf message is an `Err` naming why.
    pub fn try_render(&self, n: u64) -> Result<Rendered, String> {
        let i = self.pick(n);
        let t = &self.templates[i];
        let mut draw = self.draw(n);
        let text = |draw: &mut Draw, pieces: &[Piece]| {
            let mut out = Vec::new();
            draw.fill(pieces, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        };
        let path = text(&mut draw, &t.path);
        let headers = t
            .headers
            .iter()
            .map(|(h, p)| (h.clone(), text(&mut draw, p)))
            .collect();
        let body = match &t.body {
            None => None,
            Some(pieces) => {
                let mut out = Vec::new();
                draw.fill(pieces, &mut out);
                Some(match &t.protobuf {
                    Some(descriptor) => encode_protobuf(descriptor, &out)?,
                    None => out,
                })
            }
        };
        Ok(Rendered {
            template: i,
            path,
            headers,
            body,
        })
    }

    /// The request slot `n` sends. A protobuf body that does not encode
    /// (a value broke the JSON) is sent as its JSON text, which the
    /// service will reject; it is counted in [`Self::bad_bodies`].
    pub fn render(&self, n: u64) -> Rendered {
        match self.try_render(n) {
            Ok(r) => r,
            Err(e) => {
                if self.bad_bodies.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("slot {n}: {e} (sent as JSON text; later ones are only counted)");
                }
                let i = self.pick(n);
                let t = &self.templates[i];
                let mut draw = self.draw(n);
                let mut fill = |p: &[Piece]| {
                    let mut out = Vec::new();
                    draw.fill(p, &mut out);
                    out
                };
                let path = String::from_utf8_lossy(&fill(&t.path)).into_owned();
                let headers = t
                    .headers
                    .iter()
                    .map(|(h, p)| (h.clone(), String::from_utf8_lossy(&fill(p)).into_owned()))
                    .collect();
                let body = t.body.as_deref().map(fill);
                Rendered {
                    template: i,
                    path,
                    headers,
                    body,
                }
            }
        }
    }

    /// Requests whose protobuf body did not encode (sent as JSON text).
    pub fn bad_bodies(&self) -> u64 {
        self.bad_bodies.load(Ordering::Relaxed)
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
        if let Some(c) = &self.capture {
            return c.request(n);
        }
        let r = self.render(n);
        let t = &self.templates[r.template];
        Request {
            method: t.method,
            path: r.path,
            body: r.body.map(Bytes::from),
            content_type: (t.protobuf.is_some() && !t.has_content_type)
                .then_some("application/x-protobuf"),
            units: 1,
            headers: r.headers,
        }
    }

    fn judge(&self, n: u64, status: u16, _body: &[u8]) -> Verdict {
        if let Some(c) = &self.capture {
            return c.judge(n, status);
        }
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
        if let Some(c) = &self.capture {
            let route = self.routes.find(&c.path(n));
            let mut by_route = self.by_route.lock();
            let h = &mut by_route[route];
            h.saturating_record((latency.as_micros() as u64).clamp(1, h.high()));
            return;
        }
        let t = &self.templates[self.pick(n)];
        // Only the path decides the route; `now` values never sit in a
        // route-deciding segment in practice, and redrawing is cheap.
        let mut path = Vec::new();
        self.draw(n).fill(&t.path, &mut path);
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
    fn repeat_writes_copies_with_their_index_and_own_values() {
        let w = workload(
            r#"
            [traffic.values]
            batch = { kind = "sequence", start = 7 }
            k = { kind = "int", min = 0, max = 1000000 }
            [[traffic.requests]]
            method = "POST"
            path = "/b/{{batch}}"
            body = '[{{repeat 3}}{"id": "{{batch}}-{{i}}", "k": {{k}}, "again": {{k}}}{{end}}]'
            "#,
        );
        let body = w.request(2).body.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let items = v.as_array().unwrap();
        assert_eq!(items.len(), 3);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item["id"], format!("9-{i}"));
            assert_eq!(item["k"], item["again"], "one value per copy");
        }
        assert_ne!(items[0]["k"], items[1]["k"], "each copy draws its own");
        assert_eq!(
            w.request(2).body.unwrap(),
            body,
            "the same slot, the same copies"
        );
    }

    #[test]
    fn bad_repeats_are_named() {
        let check = |body: &str| {
            validate(
                &traffic(&format!(
                    "[traffic.values]\nx = {{ kind = \"uuid\" }}\n[[traffic.requests]]\npath = \"/\"\nbody = '{body}'"
                )),
                Path::new("."),
            )
            .unwrap_err()
        };
        for (body, says) in [
            ("[{{repeat 3}}{{x}}", "without its {{end}}"),
            ("{{x}}{{end}}", "without a {{repeat N}}"),
            ("{{i}}", "inside {{repeat N}}"),
            ("{{repeat 0}}{{end}}", "number of copies"),
            ("{{repeat 2}}{{repeat 2}}{{end}}{{end}}", "nest no repeats"),
        ] {
            let e = check(body);
            assert_eq!(e.field, "traffic.requests[0].body", "{body}");
            assert!(e.reason.contains(says), "{body}: {}", e.reason);
        }
        let e = validate(
            &traffic(
                "[traffic.values]\ni = { kind = \"uuid\" }\n[[traffic.requests]]\npath = \"/\"",
            ),
            Path::new("."),
        )
        .unwrap_err();
        assert_eq!(e.field, "traffic.values.i");
    }

    #[test]
    fn a_protobuf_body_is_encoded_from_its_json_template() {
        let w = workload(
            r#"
            [traffic.values]
            n = { kind = "sequence" }
            p = { kind = "bytes", size = 8, encoding = "base64" }
            [[traffic.requests]]
            method = "POST"
            path = "/v1/events"
            body = '{"events": [{{repeat 4}}{"eventId": "e{{n}}-{{i}}", "tenantId": "t", "occurredAtUnixMs": "{{n}}", "payload": "{{p}}", "attributes": {"a": "b"}}{{end}}]}'
            protobuf = { message = "parallax.ingest.v1.EventBatch" }
            "#,
        );
        let r = w.request(5);
        assert_eq!(r.content_type, Some("application/x-protobuf"));
        let batch = decode_batch(&r.body.unwrap());
        let events = batch["events"].as_array().unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[3]["eventId"], "e5-3");
        assert_eq!(events[0]["occurredAtUnixMs"], "5");
        assert_eq!(events[0]["payload"].as_str().unwrap().len(), 12, "8 bytes");
        assert_eq!(events[0]["attributes"]["a"], "b");
    }

    #[test]
    fn a_protobuf_body_that_does_not_fit_its_message_is_named() {
        let check = |extra: &str| {
            validate(
                &traffic(&format!(
                    "[[traffic.requests]]\nmethod = \"POST\"\npath = \"/\"\nbody = '{{\"events\": [{{\"nosuch\": 1}}]}}'\n{extra}"
                )),
                Path::new("."),
            )
            .unwrap_err()
        };
        let e = check("protobuf = { message = \"parallax.ingest.v1.EventBatch\" }");
        assert_eq!(e.field, "traffic.requests[0].protobuf");
        assert!(e.reason.contains("nosuch"), "{}", e.reason);
        let e = check("protobuf = { message = \"EventBatch\" }");
        assert_eq!(e.field, "traffic.requests[0].protobuf.message");
        assert!(
            e.reason.contains("parallax.ingest.v1.EventBatch"),
            "{}",
            e.reason
        );
        let e = check("protobuf = { message = \"a.B\", descriptor_set = \"no/such.pb\" }");
        assert_eq!(e.field, "traffic.requests[0].protobuf.descriptor_set");
    }

    /// An encoded `EventBatch` as proto3 JSON (decoded by reflection).
    fn decode_batch(bytes: &[u8]) -> serde_json::Value {
        parallax_compare::protobuf::to_json("parallax.ingest.v1.EventBatch", bytes)
            .expect("an EventBatch")
    }

    #[test]
    fn the_built_in_ingest_file_sends_batches_of_500_unique_events() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/ingest.toml");
        let x = Experiment::load(&path).unwrap();
        let w = TemplateWorkload::new("ingest", &x.traffic, &x.dir(), &[]).unwrap();
        let mut ids = std::collections::HashSet::new();
        for n in [0, 1, crate::runner::WARMUP_FIRST_SLOT] {
            let body = w.request(n).body.unwrap();
            let batch = decode_batch(&body);
            let events = batch["events"].as_array().unwrap();
            assert_eq!(events.len(), 500);
            for e in events {
                assert!(
                    e["tenantId"].as_str().unwrap().starts_with("tenant-"),
                    "{e}"
                );
                assert!(ids.insert(e["eventId"].to_string()), "event ids are unique");
            }
        }
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

//! The capture format, version 1: what a record is and how it is laid out
//! in bytes (`docs/capture-format.md` is the reference; change both
//! together).
//!
//! A capture file is a plain zstd stream (one or more concatenated frames,
//! each with its content checksum): `zstd -dc capture.plxcap` prints the
//! decompressed bytes. Those bytes are an 8-byte preamble, [`MAGIC`] then
//! the version byte, followed by records, each a little-endian `u32`
//! length and that many bytes: a kind byte and the kind's fields. The first
//! record is always a [`Meta`]. A reader skips kinds it does not know (new
//! kinds may appear within version 1); a change to an existing kind's
//! layout is a new version.
//!
//! Integers are little-endian. Strings are UTF-8 with a length prefix
//! (`str16`: `u16` length, `str32`: `u32` length); byte strings likewise
//! (`bytes32`).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The first seven decompressed bytes of every capture.
pub const MAGIC: &[u8; 7] = b"PLXCAP\0";
/// The version written here (the eighth byte). Version 2 added the
/// HTTP/1 request record (kind 4); readers read versions 1 and 2.
pub const VERSION: u8 = 2;
/// The oldest version this build reads.
pub const OLDEST_VERSION: u8 = 1;
/// The largest record a reader accepts; a length beyond it is corruption.
pub const MAX_RECORD_BYTES: u32 = 256 << 20;
/// The file name extension used for captures.
pub const EXTENSION: &str = "plxcap";

const KIND_META: u8 = 0;
const KIND_REQUEST: u8 = 1;
const KIND_WS: u8 = 2;
const KIND_GAP: u8 = 3;
const KIND_HTTP1_REQUEST: u8 = 4;

const HAS_CONN: u8 = 1;
const HAS_STATUS: u8 = 2;
const HAS_LATENCY: u8 = 4;
const BODY_TRUNCATED: u8 = 8;
const FROM_CLIENT: u8 = 2;

/// What a capture is: the first record of every file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Always `parallax.capture`.
    pub format: String,
    /// Wall-clock time of the capture's start (time 0 of every record's
    /// `at_us`), µs since the Unix epoch. Every segment of one capture
    /// carries the same value.
    pub started_at_unix_us: u64,
    /// The segment's number within its capture, from 0 (rotation).
    pub segment: u32,
    /// Where the records came from: `proxy`, `gor` or `har`.
    pub source: String,
    /// The proxied service's name, when recorded by the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The redaction rules applied before writing (`header:authorization`,
    /// `/user/email`, ...), so a reader knows which values are placeholders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
}

impl Meta {
    pub fn new(source: &str, started_at_unix_us: u64) -> Self {
        Self {
            format: "parallax.capture".into(),
            started_at_unix_us,
            segment: 0,
            source: source.into(),
            service: None,
            redacted: Vec::new(),
        }
    }
}

/// One HTTP request as the client sent it (hop-by-hop headers removed),
/// with the primary's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Arrival time, µs since the capture began.
    pub at_us: u64,
    /// The client connection it came on; requests of one connection replay
    /// on one connection, in order. `None` when unknown (HAR, GoReplay).
    pub conn: Option<u64>,
    pub method: String,
    /// Origin-form target: path and query.
    pub target: String,
    /// In arrival order; names as received (lower case from the proxy).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The body was longer than the recorder kept: `body` is its prefix.
    pub body_truncated: bool,
    /// The primary's status; `None` when it did not answer or is unknown.
    pub status: Option<u16>,
    /// The primary's time to its answer's head, µs.
    pub latency_us: Option<u64>,
}

impl Request {
    /// The target's path (without the query).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One WebSocket message of a recorded connection (its handshake is a
/// [`Request`] on the same `conn` with status 101).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsMessage {
    pub at_us: u64,
    pub conn: Option<u64>,
    /// Client → server (`true`) or server → client.
    pub from_client: bool,
    /// RFC 6455 opcode: 1 text, 2 binary, 8 close, 9 ping, 10 pong.
    pub opcode: u8,
    pub payload: Bytes,
}

/// One record of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Meta(Meta),
    Request(Request),
    Ws(WsMessage),
    /// The recorder dropped this many records just before `at_us` (queue
    /// full, disk full): the capture has a hole here.
    Gap {
        at_us: u64,
        dropped: u64,
    },
}

impl Record {
    /// The record's time, µs since the capture began (0 for `Meta`).
    pub fn at_us(&self) -> u64 {
        match self {
            Record::Meta(_) => 0,
            Record::Request(r) => r.at_us,
            Record::Ws(m) => m.at_us,
            Record::Gap { at_us, .. } => *at_us,
        }
    }

    fn shift(&mut self, by_us: u64) {
        match self {
            Record::Meta(_) => {}
            Record::Request(r) => r.at_us += by_us,
            Record::Ws(m) => m.at_us += by_us,
            Record::Gap { at_us, .. } => *at_us += by_us,
        }
    }
}

/// Moves a record later by `by_us` (segments of one capture share a time
/// base; captures read one after another do not).
pub(crate) fn shift(record: &mut Record, by_us: u64) {
    record.shift(by_us);
}

/// The 8-byte preamble.
pub fn preamble() -> [u8; 8] {
    let mut p = [0u8; 8];
    p[..7].copy_from_slice(MAGIC);
    p[7] = VERSION;
    p
}

/// Appends `record`, length prefix included, to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match record {
        Record::Meta(meta) => {
            out.push(KIND_META);
            let json = serde_json::to_vec(meta).expect("Meta serialises");
            out.extend_from_slice(&json);
        }
        Record::Request(r) => {
            out.push(KIND_REQUEST);
            out.extend_from_slice(&r.at_us.to_le_bytes());
            let mut flags = 0;
            if r.conn.is_some() {
                flags |= HAS_CONN;
            }
            if r.status.is_some() {
                flags |= HAS_STATUS;
            }
            if r.latency_us.is_some() {
                flags |= HAS_LATENCY;
            }
            if r.body_truncated {
                flags |= BODY_TRUNCATED;
            }
            out.push(flags);
            out.extend_from_slice(&r.conn.unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&r.status.unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&r.latency_us.unwrap_or(0).to_le_bytes());
            put_str16(out, &r.method);
            put_bytes32(out, r.target.as_bytes());
            let n = r.headers.len().min(u16::MAX as usize);
            out.extend_from_slice(&(n as u16).to_le_bytes());
            for (name, value) in &r.headers[..n] {
                put_str16(out, name);
                put_bytes32(out, value.as_bytes());
            }
            put_bytes32(out, &r.body);
        }
        Record::Ws(m) => {
            out.push(KIND_WS);
            out.extend_from_slice(&m.at_us.to_le_bytes());
            let mut flags = 0;
            if m.conn.is_some() {
                flags |= HAS_CONN;
            }
            if m.from_client {
                flags |= FROM_CLIENT;
            }
            out.push(flags);
            out.extend_from_slice(&m.conn.unwrap_or(0).to_le_bytes());
            out.push(m.opcode);
            put_bytes32(out, &m.payload);
        }
        Record::Gap { at_us, dropped } => {
            out.push(KIND_GAP);
            out.extend_from_slice(&at_us.to_le_bytes());
            out.extend_from_slice(&dropped.to_le_bytes());
        }
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Offsets within an encoded request record (length prefix included) of
/// the fields [`finish_request`] and [`set_request_at_us`] fill in.
const REQ_AT_US_AT: usize = 4 + 1;
const REQ_FLAGS_AT: usize = REQ_AT_US_AT + 8;
const REQ_STATUS_AT: usize = REQ_FLAGS_AT + 1 + 8;
const REQ_LATENCY_AT: usize = REQ_STATUS_AT + 2;

/// Encodes a request record's head — everything before its answer and
/// body — into `out` (cleared first), for a recorder that learns the body
/// and the primary's answer later: [`finish_request`] appends the record,
/// complete, to the capture's buffer. The two steps give the same bytes as
/// [`encode`] of the whole [`Request`]. Header values that are not UTF-8
/// are stored lossily (U+FFFD), as a reader expects UTF-8.
pub fn encode_request_head<'a>(
    out: &mut Vec<u8>,
    at_us: u64,
    conn: Option<u64>,
    method: &str,
    target: &str,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) {
    let mut head = HeadWriter::new(out, at_us, conn, method, |out| {
        out.extend_from_slice(target.as_bytes())
    });
    for (name, value) in headers {
        if !head.header(name.as_bytes(), value) {
            break;
        }
    }
    head.finish();
}

/// [`encode_request_head`] field by field, for a recorder that has the
/// request's bytes rather than its parts (the proxy's raw HTTP/1.1 path):
/// the target is written by a closure (a redactor can write it straight
/// into the record), header names are lower-cased as they are copied, and
/// nothing is allocated once `out` has room. The same bytes as
/// [`encode_request_head`] for the same fields.
pub struct HeadWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Where the record (its length prefix) starts in `out`.
    start: usize,
    /// Where the header count goes.
    count_at: usize,
    n: u16,
}

impl<'a> HeadWriter<'a> {
    /// Starts a head in `out` (cleared first); `target` appends the
    /// target's bytes (path and query, UTF-8) to the buffer it is given.
    pub fn new(
        out: &'a mut Vec<u8>,
        at_us: u64,
        conn: Option<u64>,
        method: &str,
        target: impl FnOnce(&mut Vec<u8>),
    ) -> Self {
        out.clear();
        Self::append(out, at_us, conn, method, target)
    }

    /// [`HeadWriter::new`] after what `out` holds already: the record is
    /// encoded straight into a buffer of records (the recorder's queue), to
    /// be completed there by [`HeadWriter::finish_request`].
    pub fn append(
        out: &'a mut Vec<u8>,
        at_us: u64,
        conn: Option<u64>,
        method: &str,
        target: impl FnOnce(&mut Vec<u8>),
    ) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.push(KIND_REQUEST);
        out.extend_from_slice(&at_us.to_le_bytes());
        out.push(if conn.is_some() { HAS_CONN } else { 0 });
        out.extend_from_slice(&conn.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&[0; 2 + 8]);
        put_str16(out, method);
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        target(out);
        let len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        let count_at = out.len();
        out.extend_from_slice(&[0; 2]);
        Self {
            out,
            start,
            count_at,
            n: 0,
        }
    }

    /// Appends a header, its name in ASCII lower case (what a `HeaderMap`
    /// holds; an HTTP name is ASCII, anything else is stored lossily), its
    /// value likewise when it is not UTF-8. `false` when the record holds
    /// as many headers as it can (65535): this one was left out.
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> bool {
        if self.n == u16::MAX {
            return false;
        }
        let out = &mut *self.out;
        out.reserve(2 + name.len() + 4 + value.len());
        let at = out.len();
        put_bytes16(out, name);
        // Copied, then lower-cased and checked in one pass, a word at a
        // time (per byte this was most of a recorded header's cost).
        if !lowercase_ascii(&mut out[at + 2..]) {
            out.truncate(at);
            put_str16(out, &String::from_utf8_lossy(name));
            out[at + 2..].make_ascii_lowercase();
        }
        if value.is_ascii() {
            put_bytes32(out, value);
        } else {
            match std::str::from_utf8(value) {
                Ok(_) => put_bytes32(out, value),
                Err(_) => put_bytes32(out, String::from_utf8_lossy(value).as_bytes()),
            }
        }
        self.n += 1;
        true
    }

    /// Writes the header count: the head is complete.
    pub fn finish(self) {
        self.out[self.count_at..self.count_at + 2].copy_from_slice(&self.n.to_le_bytes());
    }

    /// Completes the record in place with the primary's answer and the
    /// body: the same bytes as [`HeadWriter::finish`] then
    /// [`finish_request`], without copying the head a second time (the
    /// proxy's raw path encodes each record once, straight into its queue).
    pub fn finish_request(
        self,
        status: Option<u16>,
        latency_us: Option<u64>,
        body: &[u8],
        body_truncated: bool,
    ) {
        let Self {
            out,
            start,
            count_at,
            n,
        } = self;
        out[count_at..count_at + 2].copy_from_slice(&n.to_le_bytes());
        let mut flags = out[start + REQ_FLAGS_AT];
        if let Some(s) = status {
            flags |= HAS_STATUS;
            out[start + REQ_STATUS_AT..start + REQ_STATUS_AT + 2].copy_from_slice(&s.to_le_bytes());
        }
        if let Some(l) = latency_us {
            flags |= HAS_LATENCY;
            out[start + REQ_LATENCY_AT..start + REQ_LATENCY_AT + 8]
                .copy_from_slice(&l.to_le_bytes());
        }
        if body_truncated {
            flags |= BODY_TRUNCATED;
        }
        out[start + REQ_FLAGS_AT] = flags;
        put_bytes32(out, body);
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// ASCII lower case in place (bytes `A`-`Z` only, as
/// `make_ascii_lowercase`), eight bytes at a time; `false` when `b` is not
/// all ASCII.
fn lowercase_ascii(b: &mut [u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    // Per byte: the high bit of `h + (0x80 - x)` is set when `h >= x`
    // (no byte carries into the next: `h` is at most 0x7f), so the two
    // sums differ in it exactly for `A..=Z`; 0x20 turns those lower case.
    let lower = |w: u64| {
        let h = w & !HIGH;
        let upper = ((h + ONES * (0x80 - u64::from(b'A'))) ^ (h + ONES * (0x7f - u64::from(b'Z'))))
            & !w
            & HIGH;
        w | (upper >> 2)
    };
    let n = b.len();
    if n < 8 {
        // One word, zero-padded (zeros are ASCII and stay zeros).
        let mut word = [0u8; 8];
        word[..n].copy_from_slice(b);
        let w = u64::from_le_bytes(word);
        b.copy_from_slice(&lower(w).to_le_bytes()[..n]);
        return w & HIGH == 0;
    }
    let mut seen = 0u64;
    let mut words = b.chunks_exact_mut(8);
    for word in &mut words {
        let w = u64::from_le_bytes((&*word).try_into().expect("8 bytes"));
        seen |= w;
        word.copy_from_slice(&lower(w).to_le_bytes());
    }
    if !n.is_multiple_of(8) {
        // The last eight bytes again (lower-casing twice changes nothing).
        let tail = &mut b[n - 8..];
        let w = u64::from_le_bytes((&*tail).try_into().expect("8 bytes"));
        seen |= w;
        tail.copy_from_slice(&lower(w).to_le_bytes());
    }
    seen & HIGH == 0
}

/// Sets the arrival time of the request record whose head
/// [`encode_request_head`] or [`HeadWriter`] wrote into `head` (for a
/// recorder that stamps it when the request leaves for the primary).
pub fn set_request_at_us(head: &mut [u8], at_us: u64) {
    head[REQ_AT_US_AT..REQ_AT_US_AT + 8].copy_from_slice(&at_us.to_le_bytes());
}

/// Appends to `out` the request record whose head [`encode_request_head`]
/// wrote, with the primary's answer and the body (`chunks`, concatenated).
pub fn finish_request<B: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    head: &[u8],
    status: Option<u16>,
    latency_us: Option<u64>,
    chunks: &[B],
    body_truncated: bool,
) {
    let start = out.len();
    out.extend_from_slice(head);
    let mut flags = head[REQ_FLAGS_AT];
    if let Some(s) = status {
        flags |= HAS_STATUS;
        out[start + REQ_STATUS_AT..start + REQ_STATUS_AT + 2].copy_from_slice(&s.to_le_bytes());
    }
    if let Some(l) = latency_us {
        flags |= HAS_LATENCY;
        out[start + REQ_LATENCY_AT..start + REQ_LATENCY_AT + 8].copy_from_slice(&l.to_le_bytes());
    }
    if body_truncated {
        flags |= BODY_TRUNCATED;
    }
    out[start + REQ_FLAGS_AT] = flags;
    let len: usize = chunks.iter().map(|c| c.as_ref().len()).sum();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    for c in chunks {
        out.extend_from_slice(c.as_ref());
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends an HTTP/1 request record (kind 4) to `out`: the method, the
/// target (written by `target`), then the request's header lines as the
/// client sent them, written by `lines` (each line with its line end,
/// then the empty line; a recorder leaves hop-by-hop headers out and
/// redacts secrets as it copies), then the body. Readers decode it into
/// the same [`Request`] as a kind-1 record of the same request
/// ([`decode`]): the proxy's raw HTTP/1.1 path copies the header lines in
/// runs instead of encoding them field by field, which was most of what
/// recording cost its client path (`docs/benchmarks.md`, "Recording
/// overhead, seventh round").
#[allow(clippy::too_many_arguments)]
pub fn append_http1_request(
    out: &mut Vec<u8>,
    at_us: u64,
    conn: Option<u64>,
    method: &str,
    target: impl FnOnce(&mut Vec<u8>),
    status: Option<u16>,
    latency_us: Option<u64>,
    lines: impl FnOnce(&mut Vec<u8>),
    body: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(KIND_HTTP1_REQUEST);
    out.extend_from_slice(&at_us.to_le_bytes());
    let mut flags = 0;
    if conn.is_some() {
        flags |= HAS_CONN;
    }
    if status.is_some() {
        flags |= HAS_STATUS;
    }
    if latency_us.is_some() {
        flags |= HAS_LATENCY;
    }
    out.push(flags);
    out.extend_from_slice(&conn.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&status.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&latency_us.unwrap_or(0).to_le_bytes());
    put_str16(out, method);
    put_written32(out, target);
    put_written32(out, lines);
    put_bytes32(out, body);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// The most header lines an HTTP/1 request record may hold (the proxy
/// takes at most 100 on its raw path); more is corruption. Bounds the
/// reader's work on a hostile capture.
const MAX_HTTP1_LINES: usize = 256;

/// The headers of an HTTP/1 request record's lines, as a kind-1 record
/// holds them: names in lower case, the values of one name together in
/// the order names first appear (as a `HeaderMap` lists them), values
/// that are not UTF-8 lossily.
fn parse_http1_lines(lines: &[u8]) -> Result<Vec<(String, String)>, Malformed> {
    let n = lines.iter().filter(|&&b| b == b'\n').count();
    if n > MAX_HTTP1_LINES + 1 {
        return Err(Malformed(
            "an HTTP/1 request record has too many header lines",
        ));
    }
    let mut slots = vec![httparse::EMPTY_HEADER; n];
    let parsed = match httparse::parse_headers(lines, &mut slots) {
        Ok(httparse::Status::Complete((len, parsed))) if len == lines.len() => parsed,
        _ => {
            return Err(Malformed(
                "an HTTP/1 request record's header lines do not parse",
            ))
        }
    };
    let mut headers = Vec::with_capacity(parsed.len());
    for (i, h) in parsed.iter().enumerate() {
        if parsed[..i]
            .iter()
            .any(|e| e.name.eq_ignore_ascii_case(h.name))
        {
            continue;
        }
        let name = h.name.to_ascii_lowercase();
        for same in parsed[i..]
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(h.name))
        {
            headers.push((
                name.clone(),
                String::from_utf8_lossy(same.value).into_owned(),
            ));
        }
    }
    Ok(headers)
}

/// Splits a buffer of encoded records (length prefixes included, as
/// [`encode`] writes them) into each record's bytes without its prefix.
pub fn split_encoded(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        let len = len.min(buf.len() - 4);
        let (record, rest) = buf[4..].split_at(len);
        buf = rest;
        Some(record)
    })
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    put_bytes16(out, s.as_bytes());
}

fn put_bytes16(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// A `u32` length and the bytes `write` appends.
fn put_written32(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

fn put_bytes32(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Why a record's bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed record: {0}")]
pub struct Malformed(pub &'static str);

/// Decodes one record's bytes (without the length prefix). `Ok(None)` for
/// a kind this version does not know (skipped).
pub fn decode(bytes: Bytes) -> Result<Option<Record>, Malformed> {
    let mut c = Cursor { b: bytes, at: 0 };
    let kind = c.u8()?;
    let record = match kind {
        KIND_META => {
            let meta = serde_json::from_slice(&c.b[c.at..])
                .map_err(|_| Malformed("the meta record is not valid JSON"))?;
            Record::Meta(meta)
        }
        KIND_REQUEST | KIND_HTTP1_REQUEST => {
            let at_us = c.u64()?;
            let flags = c.u8()?;
            let conn = c.u64()?;
            let status = c.u16()?;
            let latency = c.u64()?;
            let method = c.str16()?;
            let target = c.str32()?;
            // The two kinds differ only in how the headers are held.
            let headers = if kind == KIND_REQUEST {
                let n = c.u16()? as usize;
                let mut headers = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = c.str16()?;
                    let value = c.str32()?;
                    headers.push((name, value));
                }
                headers
            } else {
                parse_http1_lines(&c.bytes32()?)?
            };
            let body = c.bytes32()?;
            Record::Request(Request {
                at_us,
                conn: (flags & HAS_CONN != 0).then_some(conn),
                method,
                target,
                headers,
                body,
                body_truncated: flags & BODY_TRUNCATED != 0,
                status: (flags & HAS_STATUS != 0).then_some(status),
                latency_us: (flags & HAS_LATENCY != 0).then_some(latency),
            })
        }
        KIND_WS => {
            let at_us = c.u64()?;
            let flags = c.u8()?;
            let conn = c.u64()?;
            let opcode = c.u8()?;
            let payload = c.bytes32()?;
            Record::Ws(WsMessage {
                at_us,
                conn: (flags & HAS_CONN != 0).then_some(conn),
                from_client: flags & FROM_CLIENT != 0,
                opcode,
                payload,
            })
        }
        KIND_GAP => Record::Gap {
            at_us: c.u64()?,
            dropped: c.u64()?,
        },
        _ => return Ok(None),
    };
    Ok(Some(record))
}

struct Cursor {
    b: Bytes,
    at: usize,
}

impl Cursor {
    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        if self.b.len() - self.at < n {
            return Err(Malformed("a field runs past the record's end"));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self, n: usize) -> Result<String, Malformed> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| Malformed("a string is not UTF-8"))
    }
    fn str16(&mut self) -> Result<String, Malformed> {
        let n = self.u16()? as usize;
        self.string(n)
    }
    fn str32(&mut self) -> Result<String, Malformed> {
        let n = self.u32()? as usize;
        self.string(n)
    }
    fn bytes32(&mut self) -> Result<Bytes, Malformed> {
        let n = self.u32()? as usize;
        if self.b.len() - self.at < n {
            return Err(Malformed("a body runs past the record's end"));
        }
        let s = self.b.slice(self.at..self.at + n);
        self.at += n;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(r: Record) {
        let mut buf = Vec::new();
        encode(&r, &mut buf);
        let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(len, buf.len() - 4);
        let back = decode(Bytes::from(buf[4..].to_vec())).unwrap().unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn every_kind_round_trips() {
        roundtrip(Record::Meta(Meta::new("proxy", 1_700_000_000_000_000)));
        roundtrip(Record::Request(Request {
            at_us: 12,
            conn: Some(7),
            method: "POST".into(),
            target: "/v1/events?x=1".into(),
            headers: vec![("content-type".into(), "application/x-protobuf".into())],
            body: Bytes::from_static(b"\0\x01binary"),
            body_truncated: false,
            status: Some(202),
            latency_us: Some(850),
        }));
        roundtrip(Record::Request(Request {
            method: "GET".into(),
            target: "/".into(),
            ..Request::default()
        }));
        roundtrip(Record::Ws(WsMessage {
            at_us: 5,
            conn: Some(1),
            from_client: true,
            opcode: 1,
            payload: Bytes::from_static(b"{\"id\":1}"),
        }));
        roundtrip(Record::Gap {
            at_us: 99,
            dropped: 3,
        });
    }

    #[test]
    fn a_request_encoded_in_two_steps_is_the_same_record() {
        let whole = Request {
            at_us: 1234,
            conn: Some(9),
            method: "POST".into(),
            target: "/v1/events?id=3".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-odd".into(), "a\u{fffd}b".into()),
            ],
            body: Bytes::from_static(b"{\"a\":1}"),
            body_truncated: false,
            status: Some(201),
            latency_us: Some(77),
        };
        let mut head = Vec::new();
        let headers: [(&str, &[u8]); 2] =
            [("content-type", b"application/json"), ("x-odd", b"a\xffb")];
        encode_request_head(
            &mut head,
            1234,
            Some(9),
            "POST",
            "/v1/events?id=3",
            headers.into_iter(),
        );
        let mut out = vec![7u8];
        finish_request(
            &mut out,
            &head,
            Some(201),
            Some(77),
            &[&b"{\"a\""[..], b":1}"],
            false,
        );
        let mut expected = vec![7u8];
        encode(&Record::Request(whole.clone()), &mut expected);
        assert_eq!(out, expected);
        // No answer: the flags say so and the record decodes without one.
        let mut out = Vec::new();
        finish_request::<&[u8]>(&mut out, &head, None, None, &[], true);
        let records: Vec<&[u8]> = split_encoded(&out).collect();
        assert_eq!(records.len(), 1);
        let Some(Record::Request(r)) = decode(Bytes::copy_from_slice(records[0])).unwrap() else {
            panic!("a request")
        };
        assert_eq!(
            (r.status, r.latency_us, r.body_truncated),
            (None, None, true)
        );
        assert_eq!(r.headers, whole.headers);
        // Field by field from the bytes as read (names lower-cased on the
        // way in, the target written by a closure), stamped later: the
        // same record.
        let mut raw = vec![1u8; 3];
        let mut head = HeadWriter::new(&mut raw, 0, Some(9), "POST", |out| {
            out.extend_from_slice(b"/v1/events");
            out.extend_from_slice(b"?id=3");
        });
        assert!(head.header(b"Content-Type", b"application/json"));
        assert!(head.header(b"X-ODD", b"a\xffb"));
        head.finish();
        set_request_at_us(&mut raw, 1234);
        let mut out = vec![7u8];
        finish_request(
            &mut out,
            &raw,
            Some(201),
            Some(77),
            &[&b"{\"a\":1}"[..]],
            false,
        );
        assert_eq!(out, expected);
        // Appended after other records and completed in place (one pass,
        // the proxy's queue): the same record after what was there.
        let mut queue = vec![7u8];
        let mut head = HeadWriter::append(&mut queue, 1234, Some(9), "POST", |out| {
            out.extend_from_slice(b"/v1/events?id=3")
        });
        assert!(head.header(b"Content-Type", b"application/json"));
        assert!(head.header(b"X-ODD", b"a\xffb"));
        head.finish_request(Some(201), Some(77), b"{\"a\":1}", false);
        assert_eq!(queue, expected);
    }

    #[test]
    fn header_names_are_lower_cased_as_make_ascii_lowercase_does() {
        // Every byte value at every position of a word and of the tail,
        // ASCII and not: the word-at-a-time lower case is the byte one.
        for len in [0usize, 1, 3, 7, 8, 9, 15, 16, 17, 23] {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut name = b"Content-Length-X-Odd-Ab".to_vec();
                    name.truncate(len);
                    name[at] = byte;
                    let mut got = name.clone();
                    let ascii = lowercase_ascii(&mut got);
                    let mut want = name.clone();
                    want.make_ascii_lowercase();
                    assert_eq!((got, ascii), (want, name.is_ascii()), "{len} {at} {byte}");
                }
            }
        }
        let mut out = Vec::new();
        let mut head = HeadWriter::new(&mut out, 0, None, "GET", |o| o.push(b'/'));
        assert!(head.header(b"X-\xc3\x89T\xffA", b"v"));
        head.finish_request(None, None, b"", false);
        let Some(Record::Request(r)) = decode(Bytes::copy_from_slice(&out[4..])).unwrap() else {
            panic!("a request")
        };
        assert_eq!(r.headers, vec![("x-\u{c9}t\u{fffd}a".into(), "v".into())]);
    }

    #[test]
    fn unknown_kinds_are_skipped_and_short_records_refused() {
        assert_eq!(decode(Bytes::from_static(&[200, 1, 2])), Ok(None));
        assert!(decode(Bytes::from_static(&[KIND_REQUEST, 1, 2])).is_err());
    }

    fn http1_record(lines: &[u8]) -> Result<Option<Record>, Malformed> {
        let mut out = Vec::new();
        append_http1_request(
            &mut out,
            7,
            Some(9),
            "POST",
            |o| o.extend_from_slice(b"/v1/e?x=1"),
            Some(201),
            None,
            |o| o.extend_from_slice(lines),
            b"{}",
        );
        decode(Bytes::from(out[4..].to_vec()))
    }

    #[test]
    fn an_http1_record_reads_as_the_request_record_of_its_fields() {
        let lines = b"Host: h\r\nX-A: 1\r\nAccept: */*\nx-a: 2\r\nX-Bin: \xff\r\n\r\n";
        let expected = Record::Request(Request {
            at_us: 7,
            conn: Some(9),
            method: "POST".into(),
            target: "/v1/e?x=1".into(),
            headers: [
                ("host", "h"),
                ("x-a", "1"),
                ("x-a", "2"),
                ("accept", "*/*"),
                ("x-bin", "\u{fffd}"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .to_vec(),
            body: Bytes::from_static(b"{}"),
            body_truncated: false,
            status: Some(201),
            latency_us: None,
        });
        assert_eq!(http1_record(lines), Ok(Some(expected.clone())));
        // And it survives the kind-1 encoding (what a reader re-encodes).
        let mut out = Vec::new();
        encode(&expected, &mut out);
        assert_eq!(decode(Bytes::from(out[4..].to_vec())), Ok(Some(expected)));
    }

    #[test]
    fn hostile_http1_records_are_refused_not_guessed() {
        // No closing empty line, a bad name, bytes after the end, a lone
        // CR, too many lines (each whole).
        let many = format!("{}\r\n", "X: 1\r\n".repeat(MAX_HTTP1_LINES + 1));
        for lines in [
            &b"Host: h\r\n"[..],
            b"Bad Name: x\r\n\r\n",
            b"Host: h\r\n\r\nextra",
            b"Host: h\r\r\n\r\n",
            many.as_bytes(),
        ] {
            assert!(
                http1_record(lines).is_err(),
                "{:?}",
                String::from_utf8_lossy(lines)
            );
        }
        let enough = format!("{}\r\n", "X: 1\r\n".repeat(MAX_HTTP1_LINES));
        assert!(http1_record(enough.as_bytes()).is_ok());
        // Just the empty line: no headers.
        match http1_record(b"\r\n") {
            Ok(Some(Record::Request(r))) => assert!(r.headers.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}

//! GoReplay `.gor` files, read as a stream of [`Request`]s.
//!
//! GoReplay's file output is text: each payload is a header line
//! `<type> <id> <timestamp-ns> <latency-ns>` (type `1` a request, `2` the
//! original response, `3` a replayed response), the raw HTTP/1.x message,
//! and a separator line `🐵🙈🙉`. Requests become records; the original
//! response with the same id gives the request its status, and the time
//! between the two timestamps its latency (the header's own latency field
//! is, in GoReplay 1.3, how long the message itself took to arrive).
//! Replayed responses and `1xx` interim responses are ignored.
//!
//! GoReplay writes a message when it is complete, so a file is not in time
//! order: a large upload comes after requests that started later, a
//! request can come after its response (or in the next chunk file). Like
//! GoReplay's own file input, the reader puts payloads back in timestamp
//! order: a request is held until the file has reached
//! [`REORDER_WINDOW_NS`] past it (or [`MAX_HELD`] requests are held), and a
//! response that comes before its request waits for it. A request that
//! still comes later keeps its place in the file, its time clamped to the
//! one before. Times are relative to the earliest request.
//!
//! Ids of GoReplay 1.x's raw input (24 hex digits) begin with the client's
//! port, the server's port and the client's address: requests with the
//! same first 16 digits came on one TCP connection and get one `conn`, so
//! a keep-alive sequence replays on one connection, in order. Other ids
//! (hand-written files, older GoReplay's random ids) give `conn: None`.
//!
//! A request whose body is shorter than its `Content-Length` (or a chunked
//! body without its last chunk) — a message GoReplay cut at
//! `--copy-buffer-size`, or a file ending mid-write — is marked
//! `body_truncated`.
//!
//! [`GorReader::chain`] reads several files (the `NAME_0.gor`,
//! `NAME_1.gor`, ... chunks GoReplay writes without
//! `--output-file-append`) as one stream, so ordering and responses work
//! across chunk boundaries.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::BufRead;

use bytes::Bytes;

use crate::format::Request;
use crate::Error;

/// The payload separator line.
pub const SEPARATOR: &str = "🐵🙈🙉";
/// How far (capture time) a payload may come after later ones and still be
/// put back in its place: GoReplay writes a message when it completes, or
/// when `--input-raw-expire` (2 s by default) gives up on it.
pub const REORDER_WINDOW_NS: u64 = 5_000_000_000;
/// The most requests held back for reordering.
pub const MAX_HELD: usize = 16_384;
/// The most bytes (bodies, targets and headers) held back for reordering:
/// a replay's memory stays flat whatever the file (`parallax replay` of
/// a 500 MB `.gor` of 8 KiB uploads at 5,000 req/s peaked at 240 MiB with
/// 256 MiB here). Past it the earliest request goes out; one that comes
/// later than what is held keeps its place in the file, its time clamped.
pub const MAX_HELD_BYTES: usize = 16 << 20;
/// The most responses held waiting for a request that has not come yet.
pub const MAX_EARLY_RESPONSES: usize = 4096;

/// A payload the importer could not read (skipped and counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub malformed: u64,
    pub responses_without_request: u64,
}

/// A request held back, with its GoReplay id.
struct Held {
    id: String,
    ts: u64,
    request: Request,
}

/// A response that came before its request.
struct Early {
    id: String,
    ts: u64,
    status: Option<u16>,
}

type Inputs<R> = Box<dyn Iterator<Item = Result<R, Error>> + Send>;

/// Streams requests out of a `.gor` file (or the chunks of one recording).
pub struct GorReader<R: BufRead> {
    inputs: Inputs<R>,
    input: Option<R>,
    /// Held requests by (timestamp, order read).
    held: BTreeMap<(u64, u64), Held>,
    held_bytes: usize,
    /// Held requests still waiting for their response, by id.
    waiting: HashMap<String, VecDeque<(u64, u64)>>,
    early: VecDeque<Early>,
    read: u64,
    max_ts: u64,
    first_ns: Option<u64>,
    last_us: u64,
    done: bool,
    line: Vec<u8>,
    error: Option<Error>,
    pub skipped: Skipped,
}

impl<R: BufRead + Send + 'static> GorReader<R> {
    /// Reads one file.
    pub fn new(input: R) -> Self {
        Self::chain(std::iter::once(Ok(input)))
    }

    /// Reads several files as one recording, in the order given; each is
    /// opened when the one before it ends. An input that cannot be opened
    /// ends the stream ([`GorReader::take_error`]).
    pub fn chain(inputs: impl Iterator<Item = Result<R, Error>> + Send + 'static) -> Self {
        Self {
            inputs: Box::new(inputs),
            input: None,
            held: BTreeMap::new(),
            held_bytes: 0,
            waiting: HashMap::new(),
            early: VecDeque::new(),
            read: 0,
            max_ts: 0,
            first_ns: None,
            last_us: 0,
            done: false,
            line: Vec::new(),
            error: None,
            skipped: Skipped::default(),
        }
    }
}

impl<R: BufRead> GorReader<R> {
    /// Why the stream ended early: an input of [`GorReader::chain`] that
    /// could not be opened.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// One line of the current input into `self.line`: `Some(true)`;
    /// `Some(false)` at the end of an input (the next one is opened on the
    /// next call); `None` after the last.
    fn next_line(&mut self) -> Option<bool> {
        if self.input.is_none() {
            match self.inputs.next() {
                Some(Ok(r)) => self.input = Some(r),
                Some(Err(e)) => {
                    self.error = Some(e);
                    return None;
                }
                None => return None,
            }
        }
        let input = self.input.as_mut()?;
        self.line.clear();
        match input.read_until(b'\n', &mut self.line) {
            Ok(n) if n > 0 => Some(true),
            // The end (or a read error: a truncated gzip stream reads up to
            // its last flush) of this input.
            _ => {
                self.input = None;
                Some(false)
            }
        }
    }

    /// Reads one payload: its header line and its message (without the
    /// separator). `None` at the end.
    fn payload(&mut self) -> Option<(String, Vec<u8>)> {
        let mut header: Option<String> = None;
        let mut message = Vec::new();
        loop {
            match self.next_line() {
                None => return header.map(|h| (h, message)),
                // A last payload without its separator still counts (a body
                // it lacks is marked truncated).
                Some(false) => match header {
                    Some(h) => return Some((h, message)),
                    None => continue,
                },
                Some(true) => {}
            }
            let trimmed = trim_eol(&self.line);
            if trimmed == SEPARATOR.as_bytes() {
                match header {
                    Some(h) => {
                        // The message's last line ending belongs to the
                        // separator.
                        if message.ends_with(b"\n") {
                            message.pop();
                        }
                        return Some((h, message));
                    }
                    None => continue,
                }
            }
            match &header {
                None => {
                    if trimmed.is_empty() {
                        continue;
                    }
                    header = Some(String::from_utf8_lossy(trimmed).into_owned());
                }
                Some(_) => message.extend_from_slice(&self.line),
            }
        }
    }

    /// Reads and files one payload; `false` at the end.
    fn read_one(&mut self) -> bool {
        let Some((header, message)) = self.payload() else {
            return false;
        };
        let mut fields = header.split_ascii_whitespace();
        let kind = fields.next().unwrap_or("");
        let id = fields.next().unwrap_or("").to_owned();
        let ts = fields.next().and_then(|t| t.parse::<u64>().ok());
        match (kind, ts) {
            ("1", Some(ts)) => match parse_request(&message) {
                Some(mut request) => {
                    self.max_ts = self.max_ts.max(ts);
                    request.conn = conn_of(&id);
                    let key = (ts, self.read);
                    self.read += 1;
                    match self.early.iter().position(|e| e.id == id) {
                        Some(i) => {
                            let e = self.early.remove(i).expect("found");
                            answer(&mut request, ts, e.ts, e.status);
                        }
                        None => self.waiting.entry(id.clone()).or_default().push_back(key),
                    }
                    self.held_bytes += held_size(&request);
                    self.held.insert(key, Held { id, ts, request });
                }
                None => self.skipped.malformed += 1,
            },
            ("2", Some(ts)) => {
                let status = parse_status(&message);
                // An interim answer (100 Continue): the final one follows.
                if status.is_some_and(|s| (100..200).contains(&s) && s != 101) {
                    return true;
                }
                self.max_ts = self.max_ts.max(ts);
                let key = self.waiting.get_mut(&id).and_then(VecDeque::pop_front);
                if self.waiting.get(&id).is_some_and(VecDeque::is_empty) {
                    self.waiting.remove(&id);
                }
                match key.and_then(|k| self.held.get_mut(&k)) {
                    Some(h) => answer(&mut h.request, h.ts, ts, status),
                    None => {
                        self.early.push_back(Early { id, ts, status });
                        if self.early.len() > MAX_EARLY_RESPONSES {
                            self.early.pop_front();
                            self.skipped.responses_without_request += 1;
                        }
                    }
                }
            }
            ("3", _) => {}
            _ => self.skipped.malformed += 1,
        }
        // Responses whose request is long overdue will not find it.
        while self
            .early
            .front()
            .is_some_and(|e| e.ts.saturating_add(2 * REORDER_WINDOW_NS) < self.max_ts)
        {
            self.early.pop_front();
            self.skipped.responses_without_request += 1;
        }
        true
    }

    /// The earliest held request, once nothing earlier can still come.
    fn release(&mut self) -> Option<Request> {
        let (&key, first) = self.held.first_key_value()?;
        let ready = self.done
            || self.held.len() >= MAX_HELD
            || self.held_bytes >= MAX_HELD_BYTES
            || first.ts.saturating_add(REORDER_WINDOW_NS) <= self.max_ts;
        if !ready {
            return None;
        }
        let held = self.held.remove(&key).expect("first");
        self.held_bytes = self.held_bytes.saturating_sub(held_size(&held.request));
        if let Some(keys) = self.waiting.get_mut(&held.id) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.waiting.remove(&held.id);
            }
        }
        let mut request = held.request;
        let first = *self.first_ns.get_or_insert(held.ts);
        // A request that came later than the window keeps its place in the
        // file.
        let us = held.ts.saturating_sub(first) / 1000;
        self.last_us = self.last_us.max(us);
        request.at_us = self.last_us;
        Some(request)
    }
}

/// What a held request counts against [`MAX_HELD_BYTES`]: its body, target
/// and headers, and a little for the rest.
fn held_size(request: &Request) -> usize {
    let headers: usize = request
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 48)
        .sum();
    request.body.len() + request.target.len() + headers + 128
}

/// The original response's status and the time from request to response.
fn answer(request: &mut Request, request_ts: u64, response_ts: u64, status: Option<u16>) {
    request.status = status;
    request.latency_us = response_ts.checked_sub(request_ts).map(|ns| ns / 1000);
}

/// The connection of a GoReplay 1.x raw-input id: client port, server
/// port and client address, hex, before the TCP sequence number.
fn conn_of(id: &str) -> Option<u64> {
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&id[..16], 16).ok()
}

impl<R: BufRead> Iterator for GorReader<R> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        loop {
            if let Some(r) = self.release() {
                return Some(r);
            }
            if self.done {
                self.skipped.responses_without_request += self.early.len() as u64;
                self.early.clear();
                return None;
            }
            if !self.read_one() {
                self.done = true;
            }
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut l = line;
    if l.ends_with(b"\n") {
        l = &l[..l.len() - 1];
    }
    if l.ends_with(b"\r") {
        l = &l[..l.len() - 1];
    }
    l
}

/// Parses a raw HTTP/1.x request (head and body; a chunked body is
/// de-chunked, a `Content-Length` body cut to its length). A body shorter
/// than it should be is marked `body_truncated`.
pub fn parse_request(raw: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        // A message saved without its blank line: the head is all of it.
        Ok(httparse::Status::Partial) => {
            let mut with_end = raw.to_vec();
            with_end.extend_from_slice(b"\r\n\r\n");
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&with_end) {
                Ok(httparse::Status::Complete(_)) => {}
                _ => return None,
            }
            return build(&req, Bytes::new(), false);
        }
        Err(_) => return None,
    };
    let rest = &raw[head_len..];
    let chunked = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let (body, complete) = if chunked {
        dechunk(rest)
    } else {
        let len = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        match len {
            Some(n) => (rest[..n.min(rest.len())].to_vec(), n <= rest.len()),
            None => (rest.to_vec(), true),
        }
    };
    build(&req, Bytes::from(body), !complete)
}

fn build(req: &httparse::Request<'_, '_>, body: Bytes, body_truncated: bool) -> Option<Request> {
    let method = req.method?.to_owned();
    let mut target = req.path?.to_owned();
    // An absolute-form target (to a proxy) keeps only its path and query.
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        target = rest.find('/').map_or("/".into(), |i| rest[i..].to_owned());
    }
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Some(Request {
        method,
        target,
        headers,
        body,
        body_truncated,
        ..Request::default()
    })
}

/// A chunked body de-chunked, and whether its last (empty) chunk came.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size else { break };
        raw = &raw[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        let take = size.min(raw.len());
        out.extend_from_slice(&raw[..take]);
        if take < size {
            break;
        }
        raw = &raw[take..];
        raw = raw.strip_prefix(b"\r\n").unwrap_or(raw);
    }
    (out, false)
}

/// The status code of a raw HTTP/1.x response.
fn parse_status(raw: &[u8]) -> Option<u16> {
    let line = raw.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_ascii_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "1 a1 1700000000000000000 0\r\nPOST /v1/events?src=gor HTTP/1.1\r\nHost: example\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"id\":\"e1\"}\n🐵🙈🙉\n2 a1 1700000000002000000 1500000\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n\n🐵🙈🙉\n1 b2 1700000000500000000 0\nGET /v1/sessions/42 HTTP/1.1\r\nHost: example\r\n\r\n\n🐵🙈🙉\n3 b2 1700000000600000000 100\nHTTP/1.1 200 OK\r\n\r\n\n🐵🙈🙉\n";

    #[test]
    fn requests_get_their_original_responses_and_relative_times() {
        let reqs: Vec<_> = GorReader::new(FILE.as_bytes()).collect();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].target, "/v1/events?src=gor");
        assert_eq!(&reqs[0].body[..], b"{\"id\":\"e1\"}");
        assert_eq!(reqs[0].status, Some(202));
        assert_eq!(
            reqs[0].latency_us,
            Some(2000),
            "response time less request time"
        );
        assert_eq!(reqs[0].at_us, 0);
        assert_eq!(reqs[1].target, "/v1/sessions/42");
        assert_eq!(reqs[1].at_us, 500_000);
        assert_eq!(
            reqs[1].status, None,
            "a replayed response is not the original"
        );
    }

    #[test]
    fn chunked_bodies_are_dechunked() {
        let raw = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let r = parse_request(raw).unwrap();
        assert_eq!(&r.body[..], b"hello world");
    }

    /// Recorded by GoReplay 1.3.2 (`--input-raw 127.0.0.1:PORT
    /// --input-raw-track-response --output-file F --output-file-append`)
    /// from curl against a Python server; the 135 KB and 3 KB uploads of
    /// that run left out. The file is out of time order, as GoReplay
    /// writes it.
    const REAL: &[u8] = include_bytes!("../tests/data/goreplay-1.3.2.gor");

    #[test]
    fn a_real_goreplay_file_reads_in_time_order_with_every_response() {
        let mut reader = GorReader::new(REAL);
        let reqs: Vec<_> = reader.by_ref().collect();
        let sent: Vec<_> = reqs
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        assert_eq!(
            sent,
            [
                "GET /v1/items?q=hello%20world&page=2&x=a+b",
                "POST /v1/events?src=curl",
                "POST /v1/chunked",
                "GET /ka/1",
                "GET /ka/2?z=1",
                "GET /ka/3",
                "POST /v1/tiny",
                "PUT /v1/form",
                "DELETE /v1/items/42",
                "POST /v1/upload",
            ],
            "the order curl sent them in"
        );
        assert_eq!(reader.skipped, Skipped::default());
        assert!(reqs.windows(2).all(|w| w[0].at_us <= w[1].at_us));
        assert_eq!(reqs[0].at_us, 0);
        assert_eq!(reqs[9].at_us, 742_879, "the last request's time");
        for r in &reqs {
            assert_eq!(
                r.status,
                Some(if r.method == "POST" { 202 } else { 200 }),
                "{}",
                r.target
            );
            assert!(r.latency_us.is_some_and(|l| l > 100 && l < 5_000), "{r:?}");
            assert!(!r.body_truncated);
        }
        // Request 0 at ...045931039 ns, its response at ...046985551.
        assert_eq!(reqs[0].latency_us, Some(1054));
        assert_eq!(&reqs[1].body[..], br#"{"events":[{"id":"e1","v":1}]}"#);
        assert_eq!(&reqs[2].body[..], br#"{"chunked":true,"n":42}"#);
        assert_eq!(&reqs[6].body[..], b"ab\x00\xff\r\n\xc3\x28end");
        assert_eq!(&reqs[7].body[..], b"a=1&b=two+words&c=%26");
        assert_eq!(reqs[9].body.len(), 305);
        assert_eq!(reqs[8].header("cookie"), Some("sid=abc; theme=dark"));
        // The keep-alive sequence came on one connection, the rest each on
        // its own.
        let conns: Vec<_> = reqs.iter().map(|r| r.conn.unwrap()).collect();
        assert_eq!(conns[3], conns[4]);
        assert_eq!(conns[4], conns[5]);
        let mut distinct = conns.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 8);
    }

    #[test]
    fn a_response_before_its_request_and_chunks_read_as_one_stream() {
        // GoReplay's chunks: the response of `b` in the first, the request
        // (which started earlier: a late write) in the second.
        let first = "1 0000000100020003000000aa 1000000000 0\nGET /a HTTP/1.1\r\n\r\n\n🐵🙈🙉\n2 0000000400050006000000bb 1002500000 0\nHTTP/1.1 404 Not Found\r\n\r\n\n🐵🙈🙉\n2 0000000100020003000000aa 1001000000 0\nHTTP/1.1 200 OK\r\n\r\n\n🐵🙈🙉\n";
        let second = "1 0000000400050006000000bb 999000000 0\nGET /b HTTP/1.1\r\n\r\n\n🐵🙈🙉\n3 x 1 0\nHTTP/1.1 500 Replayed\r\n\r\n\n🐵🙈🙉\n";
        let mut reader = GorReader::chain(
            [first.as_bytes(), second.as_bytes()]
                .into_iter()
                .map(Ok::<_, Error>),
        );
        let reqs: Vec<_> = reader.by_ref().collect();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].target, "/b");
        assert_eq!(reqs[0].status, Some(404));
        assert_eq!(reqs[0].latency_us, Some(3500));
        assert_eq!(reqs[1].target, "/a");
        assert_eq!(reqs[1].at_us, 1000);
        assert_eq!(reqs[1].status, Some(200));
        assert_ne!(reqs[0].conn, reqs[1].conn);
        assert_eq!(reader.skipped, Skipped::default());
    }

    #[test]
    fn interim_responses_wait_for_the_final_one() {
        let file = "1 a 1000 0\nPOST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi\n🐵🙈🙉\n2 a 2000 0\nHTTP/1.1 100 Continue\r\n\r\n\n🐵🙈🙉\n2 a 9000 0\nHTTP/1.1 201 Created\r\n\r\n\n🐵🙈🙉\n";
        let reqs: Vec<_> = GorReader::new(file.as_bytes()).collect();
        assert_eq!(reqs[0].status, Some(201));
        assert_eq!(reqs[0].latency_us, Some(8));
        assert_eq!(reqs[0].conn, None, "not a GoReplay 1.x raw-input id");
    }

    #[test]
    fn a_body_cut_short_is_marked_truncated() {
        // GoReplay killed mid-write: no separator, the body incomplete.
        let file = "1 a 1000 0\nPOST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly this";
        let reqs: Vec<_> = GorReader::new(file.as_bytes()).collect();
        assert_eq!(&reqs[0].body[..], b"only this");
        assert!(reqs[0].body_truncated);
        let r = parse_request(
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n wo",
        )
        .unwrap();
        assert_eq!(&r.body[..], b"hello wo");
        assert!(r.body_truncated);
        let r = parse_request(b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nokEXTRA").unwrap();
        assert_eq!(&r.body[..], b"ok");
        assert!(!r.body_truncated);
    }
}

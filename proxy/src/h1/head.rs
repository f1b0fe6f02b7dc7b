//! A client's request head, judged for the raw path: pure logic, no I/O.
//!
//! [`judge`] parses a head with `httparse` (the parser hyper itself uses,
//! with hyper's defaults) and takes it only when everything is boring:
//! HTTP/1.1; an origin-form target made of bytes `http::Uri` accepts as
//! they are (no fragment, no bytes it would reject or re-check as UTF-8);
//! exactly one `Host`; at most one `Content-Length` of plain digits, up to
//! [`MAX_BODY_BYTES`]; no `Transfer-Encoding`, `TE`, `Upgrade` or `Expect`
//! at all; `Connection` tokens only `keep-alive` and `close`; not
//! `CONNECT`. Anything else — every malformed, ambiguous or hostile head
//! included — is [`Judged::Hyper`]: the connection goes to hyper with the
//! bytes read, and hyper answers exactly as it would have. The raw path
//! therefore never decides what a strange request means.
//!
//! A head it takes is rewritten for the upstream by the rules of
//! [`crate::headers`]: hop-by-hop headers (and those `Connection` names)
//! left out, earlier `X-Forwarded-For` values folded into one line with the
//! client appended; everything else as the client sent it, in order.

use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::ops::Range;

use http::Method;

use crate::headers::{is_hop_by_hop, write_forwarded_for};

/// Headers per head: hyper's default (more is hyper's 431).
pub const MAX_HEADERS: usize = 100;
/// The longest head the raw path waits for; a longer one goes to hyper,
/// whose own limit (about 400 KiB) then applies.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The largest body the raw path takes: it is read whole before the
/// request goes out, so a stale pooled connection can be retried with the
/// whole request in hand. Longer bodies stream through hyper.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// `http::Uri`'s longest path and query.
const MAX_TARGET_LEN: usize = u16::MAX as usize - 1;

/// What to do with the bytes read so far.
#[derive(Debug)]
pub enum Judged {
    /// Not a whole head yet: read more.
    Partial,
    /// Not for the raw path: hyper takes the connection.
    Hyper,
    /// A boring request; its head for the upstream is in `out`.
    Boring(Head),
}

/// A request the raw path takes.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head in the input.
    pub len: usize,
    /// Bytes of body after the head (its `Content-Length`, or 0).
    pub body_len: usize,
    pub method: Method,
    /// The path (without the query) within the rewritten head.
    pub path: Range<usize>,
    /// The whole target (path and query) within the rewritten head.
    pub target: Range<usize>,
    /// The client sent `Connection: close`.
    pub close: bool,
}

/// Where one header of a judged head lies in its input (byte offsets;
/// heads are at most [`MAX_HEAD_BYTES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    name: (u32, u32),
    value: (u32, u32),
    /// Not hop-by-hop (judged once, as the head for the upstream is
    /// written).
    kept: bool,
}

/// Judges the head at the start of `input`; for a boring one, writes the
/// head to send upstream into `out` (cleared first), `client` appended to
/// `X-Forwarded-For`. With `spans`, also notes where each header lies
/// (cleared first), for [`recorded_headers`]: a recording service lists
/// the headers from this one parse.
pub fn judge(
    input: &[u8],
    client: IpAddr,
    out: &mut Vec<u8>,
    mut spans: Option<&mut Vec<Span>>,
) -> Judged {
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        input,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() < MAX_HEAD_BYTES => return Judged::Partial,
        Ok(httparse::Status::Partial) | Err(_) => return Judged::Hyper,
    };
    let (Some(method), Some(target), Some(1)) = (request.method, request.path, request.version)
    else {
        return Judged::Hyper;
    };
    if len > MAX_HEAD_BYTES || !plain_origin_form(target.as_bytes()) {
        return Judged::Hyper;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Judged::Hyper;
    };
    if method == Method::CONNECT {
        return Judged::Hyper;
    }
    let mut content_length = None;
    let mut hosts = 0;
    let mut close = false;
    if let Some(spans) = spans.as_deref_mut() {
        spans.clear();
    }
    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        if let Some(spans) = spans.as_deref_mut() {
            let at = |b: &[u8]| {
                let start = (b.as_ptr() as usize - input.as_ptr() as usize) as u32;
                (start, start + b.len() as u32)
            };
            spans.push(Span {
                name: at(name),
                value: at(header.value),
                kept: false,
            });
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            match (content_length, digits(header.value)) {
                (None, Some(n)) => content_length = Some(n),
                _ => return Judged::Hyper,
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    return Judged::Hyper;
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"te")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
        {
            return Judged::Hyper;
        }
    }
    let body_len = content_length.unwrap_or(0);
    if hosts != 1 || body_len > MAX_BODY_BYTES as u64 {
        return Judged::Hyper;
    }

    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let path_start = out.len();
    let path_len = target.find('?').unwrap_or(target.len());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (i, header) in request.headers.iter().enumerate() {
        let name = header.name.as_bytes();
        // `close` is the one other name `Connection` may list here.
        let hop = is_hop_by_hop(name) || (close && name.eq_ignore_ascii_case(b"close"));
        if let Some(span) = spans.as_deref_mut().and_then(|s| s.get_mut(i)) {
            span.kept = !hop;
        }
        if hop || name.eq_ignore_ascii_case(b"x-forwarded-for") {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    let earlier = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|h| h.value);
    write_forwarded_for(earlier, client, out);
    out.extend_from_slice(b"\r\n\r\n");
    Judged::Boring(Head {
        len,
        body_len: body_len as usize,
        method,
        path: path_start..path_start + path_len,
        target: path_start..path_start + target.len(),
        close,
    })
}

/// The headers of a head [`judge`] took (`input`, with the `spans` it
/// noted), as the hyper path's recorder sees them (a `HeaderMap` after the
/// hop rules, before `X-Forwarded-For`): hop-by-hop headers left out, the
/// values of one name together, in the order names first appear. Names as
/// the client wrote them (ASCII: httparse takes only token characters; the
/// recorder lower-cases them as it copies them). No second parse and no
/// allocation: a recorded request on the raw path used to parse its head
/// again and build a `String` per name here.
pub fn recorded_headers<'a>(input: &'a [u8], spans: &'a [Span]) -> RecordedHeaders<'a> {
    let mut headers = RecordedHeaders {
        input,
        spans,
        distinct: false,
        group: 0,
        next: 0,
    };
    headers.distinct = (1..spans.len()).all(|j| (0..j).all(|k| !headers.same_name(k, j)));
    headers
}

/// The header lines of a head [`judge`] took, for the capture's HTTP/1
/// request record: `input`'s header lines and its closing empty line
/// copied as the client sent them, in runs, less the hop-by-hop lines,
/// with the value of each header `secret` names replaced by `redacted`.
/// A reader parsing the copy lists the same headers as
/// [`recorded_headers`] (same parser, same lines): one or two copies a
/// request instead of a length-prefixed copy per name and value.
pub fn copy_recorded_lines(
    input: &[u8],
    spans: &[Span],
    head_len: usize,
    secret: impl Fn(&[u8]) -> bool,
    redacted: &[u8],
    out: &mut Vec<u8>,
) {
    let head = &input[..head_len];
    // Where the closing empty line starts (httparse takes CRLF or LF).
    let end = head_len - if head.ends_with(b"\r\n") { 2 } else { 1 };
    let Some(first) = spans.first() else {
        out.extend_from_slice(&head[end..]);
        return;
    };
    let mut from = first.name.0 as usize;
    for (i, span) in spans.iter().enumerate() {
        let (name_at, name_end) = (span.name.0 as usize, span.name.1 as usize);
        if !span.kept {
            out.extend_from_slice(&head[from..name_at]);
            from = spans.get(i + 1).map_or(end, |next| next.name.0 as usize);
        } else if secret(&head[name_at..name_end]) {
            let (value_at, value_end) = (span.value.0 as usize, span.value.1 as usize);
            out.extend_from_slice(&head[from..value_at]);
            out.extend_from_slice(redacted);
            from = value_end;
        }
    }
    out.extend_from_slice(&head[from..]);
}

/// The iterator of [`recorded_headers`].
#[derive(Debug, Clone)]
pub struct RecordedHeaders<'a> {
    input: &'a [u8],
    spans: &'a [Span],
    /// No name appears twice (the usual head): the kept headers are
    /// listed in order, with no grouping to do.
    distinct: bool,
    /// The header whose name is being listed ...
    group: usize,
    /// ... and where its next value is looked for; `== group` while that
    /// name is not yet known to be listed here.
    next: usize,
}

impl<'a> RecordedHeaders<'a> {
    fn name(&self, i: usize) -> &'a [u8] {
        let (a, b) = self.spans[i].name;
        &self.input[a as usize..b as usize]
    }

    /// Headers `i` and `j` have the same name (lengths first: from the
    /// spans, without touching the bytes).
    #[inline]
    fn same_name(&self, i: usize, j: usize) -> bool {
        let ((a, b), (c, d)) = (self.spans[i].name, self.spans[j].name);
        b - a == d - c && self.name(i).eq_ignore_ascii_case(self.name(j))
    }

    fn pair(&self, i: usize) -> (&'a [u8], &'a [u8]) {
        let (a, b) = self.spans[i].value;
        (self.name(i), &self.input[a as usize..b as usize])
    }
}

impl<'a> Iterator for RecordedHeaders<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let len = self.spans.len();
        if self.distinct {
            while self.group < len {
                let g = self.group;
                self.group += 1;
                if self.spans[g].kept {
                    return Some(self.pair(g));
                }
            }
            return None;
        }
        while self.group < len {
            let g = self.group;
            if self.next == g {
                // Hop-by-hop-ness goes by name: the later headers of a
                // name listed here are kept too.
                let listed = self.spans[g].kept && !(0..g).any(|k| self.same_name(k, g));
                if listed {
                    self.next = g + 1;
                    return Some(self.pair(g));
                }
            } else {
                while self.next < len {
                    let j = self.next;
                    self.next += 1;
                    if self.same_name(j, g) {
                        return Some(self.pair(j));
                    }
                }
            }
            self.group += 1;
            self.next = self.group;
        }
        None
    }
}

/// `1*DIGIT`, as a number that fits.
pub(crate) fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

/// An origin-form target that `http::uri::PathAndQuery` keeps byte for
/// byte: `/`, then path bytes it takes as they are, optionally `?` and
/// query bytes it takes as they are. Rejected here (so hyper decides):
/// fragments (it drops them), bytes above 0x7F (it checks them as UTF-8),
/// and every byte it refuses.
fn plain_origin_form(target: &[u8]) -> bool {
    if target.first() != Some(&b'/') || target.len() > MAX_TARGET_LEN {
        return false;
    }
    let mut query = false;
    target.iter().all(|&b| {
        if query {
            matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E)
        } else if b == b'?' {
            query = true;
            true
        } else {
            matches!(
                b,
                0x21 | b'"' | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | b'{' | 0x7C | b'}' | 0x7E
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(input: &str) -> (Judged, String) {
        let mut out = Vec::new();
        let judged = judge(
            input.as_bytes(),
            "192.0.2.9".parse().unwrap(),
            &mut out,
            None,
        );
        (judged, String::from_utf8(out).unwrap())
    }

    fn boring(input: &str) -> (Head, String) {
        match judged(input) {
            (Judged::Boring(head), out) => (head, out),
            (other, _) => panic!("{other:?} for {input:?}"),
        }
    }

    fn goes_to_hyper(input: &str) {
        assert!(
            matches!(judged(input).0, Judged::Hyper),
            "{input:?} should go to hyper"
        );
    }

    #[test]
    fn a_plain_get_is_rewritten_by_the_hop_rules() {
        let input = "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nProxy-Authorization: x\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.2\r\n\r\n";
        let (head, out) = boring(input);
        assert_eq!(head.len, input.len());
        assert_eq!(head.body_len, 0);
        assert_eq!(head.method, Method::GET);
        assert!(!head.close);
        assert_eq!(&out[head.path.clone()], "/a/b");
        assert_eq!(
            out,
            "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2, 192.0.2.9\r\n\r\n"
        );
    }

    #[test]
    fn close_is_noted_and_a_header_it_names_left_out() {
        let (head, out) =
            boring("POST / HTTP/1.1\r\nhost: h\r\nconnection: Close\r\nclose: x\r\ncontent-length: 3\r\n\r\nabc");
        assert!(head.close);
        assert_eq!(head.body_len, 3);
        assert_eq!(
            out,
            "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\nx-forwarded-for: 192.0.2.9\r\n\r\n"
        );
    }

    #[test]
    fn an_unfinished_head_asks_for_more() {
        assert!(matches!(
            judged("GET / HTTP/1.1\r\nHost: h\r\n").0,
            Judged::Partial
        ));
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        goes_to_hyper(&long);
    }

    #[test]
    fn everything_that_is_not_boring_goes_to_hyper() {
        let cases = [
            "GET / HTTP/1.0\r\nHost: h\r\n\r\n",
            "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a|<b> HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a?\"q\" HTTP/1.1\r\nHost: h\r\n\r\n",
            "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, x-hop\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nX: \x01\r\n\r\n",
            "\x16\x03\x01\x00",
        ];
        for case in cases {
            goes_to_hyper(case);
        }
        let body = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        goes_to_hyper(&body);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        goes_to_hyper(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n"));
    }

    #[test]
    fn targets_http_keeps_as_they_are_pass() {
        for target in [
            "/",
            "/a/b;c=d",
            "/{\"k\":1}",
            "/a?b=c&d=/e?f",
            "/%41~!$&'()*+,",
        ] {
            assert!(plain_origin_form(target.as_bytes()), "{target}");
            let uri: http::Uri = target.parse().unwrap();
            assert_eq!(uri.path_and_query().unwrap().as_str(), target);
        }
    }

    #[test]
    fn recorded_headers_are_listed_as_a_header_map_lists_them() {
        let head = "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: a\r\nX-A: 1\r\nAccept: */*\r\nConnection: close\r\nClose: 1\r\nx-a: 2\r\nx-forwarded-for: b\r\nKeep-Alive: 5\r\nX-B: 0\r\nX-a: 3\r\nProxy-Foo: p\r\n\r\n";
        let listed = listed_as_a_header_map_lists_them(head);
        assert_eq!(
            listed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            [
                "host",
                "x-forwarded-for",
                "x-forwarded-for",
                "x-a",
                "x-a",
                "x-a",
                "accept",
                "x-b"
            ]
        );
        // No name twice (the usual head, listed without grouping), a
        // hop-by-hop one after them (one before them is listed in place
        // here, where a HeaderMap's removal moves its last header there).
        let head = "POST /e HTTP/1.1\r\nHost: h\r\nContent-Type: a/b\r\nContent-Length: 0\r\nX-B: 1\r\nKeep-Alive: 5\r\n\r\n";
        let listed = listed_as_a_header_map_lists_them(head);
        assert_eq!(
            listed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["host", "content-type", "content-length", "x-b"]
        );
    }

    /// The headers `recorded_headers` lists for `head`, checked against
    /// what the hyper path records (a `HeaderMap`, the hop rules applied).
    fn listed_as_a_header_map_lists_them(head: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut spans = Vec::new();
        let Judged::Boring(_) = judge(
            head.as_bytes(),
            "192.0.2.9".parse().unwrap(),
            &mut out,
            Some(&mut spans),
        ) else {
            panic!("a boring head")
        };
        let listed: Vec<(String, Vec<u8>)> = recorded_headers(head.as_bytes(), &spans)
            .map(|(n, v)| {
                (
                    String::from_utf8(n.to_ascii_lowercase()).unwrap(),
                    v.to_vec(),
                )
            })
            .collect();
        // What the hyper path records: the client's headers in a HeaderMap,
        // the hop rules applied.
        let mut map = http::HeaderMap::new();
        for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(": ").unwrap();
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        crate::headers::strip_hop_by_hop(&mut map);
        let expected: Vec<(String, Vec<u8>)> = map
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(listed, expected);
        listed
    }

    /// The headers a capture reader decodes from the lines
    /// [`copy_recorded_lines`] copied out of `head`, with the
    /// `secret` names redacted.
    fn decoded_from_copied_lines(head: &[u8], spans: &[Span], len: usize) -> Vec<(String, String)> {
        let secret = |name: &[u8]| {
            name.eq_ignore_ascii_case(b"authorization") || name.eq_ignore_ascii_case(b"x-key")
        };
        let mut record = Vec::new();
        parallax_capture::format::append_http1_request(
            &mut record,
            1,
            Some(2),
            "GET",
            |out| out.extend_from_slice(b"/p"),
            Some(200),
            Some(3),
            |out| copy_recorded_lines(head, spans, len, secret, b"[redacted]", out),
            b"",
        );
        let decoded = parallax_capture::format::decode(bytes::Bytes::from(record[4..].to_vec()));
        match decoded {
            Ok(Some(parallax_capture::Record::Request(r))) => r.headers,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(head)),
        }
    }

    /// What the recorder listed before the HTTP/1 record: `recorded_headers`,
    /// names lower-cased, values lossily UTF-8, secrets redacted.
    fn listed_and_redacted(head: &[u8], spans: &[Span]) -> Vec<(String, String)> {
        recorded_headers(head, spans)
            .map(|(n, v)| {
                let name = String::from_utf8_lossy(n).to_ascii_lowercase();
                let value = if name == "authorization" || name == "x-key" {
                    "[redacted]".to_owned()
                } else {
                    String::from_utf8_lossy(v).into_owned()
                };
                (name, value)
            })
            .collect()
    }

    #[test]
    fn copied_lines_decode_to_the_listed_headers_with_secrets_redacted() {
        let heads: [&[u8]; 5] = [
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: a\r\nX-A: 1\r\nAuthorization: Bearer t\r\nConnection: close\r\nClose: 1\r\nx-a: 2\r\nKeep-Alive: 5\r\nX-Key:\r\n\r\n",
            b"GET / HTTP/1.1\nHost: h\nKeep-Alive: 5\nX-B: \t v \x80\xff\n\n",
            b"GET / HTTP/1.1\r\nKeep-Alive: 5\r\nHost: h\r\nauthorization: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nProxy-Foo: p\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: a\r\nAuthorization: b\r\nx-key: c\n\r\n",
        ];
        for head in heads {
            let mut out = Vec::new();
            let mut spans = Vec::new();
            let Judged::Boring(h) = judge(
                head,
                "192.0.2.9".parse().unwrap(),
                &mut out,
                Some(&mut spans),
            ) else {
                panic!("a boring head: {:?}", String::from_utf8_lossy(head))
            };
            assert_eq!(
                decoded_from_copied_lines(head, &spans, h.len),
                listed_and_redacted(head, &spans),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    proptest::proptest! {
        /// Any head the raw path takes: the HTTP/1 record's copied lines
        /// decode to the headers the field-by-field record held.
        #[test]
        fn copied_lines_decode_as_the_headers_were_listed(
            headers in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "X-A", "x-a", "X-B", "Accept", "Keep-Alive", "Proxy-Auth", "Authorization",
                        "AUTHORIZATION", "X-Key", "X-Forwarded-For", "Close", "Cookie", "Content-Type",
                    ]),
                    proptest::collection::vec(
                        proptest::sample::select(vec![b'a', b'Z', b' ', b'\t', b',', b'=', 0x80u8, 0xffu8]),
                        0..6,
                    ),
                    proptest::bool::ANY,
                ),
                0..12,
            ),
            host_at in 0usize..12,
            close in proptest::bool::ANY,
            tail_lf in proptest::bool::ANY,
        ) {
            let mut head = b"POST /p HTTP/1.1\r\n".to_vec();
            let mut lines: Vec<Vec<u8>> = headers
                .iter()
                .map(|(name, value, lf)| {
                    let mut line = format!("{name}: ").into_bytes();
                    line.extend_from_slice(value);
                    line.extend_from_slice(if *lf { b"\n" } else { b"\r\n" });
                    line
                })
                .collect();
            lines.insert(host_at.min(lines.len()), b"Host: h\r\n".to_vec());
            if close {
                lines.push(b"Connection: close\r\n".to_vec());
            }
            for line in lines {
                head.extend_from_slice(&line);
            }
            head.extend_from_slice(if tail_lf { b"\n" } else { b"\r\n" });
            let mut out = Vec::new();
            let mut spans = Vec::new();
            if let Judged::Boring(h) = judge(&head, "192.0.2.9".parse().unwrap(), &mut out, Some(&mut spans)) {
                proptest::prop_assert_eq!(
                    decoded_from_copied_lines(&head, &spans, h.len),
                    listed_and_redacted(&head, &spans)
                );
            }
        }
    }

    #[test]
    fn digits_are_plain_and_fit() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"0012"), Some(12));
        assert_eq!(digits(b"18446744073709551615"), None);
        assert_eq!(digits(b""), None);
        assert_eq!(digits(b"1 "), None);
    }
}

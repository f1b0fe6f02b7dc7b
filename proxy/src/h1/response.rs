//! The primary's answer head, rewritten for the client: pure logic.
//!
//! Parsed with `httparse` as hyper's client parses it (its defaults: at most
//! [`MAX_HEADERS`] headers, a head within [`MAX_ANSWER_HEAD_BYTES`]). The
//! head the client gets is what the hyper path sends: the status line
//! (HTTP/1.1, the upstream's code and reason), the headers without the
//! hop-by-hop ones ([`crate::headers::is_hop_by_hop`], and those the answer's
//! `Connection` names), `Transfer-Encoding: chunked` when the body is
//! chunked, hyper's `Date` when the upstream sent none, and
//! `Connection: close` when this is the connection's last answer.
//!
//! The body's framing (RFC 9112 §6.3) decides how the raw path relays it:
//! none for `HEAD`, 1xx, 204 and 304; by `Content-Length`; chunked (the
//! framing followed, [`super::chunked`]); or, with neither, until the
//! upstream closes — then the client's connection closes after it too.

use std::mem::MaybeUninit;

use parallax_compare::{FieldSpan, Fields};

use super::head::{digits, MAX_HEADERS};
use crate::headers::is_hop_by_hop;

/// hyper's read buffer limit, the largest head its client takes.
pub const MAX_ANSWER_HEAD_BYTES: usize = 8192 + 4096 * 100;

/// How the answer's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes.
    Close,
}

/// A parsed answer head.
#[derive(Debug, PartialEq, Eq)]
pub struct AnswerHead {
    /// Bytes of the head in the input.
    pub len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The upstream connection may carry another request after this body.
    pub reusable: bool,
    /// The client's connection ends after this answer.
    pub close: bool,
    /// The upstream's headers kept for the client (hop rules applied), as
    /// `name: value\r\n` lines within the head written to `out`: what the
    /// hyper path's capture for the comparison holds.
    pub headers: std::ops::Range<usize>,
    /// Where each kept header's name and value lie in those lines
    /// (offsets from `headers.start`), noted as they were written when
    /// [`Ask::fields`] asked (empty, unallocated, otherwise): the
    /// comparison's fields are [`Fields::from_spans`] of the lines and
    /// these, without a second scan of the head.
    pub fields: Vec<FieldSpan>,
}

/// Why an answer could not be relayed; the client gets the 502 of a
/// primary that did not answer (nothing of the answer was sent yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    #[error("the primary's answer head is not HTTP/1.x: {0}")]
    Parse(httparse::Error),
    #[error("the primary's answer head is over {MAX_ANSWER_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("the primary's answer has an invalid or ambiguous Content-Length")]
    ContentLength,
    #[error("the primary switched protocols on a request that asked for no upgrade")]
    Switching,
}

/// What the client is to be told about its connection.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// The request was `HEAD`: no body, whatever the head says.
    pub head: bool,
    /// The client's connection ends after this answer (it asked, or the
    /// proxy is shutting down).
    pub close: bool,
    /// The answer is compared (a mirrored request): note where its kept
    /// headers' names and values are written ([`AnswerHead::fields`]).
    pub fields: bool,
}

/// Parses the answer head at the start of `input`; `Ok(None)` means read
/// more. The head for the client goes into `out` (cleared first); `date`
/// writes a `Date` value.
pub fn parse(
    input: &[u8],
    ask: Ask,
    date: impl FnOnce(&mut Vec<u8>),
    out: &mut Vec<u8>,
) -> Result<Option<AnswerHead>, BadAnswer> {
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        input,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() < MAX_ANSWER_HEAD_BYTES => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(BadAnswer::TooLarge),
        Err(e) => return Err(BadAnswer::Parse(e)),
    };
    let status = response.code.expect("a complete head has a code");
    let version = response.version.expect("a complete head has a version");
    if status == 101 {
        return Err(BadAnswer::Switching);
    }
    let headers = &*response.headers;

    let mut upstream_close = version == 0;
    // Whether `Connection` names headers besides the usual tokens.
    let mut names_others = false;
    let mut chunked = None;
    let mut length: Option<u64> = None;
    let mut dated = false;
    for header in headers {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    upstream_close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    names_others = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The last coding decides (RFC 9112 §6.3): chunked, or the
            // body runs to the close.
            let last = header.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            for value in header.value.split(|&b| b == b',') {
                let n = digits(value.trim_ascii()).ok_or(BadAnswer::ContentLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(BadAnswer::ContentLength);
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"date") {
            dated = true;
        }
    }
    let informational = (100..200).contains(&status);
    let framing = if ask.head || informational || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    let close = !informational && (ask.close || framing == Framing::Close);

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut code = [b'0'; 3];
    code[0] += (status / 100 % 10) as u8;
    code[1] += (status / 10 % 10) as u8;
    code[2] += (status % 10) as u8;
    out.extend_from_slice(&code);
    out.push(b' ');
    out.extend_from_slice(response.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let kept = out.len();
    // One allocation, of its final size, for a compared answer's spans.
    let mut fields = Vec::with_capacity(if ask.fields { headers.len() } else { 0 });
    for header in headers {
        let name = header.name.as_bytes();
        if is_hop_by_hop(name)
            || (names_others && named_by_connection(headers, name))
            || (chunked.is_some() && name.eq_ignore_ascii_case(b"content-length"))
        {
            continue;
        }
        let at = out.len() - kept;
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value);
        out.extend_from_slice(b"\r\n");
        if ask.fields {
            let value = at + name.len() + 2;
            fields.push(FieldSpan {
                name: at..at + name.len(),
                value: value..value + header.value.len(),
            });
        }
    }
    let kept = kept..out.len();
    if informational {
        out.extend_from_slice(b"\r\n");
        return Ok(Some(AnswerHead {
            len,
            status,
            framing,
            reusable: true,
            close: false,
            headers: kept,
            fields,
        }));
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(AnswerHead {
        len,
        status,
        framing,
        reusable: !upstream_close && framing != Framing::Close,
        close,
        headers: kept,
        fields,
    }))
}

/// Makes `head` (a final answer's head for the client, as [`parse`] wrote
/// it) the connection's last: `Connection: close` added (the proxy began
/// shutting down while the answer was on its way).
pub fn close_after(head: &mut Vec<u8>, answer: &mut AnswerHead) {
    if answer.close || !head.ends_with(b"\r\n\r\n") {
        return;
    }
    head.truncate(head.len() - 2);
    head.extend_from_slice(b"connection: close\r\n\r\n");
    answer.close = true;
}

/// Header fields as the comparison lists them (`crate::service::header_list`
/// of a `HeaderMap`): names in lower case, the values of one name
/// together, in the order names first appear; values as text (invalid
/// UTF-8 replaced). The fields come from `httparse`, whose names and
/// values are exactly those `http` takes, so none is left out. For what
/// shows fields (samples); the comparison reads [`Fields::from_spans`] of
/// the lines [`parse`] wrote (`AnswerHead::headers`, `AnswerHead::fields`),
/// the same list.
pub fn field_list(fields: &[(&[u8], &[u8])]) -> Vec<(String, String)> {
    Fields::from_pairs(fields.iter().copied())
        .grouped()
        .to_list()
}

/// Whether the answer's `Connection` lists `name`.
fn named_by_connection(headers: &[httparse::Header<'_>], name: &[u8]) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines [`parse`] wrote as the map hyper's client would build.
    fn header_map(lines: &[u8]) -> http::HeaderMap {
        let lines = bytes::Bytes::copy_from_slice(lines);
        let mut map = http::HeaderMap::new();
        for line in lines.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let value = line[colon + 1..]
                .strip_prefix(b" ")
                .unwrap_or(&line[colon + 1..]);
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(&line[..colon]),
                http::HeaderValue::from_maybe_shared(lines.slice_ref(value)),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    const GET: Ask = Ask {
        head: false,
        close: false,
        fields: false,
    };

    fn parsed(input: &str, ask: Ask) -> (AnswerHead, String) {
        let mut out = Vec::new();
        let head = parse(
            input.as_bytes(),
            ask,
            |o| o.extend_from_slice(b"D"),
            &mut out,
        )
        .unwrap()
        .expect("a whole head");
        (head, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_sized_answer_loses_its_hop_by_hop_headers() {
        let input = "HTTP/1.1 200 Fine\r\nDate: d\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\nX-Keep: y\r\n\r\nok";
        let (head, out) = parsed(input, GET);
        assert_eq!(head.len, input.len() - 2);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.reusable && !head.close);
        assert_eq!(
            out,
            "HTTP/1.1 200 Fine\r\nDate: d\r\nContent-Length: 2\r\nX-Keep: y\r\n\r\n"
        );
        let map = header_map(&out.as_bytes()[head.headers.clone()]);
        let pairs: Vec<_> = map
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [("date", "d"), ("content-length", "2"), ("x-keep", "y")]
        );
    }

    /// The comparison's fields of the lines [`parse`] wrote, as a list.
    fn header_list(lines: &[u8]) -> Vec<(String, String)> {
        Fields::from_lines(lines.to_vec()).to_list()
    }

    #[test]
    fn a_long_field_list_is_the_maps_list_too() {
        let lines: String = (0..40).map(|i| format!("x-{}: {i}\r\n", i % 7)).collect();
        let map = header_map(lines.as_bytes());
        assert_eq!(
            header_list(lines.as_bytes()),
            crate::service::header_list(&map)
        );
        assert_eq!(header_list(lines.as_bytes()).len(), 40);
        assert_eq!(
            crate::service::header_fields(&map),
            Fields::from_lines(lines.into_bytes())
        );
    }

    #[test]
    fn the_field_list_is_the_maps_list() {
        let lines = b"Set-Cookie: a\r\nX-B: 1\r\nset-cookie: b\r\nDate: d\r\nx-b: \xff2\r\n";
        let map = header_map(lines);
        assert_eq!(header_list(lines), crate::service::header_list(&map));
        let pairs: Vec<(&[u8], &[u8])> = map
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_bytes()))
            .collect();
        assert_eq!(field_list(&pairs), crate::service::header_list(&map));
        assert_eq!(
            header_list(lines)[..3],
            [
                ("set-cookie".to_owned(), "a".to_owned()),
                ("set-cookie".to_owned(), "b".to_owned()),
                ("x-b".to_owned(), "1".to_owned())
            ]
        );
    }

    #[test]
    fn the_kept_headers_leave_out_what_the_proxy_adds() {
        let (head, out) = parsed(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
            Ask { close: true, ..GET },
        );
        let map = header_map(&out.as_bytes()[head.headers.clone()]);
        let pairs: Vec<_> = map
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(pairs, [("x-a", "1"), ("x-a", "2")]);
    }

    #[test]
    fn chunked_is_reframed_and_a_missing_date_added() {
        let (head, out) = parsed(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
            GET,
        );
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: D\r\n\r\n"
        );
    }

    #[test]
    fn an_answer_framed_by_close_closes_the_client() {
        let (head, out) = parsed("HTTP/1.1 200 OK\r\ndate: d\r\n\r\n", GET);
        assert_eq!(head.framing, Framing::Close);
        assert!(head.close && !head.reusable);
        assert!(out.ends_with("connection: close\r\n\r\n"), "{out}");
        let (head, _) = parsed(
            "HTTP/1.1 200 OK\r\ndate: d\r\nTransfer-Encoding: gzip\r\n\r\n",
            GET,
        );
        assert_eq!(head.framing, Framing::Close);
    }

    #[test]
    fn head_204_304_and_1xx_have_no_body() {
        let head_request = Ask { head: true, ..GET };
        let (head, out) = parsed(
            "HTTP/1.1 200 OK\r\ndate: d\r\ncontent-length: 5\r\n\r\n",
            head_request,
        );
        assert_eq!(head.framing, Framing::Empty);
        assert!(out.contains("content-length: 5"));
        for status in ["204 No Content", "304 Not Modified", "103 Early Hints"] {
            let (head, _) = parsed(&format!("HTTP/1.1 {status}\r\ndate: d\r\n\r\n"), GET);
            assert_eq!(head.framing, Framing::Empty, "{status}");
            assert!(head.reusable, "{status}");
        }
    }

    #[test]
    fn an_http10_or_closing_upstream_is_not_reused_and_the_client_may_ask_to_close() {
        let (head, _) = parsed(
            "HTTP/1.0 200 OK\r\ndate: d\r\ncontent-length: 0\r\n\r\n",
            GET,
        );
        assert!(!head.reusable);
        let (head, out) = parsed(
            "HTTP/1.1 200 OK\r\ndate: d\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            Ask { close: true, ..GET },
        );
        assert!(!head.reusable && head.close);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ndate: d\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn an_answer_can_be_made_the_last_after_the_fact() {
        let (mut head, out) = parsed(
            "HTTP/1.1 200 OK\r\ndate: d\r\ncontent-length: 0\r\n\r\n",
            GET,
        );
        let mut out = out.into_bytes();
        close_after(&mut out, &mut head);
        assert!(head.close);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\ndate: d\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        close_after(&mut out, &mut head);
        assert!(out.ends_with(b"content-length: 0\r\nconnection: close\r\n\r\n"));
    }

    /// One generated header line of an answer head: names in mixed case
    /// (duplicates, hop-by-hop ones, ones `Connection` names), values of
    /// any bytes a field value may hold (empty, obs-text, not UTF-8).
    fn head_line() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let name = prop_oneof![
            3 => prop::sample::select(
                &["Content-Type", "content-type", "X-A", "x-a", "X-a", "Set-Cookie", "Date",
                  "Keep-Alive", "X-Hop", "Trailer", "X-Empty"][..]
            )
            .prop_map(str::to_owned),
            1 => "[a-zA-Z][a-zA-Z0-9-]{0,6}",
        ];
        let value_byte = prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff];
        prop_oneof![
            6 => (name, prop::collection::vec(value_byte, 0..10)).prop_map(|(n, v)| {
                [n.as_bytes(), b": ", &v, b"\r\n"].concat()
            }),
            1 => prop::sample::select(
                &["Connection: keep-alive, X-Hop\r\n", "Transfer-Encoding: chunked\r\n",
                  "Content-Length: 0\r\n", "x-a:no-space\r\n", "X-Empty:\r\n"][..]
            )
            .prop_map(|l| l.as_bytes().to_vec()),
            // obs-fold: a continuation of the line before.
            1 => "[ \t][a-z]{1,4}".prop_map(|l| format!("{l}\r\n").into_bytes()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

        /// The spans [`parse`] notes as it writes the kept lines give the
        /// fields a scan of those lines gives (names as sent, in order,
        /// values of one name together); a folded line is refused before
        /// there are any.
        #[test]
        fn the_written_spans_are_the_fields_of_the_written_lines(
            lines in proptest::collection::vec(head_line(), 0..10),
            status in proptest::sample::select(&[200u16, 204, 404, 103][..]),
        ) {
            let head = [format!("HTTP/1.1 {status} X\r\n").as_bytes(), &lines.concat(), b"\r\n"].concat();
            let folded = lines.iter().any(|l| l[0] == b' ' || l[0] == b'\t');
            let mut out = Vec::new();
            let ask = Ask { fields: true, ..GET };
            match parse(&head, ask, |o| o.extend_from_slice(b"D"), &mut out) {
                Ok(Some(answer)) => {
                    proptest::prop_assert!(!folded, "a folded head was taken");
                    let kept = out[answer.headers.clone()].to_vec();
                    let scanned = Fields::from_lines(kept.clone());
                    proptest::prop_assert_eq!(answer.fields.len(), scanned.len());
                    let spanned = Fields::from_spans(kept, answer.fields);
                    proptest::prop_assert_eq!(
                        spanned.iter().collect::<Vec<_>>(),
                        scanned.iter().collect::<Vec<_>>()
                    );
                    // Not asked: nothing noted, nothing allocated.
                    let answer = parse(&head, GET, |_| {}, &mut out).unwrap().unwrap();
                    proptest::prop_assert_eq!(answer.fields.capacity(), 0);
                }
                Ok(None) => proptest::prop_assert!(false, "a whole head read as partial"),
                Err(BadAnswer::Parse(_)) if folded => {}
                Err(e) => proptest::prop_assert!(false, "{e} for {:?}", String::from_utf8_lossy(&head)),
            }
        }
    }

    #[test]
    fn broken_answers_are_errors() {
        let mut out = Vec::new();
        let mut bad = |input: &str| parse(input.as_bytes(), GET, |_| {}, &mut out).unwrap_err();
        assert_eq!(
            bad("HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"),
            BadAnswer::ContentLength
        );
        assert_eq!(
            bad("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"),
            BadAnswer::ContentLength
        );
        assert_eq!(
            bad("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            BadAnswer::Switching
        );
        assert!(matches!(
            bad("HTTX/1.1 200 OK\r\n\r\n"),
            BadAnswer::Parse(_)
        ));
        let mut out = Vec::new();
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\n", GET, |_| {}, &mut out),
            Ok(None)
        );
    }
}

//! One backend's answer as the engine sees it: status, header fields, whole
//! body, trailer fields.
//!
//! # Why fields are spans over one buffer
//! The proxy builds two of these per mirrored request (the primary's answer
//! and the shadow's), and the comparison reads few of their fields: the
//! allow-listed ones, `Content-Type`, `Content-Encoding` and, for gRPC,
//! `grpc-*`. A `String` per name and per value was most of a mirrored
//! request's allocations. [`Fields`] keeps the text the fields arrived in —
//! an HTTP/1.1 answer's `name: value\r\n` lines are taken as the buffer
//! they are in, checked as UTF-8 once, not copied ([`Fields::from_lines`])
//! — and a list of where each name and value lies in it: one allocation
//! per answer (that list), none per field, no check per lookup. Where the
//! lines were just written by a parser that knows where each name and
//! value went (the proxy's answer-head parser), that list is handed over
//! ([`Fields::from_spans`]) and the lines are not scanned again.
//!
//! # The same fields a list of pairs gives
//! The engine used to hold `Vec<(String, String)>` with names lower-cased
//! and values as UTF-8 (invalid bytes replaced). [`Fields`] answers every
//! question that list answered the same way: names are matched
//! case-insensitively (ASCII, as lower-casing them was), values are UTF-8
//! (a buffer with invalid bytes is rebuilt with them replaced, once, at
//! construction), and [`Fields::to_list`] gives that very list, names
//! lower-cased, for what shows all fields (mismatch samples). Equality is
//! the lists' equality. `compare/tests/properties.rs` checks all of it
//! against the pair-list model on generated fields.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

/// An answer as the comparison reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub status: u16,
    pub headers: Fields,
    pub body: Bytes,
    /// Trailer fields after the body (gRPC's `grpc-status` lives here).
    pub trailers: Fields,
}

impl Observed {
    /// An answer with these header fields, in this order, and no trailers.
    pub fn new<'a>(
        status: u16,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: impl Into<Bytes>,
    ) -> Self {
        Self {
            status,
            headers: Fields::from_pairs(headers),
            body: body.into(),
            trailers: Fields::default(),
        }
    }

    /// The same answer with these trailer fields.
    pub fn with_trailers<'a>(
        mut self,
        trailers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        self.trailers = Fields::from_pairs(trailers);
        self
    }

    /// Header `name`, or else trailer `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.header(name).or_else(|| self.trailers.get(name))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The media type without parameters, lower-cased (`application/json`).
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type")
            .map(|v| media_type_of(v).to_ascii_lowercase())
    }
}

/// A `Content-Type` value's media type as written (parameters and
/// surrounding whitespace cut, case kept): [`Observed::media_type`] without
/// its allocation, for case-insensitive tests.
pub fn media_type_of(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Where one field's name and value lie in a buffer of field lines (and
/// then in [`Fields`]'s text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpan {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// Header or trailer fields: names with their case as sent, matched
/// case-insensitively; values as UTF-8. See the module doc for why.
#[derive(Clone, Default)]
pub struct Fields {
    /// Every span is cut at an ASCII byte or between whole strings, so
    /// slicing it is a `str` again without a check of its bytes.
    text: String,
    spans: Vec<FieldSpan>,
}

impl Fields {
    /// These fields, in this order; bytes that are not UTF-8 replaced by
    /// U+FFFD (as `String::from_utf8_lossy`). One buffer is written for
    /// all of them: a copy, for callers that have pairs (hyper's maps,
    /// trailers, tests).
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut text = String::new();
        let mut spans = Vec::new();
        for (name, value) in pairs {
            let name = append(&mut text, name.as_ref());
            let value = append(&mut text, value.as_ref());
            spans.push(FieldSpan { name, value });
        }
        Self { text, spans }
    }

    /// The fields of HTTP/1.1 `name: value\r\n` lines (a parsed head's
    /// header lines, as the proxy rewrites them: one space after the
    /// colon, no folding), kept in the buffer they came in (no copy): a
    /// line without a colon is not a field; one space after the colon and
    /// the line's `\r` are not part of the value. Listed as an
    /// `http::HeaderMap` lists them (the values of one name together,
    /// names in the order they first appear), so both of the proxy's paths
    /// show fields alike.
    pub fn from_lines(lines: Vec<u8>) -> Self {
        let spans = line_spans(&lines);
        Self::from_spans(lines, spans)
    }

    /// The fields at `spans` of `lines`, in that order, kept in the buffer
    /// they came in (no copy, no scan of the lines): for a parser that
    /// wrote or found the lines and knows where each name and value lies.
    /// Listed as [`Fields::from_lines`] lists them (the values of one name
    /// together); a buffer that is not UTF-8 is rebuilt with replacements.
    ///
    /// # Panics
    /// When a span is not within `lines`, or, in UTF-8 lines, cuts a
    /// character: a parser's bug, never the answer's bytes.
    pub fn from_spans(lines: Vec<u8>, spans: Vec<FieldSpan>) -> Self {
        let text = match String::from_utf8(lines) {
            Ok(text) => text,
            // Rare (obs-text that is not UTF-8): rebuilt with replacements.
            Err(e) => {
                let lines = e.into_bytes();
                let pairs = spans
                    .iter()
                    .map(|s| (&lines[s.name.clone()], &lines[s.value.clone()]));
                return Self::from_pairs(pairs).grouped();
            }
        };
        // Checked once here, so that a lookup may slice without a check.
        let cut = |at: usize| text.is_char_boundary(at);
        assert!(
            spans.iter().all(|s| s.name.start <= s.name.end
                && s.value.start <= s.value.end
                && cut(s.name.start)
                && cut(s.name.end)
                && cut(s.value.start)
                && cut(s.value.end)),
            "Fields::from_spans: a span outside the lines or within a character"
        );
        Self { text, spans }.grouped()
    }

    /// The same fields with the values of one name together, names in the
    /// order they first appear (as an `http::HeaderMap` lists them); the
    /// order within a name, and otherwise, is kept.
    pub fn grouped(mut self) -> Self {
        let n = self.spans.len();
        let mut i = 0;
        while i < n {
            // spans[i..end] have spans[i]'s name.
            let mut end = i + 1;
            for k in i + 1..n {
                let (a, b) = (&self.spans[k].name, &self.spans[i].name);
                if a.len() == b.len() && same_name(self.name_bytes(k), self.name_bytes(i)) {
                    self.spans[end..=k].rotate_right(1);
                    end += 1;
                }
            }
            i = end;
        }
        self
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = name.as_bytes();
        let text = self.text.as_bytes();
        self.spans
            .iter()
            .find(|s| same_name(&text[s.name.clone()], name))
            .map(|s| self.str(s.value.clone()))
    }

    /// The fields in order, names as sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.spans
            .iter()
            .map(|s| (self.str(s.name.clone()), self.str(s.value.clone())))
    }

    /// The fields as a list of pairs, names lower-cased: what samples show.
    pub fn to_list(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// A name as bytes: sliced without `str`'s char-boundary checks (this
    /// runs for every field on every lookup).
    fn name_bytes(&self, i: usize) -> &[u8] {
        &self.text.as_bytes()[self.spans[i].name.clone()]
    }

    fn str(&self, range: Range<usize>) -> &str {
        &self.text[range]
    }
}

/// Whether two names are equal with ASCII case aside
/// (`eq_ignore_ascii_case`), eight bytes at a time: every lookup compares
/// names (five per mirrored request, each against every field), and byte by
/// byte the matching one cost about 100 instructions (callgrind, issue 16).
fn same_name(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.eq_ignore_ascii_case(b);
    }
    let word =
        |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("eight bytes"));
    let mut at = 0;
    while at + 8 <= n {
        if fold(word(a, at)) != fold(word(b, at)) {
            return false;
        }
        at += 8;
    }
    // The tail as the last eight bytes (overlapping bytes already equal).
    at == n || fold(word(a, n - 8)) == fold(word(b, n - 8))
}

/// Each byte of `w` as `u8::to_ascii_lowercase` makes it: `A`..=`Z` get
/// 0x20 added, every other byte (non-ASCII included) is kept.
fn fold(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte, its low seven bits plus a constant that sets the high bit
    // from a threshold on; no byte carries into the next (at most 0xbe).
    let low = w & !HIGH;
    let at_least_a = low + ONES * u64::from(0x80 - b'A');
    let above_z = low + ONES * u64::from(0x80 - b'Z' - 1);
    let upper = at_least_a & !above_z & !w & HIGH;
    w | (upper >> 2)
}

/// Appends `bytes` to `text` as UTF-8 (invalid bytes replaced) and says
/// where they went.
fn append(text: &mut String, bytes: &[u8]) -> Range<usize> {
    let start = text.len();
    text.push_str(&String::from_utf8_lossy(bytes));
    start..text.len()
}

/// Where the fields of `name: value\r\n` lines lie (see
/// [`Fields::from_lines`]): one pass, a line's colon or end found by
/// `memchr`.
fn line_spans(lines: &[u8]) -> Vec<FieldSpan> {
    // Most lines are longer than 16 bytes: rarely grown, little unused.
    let mut spans = Vec::with_capacity(lines.len() / 16 + 1);
    let mut start = 0;
    while start < lines.len() {
        let rest = &lines[start..];
        let (colon, end) = match memchr::memchr2(b':', b'\n', rest) {
            Some(i) if rest[i] == b':' => {
                let end = memchr::memchr(b'\n', &rest[i..]).map_or(rest.len(), |j| i + j);
                (Some(i), end)
            }
            Some(i) => (None, i),
            None => (None, rest.len()),
        };
        if let Some(colon) = colon {
            let line_end = if rest[..end].ends_with(b"\r") {
                end - 1
            } else {
                end
            };
            let value = if rest.get(colon + 1) == Some(&b' ') && colon + 1 < line_end {
                colon + 2
            } else {
                colon + 1
            };
            spans.push(FieldSpan {
                name: start..start + colon,
                value: start + value..start + line_end.max(value),
            });
        }
        start += end + 1;
    }
    spans
}

/// Equal when the lists are: the same names (ASCII case aside) with the
/// same values, in the same order.
impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|((a, x), (b, y))| a.eq_ignore_ascii_case(b) && x == y)
    }
}

impl Eq for Fields {}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_fields_without_a_copy() {
        let lines = b"Content-Type: text/plain\r\nX-A:1\r\nbroken\r\nX-B: \r\n".to_vec();
        let at = lines.as_ptr();
        let fields = Fields::from_lines(lines);
        assert_eq!(
            fields.iter().collect::<Vec<_>>(),
            [("Content-Type", "text/plain"), ("X-A", "1"), ("X-B", "")]
        );
        assert_eq!(fields.get("content-type"), Some("text/plain"));
        assert_eq!(fields.text.as_ptr(), at);
    }

    #[test]
    fn the_values_of_one_name_are_listed_together() {
        let fields = Fields::from_lines(
            b"Set-Cookie: a\r\nX-B: 1\r\nset-cookie: b\r\nDate: d\r\nx-b: 2\r\n".to_vec(),
        );
        assert_eq!(
            fields.to_list(),
            [
                ("set-cookie", "a"),
                ("set-cookie", "b"),
                ("x-b", "1"),
                ("x-b", "2"),
                ("date", "d")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn names_are_folded_as_to_ascii_lowercase_folds_them() {
        for byte in 0..=255u8 {
            for at in 0..8 {
                let mut w = [b'x'; 8];
                w[at] = byte;
                let mut lower = w;
                lower[at] = byte.to_ascii_lowercase();
                assert_eq!(
                    fold(u64::from_le_bytes(w)).to_le_bytes(),
                    lower,
                    "{byte:#x} at {at}"
                );
            }
        }
        let names: [&[u8]; 7] = [
            b"content-type",
            b"Content-Type",
            b"CONTENT-TYPE",
            b"content-typf",
            b"Content-Encoding",
            b"x-\xc3\xa9\xc3\x89abcdef",
            b"X-\xc3\xa9\xc3\x89ABCDEF",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a.eq_ignore_ascii_case(b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced() {
        let fields = Fields::from_lines(b"X-A: \xff1\r\nX-B: 2\r\n".to_vec());
        assert_eq!(fields.get("x-a"), Some("\u{fffd}1"));
        assert_eq!(fields.get("x-b"), Some("2"));
    }
}

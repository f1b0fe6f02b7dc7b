//! One backend's answer as the engine sees it: status, header fields, whole
//! body, trailer fields.
//!
//! # Why fields are spans over one buffer
//! The proxy builds two of these per mirrored request (the primary's answer
//! and the shadow's), and the comparison reads few of their fields: the
//! allow-listed ones, `Content-Type`, `Content-Encoding` and, for gRPC,
//! `grpc-*`. A `String` per name and per value was most of a mirrored
//! request's allocations. [`Fields`] keeps the text the fields arrived in —
//! an HTTP/1.1 answer's `name: value\r\n` lines are already one `Bytes`,
//! shared, not copied ([`Fields::from_lines`]) — and a list of where each
//! name and value lies in it: one allocation per answer, none per field.
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

/// Where one field's name and value lie in [`Fields`]'s text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    name: Range<usize>,
    value: Range<usize>,
}

/// Header or trailer fields: names with their case as sent, matched
/// case-insensitively; values as UTF-8. See the module doc for why.
#[derive(Clone, Default)]
pub struct Fields {
    /// UTF-8 throughout (checked, or rebuilt, at construction), so every
    /// span, cut at ASCII bytes or between whole strings, is UTF-8 too.
    text: Bytes,
    spans: Vec<Span>,
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
            spans.push(Span { name, value });
        }
        Self {
            text: Bytes::from(text),
            spans,
        }
    }

    /// The fields of HTTP/1.1 `name: value\r\n` lines (a parsed head's
    /// header lines, as the proxy rewrites them: one space after the
    /// colon, no folding), without copying them: a line without a colon
    /// is not a field; one space after the colon and the line's `\r` are
    /// not part of the value. Listed as an `http::HeaderMap` lists them
    /// (the values of one name together, names in the order they first
    /// appear), so both of the proxy's paths show fields alike.
    pub fn from_lines(lines: Bytes) -> Self {
        let mut spans = Vec::with_capacity(count(&lines, b'\n'));
        let mut start = 0;
        while start < lines.len() {
            let end = lines[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(lines.len(), |i| start + i);
            let line_end = if end > start && lines[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            if let Some(colon) = lines[start..line_end].iter().position(|&b| b == b':') {
                let colon = start + colon;
                let mut value = colon + 1;
                if value < line_end && lines[value] == b' ' {
                    value += 1;
                }
                spans.push(Span {
                    name: start..colon,
                    value: value..line_end,
                });
            }
            start = end + 1;
        }
        let fields = if std::str::from_utf8(&lines).is_ok() {
            Self { text: lines, spans }
        } else {
            // Rare (obs-text that is not UTF-8): rebuilt with replacements.
            let text = Self { text: lines, spans };
            Self::from_pairs(text.spans.iter().map(|s| {
                let (name, value) = (&text.text[s.name.clone()], &text.text[s.value.clone()]);
                (name, value)
            }))
        };
        fields.grouped()
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
                if self.name_bytes(k).eq_ignore_ascii_case(self.name_bytes(i)) {
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
        (0..self.spans.len())
            .find(|&i| self.name_bytes(i).eq_ignore_ascii_case(name))
            .map(|i| self.str(self.spans[i].value.clone()))
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

    fn name_bytes(&self, i: usize) -> &[u8] {
        &self.text[self.spans[i].name.clone()]
    }

    fn str(&self, range: Range<usize>) -> &str {
        std::str::from_utf8(&self.text[range]).expect("fields are UTF-8 by construction")
    }
}

/// Appends `bytes` to `text` as UTF-8 (invalid bytes replaced) and says
/// where they went.
fn append(text: &mut String, bytes: &[u8]) -> Range<usize> {
    let start = text.len();
    text.push_str(&String::from_utf8_lossy(bytes));
    start..text.len()
}

fn count(bytes: &[u8], byte: u8) -> usize {
    bytes.iter().filter(|&&b| b == byte).count()
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
        let lines = Bytes::from_static(b"Content-Type: text/plain\r\nX-A:1\r\nbroken\r\nX-B: \r\n");
        let fields = Fields::from_lines(lines.clone());
        assert_eq!(
            fields.iter().collect::<Vec<_>>(),
            [("Content-Type", "text/plain"), ("X-A", "1"), ("X-B", "")]
        );
        assert_eq!(fields.get("content-type"), Some("text/plain"));
        assert_eq!(fields.text.as_ptr(), lines.as_ptr());
    }

    #[test]
    fn the_values_of_one_name_are_listed_together() {
        let fields = Fields::from_lines(Bytes::from_static(
            b"Set-Cookie: a\r\nX-B: 1\r\nset-cookie: b\r\nDate: d\r\nx-b: 2\r\n",
        ));
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
    fn bytes_that_are_not_utf8_are_replaced() {
        let fields = Fields::from_lines(Bytes::from_static(b"X-A: \xff1\r\nX-B: 2\r\n"));
        assert_eq!(fields.get("x-a"), Some("\u{fffd}1"));
        assert_eq!(fields.get("x-b"), Some("2"));
    }
}

//! The JSON tree the engine compares.
//!
//! `serde_json::Value` would turn `12345678901234567890123` into an `f64`
//! and lose what a migration most often breaks, so this tree keeps every
//! number as its literal text ([`crate::number`] compares them exactly).
//! Objects are sorted by key, the last of repeated keys winning as in
//! JavaScript, Go and serde, so members are found by binary search and
//! walked in step.
//!
//! Parsing is iterative (jiter's pull parser plus our own stack), so a
//! hostile nesting cannot overflow the stack; nesting deeper than the
//! caller's bound is refused with [`ParseError::TooDeep`], which also keeps
//! the recursive walks over a parsed tree (diff, drop) shallow.

use jiter::{Jiter, Peek};

/// A parsed JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The literal as written (`1.50`, `-0`, `1e400`).
    Number(Box<str>),
    String(String),
    Array(Vec<Json>),
    /// Sorted by key, keys unique.
    Object(Vec<(String, Json)>),
}

/// Why a body is not a JSON document the engine compares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    Syntax(String),
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(usize),
}

enum Frame {
    Array(Vec<Json>),
    Object(Vec<(String, Json)>, String),
}

/// Parses `bytes` as one JSON document nested at most `max_depth` deep.
pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Json, ParseError> {
    let mut jiter = Jiter::new(bytes);
    let syntax = |e: jiter::JiterError| ParseError::Syntax(e.to_string());
    let mut stack: Vec<Frame> = Vec::new();
    let mut peek = jiter.peek().map_err(syntax)?;
    loop {
        // Read one value starting at `peek`; containers push a frame and
        // continue with their first element.
        let mut value = match peek {
            Peek::Null => {
                jiter.known_null().map_err(syntax)?;
                Json::Null
            }
            Peek::True | Peek::False => Json::Bool(jiter.known_bool(peek).map_err(syntax)?),
            Peek::String => Json::String(jiter.known_str().map_err(syntax)?.to_owned()),
            Peek::Array | Peek::Object if stack.len() >= max_depth => {
                return Err(ParseError::TooDeep(max_depth))
            }
            Peek::Array => match jiter.known_array().map_err(syntax)? {
                Some(first) => {
                    stack.push(Frame::Array(Vec::new()));
                    peek = first;
                    continue;
                }
                None => Json::Array(Vec::new()),
            },
            Peek::Object => match jiter.known_object().map_err(syntax)? {
                Some(key) => {
                    stack.push(Frame::Object(Vec::new(), key.to_owned()));
                    peek = jiter.peek().map_err(syntax)?;
                    continue;
                }
                None => Json::Object(Vec::new()),
            },
            _ => {
                let text = jiter.known_number_bytes(peek).map_err(syntax)?;
                // jiter checked the grammar: the bytes are ASCII.
                Json::Number(String::from_utf8_lossy(text).into())
            }
        };
        // Hand the value to its container; close containers that end.
        loop {
            match stack.last_mut() {
                None => {
                    jiter.finish().map_err(syntax)?;
                    return Ok(value);
                }
                Some(Frame::Array(items)) => {
                    items.push(value);
                    match jiter.array_step().map_err(syntax)? {
                        Some(next) => {
                            peek = next;
                            break;
                        }
                        None => {
                            let Some(Frame::Array(items)) = stack.pop() else {
                                unreachable!("the top frame is an array")
                            };
                            value = Json::Array(items);
                        }
                    }
                }
                Some(Frame::Object(members, key)) => {
                    members.push((std::mem::take(key), value));
                    match jiter.next_key().map_err(syntax)? {
                        Some(next) => {
                            *key = next.to_owned();
                            peek = jiter.peek().map_err(syntax)?;
                            break;
                        }
                        None => {
                            let Some(Frame::Object(members, _)) = stack.pop() else {
                                unreachable!("the top frame is an object")
                            };
                            value = Json::Object(sorted(members));
                        }
                    }
                }
            }
        }
    }
}

/// Members sorted by key; of repeated keys the last one stays.
fn sorted(mut members: Vec<(String, Json)>) -> Vec<(String, Json)> {
    // A stable sort keeps repeated keys in document order; keep the last.
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, Json)> = Vec::with_capacity(members.len());
    for (k, v) in members {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 = v,
            _ => out.push((k, v)),
        }
    }
    out
}

impl Json {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members
                .binary_search_by(|(k, _)| k.as_str().cmp(key))
                .ok()
                .map(|i| &members[i].1),
            _ => None,
        }
    }

    /// The value at a JSON pointer's unescaped segments.
    pub fn at<'a>(&'a self, segments: &[String]) -> Option<&'a Json> {
        let mut at = self;
        for s in segments {
            at = match at {
                Json::Object(_) => at.get(s)?,
                Json::Array(items) => items.get(s.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(at)
    }

    /// The JSON type name, as differences report it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// Compact JSON, cut after about `limit` bytes (`…` marks the cut).
    pub fn render(&self, limit: usize) -> String {
        let mut out = String::new();
        self.write(&mut out, limit);
        if out.len() > limit {
            let mut cut = limit;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
        }
        out
    }

    fn write(&self, out: &mut String, limit: usize) {
        if out.len() > limit {
            return;
        }
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out, limit);
                    if out.len() > limit {
                        return;
                    }
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write(out, limit);
                    if out.len() > limit {
                        return;
                    }
                }
                out.push('}');
            }
        }
    }

    /// The tree of a `serde_json::Value` (numbers keep serde's exact
    /// u64/i64/f64 spelling).
    pub fn from_serde(value: &serde_json::Value) -> Json {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Number(n.to_string().into()),
            serde_json::Value::String(s) => Json::String(s.clone()),
            serde_json::Value::Array(items) => {
                Json::Array(items.iter().map(Json::from_serde).collect())
            }
            serde_json::Value::Object(map) => Json::Object(sorted(
                map.iter()
                    .map(|(k, v)| (k.clone(), Json::from_serde(v)))
                    .collect(),
            )),
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    // serde_json's escaping, without an intermediate Value.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Json {
        parse(s.as_bytes(), 64).unwrap()
    }

    #[test]
    fn numbers_keep_their_text() {
        assert_eq!(
            p("[12345678901234567890123, 1.50, -0]"),
            Json::Array(vec![
                Json::Number("12345678901234567890123".into()),
                Json::Number("1.50".into()),
                Json::Number("-0".into()),
            ])
        );
    }

    #[test]
    fn objects_are_sorted_and_the_last_repeated_key_wins() {
        let v = p(r#"{"b":1,"a":2,"b":3}"#);
        assert_eq!(v.get("b"), Some(&Json::Number("3".into())));
        assert_eq!(v.render(100), r#"{"a":2,"b":3}"#);
    }

    #[test]
    fn nesting_beyond_the_bound_is_refused_without_recursion() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(parse(deep.as_bytes(), 256), Err(ParseError::TooDeep(256)));
        let ok = "[".repeat(10) + &"]".repeat(10);
        assert!(parse(ok.as_bytes(), 10).is_ok());
        assert!(parse(ok.as_bytes(), 9).is_err());
    }

    #[test]
    fn malformed_documents_are_syntax_errors() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "1 2",
            "NaN",
            "[01]",
            "\"\\ud800\"x",
        ] {
            assert!(
                matches!(parse(bad.as_bytes(), 64), Err(ParseError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(parse(b"\"\xff\"", 64).is_err(), "invalid UTF-8 in a string");
    }

    #[test]
    fn render_cuts_long_values() {
        let v = p(&format!("[{}]", vec!["1"; 1000].join(",")));
        let r = v.render(20);
        assert!(r.ends_with('…') && r.len() < 30, "{r}");
    }

    #[test]
    fn pointers_reach_into_objects_and_arrays() {
        let v = p(r#"{"a":[{"id":7}]}"#);
        let seg = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            v.at(&seg(&["a", "0", "id"])),
            Some(&Json::Number("7".into()))
        );
        assert_eq!(v.at(&seg(&["a", "1"])), None);
    }
}

//! The comparison engine of the shadowing proxy.
//!
//! Given the primary's and the shadow's answer to the same request, it says
//! what differs — status, allowed headers, and the body field by field — after
//! the route's rules have removed what is expected to differ. With a
//! secondary (a second primary instance) it also tells real differences from
//! noise: a field that differs between two identical primaries is not
//! evidence against the shadow.
//!
//! # Layout
//! - [`observed`]: one backend's answer as the engine sees it.
//! - [`rules`]: per-route rules: header allow-list, ignored JSON pointers,
//!   regex and Go↔Rust normalisers, array pairing, number tolerance, bounds.
//! - [`config`]: the same rules as TOML tables (`[services.compare]`), validated.
//! - [`pointer`]: JSON-pointer globs (`/items/*/id`, `/**/updatedAt`).
//! - [`value`]: the JSON tree, numbers kept as written, parsed without recursion.
//! - [`number`]: exact comparison of JSON numbers.
//! - [`json`]: structural JSON diff with paths and difference kinds, aligned arrays, bounded cost.
//! - [`encoding`]: undoing `Content-Encoding` (gzip, deflate, br, zstd) within a size bound.
//! - [`body`]: picking the body comparison by content type (JSON, protobuf, gRPC, text, bytes).
//! - [`grpc`]: gRPC answers: `grpc-status`/`grpc-message`, and the message stream diffed as an array.
//! - [`protobuf`]: decoding `application/x-protobuf` with the project's descriptors.
//! - [`noise`]: classifying differences as mismatch or noise using a secondary.

pub mod body;
pub mod config;
pub mod encoding;
pub mod grpc;
pub mod json;
pub mod noise;
pub mod number;
pub mod observed;
pub mod pointer;
pub mod protobuf;
pub mod reflection;
pub mod rules;
pub mod value;

use std::borrow::Cow;

use serde::Serialize;

pub use noise::{NoiseModel, Outcome, Verdict};
pub use observed::{FieldSpan, Fields, Observed};
pub use rules::Rules;

/// What kind of difference was found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Status codes differ.
    Status,
    /// An allowed header differs, or is present on one side only.
    Header,
    /// A JSON field the primary has is missing in the shadow.
    Missing,
    /// The shadow has a JSON field the primary lacks.
    Extra,
    /// The same JSON path holds different types.
    Type,
    /// The same JSON path holds different scalar values.
    Value,
    /// Arrays at the same path have different lengths (arrays too large
    /// to align element by element).
    ArrayLength,
    /// Text bodies differ.
    Text,
    /// Opaque bodies differ.
    Bytes,
    /// A body does not decode under its `Content-Encoding`.
    Encoding,
    /// A bound on the comparison was reached (decoded size, depth, work,
    /// differences kept): what lies past it was not compared. Counts as a
    /// mismatch: the engine never claims a match it did not check.
    Limit,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Header => "header",
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Type => "type",
            Kind::Value => "value",
            Kind::ArrayLength => "array_length",
            Kind::Text => "text",
            Kind::Bytes => "bytes",
            Kind::Encoding => "encoding",
            Kind::Limit => "limit",
        }
    }
}

/// One difference between primary and shadow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `status`, `header:<name>`, `body` (whole body, or a bound), or a
    /// JSON pointer into the body such as `/rejected/0/reason`.
    pub path: String,
    pub kind: Kind,
    /// The primary's value at the path, rendered (absent: `None`).
    pub primary: Option<String>,
    /// The shadow's value at the path, rendered.
    pub shadow: Option<String>,
}

/// Everything that differs between `primary` and `shadow` under `rules`.
pub fn compare(primary: &Observed, shadow: &Observed, rules: &Rules) -> Vec<Difference> {
    let mut out = Vec::new();
    if primary.status != shadow.status {
        out.push(Difference {
            path: "status".into(),
            kind: Kind::Status,
            primary: Some(primary.status.to_string()),
            shadow: Some(shadow.status.to_string()),
        });
    }
    // Allow-listed fields are looked for in the headers, then the trailers.
    // Compared borrowed: a value is copied only into a difference.
    for name in &rules.headers {
        let a = primary.field(name).map(|v| rules.normalise(v));
        let b = shadow.field(name).map(|v| rules.normalise(v));
        if a != b {
            out.push(Difference {
                path: format!("header:{name}"),
                kind: Kind::Header,
                primary: a.map(Cow::into_owned),
                shadow: b.map(Cow::into_owned),
            });
        }
    }
    body::compare(primary, shadow, rules, &mut out);
    out.retain(|d| !rules.ignores(&d.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(status: u16, body: &str) -> Observed {
        Observed::new(
            status,
            [("content-type", "application/json")],
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn identical_answers_have_no_differences() {
        let a = json(200, r#"{"accepted":1}"#);
        assert!(compare(&a, &a.clone(), &Rules::default()).is_empty());
    }

    #[test]
    fn status_differences_are_reported() {
        let d = compare(&json(200, "{}"), &json(503, "{}"), &Rules::default());
        assert_eq!(d[0].path, "status");
        assert_eq!(d[0].kind, Kind::Status);
    }

    #[test]
    fn only_allow_listed_headers_are_compared() {
        let a = Observed::new(
            200,
            [("content-type", "text/plain"), ("date", "Mon")],
            b"x".to_vec(),
        );
        let b = Observed::new(
            200,
            [("content-type", "text/html"), ("date", "Tue")],
            b"x".to_vec(),
        );
        let rules = Rules {
            headers: vec!["content-type".into()],
            ..Rules::default()
        };
        let d = compare(&a, &b, &rules);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "header:content-type");
    }

    #[test]
    fn ignored_pointers_remove_differences() {
        let rules = Rules::builder().ignore("/meta/**").build().unwrap();
        let d = compare(
            &json(200, r#"{"a":1,"meta":{"at":1,"by":"x"}}"#),
            &json(200, r#"{"a":1,"meta":{"at":2,"by":"y"}}"#),
            &rules,
        );
        assert!(d.is_empty(), "{d:?}");
    }
}

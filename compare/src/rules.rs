//! Per-route comparison rules: what to compare, what to ignore, how to
//! normalise values that legitimately differ (timestamps, generated ids),
//! how arrays pair up, and the bounds on one comparison's cost.

use std::borrow::Cow;

use regex::Regex;

use crate::number::Tolerance;
use crate::pointer::{self, PointerGlob};

/// A rule that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("invalid regex {pattern:?} in a replacement: {source}")]
    Regex {
        pattern: String,
        #[source]
        source: regex::Error,
    },
}

/// How one route's answers are compared.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Lower-case header names to compare; all others are ignored.
    pub headers: Vec<String>,
    /// Differences whose path matches one of these are dropped.
    pub ignore: Vec<PointerGlob>,
    /// Applied in order to text bodies (JSON included, before parsing) and to
    /// compared header values.
    pub replacements: Vec<(Regex, String)>,
    /// Fully qualified protobuf message of `application/x-protobuf` bodies
    /// (e.g. `parallax.ingest.v1.IngestResponse`); without it they compare as bytes.
    pub protobuf_message: Option<String>,
    /// Where `protobuf_message` is defined: a user's descriptor set, or
    /// (`None`) the project's own `.proto` files.
    pub descriptors: Option<prost_reflect::DescriptorPool>,
    /// Go↔Rust normalisers (all off by default).
    pub normalise: Normalisers,
    /// How arrays at matching paths pair their elements (default: by position,
    /// aligned so an insertion is one difference).
    pub arrays: Vec<ArrayRule>,
    /// Accepted difference between numbers written as floats (default: none).
    pub tolerance: Tolerance,
    /// Bounds on one comparison's cost.
    pub limits: Limits,
}

/// Equivalences between what idiomatic Go and idiomatic Rust emit for the
/// same data. Each is off unless asked for; [`Normalisers::go_rust`] turns
/// on all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Normalisers {
    /// A member that is `null` on one side and absent on the other is equal
    /// (Go `omitempty` against serde `skip_serializing_if = "Option::is_none"`).
    pub null_equals_absent: bool,
    /// `[]` equals `null` (a Go nil slice marshals as `null`, a Rust `Vec` as `[]`).
    pub empty_array_equals_null: bool,
    /// `{}` equals `null` (a Go nil map marshals as `null`, a Rust map as `{}`).
    pub empty_object_equals_null: bool,
    /// A string holding a JSON number equals that number (Go's `json:",string"`).
    pub numbers_as_strings: bool,
    /// RFC 3339 timestamps compare as instants at a precision.
    pub timestamps: Option<Timestamps>,
}

impl Normalisers {
    /// The `go-rust` preset: every normaliser, timestamps as instants to the
    /// nanosecond (Go's `RFC3339Nano` trims trailing zeros and keeps the
    /// local offset; chrono and `time` print fixed digits, often in UTC).
    pub fn go_rust() -> Self {
        Self {
            null_equals_absent: true,
            empty_array_equals_null: true,
            empty_object_equals_null: true,
            numbers_as_strings: true,
            timestamps: Some(Timestamps {
                precision: Precision::Nanoseconds,
                zone: Zone::Instant,
            }),
        }
    }
}

/// How two RFC 3339 timestamps are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamps {
    /// Both are truncated to this precision first.
    pub precision: Precision,
    pub zone: Zone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl Precision {
    /// Nanoseconds per unit.
    pub fn nanos(self) -> u32 {
        match self {
            Precision::Seconds => 1_000_000_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Microseconds => 1_000,
            Precision::Nanoseconds => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The same instant is equal whatever the offset (`Z` ≡ `+00:00`,
    /// `10:00+01:00` ≡ `09:00Z`).
    Instant,
    /// The offsets must be equal too.
    Offset,
}

/// How the elements of arrays at `path` pair up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayRule {
    pub path: PointerGlob,
    pub order: ArrayOrder,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayOrder {
    /// Elements pair by the value at this pointer inside each element
    /// (unescaped segments of e.g. `/id`); order does not matter.
    Keyed(Vec<String>),
    /// Order does not matter: each element pairs with an equal one.
    Multiset,
}

/// Bounds on one comparison: past them the engine stops and says so with a
/// [`crate::Kind::Limit`] difference, which counts as a mismatch (it never
/// claims a match it did not check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Differences kept per comparison; the rest are counted in one
    /// `limit` difference. Default 100.
    pub max_differences: usize,
    /// JSON nesting depth. Default 256.
    pub max_depth: usize,
    /// Size a compressed body may decode to. Default 16 MiB.
    pub max_decoded_bytes: usize,
    /// Values visited (including array-alignment probes). Default 2,000,000.
    pub max_work: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_differences: 100,
            max_depth: 256,
            max_decoded_bytes: 16 << 20,
            max_work: 2_000_000,
        }
    }
}

impl Rules {
    pub fn builder() -> RulesBuilder {
        RulesBuilder::default()
    }

    pub fn ignores(&self, path: &str) -> bool {
        self.ignore.iter().any(|g| g.matches(path))
    }

    /// How the array at `path` pairs its elements, when a rule says.
    pub fn array_order(&self, path: &str) -> Option<&ArrayOrder> {
        self.arrays
            .iter()
            .find(|r| r.path.matches(path))
            .map(|r| &r.order)
    }

    /// `text` with every replacement applied.
    pub fn normalise<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (regex, with) in &self.replacements {
            if let Cow::Owned(s) = regex.replace_all(&out, with.as_str()) {
                out = Cow::Owned(s);
            }
        }
        out
    }
}

/// Builds [`Rules`] from strings, validating the regexes.
#[derive(Debug, Default)]
pub struct RulesBuilder {
    headers: Vec<String>,
    ignore: Vec<String>,
    replacements: Vec<(String, String)>,
    protobuf_message: Option<String>,
    descriptors: Option<prost_reflect::DescriptorPool>,
    normalise: Normalisers,
    arrays: Vec<ArrayRule>,
    tolerance: Tolerance,
    limits: Limits,
}

impl RulesBuilder {
    pub fn header(mut self, name: &str) -> Self {
        self.headers.push(name.to_ascii_lowercase());
        self
    }

    pub fn ignore(mut self, glob: &str) -> Self {
        self.ignore.push(glob.to_owned());
        self
    }

    pub fn replace(mut self, pattern: &str, with: &str) -> Self {
        self.replacements
            .push((pattern.to_owned(), with.to_owned()));
        self
    }

    pub fn protobuf_message(mut self, name: &str) -> Self {
        self.protobuf_message = Some(name.to_owned());
        self
    }

    pub fn descriptors(mut self, pool: prost_reflect::DescriptorPool) -> Self {
        self.descriptors = Some(pool);
        self
    }

    pub fn normalise(mut self, normalise: Normalisers) -> Self {
        self.normalise = normalise;
        self
    }

    /// Arrays at `path` pair elements by the value at pointer `key`.
    pub fn keyed(mut self, path: &str, key: &str) -> Self {
        self.arrays.push(ArrayRule {
            path: PointerGlob::new(path),
            order: ArrayOrder::Keyed(pointer::segments(key)),
        });
        self
    }

    /// Arrays at `path` compare as multisets.
    pub fn multiset(mut self, path: &str) -> Self {
        self.arrays.push(ArrayRule {
            path: PointerGlob::new(path),
            order: ArrayOrder::Multiset,
        });
        self
    }

    pub fn tolerance(mut self, absolute: f64, relative: f64) -> Self {
        self.tolerance = Tolerance { absolute, relative };
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn build(self) -> Result<Rules, RuleError> {
        let replacements = self
            .replacements
            .into_iter()
            .map(|(pattern, with)| match Regex::new(&pattern) {
                Ok(regex) => Ok((regex, with)),
                Err(source) => Err(RuleError::Regex { pattern, source }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Rules {
            headers: self.headers,
            ignore: self.ignore.iter().map(|g| PointerGlob::new(g)).collect(),
            replacements,
            protobuf_message: self.protobuf_message,
            descriptors: self.descriptors,
            normalise: self.normalise,
            arrays: self.arrays,
            tolerance: self.tolerance,
            limits: self.limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_apply_in_order() {
        let rules = Rules::builder()
            .replace(r"\d{4}-\d\d-\d\d", "<date>")
            .replace("<date>T", "<ts>")
            .build()
            .unwrap();
        assert_eq!(rules.normalise("at 2026-11-27T10:00"), "at <ts>10:00");
    }

    #[test]
    fn a_bad_regex_names_the_pattern() {
        let err = Rules::builder().replace("(", "x").build().unwrap_err();
        assert!(err.to_string().contains("\"(\""), "{err}");
    }

    #[test]
    fn header_names_are_lower_cased() {
        assert_eq!(
            Rules::builder()
                .header("Content-Type")
                .build()
                .unwrap()
                .headers,
            ["content-type"]
        );
    }
}

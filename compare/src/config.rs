//! The comparison rules as configuration: the `compare` table of a proxy
//! service or route (and of an experiment), validated into [`Rules`] with
//! errors that name the field and the fix.
//!
//! ```toml
//! [services.compare]
//! headers = ["content-type"]
//! ignore = ["/meta/requestId"]
//! preset = "go-rust"            # null ≡ absent, [] ≡ {} ≡ null, "1" ≡ 1, timestamps as instants
//! timestamps = { precision = "ms", zone = "instant" }
//! tolerance = { absolute = 1e-9, relative = 0.0 }
//! arrays = [{ path = "/items", key = "/id" }, { path = "/tags", order = "multiset" }]
//! ```

use serde::{Deserialize, Serialize};

use prost_reflect::DescriptorPool;

use crate::pointer;
use crate::rules::{Limits, Normalisers, Precision, Rules, Timestamps, Zone};

/// A setting that parses but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The setting's path, e.g. `services[0].compare.arrays[1].key`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub reason: String,
}

fn invalid(field: impl std::fmt::Display, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// How answers are compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompareConfig {
    /// Response headers compared (case-insensitive); all others are ignored.
    /// Default `["content-type"]`. Bodies are compared decoded, so
    /// `content-encoding` is compared only when listed here.
    pub headers: Vec<String>,
    /// Differences to ignore: JSON-pointer globs into the body (`*` one
    /// segment, `**` any number: `"/meta/**"`, `"/**/updatedAt"`), or
    /// `"status"`, `"header:<name>"`, `"body"`. Default: none.
    pub ignore: Vec<String>,
    /// Regex replacements applied, in order, to text and JSON bodies before
    /// comparing, and to compared header values. Default: none.
    pub replace: Vec<Replace>,
    /// Fully qualified message of `application/x-protobuf` bodies
    /// (`"parallax.ingest.v1.IngestResponse"`), so they diff field by field;
    /// without it they compare as bytes. Default: none.
    pub protobuf_message: Option<String>,
    /// A binary `FileDescriptorSet` defining `protobuf_message` for your own
    /// services (`protoc --include_imports --descriptor_set_out=api.pb …` or
    /// `buf build -o api.pb`). Default: the project's own `.proto` files.
    pub descriptor_set: Option<String>,
    /// Where descriptors come from instead of a file: `"reflection"` asks
    /// the primary backend by gRPC server reflection when `parallax proxy`
    /// starts (within a few seconds, or it refuses to start, naming this
    /// setting), so gRPC messages diff at protobuf field paths without a
    /// descriptor set. Not together with `descriptor_set`. Checked on its
    /// own (before the fetch), the table is valid and `protobuf_message`
    /// unchecked. Default: none.
    pub descriptors: Option<String>,
    /// The descriptors fetched for `descriptors = "reflection"`: set by
    /// the proxy at start-up, never read from a file.
    #[serde(skip)]
    pub reflected: Option<prost_reflect::DescriptorPool>,
    /// A named set of normalisers: `"go-rust"` turns on every normaliser
    /// below (timestamps as instants to the nanosecond). Settings given
    /// beside it override it. Default: none.
    pub preset: Option<String>,
    /// A member `null` on one side and absent on the other is equal (Go
    /// `omitempty` against serde `skip_serializing_if`). Default false.
    pub null_equals_absent: Option<bool>,
    /// `[]` equals `null` (Go nil slices). Default false.
    pub empty_array_equals_null: Option<bool>,
    /// `{}` equals `null` (Go nil maps). Default false.
    pub empty_object_equals_null: Option<bool>,
    /// `"42"` equals `42` (Go's `json:",string"`). Default false.
    pub numbers_as_strings: Option<bool>,
    /// RFC 3339 timestamps compare as instants truncated to a precision.
    /// Default: off (strings compare exactly).
    pub timestamps: Option<TimestampsConfig>,
    /// Accepted difference between numbers when one side is written as a
    /// float. Integers always compare exactly. Default: none.
    pub tolerance: Option<ToleranceConfig>,
    /// Arrays whose elements pair by a key or in any order. Default: none
    /// (by position, aligned so an insertion is one difference).
    pub arrays: Vec<ArrayConfig>,
    /// Differences kept per comparison (the rest are counted). Default 100.
    pub max_differences: usize,
    /// JSON nesting compared. Default 256.
    pub max_depth: usize,
    /// Size a compressed body may decode to. Default 16777216 (16 MiB).
    pub max_decoded_bytes: usize,
    /// Values visited per comparison. Default 2000000.
    pub max_work: u64,
}

impl Default for CompareConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            headers: vec!["content-type".into()],
            ignore: Vec::new(),
            replace: Vec::new(),
            protobuf_message: None,
            descriptor_set: None,
            descriptors: None,
            reflected: None,
            preset: None,
            null_equals_absent: None,
            empty_array_equals_null: None,
            empty_object_equals_null: None,
            numbers_as_strings: None,
            timestamps: None,
            tolerance: None,
            arrays: Vec::new(),
            max_differences: limits.max_differences,
            max_depth: limits.max_depth,
            max_decoded_bytes: limits.max_decoded_bytes,
            max_work: limits.max_work,
        }
    }
}

/// One regex replacement: `{ pattern = "\\d+ms", with = "<t>" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    /// A regex (Rust `regex` syntax).
    pub pattern: String,
    /// The replacement; `$1` etc. refer to groups.
    pub with: String,
}

/// `{ precision = "ms", zone = "instant" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimestampsConfig {
    /// `"s"`, `"ms"`, `"us"` or `"ns"`: both sides are truncated to it. Default `"ns"`.
    pub precision: String,
    /// `"instant"`: equal when they name the same instant, whatever the
    /// offset; `"offset"`: the offsets must match too. Default `"instant"`.
    pub zone: String,
}

impl Default for TimestampsConfig {
    fn default() -> Self {
        Self {
            precision: "ns".into(),
            zone: "instant".into(),
        }
    }
}

/// `{ absolute = 0.001, relative = 1e-9 }`: either bound accepts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToleranceConfig {
    pub absolute: f64,
    pub relative: f64,
}

/// `{ path = "/items", key = "/id" }` or `{ path = "/tags", order = "multiset" }`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArrayConfig {
    /// JSON-pointer glob of the arrays (`"/items"`, `"/orders/*/lines"`; `""` is the whole body).
    pub path: String,
    /// JSON pointer inside each element whose value pairs elements (`"/id"`).
    pub key: Option<String>,
    /// `"keyed"` (with `key`) or `"multiset"` (any order). Default: keyed when `key` is given.
    pub order: Option<String>,
}

/// `descriptors = "reflection"`: descriptors from the primary's gRPC server
/// reflection ([`crate::reflection`]).
pub const REFLECTION: &str = "reflection";

impl CompareConfig {
    /// Whether this table takes its descriptors from the primary's server
    /// reflection (and they still have to be fetched into `reflected`).
    pub fn wants_reflection(&self) -> bool {
        self.descriptors.as_deref() == Some(REFLECTION)
    }

    /// The rules, or an error naming `field.<setting>`.
    pub fn rules(&self, field: &str) -> Result<Rules, ConfigError> {
        let mut builder = Rules::builder();
        for (i, h) in self.headers.iter().enumerate() {
            let valid = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                return Err(invalid(
                    format_args!("{field}.headers[{i}]"),
                    format_args!("{h:?} is not a valid header name"),
                ));
            }
            builder = builder.header(h);
        }
        for (i, glob) in self.ignore.iter().enumerate() {
            let known = glob.starts_with('/')
                || glob.starts_with("header:")
                || matches!(glob.as_str(), "status" | "body");
            if !known {
                return Err(invalid(
                    format_args!("{field}.ignore[{i}]"),
                    format_args!(
                        "{glob:?} is not a JSON pointer (starting with /), \"status\", \"body\" or \"header:<name>\""
                    ),
                ));
            }
            builder = builder.ignore(glob);
        }
        for (i, r) in self.replace.iter().enumerate() {
            if let Err(e) = regex::Regex::new(&r.pattern) {
                return Err(invalid(
                    format_args!("{field}.replace[{i}].pattern"),
                    format_args!("{:?} is not a valid regex: {e}", r.pattern),
                ));
            }
            builder = builder.replace(&r.pattern, &r.with);
        }
        // Whether the descriptors are the primary's, not fetched yet.
        let mut unfetched = false;
        let pool = match (&self.descriptor_set, self.descriptors.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    format_args!("{field}.descriptors"),
                    "set beside descriptor_set: keep one source of descriptors (a file, or \"reflection\")",
                ))
            }
            (None, Some(REFLECTION)) => match &self.reflected {
                Some(pool) => {
                    builder = builder.descriptors(pool.clone());
                    pool.clone()
                }
                // Not fetched yet: `parallax proxy` fetches them before it
                // validates again and serves (Proxy::bind), so this is only
                // the check of the file on its own (Config::load, --check),
                // which cannot know the primary's messages. Rules built
                // here decode with the project's own descriptors when they
                // hold the name, else compare messages as bytes: never a
                // false match.
                None => {
                    if let Some(message) = &self.protobuf_message {
                        builder = builder.protobuf_message(message);
                    }
                    unfetched = true;
                    DescriptorPool::default()
                }
            },
            (None, Some(other)) => {
                return Err(invalid(
                    format_args!("{field}.descriptors"),
                    format_args!(
                        "{other:?} is not a source of descriptors: \"reflection\" asks the primary by gRPC server reflection; for a file use descriptor_set"
                    ),
                ))
            }
            (Some(path), None) => {
                let pool = crate::protobuf::load(path)
                    .map_err(|e| invalid(format_args!("{field}.descriptor_set"), e))?;
                builder = builder.descriptors(pool.clone());
                pool
            }
            (None, None) => crate::protobuf::project().clone(),
        };
        if let Some(message) = self.protobuf_message.as_ref().filter(|_| !unfetched) {
            if pool.get_message_by_name(message).is_none() {
                let known: Vec<_> = pool
                    .all_messages()
                    .take(5)
                    .map(|m| m.full_name().to_owned())
                    .collect();
                return Err(invalid(
                    format_args!("{field}.protobuf_message"),
                    format_args!(
                        "{message:?} is not a message of {} (it has e.g. {})",
                        match (&self.descriptor_set, &self.descriptors) {
                            (Some(path), _) => path.as_str(),
                            (None, Some(_)) => "the primary's server reflection",
                            (None, None) => "the project's .proto files",
                        },
                        known.join(", ")
                    ),
                ));
            }
            builder = builder.protobuf_message(message);
        }
        builder = builder.normalise(self.normalisers(field)?);
        if let Some(t) = &self.tolerance {
            for (name, v) in [("absolute", t.absolute), ("relative", t.relative)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(invalid(
                        format_args!("{field}.tolerance.{name}"),
                        format_args!("{v} must be a finite number ≥ 0 (e.g. 0.001)"),
                    ));
                }
            }
            builder = builder.tolerance(t.absolute, t.relative);
        }
        for (i, a) in self.arrays.iter().enumerate() {
            let at = format!("{field}.arrays[{i}]");
            if !(a.path.is_empty() || a.path.starts_with('/')) {
                return Err(invalid(
                    format_args!("{at}.path"),
                    format_args!(
                        "{:?} is not a JSON pointer: start it with / (\"\" is the whole body)",
                        a.path
                    ),
                ));
            }
            builder = match (a.order.as_deref(), &a.key) {
                (Some("multiset"), None) => builder.multiset(&a.path),
                (Some("multiset"), Some(_)) => {
                    return Err(invalid(
                        format_args!("{at}.key"),
                        "a multiset has no key: remove key, or set order = \"keyed\"",
                    ))
                }
                (None | Some("keyed"), Some(key)) => {
                    if !key.starts_with('/') {
                        return Err(invalid(
                            format_args!("{at}.key"),
                            format_args!(
                                "{key:?} is not a JSON pointer into the element (e.g. \"/id\")"
                            ),
                        ));
                    }
                    let _ = pointer::segments(key);
                    builder.keyed(&a.path, key)
                }
                (None | Some("keyed"), None) => return Err(invalid(
                    format_args!("{at}.key"),
                    "missing: name the element's key (key = \"/id\") or set order = \"multiset\"",
                )),
                (Some(other), _) => {
                    return Err(invalid(
                        format_args!("{at}.order"),
                        format_args!("{other:?} is not \"keyed\" or \"multiset\""),
                    ))
                }
            };
        }
        let positive = |name: &str, v: u64| {
            if v == 0 {
                Err(invalid(
                    format_args!("{field}.{name}"),
                    "0 would compare nothing: leave it out for the default",
                ))
            } else {
                Ok(())
            }
        };
        positive("max_differences", self.max_differences as u64)?;
        positive("max_depth", self.max_depth as u64)?;
        positive("max_decoded_bytes", self.max_decoded_bytes as u64)?;
        positive("max_work", self.max_work)?;
        builder = builder.limits(Limits {
            max_differences: self.max_differences,
            max_depth: self.max_depth,
            max_decoded_bytes: self.max_decoded_bytes,
            max_work: self.max_work,
        });
        builder
            .build()
            .map_err(|e| invalid(format_args!("{field}.replace"), e))
    }

    fn normalisers(&self, field: &str) -> Result<Normalisers, ConfigError> {
        let mut n = match self.preset.as_deref() {
            None => Normalisers::default(),
            Some("go-rust") => Normalisers::go_rust(),
            Some(other) => {
                return Err(invalid(
                    format_args!("{field}.preset"),
                    format_args!("{other:?} is not a preset; the one preset is \"go-rust\""),
                ))
            }
        };
        let set = |slot: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut n.null_equals_absent, self.null_equals_absent);
        set(&mut n.empty_array_equals_null, self.empty_array_equals_null);
        set(
            &mut n.empty_object_equals_null,
            self.empty_object_equals_null,
        );
        set(&mut n.numbers_as_strings, self.numbers_as_strings);
        if let Some(t) = &self.timestamps {
            let precision = match t.precision.as_str() {
                "s" => Precision::Seconds,
                "ms" => Precision::Milliseconds,
                "us" => Precision::Microseconds,
                "ns" => Precision::Nanoseconds,
                other => {
                    return Err(invalid(
                        format_args!("{field}.timestamps.precision"),
                        format_args!("{other:?} is not \"s\", \"ms\", \"us\" or \"ns\""),
                    ))
                }
            };
            let zone = match t.zone.as_str() {
                "instant" => Zone::Instant,
                "offset" => Zone::Offset,
                other => {
                    return Err(invalid(
                        format_args!("{field}.timestamps.zone"),
                        format_args!("{other:?} is not \"instant\" or \"offset\""),
                    ))
                }
            };
            n.timestamps = Some(Timestamps { precision, zone });
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> CompareConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn error(toml_text: &str) -> String {
        config(toml_text).rules("compare").unwrap_err().to_string()
    }

    #[test]
    fn reflection_is_the_one_descriptor_source_and_needs_its_fetched_pool() {
        assert!(error("descriptors = \"grpc\"")
            .starts_with("compare.descriptors: \"grpc\" is not a source"));
        assert!(
            error("descriptors = \"reflection\"\ndescriptor_set = \"a.pb\"")
                .starts_with("compare.descriptors: set beside descriptor_set")
        );
        // Not fetched yet (the file checked on its own): valid, the message
        // name unchecked, and the rules carry no descriptors of their own.
        let mut c = config("descriptors = \"reflection\"\nprotobuf_message = \"x.NotYetKnown\"");
        assert!(c.wants_reflection());
        let rules = c.rules("compare").unwrap();
        assert!(rules.descriptors.is_none());
        c.protobuf_message = Some("parallax.ingest.v1.IngestResponse".into());
        c.reflected = Some(crate::protobuf::project().clone());
        assert!(c.rules("compare").is_ok());
        c.protobuf_message = Some("x.Missing".into());
        let e = c.rules("compare").unwrap_err().to_string();
        assert!(
            e.starts_with("compare.protobuf_message: \"x.Missing\" is not a message of the primary's server reflection"),
            "{e}"
        );
    }

    #[test]
    fn the_preset_turns_on_every_normaliser_and_settings_override_it() {
        let rules = config("preset = \"go-rust\"\nnumbers_as_strings = false")
            .rules("compare")
            .unwrap();
        assert!(rules.normalise.null_equals_absent);
        assert!(rules.normalise.empty_array_equals_null);
        assert!(!rules.normalise.numbers_as_strings);
        assert!(rules.normalise.timestamps.is_some());
    }

    #[test]
    fn defaults_compare_strictly() {
        let rules = CompareConfig::default().rules("compare").unwrap();
        assert_eq!(rules.normalise, Normalisers::default());
        assert!(rules.tolerance.is_exact());
        assert_eq!(rules.limits, Limits::default());
    }

    #[test]
    fn arrays_and_tolerance_parse() {
        let rules = config(
            r#"
            tolerance = { absolute = 0.5 }
            arrays = [{ path = "/items", key = "/id" }, { path = "/tags", order = "multiset" }]
            "#,
        )
        .rules("compare")
        .unwrap();
        assert_eq!(rules.tolerance.absolute, 0.5);
        assert_eq!(rules.arrays.len(), 2);
    }

    #[test]
    fn errors_name_the_field_and_the_fix() {
        assert!(error("preset = \"go\"").starts_with("compare.preset: "));
        assert!(error("timestamps = { precision = \"min\" }")
            .starts_with("compare.timestamps.precision: "));
        assert!(error("arrays = [{ path = \"/a\" }]").starts_with("compare.arrays[0].key: missing"));
        assert!(error("arrays = [{ path = \"a\", key = \"/id\" }]")
            .starts_with("compare.arrays[0].path: "));
        assert!(error("arrays = [{ path = \"/a\", order = \"sorted\" }]")
            .starts_with("compare.arrays[0].order: "));
        assert!(
            error("tolerance = { relative = -1.0 }").starts_with("compare.tolerance.relative: ")
        );
        assert!(error("max_depth = 0").starts_with("compare.max_depth: "));
        assert!(error("protobuf_message = \"no.Such\"").starts_with("compare.protobuf_message: "));
        assert!(error("descriptor_set = \"/nonexistent.pb\"")
            .starts_with("compare.descriptor_set: cannot read"));
        assert!(error("headers = [\"bad header\"]").starts_with("compare.headers[0]: "));
        assert!(error("replace = [{ pattern = \"(\", with = \"\" }]")
            .starts_with("compare.replace[0].pattern: "));
    }
}

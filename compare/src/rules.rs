//! Per-route comparison rules: what to compare, what to ignore, how to
//! normalise values that legitimately differ (timestamps, generated ids).

use std::borrow::Cow;

use regex::Regex;

use crate::pointer::PointerGlob;

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
}

impl Rules {
    pub fn builder() -> RulesBuilder {
        RulesBuilder::default()
    }

    pub fn ignores(&self, path: &str) -> bool {
        self.ignore.iter().any(|g| g.matches(path))
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

//! Redaction of mismatch samples before they are kept or written anywhere.
//!
//! `Authorization`, `Cookie` and `Set-Cookie` are always redacted (and
//! `Proxy-Authorization` never reaches a sample: it is hop-by-hop). The
//! configuration adds header names and JSON-pointer globs; a glob redacts the
//! value at every matching path of a JSON body, and a difference at or below
//! a matching path loses its values.

use parallax_compare::pointer::{push, PointerGlob};
use parallax_compare::Difference;
use serde_json::Value;

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Headers redacted in every sample.
pub const ALWAYS: [&str; 3] = ["authorization", "cookie", "set-cookie"];

/// One service's redaction rules.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    headers: Vec<String>,
    pointers: Vec<PointerGlob>,
}

impl Redactor {
    /// `headers` lower-cased, added to [`ALWAYS`].
    pub fn new(headers: &[String], pointers: &[PointerGlob]) -> Self {
        let mut all: Vec<String> = ALWAYS.iter().map(|h| (*h).to_owned()).collect();
        all.extend(headers.iter().map(|h| h.to_ascii_lowercase()));
        Self {
            headers: all,
            pointers: pointers.to_vec(),
        }
    }

    pub fn header_is_secret(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// `value`, or [`REDACTED`] for a secret header.
    pub fn header_value(&self, name: &str, value: &str) -> String {
        if self.header_is_secret(name) {
            REDACTED.to_owned()
        } else {
            value.to_owned()
        }
    }

    /// Replaces every value of `json` at a configured path.
    pub fn json(&self, json: &mut Value) {
        if !self.pointers.is_empty() {
            self.walk("", json);
        }
    }

    fn walk(&self, path: &str, value: &mut Value) {
        if !path.is_empty() && self.pointers.iter().any(|g| g.matches(path)) {
            *value = Value::String(REDACTED.to_owned());
            return;
        }
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    self.walk(&push(path, k), v);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    self.walk(&push(path, &i.to_string()), v);
                }
            }
            _ => {}
        }
    }

    /// Blanks the values of a difference in a secret header or at (or
    /// below) a redacted path.
    pub fn difference(&self, d: &mut Difference) {
        let secret = match d.path.strip_prefix("header:") {
            Some(name) => self.header_is_secret(name),
            None => self.covers(&d.path),
        };
        if secret {
            for side in [&mut d.primary, &mut d.shadow] {
                if side.is_some() {
                    *side = Some(REDACTED.to_owned());
                }
            }
        }
    }

    /// Whether `path` or one of its ancestors matches a glob.
    fn covers(&self, path: &str) -> bool {
        if !path.starts_with('/') {
            return false;
        }
        let mut end = path.len();
        loop {
            let prefix = &path[..end];
            if self.pointers.iter().any(|g| g.matches(prefix)) {
                return true;
            }
            match prefix.rfind('/') {
                Some(0) | None => return false,
                Some(i) => end = i,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parallax_compare::Kind;
    use serde_json::json;

    fn redactor() -> Redactor {
        Redactor::new(
            &["X-Api-Key".into()],
            &[
                PointerGlob::new("/user/email"),
                PointerGlob::new("/**/token"),
            ],
        )
    }

    #[test]
    fn credentials_and_configured_headers_are_secret() {
        let r = redactor();
        for h in ["Authorization", "cookie", "Set-Cookie", "x-api-key"] {
            assert_eq!(r.header_value(h, "s3cret"), REDACTED, "{h}");
        }
        assert_eq!(r.header_value("content-type", "text/plain"), "text/plain");
    }

    #[test]
    fn json_values_at_configured_paths_are_replaced() {
        let mut v = json!({"user": {"email": "a@b", "name": "A"}, "items": [{"token": "t1"}], "token": "t0"});
        redactor().json(&mut v);
        assert_eq!(
            v,
            json!({"user": {"email": REDACTED, "name": "A"}, "items": [{"token": REDACTED}], "token": REDACTED})
        );
    }

    #[test]
    fn differences_at_or_below_a_secret_lose_their_values() {
        let r = redactor();
        let mut below = Difference {
            path: "/items/0/token".into(),
            kind: Kind::Value,
            primary: Some("\"t1\"".into()),
            shadow: Some("\"t2\"".into()),
        };
        r.difference(&mut below);
        assert_eq!(below.primary.as_deref(), Some(REDACTED));
        let mut header = Difference {
            path: "header:set-cookie".into(),
            kind: Kind::Header,
            primary: Some("id=1".into()),
            shadow: None,
        };
        r.difference(&mut header);
        assert_eq!(header.primary.as_deref(), Some(REDACTED));
        assert_eq!(header.shadow, None);
        let mut public = Difference {
            path: "/user/name".into(),
            kind: Kind::Value,
            primary: Some("\"A\"".into()),
            shadow: Some("\"B\"".into()),
        };
        r.difference(&mut public);
        assert_eq!(public.primary.as_deref(), Some("\"A\""));
    }
}

//! Redaction of mismatch samples before they are kept or written anywhere.
//!
//! `Authorization`, `Cookie` and `Set-Cookie` are always redacted (and
//! `Proxy-Authorization` never reaches a sample: it is hop-by-hop). The
//! configuration adds header names, query parameters and JSON-pointer globs;
//! a glob redacts the value at every matching path of a JSON body, and a
//! difference at or below a matching path loses its values.
//!
//! Query parameters named like credentials ([`ALWAYS_QUERY`]: `api_key`,
//! `access_token`, `token`, `password`, `secret`, `signature`, …,
//! case-insensitive) are always redacted in a sample's target; the
//! configuration adds more with `"query:<name>"`.

use parallax_compare::pointer::{push, push_into, PointerGlob};
use parallax_compare::value::Json;
use parallax_compare::Difference;
use serde_json::Value;

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Headers redacted in every sample.
pub const ALWAYS: [&str; 3] = ["authorization", "cookie", "set-cookie"];

/// Query parameters redacted in every sample (compared case-insensitively).
pub const ALWAYS_QUERY: [&str; 24] = [
    "api_key",
    "apikey",
    "api-key",
    "key",
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "auth",
    "authorization",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "session",
    "sessionid",
    "session_id",
    "code",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// One service's redaction rules.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    headers: Vec<String>,
    pointers: Vec<PointerGlob>,
    queries: Vec<String>,
}

impl Redactor {
    /// `headers` lower-cased, added to [`ALWAYS`].
    pub fn new(headers: &[String], pointers: &[PointerGlob]) -> Self {
        let mut all: Vec<String> = ALWAYS.iter().map(|h| (*h).to_owned()).collect();
        all.extend(headers.iter().map(|h| h.to_ascii_lowercase()));
        Self {
            headers: all,
            pointers: pointers.to_vec(),
            queries: ALWAYS_QUERY.iter().map(|q| (*q).to_owned()).collect(),
        }
    }

    /// Adds query parameter names to [`ALWAYS_QUERY`].
    pub fn with_queries(mut self, names: &[String]) -> Self {
        self.queries
            .extend(names.iter().map(|n| n.to_ascii_lowercase()));
        self
    }

    /// `target` (path and query) with the value of every secret query
    /// parameter replaced by [`REDACTED`].
    pub fn target(&self, target: &str) -> String {
        let mut out = Vec::with_capacity(target.len() + REDACTED.len());
        self.write_target(target, &mut out);
        String::from_utf8(out).expect("pieces of a str joined by ASCII")
    }

    /// [`Redactor::target`] appended to `out`, allocating nothing unless a
    /// parameter's name is percent-encoded: the recorder writes a target
    /// straight into its record.
    pub fn write_target(&self, target: &str, out: &mut Vec<u8>) {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        self.write_target_parts(path.as_bytes(), query.map(str::as_bytes), out);
    }

    /// [`Redactor::write_target`] of a target already split at its `?`
    /// (`query` without it), as bytes: the raw HTTP/1.1 path knows where
    /// its target's query starts and that the target is ASCII, so it
    /// neither searches nor checks UTF-8 again.
    pub fn write_target_parts(&self, path: &[u8], query: Option<&[u8]>, out: &mut Vec<u8>) {
        out.extend_from_slice(path);
        let Some(query) = query else { return };
        out.push(b'?');
        for (i, pair) in query.split(|&b| b == b'&').enumerate() {
            if i > 0 {
                out.push(b'&');
            }
            let name = pair.split(|&b| b == b'=').next().unwrap_or(pair);
            if self.query_is_secret(name) {
                out.extend_from_slice(name);
                out.push(b'=');
                out.extend_from_slice(REDACTED.as_bytes());
            } else {
                out.extend_from_slice(pair);
            }
        }
    }

    /// Whether the query parameter `name` (as written in the target) is
    /// secret, compared after percent-decoding.
    fn query_is_secret(&self, name: &[u8]) -> bool {
        let secret = |decoded: &[u8]| {
            self.queries
                .iter()
                .any(|q| q.as_bytes().eq_ignore_ascii_case(decoded))
        };
        if name.iter().any(|&b| b == b'%' || b == b'+') {
            secret(percent_decode(&String::from_utf8_lossy(name)).as_bytes())
        } else {
            secret(name)
        }
    }

    /// Replaces every value of the engine's JSON tree at a configured path.
    pub fn tree(&self, json: &mut Json) {
        if !self.pointers.is_empty() {
            self.walk_tree(&mut String::new(), json);
        }
    }

    fn walk_tree(&self, path: &mut String, value: &mut Json) {
        if !path.is_empty() && self.pointers.iter().any(|g| g.matches(path)) {
            *value = Json::String(REDACTED.to_owned());
            return;
        }
        let len = path.len();
        match value {
            Json::Object(members) => {
                for (k, v) in members.iter_mut() {
                    push_into(path, k);
                    self.walk_tree(path, v);
                    path.truncate(len);
                }
            }
            Json::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    push_into(path, &i.to_string());
                    self.walk_tree(path, v);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    pub fn header_is_secret(&self, name: impl AsRef<[u8]>) -> bool {
        let name = name.as_ref();
        self.headers
            .iter()
            .any(|h| h.as_bytes().eq_ignore_ascii_case(name))
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
            return;
        }
        // A difference above a redacted path (`/user` missing while
        // `/**/password` is redacted) shows a subtree: redact inside it.
        if d.path.starts_with('/') && !self.pointers.is_empty() {
            for side in [&mut d.primary, &mut d.shadow] {
                if let Some(text) = side.as_mut() {
                    self.redact_rendered(&d.path, text);
                }
            }
        }
    }

    /// Redacts the configured paths inside `text`, a JSON value rendered
    /// from the body at `path`. A value that does not parse (a preview cut
    /// short) is replaced whole when any path below it could be secret.
    fn redact_rendered(&self, path: &str, text: &mut String) {
        let Ok(mut value) = parallax_compare::value::parse(text.as_bytes(), 256) else {
            if text.starts_with(['{', '[']) {
                *text = REDACTED.to_owned();
            }
            return;
        };
        if !matches!(value, Json::Object(_) | Json::Array(_)) {
            return;
        }
        let before = value.clone();
        self.walk_tree(&mut path.to_owned(), &mut value);
        if value != before {
            *text = value.render(usize::MAX);
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

/// `%XX` escapes and `+` decoded (lossy: a bad escape stays as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn a_difference_above_a_redacted_path_has_its_subtree_redacted() {
        let r = redactor();
        let mut d = Difference {
            path: "/user".into(),
            kind: Kind::Missing,
            primary: Some(r#"{"email":"a@b","name":"A","token":"t1"}"#.into()),
            shadow: None,
        };
        r.difference(&mut d);
        let shown = d.primary.unwrap();
        assert!(!shown.contains("a@b") && !shown.contains("t1"), "{shown}");
        assert!(shown.contains("\"name\":\"A\""), "{shown}");
        // A preview cut short cannot be checked: it goes whole.
        let mut cut = Difference {
            path: "/items".into(),
            kind: Kind::Extra,
            primary: None,
            shadow: Some("[{\"token\":\"t2\"},…".into()),
        };
        r.difference(&mut cut);
        assert_eq!(cut.shadow.as_deref(), Some(REDACTED));
    }

    #[test]
    fn credential_query_parameters_are_redacted_in_the_target() {
        let r = redactor().with_queries(&["Tenant_Secret".into()]);
        assert_eq!(
            r.target("/login?api_key=abc&page=2&Access_Token=x&tenant_secret=s&%74oken=t"),
            "/login?api_key=[redacted]&page=2&Access_Token=[redacted]&tenant_secret=[redacted]&%74oken=[redacted]"
        );
        assert_eq!(r.target("/plain"), "/plain");
        assert_eq!(r.target("/q?flag&x=%zz&é=1"), "/q?flag&x=%zz&é=1");
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

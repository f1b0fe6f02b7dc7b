//! What replay changes in a recorded request: filters (which requests are
//! replayed) and rewrites (headers set or removed, paths rewritten, fresh
//! ids on each loop).
//!
//! Fresh ids: a replayed write is often refused as a duplicate (ingest
//! deduplicates on `event_id`). `--fresh-id REGEX` marks the ids; from the
//! second loop on, every match in the target, the header values and the
//! body is replaced by `--fresh-id-template` (default `{match}~{loop}`),
//! where `{match}` is the matched text, `{loop}` the loop number and
//! `{loop:N}` the loop number zero-padded to N digits. A binary body
//! (protobuf) stays valid only if the replacement keeps the match's length:
//! match a fixed-width part of the id and give a template of the same
//! width, e.g. `--fresh-id 'run42' --fresh-id-template 'L{loop:04}'`.

use bytes::Bytes;
use regex::bytes::Regex as BytesRegex;
use regex::Regex;

use crate::format::Request;
use crate::Error;

/// Which requests are replayed.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Regexes against the path; a request must match one (none: all).
    pub routes: Vec<Regex>,
    /// Methods (upper case); a request must have one (none: all).
    pub methods: Vec<String>,
}

impl Filter {
    pub fn new(routes: &[String], methods: &[String]) -> Result<Self, Error> {
        let routes = routes
            .iter()
            .map(|r| Regex::new(r).map_err(|e| Error::Config(format!("--route {r:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            routes,
            methods: methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
        })
    }

    pub fn accepts(&self, r: &Request) -> bool {
        (self.methods.is_empty() || self.methods.contains(&r.method))
            && (self.routes.is_empty() || self.routes.iter().any(|re| re.is_match(r.path())))
    }
}

/// A fresh-id rule.
#[derive(Debug, Clone)]
pub struct FreshIds {
    pub pattern: BytesRegex,
    pub template: String,
}

/// How requests are changed before they are sent.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// Set (replacing every recorded value).
    pub set_headers: Vec<(String, String)>,
    /// Removed (lower-case names).
    pub remove_headers: Vec<String>,
    /// Regex and replacement (`$1` groups) applied to the target in order.
    pub paths: Vec<(Regex, String)>,
    pub fresh_ids: Option<FreshIds>,
}

impl Rewrite {
    /// From command-line texts: `Name: value` headers, header names,
    /// `(REGEX, REPLACEMENT)` pairs, and a fresh-id regex and template.
    pub fn new(
        set: &[String],
        remove: &[String],
        paths: &[(String, String)],
        fresh: Option<&str>,
        template: Option<&str>,
    ) -> Result<Self, Error> {
        let set_headers = set
            .iter()
            .map(|h| {
                let (n, v) = h.split_once(':').ok_or_else(|| {
                    Error::Config(format!("--set-header {h:?}: give \"Name: value\""))
                })?;
                let n = n.trim();
                if http::HeaderName::from_bytes(n.as_bytes()).is_err() {
                    return Err(Error::Config(format!(
                        "--set-header {h:?}: {n:?} is not a header name"
                    )));
                }
                Ok((n.to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect::<Result<_, _>>()?;
        let paths = paths
            .iter()
            .map(|(re, with)| {
                Regex::new(re)
                    .map(|r| (r, with.clone()))
                    .map_err(|e| Error::Config(format!("--rewrite-path {re:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let fresh_ids = match fresh {
            None => None,
            Some(p) => Some(FreshIds {
                pattern: BytesRegex::new(p)
                    .map_err(|e| Error::Config(format!("--fresh-id {p:?}: {e}")))?,
                template: template.unwrap_or("{match}~{loop}").to_owned(),
            }),
        };
        Ok(Self {
            set_headers,
            remove_headers: remove.iter().map(|h| h.to_ascii_lowercase()).collect(),
            paths,
            fresh_ids,
        })
    }

    /// Applies the rewrites to a request of loop `loop_n` (0 = the first
    /// pass: no fresh ids).
    pub fn apply(&self, r: &mut Request, loop_n: u32) {
        for (re, with) in &self.paths {
            if re.is_match(&r.target) {
                r.target = re.replace_all(&r.target, with.as_str()).into_owned();
            }
        }
        if !self.remove_headers.is_empty() || !self.set_headers.is_empty() {
            r.headers.retain(|(k, _)| {
                let k = k.to_ascii_lowercase();
                !self.remove_headers.contains(&k) && !self.set_headers.iter().any(|(n, _)| *n == k)
            });
            r.headers.extend(self.set_headers.iter().cloned());
        }
        if loop_n > 0 {
            if let Some(f) = &self.fresh_ids {
                let fresh = |bytes: &[u8]| -> Option<Vec<u8>> {
                    if !f.pattern.is_match(bytes) {
                        return None;
                    }
                    let out = f
                        .pattern
                        .replace_all(bytes, |c: &regex::bytes::Captures<'_>| {
                            expand(&f.template, &c[0], loop_n)
                        });
                    Some(out.into_owned())
                };
                if let Some(t) = fresh(r.target.as_bytes()) {
                    r.target = String::from_utf8_lossy(&t).into_owned();
                }
                for (_, v) in &mut r.headers {
                    if let Some(nv) = fresh(v.as_bytes()) {
                        *v = String::from_utf8_lossy(&nv).into_owned();
                    }
                }
                if let Some(b) = fresh(&r.body) {
                    r.body = Bytes::from(b);
                }
            }
        }
    }
}

/// The template with `{match}`, `{loop}` and `{loop:N}` filled in.
pub fn expand(template: &str, matched: &[u8], loop_n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + matched.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find('}') else { break };
        let name = &rest[1..end];
        match name {
            "match" => out.extend_from_slice(matched),
            "loop" => out.extend_from_slice(loop_n.to_string().as_bytes()),
            _ => match name
                .strip_prefix("loop:")
                .and_then(|w| w.parse::<usize>().ok())
            {
                Some(w) => out.extend_from_slice(format!("{loop_n:0w$}").as_bytes()),
                None => out.extend_from_slice(&rest.as_bytes()[..=end]),
            },
        }
        rest = &rest[end + 1..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            method: "POST".into(),
            target: "/v1/events?id=run42-7".into(),
            headers: vec![
                ("Authorization".into(), "x".into()),
                ("x-id".into(), "run42-7".into()),
            ],
            body: Bytes::from_static(b"\x0arun42-7\x12"),
            ..Request::default()
        }
    }

    #[test]
    fn templates_fill_loop_and_match() {
        assert_eq!(expand("{match}~{loop}", b"a", 3), b"a~3");
        assert_eq!(expand("L{loop:04}", b"run42", 12), b"L0012");
        assert_eq!(expand("{other}", b"", 1), b"{other}");
    }

    #[test]
    fn fresh_ids_only_from_the_second_loop_and_same_width_keeps_length() {
        let rw = Rewrite::new(&[], &[], &[], Some("run42"), Some("L{loop:04}")).unwrap();
        let mut first = req();
        rw.apply(&mut first, 0);
        assert_eq!(first, req());
        let mut second = req();
        rw.apply(&mut second, 1);
        assert_eq!(second.target, "/v1/events?id=L0001-7");
        assert_eq!(second.headers[1].1, "L0001-7");
        assert_eq!(&second.body[..], b"\x0aL0001-7\x12");
        assert_eq!(second.body.len(), req().body.len());
    }

    #[test]
    fn headers_and_paths_are_rewritten() {
        let rw = Rewrite::new(
            &["X-Replay: 1".into()],
            &["authorization".into()],
            &[("^/v1/".into(), "/v2/".into())],
            None,
            None,
        )
        .unwrap();
        let mut r = req();
        rw.apply(&mut r, 0);
        assert_eq!(r.target, "/v2/events?id=run42-7");
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.header("x-replay"), Some("1"));
    }

    #[test]
    fn filters_match_methods_and_route_regexes() {
        let f = Filter::new(&["^/v1/events$".into()], &["post".into()]).unwrap();
        assert!(f.accepts(&req()));
        let mut get = req();
        get.method = "GET".into();
        assert!(!f.accepts(&get));
    }
}

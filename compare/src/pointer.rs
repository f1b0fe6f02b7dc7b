//! JSON-pointer globs for ignore rules.
//!
//! A glob is a JSON pointer (RFC 6901, `~0`/`~1` escapes) whose segments may
//! be `*` (any one segment) or `**` (any number of segments, including none):
//! `/rejected/*/eventId`, `/**/updatedAt`, `/meta/**`. A glob not starting
//! with `/` matches a non-body path exactly (`status`, `header:date`).

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerGlob {
    source: String,
    segments: Option<Vec<String>>,
}

impl PointerGlob {
    pub fn new(source: &str) -> Self {
        let segments = source
            .strip_prefix('/')
            .map(|rest| rest.split('/').map(str::to_owned).collect());
        Self {
            source: source.to_owned(),
            segments,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, path: &str) -> bool {
        match (&self.segments, path.strip_prefix('/')) {
            (None, _) => self.source == path,
            (Some(_), None) => false,
            (Some(glob), Some(rest)) => {
                let path: Vec<&str> = rest.split('/').collect();
                matches(glob, &path)
            }
        }
    }
}

fn matches(glob: &[String], path: &[&str]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((g, rest)) if g == "**" => (0..=path.len()).any(|skip| matches(rest, &path[skip..])),
        Some((g, rest)) => match path.split_first() {
            Some((p, path_rest)) if g == "*" || g == p => matches(rest, path_rest),
            _ => false,
        },
    }
}

/// Appends `segment` to a JSON pointer, escaping `~` and `/`.
pub fn push(pointer: &str, segment: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + segment.len() + 1);
    out.push_str(pointer);
    push_into(&mut out, segment);
    out
}

/// Appends `/segment` to `pointer` in place, escaping `~` and `/`.
pub fn push_into(pointer: &mut String, segment: &str) {
    pointer.push('/');
    for c in segment.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// A difference path with array indices (all-digit segments) as `*`:
/// `/items/3/total` → `/items/*/total`; non-pointer paths (`status`,
/// `header:x-id`) stay as they are. The key that noise statistics, field
/// statistics and results count differences by.
pub fn fold_indices(path: &str) -> String {
    if !path.starts_with('/') {
        return path.to_owned();
    }
    path.split('/')
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The unescaped segments of a JSON pointer (`/a~1b/0` → `["a/b", "0"]`;
/// `""` → none).
pub fn segments(pointer: &str) -> Vec<String> {
    match pointer.strip_prefix('/') {
        None => Vec::new(),
        Some(rest) => rest
            .split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_pointer_matches_only_itself() {
        let g = PointerGlob::new("/a/b");
        assert!(g.matches("/a/b"));
        assert!(!g.matches("/a/b/c"));
        assert!(!g.matches("/a"));
    }

    #[test]
    fn star_matches_one_segment() {
        let g = PointerGlob::new("/rejected/*/eventId");
        assert!(g.matches("/rejected/0/eventId"));
        assert!(g.matches("/rejected/17/eventId"));
        assert!(!g.matches("/rejected/0/x/eventId"));
    }

    #[test]
    fn double_star_matches_any_depth_including_none() {
        let g = PointerGlob::new("/**/updatedAt");
        assert!(g.matches("/updatedAt"));
        assert!(g.matches("/a/b/updatedAt"));
        assert!(!g.matches("/a/updatedAtX"));
        assert!(PointerGlob::new("/meta/**").matches("/meta/at"));
    }

    #[test]
    fn non_pointer_globs_match_exactly() {
        assert!(PointerGlob::new("header:date").matches("header:date"));
        assert!(!PointerGlob::new("status").matches("/status"));
    }

    #[test]
    fn indices_fold_to_a_star() {
        assert_eq!(fold_indices("/items/3/total"), "/items/*/total");
        assert_eq!(fold_indices("/total"), "/total");
        assert_eq!(fold_indices("status"), "status");
        assert_eq!(fold_indices("header:x-1"), "header:x-1");
    }

    #[test]
    fn segments_unescape() {
        assert_eq!(segments("/a~1b/0/~0"), ["a/b", "0", "~"]);
        assert!(segments("").is_empty());
    }

    #[test]
    fn push_escapes_tilde_and_slash() {
        assert_eq!(push("/a", "b/c~d"), "/a/b~1c~0d");
    }
}

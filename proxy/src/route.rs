//! Route templates: turning a raw request path into a bounded label.
//!
//! `/v1/sessions/{id}` matches `/v1/sessions/abc` (a `{name}` placeholder is
//! exactly one non-empty segment). Templates are tried in configuration
//! order; a path that matches none is labelled [`OTHER`]. The label set is
//! therefore the configured templates plus one, never raw paths.

/// The label of paths that match no template.
pub const OTHER: &str = "other";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder,
}

/// The configured templates, compiled.
#[derive(Debug, Clone)]
pub struct RouteTable {
    templates: Vec<(String, Vec<Segment>)>,
}

impl RouteTable {
    /// Compiles `templates`; an error carries the index of the bad one and
    /// the reason.
    pub fn new(templates: &[&str]) -> Result<Self, (usize, String)> {
        let templates = templates
            .iter()
            .enumerate()
            .map(|(i, t)| compile(t).map(|s| (t.to_string(), s)).map_err(|e| (i, e)))
            .collect::<Result<_, _>>()?;
        Ok(Self { templates })
    }

    /// Number of labels, [`OTHER`] included.
    pub fn len(&self) -> usize {
        self.templates.len() + 1
    }

    /// Never true: [`OTHER`] is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The index of the first template matching `path`, or the index of
    /// [`OTHER`] (`len() - 1`).
    pub fn find(&self, path: &str) -> usize {
        let Some(rest) = path.strip_prefix('/') else {
            return self.templates.len();
        };
        self.templates
            .iter()
            .position(|(_, segments)| matches(segments, rest))
            .unwrap_or(self.templates.len())
    }

    /// The label of route `index`.
    pub fn label(&self, index: usize) -> &str {
        self.templates
            .get(index)
            .map(|(t, _)| t.as_str())
            .unwrap_or(OTHER)
    }

    /// Every label, [`OTHER`] last.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.label(i))
    }
}

fn compile(template: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = template.strip_prefix('/') else {
        return Err(format!("{template:?} does not start with /"));
    };
    rest.split('/')
        .map(|segment| {
            if let Some(inner) = segment.strip_prefix('{') {
                match inner.strip_suffix('}') {
                    Some(name) if !name.is_empty() && !name.contains(['{', '}']) => {
                        Ok(Segment::Placeholder)
                    }
                    _ => Err(format!(
                        "{template:?}: segment {segment:?} is not a placeholder like {{id}}"
                    )),
                }
            } else if segment.contains(['{', '}']) {
                Err(format!(
                    "{template:?}: a placeholder must be a whole segment, not {segment:?}"
                ))
            } else {
                Ok(Segment::Literal(segment.to_owned()))
            }
        })
        .collect()
}

fn matches(segments: &[Segment], path: &str) -> bool {
    let mut parts = path.split('/');
    for segment in segments {
        match (segment, parts.next()) {
            (Segment::Literal(l), Some(p)) if l == p => {}
            (Segment::Placeholder, Some(p)) if !p.is_empty() => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::new(&["/v1/events", "/v1/sessions/{id}", "/"]).unwrap()
    }

    #[test]
    fn literal_and_placeholder_segments_match() {
        let t = table();
        assert_eq!(t.label(t.find("/v1/events")), "/v1/events");
        assert_eq!(t.label(t.find("/v1/sessions/abc")), "/v1/sessions/{id}");
        assert_eq!(t.label(t.find("/")), "/");
    }

    #[test]
    fn unmatched_paths_are_other() {
        let t = table();
        for path in [
            "/v1/sessions/",
            "/v1/sessions/a/b",
            "/v1/events/x",
            "/nope",
            "*",
        ] {
            assert_eq!(t.label(t.find(path)), OTHER, "{path}");
        }
    }

    #[test]
    fn labels_are_the_templates_then_other() {
        let labels: Vec<_> = table().labels().map(str::to_owned).collect();
        assert_eq!(labels, ["/v1/events", "/v1/sessions/{id}", "/", "other"]);
    }

    #[test]
    fn malformed_templates_are_refused_with_their_index() {
        assert_eq!(RouteTable::new(&["/a", "b"]).unwrap_err().0, 1);
        assert!(RouteTable::new(&["/a/x{id}"]).is_err());
        assert!(RouteTable::new(&["/a/{}"]).is_err());
    }
}

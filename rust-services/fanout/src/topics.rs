//! Topic names, the `topics` query parameter and a connection's topic set.
//!
//! A name is 1–64 bytes of `A–Z a–z 0–9 . _ -`; a connection holds at most
//! [`MAX_TOPICS`]. The query is decoded the way Go's `url.ParseQuery`
//! decodes it (see [`query_topics`]), so both twins accept and refuse the
//! same URLs.

/// The most topics one connection may hold (and one list may name).
pub const MAX_TOPICS: usize = 64;
/// The longest topic name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Whether `name` is a valid topic name.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A list of topics is not 1–64 distinct valid names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("topics must be 1-64 names of 1-64 bytes of A-Z a-z 0-9 . _ -")]
pub struct InvalidTopics;

/// A set of topic names kept sorted by byte order, as the subscription
/// frame lists them. At most [`MAX_TOPICS`] entries, so a sorted `Vec` with
/// binary search beats a tree in both memory and speed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicSet {
    names: Vec<Box<str>>,
}

impl TopicSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A set from 1–64 distinct valid names (duplicates ignored).
    pub fn from_list<'a, I>(names: I) -> Result<Self, InvalidTopics>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut set = Self::new();
        for name in names {
            if !is_valid_name(name) {
                return Err(InvalidTopics);
            }
            set.insert(name);
            if set.len() > MAX_TOPICS {
                return Err(InvalidTopics);
            }
        }
        if set.is_empty() {
            return Err(InvalidTopics);
        }
        Ok(set)
    }

    /// Adds `name`; returns whether it was new.
    pub fn insert(&mut self, name: &str) -> bool {
        match self
            .names
            .binary_search_by(|n| n.as_bytes().cmp(name.as_bytes()))
        {
            Ok(_) => false,
            Err(at) => {
                self.names.insert(at, name.into());
                true
            }
        }
    }

    /// Removes `name`; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        match self
            .names
            .binary_search_by(|n| n.as_bytes().cmp(name.as_bytes()))
        {
            Ok(at) => {
                self.names.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names
            .binary_search_by(|n| n.as_bytes().cmp(name.as_bytes()))
            .is_ok()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names in byte order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// Gives back spare capacity: a connection keeps its set for its whole
    /// life, so it should not keep the high-water mark of its churn.
    pub fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
    }
}

/// The topics named by the `topics` query parameter of `/v1/subscribe`.
///
/// The query is split and decoded like Go's `url.ParseQuery`, so the twins
/// agree on every URL:
/// - pairs are separated by `&`; a pair containing `;` is skipped;
/// - key and value are split at the first `=` (a pair without `=` has an
///   empty value);
/// - `+` decodes to a space and `%XX` to its byte; a pair with a malformed
///   `%` escape (in key or value) is skipped;
/// - exactly one remaining pair must have the key `topics` (none, or two,
///   is invalid).
///
/// Its value is then split on `,` and must hold 1–64 distinct valid names.
pub fn query_topics(query: Option<&str>) -> Result<TopicSet, InvalidTopics> {
    let mut values = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|pair| !pair.contains(';') && !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = unescape(key)?;
            let value = unescape(value)?;
            (key == b"topics").then_some(value)
        });
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(InvalidTopics);
    };
    let value = std::str::from_utf8(&value).map_err(|_| InvalidTopics)?;
    TopicSet::from_list(value.split(','))
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a `%` not
/// followed by two hex digits makes the whole string invalid.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &TopicSet) -> Vec<&str> {
        set.iter().collect()
    }

    #[test]
    fn valid_names_are_1_to_64_bytes_of_the_allowed_characters() {
        let long = "a".repeat(64);
        for name in ["a", "A.b_c-9", long.as_str(), "...", "-"] {
            assert!(is_valid_name(name), "{name:?} is valid");
        }
        let too_long = "a".repeat(65);
        for name in [
            "",
            too_long.as_str(),
            "a b",
            "a/b",
            "a,b",
            "é",
            "a\u{0}",
            "a%2C",
            "a+b",
        ] {
            assert!(!is_valid_name(name), "{name:?} is invalid");
        }
    }

    #[test]
    fn topic_query_table() {
        let ok: &[(&str, &[&str])] = &[
            ("topics=a", &["a"]),
            ("topics=b,a", &["a", "b"]),
            ("topics=a,a,b", &["a", "b"]),
            ("topics=B,a,_,-", &["-", "B", "_", "a"]),
            // Percent escapes decode before the split and the check.
            ("topics=a%2Cb", &["a", "b"]),
            ("topics=%61", &["a"]),
            // Pairs Go skips: a `;`, or a malformed escape.
            ("topics=a;b&topics=c", &["c"]),
            ("topics=%zz&topics=c", &["c"]),
            ("x=1&topics=c&y", &["c"]),
            ("%74opics=a", &["a"]),
        ];
        for (query, expected) in ok {
            let set = query_topics(Some(query)).unwrap_or_else(|_| panic!("{query} is valid"));
            assert_eq!(names(&set), *expected, "{query}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
        let sixty_five = format!("topics={}", many.join(","));
        let sixty_four_plus_duplicate = format!("topics={},t0", many[..64].join(","));
        assert_eq!(
            query_topics(Some(&sixty_four_plus_duplicate))
                .unwrap()
                .len(),
            64
        );
        let bad = [
            "",
            "topic=a",
            "topics",
            "topics=",
            "topics=a,",
            "topics=,a",
            "topics=a,,b",
            "topics=a b",
            "topics=a+b",
            "topics=a%20b",
            "topics=a;b",
            "topics=%zz",
            "topics=%C3%A9",
            "topics=a/b",
            // Exactly one `topics` parameter.
            "topics=a&topics=b",
            "topics=a&topics=a",
            sixty_five.as_str(),
        ];
        for query in bad {
            assert_eq!(query_topics(Some(query)), Err(InvalidTopics), "{query:?}");
        }
        assert_eq!(query_topics(None), Err(InvalidTopics));
    }

    #[test]
    fn a_set_stays_sorted_by_bytes_and_ignores_duplicates() {
        let mut set = TopicSet::new();
        for name in ["b", "a", "B", "b", "a.1"] {
            set.insert(name);
        }
        assert_eq!(names(&set), ["B", "a", "a.1", "b"]);
        assert!(set.remove("a"));
        assert!(!set.remove("a"));
        assert!(set.contains("b"));
        assert_eq!(names(&set), ["B", "a.1", "b"]);
    }
}

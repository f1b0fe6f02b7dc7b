//! Which requests are mirrored: the method policy and the sampling fraction,
//! optionally sticky by a key.
//!
//! Sticky sampling hashes the key (FNV-1a 64, then a splitmix64 finaliser to
//! spread it) and mirrors when the hash falls below `percent` of the `u64`
//! range: the same key always gets the same answer, across requests and
//! restarts. Without a key, a Weyl sequence over a request counter (multiples
//! of the golden ratio modulo 2⁶⁴) spreads the sampled requests evenly, so a
//! 10 % setting mirrors one request in ten with no randomness to test around.

use std::sync::atomic::{AtomicU64, Ordering};

use http::header::HeaderName;
use http::request::Parts;
use http::Method;
use serde::Deserialize;

/// The method policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MirrorMethods {
    /// Every method.
    All,
    /// GET, HEAD, OPTIONS and TRACE only (RFC 9110 safe methods): the shadow
    /// never sees writes.
    Safe,
}

impl MirrorMethods {
    pub fn allows(self, method: &Method) -> bool {
        match self {
            MirrorMethods::All => true,
            MirrorMethods::Safe => matches!(
                *method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            ),
        }
    }
}

/// What the sticky hash is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// The first value of this header.
    Header(HeaderName),
    /// The request path (without the query).
    Path,
}

impl StickyKey {
    /// `"path"` or `"header:<name>"`.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "path" {
            return Some(StickyKey::Path);
        }
        let name = text.strip_prefix("header:")?;
        HeaderName::from_bytes(name.as_bytes())
            .ok()
            .map(StickyKey::Header)
    }
}

/// Decides, per request, whether to mirror.
#[derive(Debug)]
pub struct Sampler {
    /// Mirror when the request's point in `[0, 2⁶⁴)` is below this;
    /// `None` means always (100 %), which `u64` cannot express.
    threshold: Option<u64>,
    sticky: Option<StickyKey>,
    /// Relaxed: only spreads the samples, orders nothing.
    counter: AtomicU64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Sampler {
    pub fn new(percent: f64, sticky: Option<StickyKey>) -> Self {
        let threshold = if percent >= 100.0 {
            None
        } else {
            Some((percent.max(0.0) / 100.0 * 18_446_744_073_709_551_616.0) as u64)
        };
        Self {
            threshold,
            sticky,
            counter: AtomicU64::new(0),
        }
    }

    /// Whether no request is ever mirrored (`mirror_percent = 0`): the
    /// raw HTTP/1.1 path ([`crate::h1`]) may then take every request
    /// without asking [`Sampler::sample`] (which needs a `Parts`).
    pub fn never(&self) -> bool {
        self.threshold == Some(0)
    }

    /// Whether this request is mirrored.
    pub fn sample(&self, request: &Parts) -> bool {
        self.sample_raw(request.uri.path(), |name| {
            request.headers.get(name).map(|v| v.as_bytes())
        })
    }

    /// [`Sampler::sample`] for a request known by its path and a lookup of
    /// a header's first value (the raw HTTP/1.1 path has no `Parts`).
    pub fn sample_raw<'a>(
        &self,
        path: &'a str,
        header: impl FnOnce(&HeaderName) -> Option<&'a [u8]>,
    ) -> bool {
        let Some(threshold) = self.threshold else {
            return true;
        };
        if threshold == 0 {
            return false;
        }
        let key = match &self.sticky {
            Some(StickyKey::Path) => Some(path.as_bytes()),
            Some(StickyKey::Header(name)) => header(name),
            None => None,
        };
        point_of(key, &self.counter, 0) < threshold
    }
}

/// A request's point in `[0, 2⁶⁴)`: the hash of its sticky key (salted, so
/// several choices keyed alike stay independent), or without a key the next
/// step of a Weyl sequence over `counter`.
pub(crate) fn point(
    sticky: Option<&StickyKey>,
    request: &Parts,
    counter: &AtomicU64,
    salt: u64,
) -> u64 {
    let key: Option<&[u8]> = match sticky {
        Some(StickyKey::Path) => Some(request.uri.path().as_bytes()),
        Some(StickyKey::Header(name)) => request.headers.get(name).map(|v| v.as_bytes()),
        None => None,
    };
    point_of(key, counter, salt)
}

/// [`point`] from the sticky key's value (`key`; `None` when the request
/// has none, or there is no sticky key).
fn point_of(key: Option<&[u8]>, counter: &AtomicU64, salt: u64) -> u64 {
    match key {
        Some(key) => mix(fnv1a(key) ^ salt),
        None => counter
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .wrapping_mul(GOLDEN)
            .wrapping_add(salt),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: FNV's low bits are poor for short similar keys.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str, header: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri(path);
        if let Some(v) = header {
            b = b.header("x-user", v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn all_and_nothing() {
        let all = Sampler::new(100.0, None);
        let none = Sampler::new(0.0, None);
        for _ in 0..100 {
            assert!(all.sample(&parts("/", None)));
            assert!(!none.sample(&parts("/", None)));
        }
    }

    #[test]
    fn unkeyed_sampling_hits_the_fraction_closely() {
        let s = Sampler::new(10.0, None);
        let n = (0..10_000).filter(|_| s.sample(&parts("/", None))).count();
        assert!((990..=1010).contains(&n), "{n}");
    }

    #[test]
    fn a_sticky_key_always_gets_the_same_answer() {
        let s = Sampler::new(50.0, StickyKey::parse("header:x-user"));
        let mut mirrored = 0;
        for user in 0..1000 {
            let user = format!("user-{user}");
            let first = s.sample(&parts("/", Some(&user)));
            for _ in 0..5 {
                assert_eq!(s.sample(&parts("/other", Some(&user))), first);
            }
            mirrored += usize::from(first);
        }
        assert!((400..=600).contains(&mirrored), "{mirrored}");
    }

    #[test]
    fn path_keys_ignore_the_query() {
        let s = Sampler::new(50.0, Some(StickyKey::Path));
        for i in 0..100 {
            let path = format!("/items/{i}");
            let a = s.sample(&parts(&path, None));
            assert_eq!(s.sample(&parts(&format!("{path}?page=2"), None)), a);
        }
    }

    #[test]
    fn safe_methods_only() {
        assert!(MirrorMethods::Safe.allows(&Method::GET));
        assert!(MirrorMethods::Safe.allows(&Method::HEAD));
        assert!(!MirrorMethods::Safe.allows(&Method::POST));
        assert!(!MirrorMethods::Safe.allows(&Method::DELETE));
        assert!(MirrorMethods::All.allows(&Method::PUT));
    }

    #[test]
    fn sticky_keys_parse() {
        assert_eq!(StickyKey::parse("path"), Some(StickyKey::Path));
        assert!(StickyKey::parse("header:X-Session").is_some());
        assert!(StickyKey::parse("header:bad name").is_none());
        assert!(StickyKey::parse("cookie").is_none());
    }
}

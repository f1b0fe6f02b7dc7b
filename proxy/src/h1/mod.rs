//! The raw HTTP/1.1 path: plain HTTP/1.1 requests the proxy only forwards,
//! served without hyper.
//!
//! # Why
//! A pass-through request cost the proxy 37.4K user-space instructions
//! (callgrind, exact and blind to load) against nginx `proxy_pass`'s 18.3K,
//! and only ~2.7K of them were the proxy's own functions: the rest was
//! hyper's two HTTP/1.1 state machines (the server towards the client, the
//! client towards the primary), the `http` types between them (a `Parts`,
//! a `HeaderMap` built and torn down per request) and the allocations they
//! make. The kernel side was already at nginx's level (6.05 system calls
//! per request against 7.00). So a request that needs none of what those
//! types are for — no mirror copy, no comparison, no canary, no recording —
//! is forwarded here from the bytes as read: one `httparse` of the head,
//! the hop-by-hop rules applied while copying it, one write upstream, one
//! `httparse` of the answer's head, the body relayed by its framing.
//! `docs/benchmarks.md` (issue 16) has the before and after.
//!
//! # What it takes, and what it leaves to hyper
//! Only boring requests ([`head`] lists the rules); anything else — every
//! hostile or odd input included — hands the whole connection, with the
//! bytes already read ([`Prefixed`]), to the hyper path for the rest of its
//! life. Request smuggling, bad framing and oversized heads are therefore
//! still judged by hyper alone: the raw path may only answer what hyper
//! would answer, cheaper. It is used per service when the primary is a
//! plain `http://` HTTP/1.1 upstream, there is no canary, and the service
//! would not mirror the request (`mirror_percent = 0`, or a method
//! `mirror_methods = "safe"` keeps from the shadow) — or, on
//! [`Http1Path::RawMirrored`], one it mirrors too ([`mirrored`]: the
//! shadow's copy is the bytes the primary gets, sent by [`shadow`]; the
//! primary's answer captured for the comparison as it is relayed); the client connection
//! is plain (not TLS, not HTTP/2). A recording service (`[services.record]`)
//! takes it too, recording from the head's bytes the same record the hyper
//! path encodes ([`crate::record::Recorder::begin_raw`]), so a recording
//! benchmark compares like with like.
//!
//! # The escape hatch
//! The raw path, mirrored requests and their shadow copies included, is
//! the default. `PARALLAX_PROXY_H1=hyper` in the proxy's environment keeps
//! every connection on hyper, so that `scripts/proxy-floor.sh` can run both
//! side by side with nginx; `PARALLAX_PROXY_H1=raw` keeps mirrored requests
//! on hyper (the raw path only forwards); `PARALLAX_PROXY_H1=hyper-shadow`
//! keeps mirrored requests on the raw path but sends the shadow's copy with
//! hyper's client, as before [`shadow`] (a benchmark's before and after in
//! one binary); in process, [`crate::Proxy::set_http1_path`].
//!
//! # Layout
//! - [`head`]: a request head judged and rewritten (pure).
//! - [`response`]: an answer head parsed and rewritten, its framing (pure).
//! - [`chunked`]: a chunked body's end found without changing it (pure).
//! - [`mirrored`]: a mirrored request's copy and plan.
//! - [`client`]: one exchange with an upstream over a pooled connection,
//!   and an answer body's framing (the primary's and the shadow's).
//! - [`shadow`]: the shadow's copy sent, its answer read for the
//!   comparison.
//! - [`pool`]: idle keep-alive connections to an upstream.
//! - [`prefixed`]: a connection handed to hyper with its bytes read so far.
//! - [`conn`]: the per-connection loop.

pub mod chunked;
pub mod client;
pub mod conn;
pub mod head;
pub mod mirrored;
pub mod pool;
pub mod prefixed;
pub mod response;
pub mod shadow;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::Method;

pub use conn::{serve, Served, HEADER_READ_TIMEOUT};
pub use prefixed::Prefixed;

use crate::sampling::{MirrorMethods, Sampler};
use crate::upstream::Upstream;
use pool::RawPool;

/// The environment variable that picks the HTTP/1.1 path.
pub const ENV: &str = "PARALLAX_PROXY_H1";

/// Which path a service's plain HTTP/1.1 connections take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Http1Path {
    /// The raw path for the requests it only forwards; hyper for any it
    /// mirrors.
    Raw,
    /// hyper for everything.
    Hyper,
    /// The raw path for mirrored requests too ([`mirrored`]), the
    /// shadow's copy sent by the raw client ([`shadow`]) when the shadow
    /// is plain HTTP/1.1.
    RawMirrored,
    /// As [`Http1Path::RawMirrored`], but the shadow's copy built as a
    /// `Parts` and sent by hyper's client (the mirrored raw path before the
    /// raw shadow client: the benchmark's before).
    HyperShadow,
}

impl Http1Path {
    /// The path without [`ENV`].
    pub const DEFAULT: Http1Path = Http1Path::RawMirrored;

    /// [`ENV`]'s choice: `hyper`, `raw`, `raw-mirrored` or
    /// `hyper-shadow`; anything else is the default.
    pub fn from_env() -> Self {
        match std::env::var(ENV).as_deref() {
            Ok("hyper") => Http1Path::Hyper,
            Ok("raw") => Http1Path::Raw,
            Ok("raw-mirrored") => Http1Path::RawMirrored,
            Ok("hyper-shadow") => Http1Path::HyperShadow,
            _ => Self::DEFAULT,
        }
    }

    fn from_u8(n: u8) -> Self {
        match n {
            0 => Http1Path::Raw,
            2 => Http1Path::RawMirrored,
            3 => Http1Path::HyperShadow,
            _ => Http1Path::Hyper,
        }
    }
}

/// A service's raw path.
#[derive(Debug)]
pub struct RawPath {
    /// The primary's raw connections ([`Upstream::raw_pool`]).
    pub(crate) pool: Arc<RawPool>,
    /// `mirror_percent = 0`: no request is mirrored.
    never_mirrors: bool,
    methods: MirrorMethods,
    /// Which [`Http1Path`] is used; relaxed: a switch for tests and
    /// benchmarks, ordering nothing.
    path: AtomicU8,
}

impl RawPath {
    /// The raw path of a service with this primary and mirroring, or `None`
    /// when it could never take a request (a TLS or HTTP/2 primary, or a
    /// canary).
    pub(crate) fn for_service(
        primary: &Upstream,
        sampler: &Sampler,
        methods: MirrorMethods,
        canary: bool,
    ) -> Option<Self> {
        if canary {
            return None;
        }
        Some(Self {
            pool: Arc::clone(primary.raw_pool()?),
            never_mirrors: sampler.never(),
            methods,
            path: AtomicU8::new(Http1Path::from_env() as u8),
        })
    }

    /// Whether it takes requests the service would mirror.
    pub fn mirrors(&self) -> bool {
        matches!(self.path(), Http1Path::RawMirrored | Http1Path::HyperShadow)
    }

    /// Whether a mirrored request's copy may go to a plain HTTP/1.1 shadow
    /// by the raw client ([`shadow`]) rather than hyper's.
    pub fn raw_shadow(&self) -> bool {
        self.path() == Http1Path::RawMirrored
    }

    fn path(&self) -> Http1Path {
        Http1Path::from_u8(self.path.load(Ordering::Relaxed))
    }

    /// Whether a request with `method` is not mirrored, so the raw path may
    /// forward it (the sampling decision the hyper path would make, without
    /// a `Parts`).
    pub fn takes(&self, method: &Method) -> bool {
        self.never_mirrors || !self.methods.allows(method)
    }

    pub fn set(&self, path: Http1Path) {
        self.path.store(path as u8, Ordering::Relaxed);
    }

    /// Whether connections start on it: it is not switched off, and it
    /// could take some request (on [`Http1Path::Raw`], a service that
    /// mirrors every request leaves its connections to hyper at once).
    pub fn is_on(&self) -> bool {
        match self.path() {
            Http1Path::Hyper => false,
            Http1Path::RawMirrored | Http1Path::HyperShadow => true,
            Http1Path::Raw => self.never_mirrors || self.methods != MirrorMethods::All,
        }
    }

    /// Idle connections in its pool (tests).
    pub fn idle(&self) -> usize {
        self.pool.idle()
    }
}

thread_local! {
    /// The `Date` value of the current second, per thread (hyper caches it
    /// the same way): formatting a date per answer would cost more than
    /// the rest of the head.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Writes the current `Date` value (IMF-fixdate) into `out`.
pub(crate) fn write_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|date| {
        let mut date = date.borrow_mut();
        if date.0 != second {
            *date = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(date.1.as_bytes());
    });
}

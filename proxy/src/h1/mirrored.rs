//! A request the service mirrors, on the raw path: its plan and its copy.
//!
//! The decision is the hyper path's own: `ServiceState::plan_request`
//! (methods, sampling with sticky keys, the declared size against
//! `max_mirror_body_bytes`, a free in-flight permit), asked once with what
//! the head the primary gets says (the hop rules and `X-Forwarded-For`
//! already applied, as `Upstream::copy_head` gives the hyper path). A
//! request the hyper path would tee as a stream
//! ([`request_tee::streams_a_body`]: a gRPC body) goes to hyper before the
//! plan is asked, so no sampling step or permit is spent twice.
//!
//! The copy ([`MirrorCopy`]) is, when every upstream it goes to (the
//! shadow, and the secondary if any) is plain HTTP/1.1, the request's bytes
//! exactly as the primary gets them — head and body copied once, into one
//! buffer — sent by the raw client ([`super::shadow`]); no `Parts` or
//! `HeaderMap` is built for it (a mismatch's sample reads its fields from
//! the bytes). Otherwise, or on [`super::Http1Path::HyperShadow`], it is a
//! `Parts` built from that head, and hyper's client sends it.
//!
//! What follows is in [`super::conn`]: the copy is handed to a
//! [`crate::mirror::MirrorJob`] in the shadow's departure turn, the
//! primary's exchange runs in the primary's, and its answer is captured
//! while relayed (`crate::tee::Capture`, `TeeBody`'s semantics).

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};
use tokio::sync::OwnedSemaphorePermit;

use super::head::MAX_HEADERS;
use super::response::field_list;
use crate::metrics::MirrorOutcome;
use crate::mirror::MirrorCopy;
use crate::request_tee;
use crate::service::{Plan, ServiceState};

/// What becomes of a request the service would mirror. Returned once per
/// request and taken apart at once: not boxed (an allocation per mirrored
/// request to save a move of a few hundred bytes).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Mirrored {
    /// hyper takes the connection (nothing was decided yet).
    Hyper,
    /// Not mirrored, for this outcome: forwarded as any other request.
    Skip(MirrorOutcome),
    /// Mirrored: the shadow's copy and its in-flight permit.
    Copy {
        copy: MirrorCopy,
        permit: OwnedSemaphorePermit,
    },
}

/// Plans the request with `method` whose head for the primary is
/// `upstream_head` (as [`super::head::judge`] wrote it, its path at
/// `path`) with `body`; `raw_shadow`: the copy may go by the raw client.
pub(crate) fn plan(
    state: &ServiceState,
    raw_shadow: bool,
    method: &Method,
    upstream_head: &[u8],
    path: &str,
    body: &[u8],
) -> Mirrored {
    let raw = raw_shadow
        && state.shadow.is_plain_http1()
        && state.secondary.as_ref().is_none_or(|s| s.is_plain_http1());
    if !raw {
        return plan_parts(state, upstream_head, body);
    }
    let grpc = || {
        first_value(upstream_head, b"content-type")
            .is_some_and(|v| v.starts_with(b"application/grpc"))
    };
    if !body.is_empty() && grpc() {
        return Mirrored::Hyper;
    }
    let planned = state.plan_request(
        method,
        path,
        |name| first_value(upstream_head, name.as_str().as_bytes()),
        Some(body.len() as u64),
    );
    match planned {
        Plan::Skip(outcome) => Mirrored::Skip(outcome),
        Plan::Mirror(permit) => {
            // One allocation of exactly the request's size (a `Vec` whose
            // length is its capacity becomes `Bytes` without another).
            let mut bytes = Vec::with_capacity(upstream_head.len() + body.len());
            bytes.extend_from_slice(upstream_head);
            bytes.extend_from_slice(body);
            Mirrored::Copy {
                copy: MirrorCopy::Raw(RawCopy {
                    bytes: Bytes::from(bytes),
                    head_len: upstream_head.len(),
                    method: method.clone(),
                }),
                permit,
            }
        }
    }
}

/// [`plan`] with the copy as a `Parts` for hyper's client.
fn plan_parts(state: &ServiceState, upstream_head: &[u8], body: &[u8]) -> Mirrored {
    let Some(head) = parts(upstream_head) else {
        return Mirrored::Hyper;
    };
    if !body.is_empty() && request_tee::streams_a_body(&head) {
        return Mirrored::Hyper;
    }
    match state.plan(&head) {
        Plan::Skip(outcome) => Mirrored::Skip(outcome),
        Plan::Mirror(permit) => Mirrored::Copy {
            copy: MirrorCopy::Parts {
                head,
                // As the hyper path reads it: no chunk for an empty body.
                body: if body.is_empty() {
                    Vec::new()
                } else {
                    vec![Bytes::copy_from_slice(body)]
                },
            },
            permit,
        },
    }
}

/// A mirrored request's copy on the raw path: the request exactly as the
/// primary gets it.
#[derive(Debug)]
pub struct RawCopy {
    /// The head (as [`super::head::judge`] wrote it), then the body.
    bytes: Bytes,
    head_len: usize,
    method: Method,
}

impl RawCopy {
    /// The request's bytes.
    pub fn request(&self) -> &[u8] {
        &self.bytes
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The body (shares the copy).
    pub fn body(&self) -> Bytes {
        self.bytes.slice(self.head_len..)
    }

    /// The request with `marker: 1` as its last header (any the client
    /// sent under that name left out, as `HeaderMap::insert` replaces
    /// them): a new buffer, made only when a marker is configured.
    pub fn with_marker(&self, marker: &HeaderName) -> Vec<u8> {
        let head = &self.bytes[..self.head_len];
        let mut out = Vec::with_capacity(self.bytes.len() + marker.as_str().len() + 5);
        let mut lines = head[..head.len() - 2].split_inclusive(|&b| b == b'\n');
        if let Some(request_line) = lines.next() {
            out.extend_from_slice(request_line);
        }
        for line in lines {
            let name = line.split(|&b| b == b':').next().unwrap_or(line);
            if !name.eq_ignore_ascii_case(marker.as_str().as_bytes()) {
                out.extend_from_slice(line);
            }
        }
        out.extend_from_slice(marker.as_str().as_bytes());
        out.extend_from_slice(b": 1\r\n\r\n");
        out.extend_from_slice(&self.bytes[self.head_len..]);
        out
    }

    /// The method, the target and the header fields (names in lower case,
    /// the values of one name together, in the order names first appear:
    /// what `header_list` makes of the hyper path's `HeaderMap`), for a
    /// mismatch's sample.
    pub fn fields(&self) -> (String, String, Vec<(String, String)>) {
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut request = httparse::Request::new(&mut []);
        // The head was written by `judge`: it parses.
        let _ = httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut request,
            &self.bytes[..self.head_len],
            &mut slots,
        );
        let fields: Vec<(&[u8], &[u8])> = request
            .headers
            .iter()
            .map(|h| (h.name.as_bytes(), h.value))
            .collect();
        (
            self.method.to_string(),
            request.path.unwrap_or("/").to_owned(),
            field_list(&fields),
        )
    }
}

/// The first value of the header `name` (lower case) in a head
/// [`super::head::judge`] wrote (`name: value` lines).
fn first_value<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon].eq_ignore_ascii_case(name).then(|| {
            line[colon + 1..]
                .strip_prefix(b" ")
                .unwrap_or(&line[colon + 1..])
        })
    })
}

/// The `Parts` of a head [`super::head::judge`] wrote; `None` for one
/// `http` would not build (hyper would have refused it, so hyper answers).
/// The head is copied once; the target and the header values share that
/// copy, as hyper's parsed heads share its read buffer (an allocation per
/// value would cost more than the rest of the copy).
pub(crate) fn parts(upstream_head: &[u8]) -> Option<Parts> {
    let head = Bytes::copy_from_slice(upstream_head);
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut request, &head, &mut slots)
        .ok()?
        .is_complete()
        .then_some(())?;
    let method = Method::from_bytes(request.method?.as_bytes()).ok()?;
    let uri = Uri::from_maybe_shared(head.slice_ref(request.path?.as_bytes())).ok()?;
    let (mut parts, ()) = Request::builder()
        .method(method)
        .uri(uri)
        .version(Version::HTTP_11)
        .body(())
        .ok()?
        .into_parts();
    parts.headers.reserve(request.headers.len());
    for header in request.headers.iter() {
        parts.headers.append(
            HeaderName::from_bytes(header.name.as_bytes()).ok()?,
            HeaderValue::from_maybe_shared(head.slice_ref(header.value)).ok()?,
        );
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_the_head_the_primary_gets() {
        let head =
            b"POST /a/b?x=1 HTTP/1.1\r\nhost: h\r\nx-a: 1\r\nx-a: 2\r\nx-forwarded-for: 10.0.0.1\r\n\r\n";
        let parts = parts(head).expect("a head");
        assert_eq!(parts.method, Method::POST);
        assert_eq!(parts.uri, "/a/b?x=1");
        assert_eq!(parts.version, Version::HTTP_11);
        let pairs: Vec<_> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("host", "h"),
                ("x-a", "1"),
                ("x-a", "2"),
                ("x-forwarded-for", "10.0.0.1")
            ]
        );
        assert!(super::parts(b"GET / HTTP/1.1\r\n").is_none());
    }
}

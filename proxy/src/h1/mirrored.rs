//! A request the service mirrors, on the raw path: its plan and its copy.
//!
//! The decision is the hyper path's own, asked once: [`ServiceState::plan`]
//! (methods, sampling with sticky keys, the declared size against
//! `max_mirror_body_bytes`, a free in-flight permit) gets the `Parts` that
//! become the shadow's copy — built once, from the head the primary gets
//! (the hop rules and `X-Forwarded-For` already applied, as
//! `Upstream::copy_head` gives the hyper path), the body as `Bytes`. A
//! request the hyper path would tee as a stream ([`request_tee::streams_a_body`]:
//! a gRPC body) or a head `http` would not take goes to hyper before the
//! plan is asked, so no sampling step or permit is spent twice.
//!
//! What follows is in [`super::conn`]: the copy is handed to a
//! [`crate::mirror::MirrorJob`] in the shadow's departure turn, the
//! primary's exchange runs in the primary's, and its answer is captured
//! while relayed ([`crate::tee::Capture`], `TeeBody`'s semantics).

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};
use tokio::sync::OwnedSemaphorePermit;

use super::head::MAX_HEADERS;
use crate::metrics::MirrorOutcome;
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
        head: Parts,
        body: Vec<Bytes>,
        permit: OwnedSemaphorePermit,
    },
}

/// Plans the request whose head for the primary is `upstream_head` (as
/// [`super::head::judge`] wrote it) with `body`.
pub(crate) fn plan(state: &ServiceState, upstream_head: &[u8], body: &[u8]) -> Mirrored {
    let Some(head) = parts(upstream_head) else {
        return Mirrored::Hyper;
    };
    if !body.is_empty() && request_tee::streams_a_body(&head) {
        return Mirrored::Hyper;
    }
    match state.plan(&head) {
        Plan::Skip(outcome) => Mirrored::Skip(outcome),
        Plan::Mirror(permit) => Mirrored::Copy {
            head,
            // As the hyper path reads it: no chunk for an empty body.
            body: if body.is_empty() {
                Vec::new()
            } else {
                vec![Bytes::copy_from_slice(body)]
            },
            permit,
        },
    }
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

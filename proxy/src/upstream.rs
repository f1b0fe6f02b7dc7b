//! One upstream: its address and a pooled keep-alive HTTP/1 client.
//!
//! Each upstream gets its own hyper-util client, so the primary's pool is
//! never shared with (or starved by) the shadow's: a shadow that hangs ties
//! up only shadow connections.

use std::time::Duration;

use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::UpstreamBody;
use crate::config::UpstreamAddr;
use crate::metrics::Backend;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long connecting may take before the upstream counts as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The transport error of one upstream call.
pub type CallError = hyper_util::client::legacy::Error;

/// An upstream and its connection pool.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub backend: Backend,
    pub addr: UpstreamAddr,
    client: Client<HttpConnector, UpstreamBody>,
}

impl Upstream {
    pub fn new(backend: Backend, addr: UpstreamAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self {
            backend,
            addr,
            client,
        }
    }

    /// Sends `head` with `body` to this upstream: the URI becomes this
    /// upstream's, everything else (Host included) is sent as given.
    pub async fn send(
        &self,
        mut head: Parts,
        body: UpstreamBody,
    ) -> Result<Response<Incoming>, CallError> {
        head.uri = self.uri(head.uri.path_and_query());
        // Always HTTP/1.1 upstream, whatever the client spoke: keeps the
        // connection poolable.
        head.version = http::Version::HTTP_11;
        self.client.request(Request::from_parts(head, body)).await
    }

    /// A copy of a request head (`Parts` is not `Clone`: extensions are
    /// not copied, and nothing here uses them).
    pub fn copy_head(head: &Parts) -> Parts {
        let (mut parts, ()) = Request::builder()
            .method(head.method.clone())
            .uri(head.uri.clone())
            .version(head.version)
            .body(())
            .expect("a valid head stays valid")
            .into_parts();
        parts.headers = head.headers.clone();
        parts
    }

    fn uri(&self, path: Option<&PathAndQuery>) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.addr.scheme.clone());
        parts.authority = Some(self.addr.authority.clone());
        parts.path_and_query = Some(
            path.cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        Uri::from_parts(parts).expect("scheme, authority and path make a URI")
    }
}

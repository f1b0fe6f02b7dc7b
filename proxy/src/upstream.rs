//! One upstream: its address and a pooled keep-alive client — HTTP/1.1, or
//! HTTP/2 (prior knowledge on `http://`, ALPN on `https://`), over TLS for
//! `https://` ([`crate::tls`]).
//!
//! Each upstream gets its own hyper-util client, so the primary's pool is
//! never shared with (or starved by) the shadow's: a shadow that hangs ties
//! up only shadow connections.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
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
    /// HTTP/2 by prior knowledge (an `http://` backend with `http2`).
    h2c: bool,
    client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
}

impl Upstream {
    /// `tls`: the client configuration for an `https://` address (required
    /// for one); `http2`: speak HTTP/2 to it.
    pub fn new(
        backend: Backend,
        addr: UpstreamAddr,
        http2: bool,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let https = addr.scheme == http::uri::Scheme::HTTPS;
        let tls = tls.map_or_else(
            || {
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("the default protocol versions are supported")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
            },
            |c| (*c).clone(),
        );
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1();
        let connector = if http2 && https {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.wrap_connector(http)
        };
        let h2c = http2 && !https;
        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(h2c);
        Self {
            backend,
            addr,
            h2c,
            client: client.build(connector),
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
        // The upstream's own protocol, whatever the client spoke: HTTP/1.1
        // (or HTTP/2 by ALPN, which the pool picks), or h2c.
        head.version = if self.h2c {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        if head.version == http::Version::HTTP_2 {
            // HTTP/2 carries the authority in the URI; a Host header from an
            // HTTP/1.1 client would be a second one.
            head.headers.remove(http::header::HOST);
        }
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

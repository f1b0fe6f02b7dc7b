//! One upstream: its address and a pool of keep-alive connections.
//!
//! A plain `http://` upstream spoken to in HTTP/1.1 (the common case, and
//! the hot path) gets [`Http1Pool`]: a stack of idle connections behind a
//! short blocking lock, each connection made by
//! [`parallax_common::http1::connect`] (the load generator's connections
//! are made by the same function). A connection goes back to the stack
//! the moment its answer's body has been read to the end (by the
//! [`AnswerBody`] that carries it), so nothing is
//! spawned per request to return it. This replaced hyper-util's pooled
//! `Client` for HTTP/1.1, whose checkout moved its (unused) connect future
//! and parsed the URI on every request (half of the proxy's `memmove` in
//! `perf`), and which spawned a task to put back a connection whose body
//! was still streaming; `docs/benchmarks.md` has the before and after.
//!
//! The raw HTTP/1.1 path ([`crate::h1`]) speaks HTTP/1.1 itself over a
//! pool of bare connections to the same address ([`Upstream::raw_pool`]):
//! the primary's for the requests it forwards, the shadow's for the copies
//! it mirrors.
//!
//! HTTP/2 (prior knowledge on `http://`, ALPN on `https://`) and every
//! `https://` upstream ([`crate::tls`]) keep hyper-util's client, which
//! multiplexes HTTP/2 streams and drives TLS.
//!
//! Each upstream has its own pool, so the primary's connections are never
//! shared with (or starved by) the shadow's: a shadow that hangs ties up
//! only shadow connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HOST;
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Request, Response};
use hyper::client::conn::http1::SendRequest;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use parallax_common::http1::ConnectError;
use parking_lot::Mutex;

use crate::body::{AnswerBody, UpstreamBody};
use crate::config::UpstreamAddr;
use crate::h1::pool::RawPool;
use crate::metrics::Backend;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long connecting may take before the upstream counts as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle HTTP/1.1 connections kept per upstream; more are closed when they
/// come back (nginx's `keepalive` directive is the same bound).
pub const MAX_IDLE: usize = 256;

/// The transport error of one upstream call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection to an HTTP/1.1 upstream could be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The HTTP/1.1 exchange failed (the connection broke, or the answer
    /// was not HTTP).
    #[error("{0}")]
    Http(#[source] hyper::Error),
    /// The exchange with an HTTP/2 or https upstream failed.
    #[error(transparent)]
    Pooled(#[from] hyper_util::client::legacy::Error),
    /// The raw HTTP/1.1 client's exchange failed ([`crate::h1::client`]).
    #[error(transparent)]
    Raw(#[from] crate::h1::client::ExchangeError),
}

impl CallError {
    /// Whether the request never left the proxy: no connection came up.
    pub fn is_connect(&self) -> bool {
        match self {
            CallError::Connect(_) => true,
            CallError::Http(_) => false,
            CallError::Pooled(e) => e.is_connect(),
            CallError::Raw(e) => matches!(e, crate::h1::client::ExchangeError::Connect(_)),
        }
    }
}

/// An upstream and its connection pool.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub backend: Backend,
    pub addr: UpstreamAddr,
    transport: Transport,
}

#[derive(Clone, Debug)]
enum Transport {
    /// `http://` in HTTP/1.1: hyper's pool, and the raw path's.
    Http1 {
        hyper: Arc<Http1Pool>,
        raw: Arc<RawPool>,
    },
    /// HTTP/2, or TLS: hyper-util's client.
    Pooled {
        /// HTTP/2 by prior knowledge (an `http://` backend with `http2`).
        h2c: bool,
        /// Boxed: the client is large, and the HTTP/1.1 pool is one `Arc`.
        client: Box<Client<HttpsConnector<HttpConnector>, UpstreamBody>>,
    },
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
        let https = addr.scheme == http::uri::Scheme::HTTPS;
        let transport = if !https && !http2 {
            Transport::Http1 {
                hyper: Arc::new(Http1Pool::new(&addr)),
                raw: Arc::new(RawPool::new(&addr)),
            }
        } else {
            Transport::Pooled {
                h2c: http2 && !https,
                client: Box::new(pooled_client(http2, https, tls)),
            }
        };
        Self {
            backend,
            addr,
            transport,
        }
    }

    /// Whether this upstream is plain `http://` spoken to in HTTP/1.1 (the
    /// only kind the raw path, [`crate::h1`], forwards to).
    pub fn is_plain_http1(&self) -> bool {
        matches!(self.transport, Transport::Http1 { .. })
    }

    /// The raw path's connections to this upstream, when it is plain
    /// `http://` spoken to in HTTP/1.1.
    pub fn raw_pool(&self) -> Option<&Arc<RawPool>> {
        match &self.transport {
            Transport::Http1 { raw, .. } => Some(raw),
            Transport::Pooled { .. } => None,
        }
    }

    /// Sends `head` with `body` to this upstream: the URI becomes this
    /// upstream's, everything else (Host included) is sent as given; a
    /// request without a Host gets the upstream's authority.
    pub async fn send(
        &self,
        mut head: Parts,
        body: UpstreamBody,
    ) -> Result<Response<AnswerBody>, CallError> {
        match &self.transport {
            Transport::Http1 { hyper: pool, .. } => {
                // Origin form on the request line; the authority travels in
                // Host (the client's, or the upstream's when it sent none,
                // as an HTTP/2 client does).
                head.uri = Uri::from(
                    head.uri
                        .path_and_query()
                        .cloned()
                        .unwrap_or_else(|| PathAndQuery::from_static("/")),
                );
                head.version = http::Version::HTTP_11;
                if !head.headers.contains_key(HOST) {
                    head.headers.insert(HOST, pool.host_header.clone());
                }
                Http1Pool::send(pool, Request::from_parts(head, body)).await
            }
            Transport::Pooled { h2c, client } => {
                head.uri = self.uri(head.uri.path_and_query());
                // The upstream's own protocol, whatever the client spoke:
                // HTTP/1.1 (or HTTP/2 by ALPN, which the pool picks), or h2c.
                head.version = if *h2c {
                    http::Version::HTTP_2
                } else {
                    http::Version::HTTP_11
                };
                if head.version == http::Version::HTTP_2 {
                    // HTTP/2 carries the authority in the URI; a Host header
                    // from an HTTP/1.1 client would be a second one.
                    head.headers.remove(HOST);
                }
                let response = client.request(Request::from_parts(head, body)).await?;
                Ok(response.map(AnswerBody::from))
            }
        }
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

/// The host (an IPv6 literal without brackets) and port to connect to for
/// a plain `http://` upstream.
pub(crate) fn host_and_port(addr: &UpstreamAddr) -> (String, u16) {
    let host = addr.authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host.to_owned(), addr.authority.port_u16().unwrap_or(80))
}

/// hyper-util's pooled client, for HTTP/2 and https upstreams.
fn pooled_client(
    http2: bool,
    https: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Client<HttpsConnector<HttpConnector>, UpstreamBody> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.enforce_http(false);
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
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(http2 && !https);
    client.build(connector)
}

/// The idle HTTP/1.1 connections to one upstream.
pub struct Http1Pool {
    /// Host and port to connect to (an IPv6 literal without brackets).
    host: String,
    port: u16,
    /// The upstream's authority, for requests that came without a Host.
    host_header: HeaderValue,
    /// Idle connections, the most recently used on top (it is the most
    /// likely to be open, and the bottom ones age out). A blocking mutex:
    /// held for a push or a pop, never across an `.await`.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

impl std::fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Pool")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("idle", &self.idle.lock().len())
            .finish()
    }
}

impl Http1Pool {
    fn new(addr: &UpstreamAddr) -> Self {
        let (host, port) = host_and_port(addr);
        Self {
            host,
            port,
            host_header: HeaderValue::from_str(addr.authority.as_str())
                .expect("an authority is a valid header value"),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Idle connections now (for tests and `/admin`).
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }

    /// Sends `request` on an idle connection, or a new one. A pooled
    /// connection that turns out closed before the request went out (the
    /// upstream closed it while idle) gets the request back, and it is
    /// sent again on another; a request that left is never sent twice.
    async fn send(
        pool: &Arc<Self>,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<AnswerBody>, CallError> {
        loop {
            let (mut sender, fresh) = match pool.checkout() {
                Some(sender) => (sender, false),
                None => (
                    parallax_common::http1::connect(
                        (pool.host.as_str(), pool.port),
                        CONNECT_TIMEOUT,
                    )
                    .await?,
                    true,
                ),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let checkin = Checkin {
                        pool: Arc::clone(pool),
                        sender,
                    };
                    return Ok(response.map(|body| AnswerBody::pooled(body, checkin)));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(CallError::Http(error.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection that is ready for a request;
    /// closed ones found on the way are dropped.
    fn checkout(&self) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.idle.lock();
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].sender.is_ready() {
                return Some(idle.remove(i).sender);
            }
            if idle[i].sender.is_closed() {
                idle.remove(i);
            }
            // Else still finishing its last exchange: left for later.
        }
        None
    }

    /// Takes a connection back after its answer was read to the end.
    fn checkin(&self, sender: SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock();
        // The oldest are at the bottom: drop those idle too long.
        let stale = idle
            .iter()
            .take_while(|c| now.duration_since(c.since) > POOL_IDLE_TIMEOUT)
            .count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { sender, since: now });
        }
    }
}

/// A connection lent out for one exchange; [`Checkin::give_back`] returns
/// it to its pool once the answer is read, and dropping it instead closes
/// it (the answer was abandoned part-way, so the connection is unusable).
pub struct Checkin {
    pool: Arc<Http1Pool>,
    sender: SendRequest<UpstreamBody>,
}

impl Checkin {
    pub fn give_back(self) {
        self.pool.checkin(self.sender);
    }
}

impl std::fmt::Debug for Checkin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checkin")
    }
}

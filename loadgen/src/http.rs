//! The client side of the wire: one dedicated HTTP/1.1 keep-alive
//! connection per sender.
//!
//! Each [`Connection`] is hyper's low-level `client::conn::http1` handle
//! with the connection future on a task of its own (made by
//! [`parallax_common::http1::connect`], as the proxy's upstream
//! connections are), and is used by exactly
//! one sender at a time. That skips a connection pool altogether: no
//! checkout, no lock, no idle list, no `Uri` authority parsing on every
//! request. `examples/http_ceiling.rs` measures this against hyper-util's
//! pooled `Client` on loopback with the driver on one core. Requests go out
//! in origin form (`/v1/…`) with an explicit `Host`, and the answer's body
//! is drained frame by frame, so nothing is buffered unless asked for.
//!
//! A connection (re)connects lazily: when it has none, or when the server
//! has closed the idle one. A request that fails on the wire drops the
//! connection, and the next one starts a new one.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::HOST;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use serde::{Deserialize, Serialize};

/// Why a request got no HTTP answer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    thiserror::Error,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TransportError {
    /// TCP connect or HTTP/1.1 handshake failed.
    #[error("connect")]
    Connect,
    /// No complete answer within the request timeout.
    #[error("timeout")]
    Timeout,
    /// The connection failed while sending or reading.
    #[error("io")]
    Io,
}

/// An answer: the status and how many body bytes came with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body_len: usize,
}

/// One keep-alive connection to one server, used by one task.
pub struct Connection {
    addr: SocketAddr,
    host: HeaderValue,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// A connection to `addr`; it connects on first use. Every request must
    /// be answered, body included, within `timeout`.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        let host = HeaderValue::from_str(&addr.to_string()).expect("a socket address is a header");
        Self {
            addr,
            host,
            timeout,
            sender: None,
        }
    }

    /// Sends `method path` with `body` and drains the answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Answer, TransportError> {
        self.exchange(method, path, body, None).await
    }

    /// `GET path`, keeping the body (for `/metrics`).
    pub async fn get_body(&mut self, path: &str) -> Result<(StatusCode, Bytes), TransportError> {
        let mut buf = BytesMut::new();
        let answer = self
            .exchange(Method::GET, path, Bytes::new(), Some(&mut buf))
            .await?;
        Ok((answer.status, buf.freeze()))
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        keep: Option<&mut BytesMut>,
    ) -> Result<Answer, TransportError> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .body(Full::new(body))
            .expect("method, origin-form path and host are valid");
        let result = tokio::time::timeout(self.timeout, self.round_trip(request, keep)).await;
        let result = result.unwrap_or(Err(TransportError::Timeout));
        if result.is_err() {
            // Whatever state the connection is in, it is not reusable.
            self.sender = None;
        }
        result
    }

    async fn round_trip(
        &mut self,
        request: Request<Full<Bytes>>,
        mut keep: Option<&mut BytesMut>,
    ) -> Result<Answer, TransportError> {
        let sender = self.ready().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| TransportError::Io)?;
        let status = response.status();
        let mut body = response.into_body();
        let mut body_len = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| TransportError::Io)?;
            if let Some(data) = frame.data_ref() {
                body_len += data.len();
                if let Some(buf) = keep.as_deref_mut() {
                    buf.extend_from_slice(data);
                }
            }
        }
        Ok(Answer { status, body_len })
    }

    /// The connection, ready for a request: the current one if it is still
    /// open, else a new one.
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, TransportError> {
        let open = match &mut self.sender {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !open {
            self.sender = Some(connect(self.addr, self.timeout).await?);
        }
        Ok(self.sender.as_mut().expect("just connected"))
    }
}

async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<SendRequest<Full<Bytes>>, TransportError> {
    parallax_common::http1::connect(addr, timeout)
        .await
        .map_err(|_| TransportError::Connect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        // Bind then drop: nothing listens on the port any more.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut connection = Connection::new(addr, Duration::from_secs(5));
        let result = connection.send(Method::GET, "/", Bytes::new()).await;
        assert_eq!(result, Err(TransportError::Connect));
    }
}

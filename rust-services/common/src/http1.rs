//! One HTTP/1.1 client connection over TCP, written once for the two
//! clients that skip hyper-util's pooled `Client`: the load generator's
//! dedicated connections (`parallax_loadgen::http`) and the proxy's
//! HTTP/1.1 upstream pool (`parallax_proxy::upstream`).
//!
//! Connect with a deadline, `TCP_NODELAY` (small requests must not wait for
//! Nagle's delayed-ACK dance), hyper's low-level handshake, and the
//! connection future on a task of its own: it does the socket I/O and ends
//! when the returned [`SendRequest`] is dropped or the server closes the
//! connection. Why not hyper-util's `Client`: its checkout parses the URI's
//! authority, locks a shared pool and moves its (unused) connect future on
//! every request, and a connection whose body is still streaming goes back
//! to the pool through one more spawned task; `perf` showed that as half of
//! the proxy's `memmove`.

use std::time::Duration;

use http_body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, ToSocketAddrs};

/// Why no connection came up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect: {0}")]
    Tcp(#[source] std::io::Error),
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    #[error("HTTP/1.1 handshake failed: {0}")]
    Handshake(#[source] hyper::Error),
}

/// A new HTTP/1.1 keep-alive connection to `addr`, connected within
/// `timeout`; its I/O runs on a spawned task.
pub async fn connect<A, B>(addr: A, timeout: Duration) -> Result<SendRequest<B>, ConnectError>
where
    A: ToSocketAddrs,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))?
        .map_err(ConnectError::Tcp)?;
    stream.set_nodelay(true).map_err(ConnectError::Tcp)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Empty;

    #[tokio::test]
    async fn a_refused_connection_is_a_tcp_error() {
        // Bind then drop: nothing listens on the port any more.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = connect::<_, Empty<Bytes>>(addr, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, ConnectError::Tcp(_)), "{e}");
    }
}

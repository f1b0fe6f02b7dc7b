//! The raw path's idle keep-alive connections to one plain HTTP/1.1
//! upstream (the primary, or the shadow a mirrored copy goes to): bare
//! `TcpStream`s, since the raw path speaks HTTP/1.1 itself. Each upstream
//! owns one ([`crate::upstream::Upstream::raw_pool`]), apart from hyper's
//! pool for the same address.
//! The same bounds as the hyper path's pool ([`crate::upstream`]): at most
//! [`MAX_IDLE`] idle connections, none kept past [`POOL_IDLE_TIMEOUT`],
//! connects bounded by [`CONNECT_TIMEOUT`].
//!
//! A pooled connection the upstream closed while it sat idle is left out at
//! checkout when the reactor has already seen its end (a read that would
//! not block costs no system call otherwise); one closed a moment before
//! use is found out when it is used ([`super::conn`] says what is retried).

use std::time::Instant;

use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::config::UpstreamAddr;
use crate::upstream::{host_and_port, CONNECT_TIMEOUT, MAX_IDLE, POOL_IDLE_TIMEOUT};

/// Why no connection came up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to the upstream: {0}")]
    Tcp(#[source] std::io::Error),
    #[error("no connection to the upstream within {CONNECT_TIMEOUT:?}")]
    Timeout,
}

/// Idle connections to one upstream.
#[derive(Debug)]
pub struct RawPool {
    host: String,
    port: u16,
    /// The most recently used on top (most likely still open). A blocking
    /// mutex: held for a push or a pop, never across an `.await`.
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

impl RawPool {
    pub fn new(addr: &UpstreamAddr) -> Self {
        let (host, port) = host_and_port(addr);
        Self {
            host,
            port,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The most recently used idle connection that is not too old and not
    /// closed (or sending unasked bytes) as far as the reactor knows.
    pub fn checkout(&self) -> Option<TcpStream> {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        while let Some((stream, since)) = idle.pop() {
            if now.duration_since(since) <= POOL_IDLE_TIMEOUT && still_open(&stream) {
                return Some(stream);
            }
        }
        None
    }

    /// A new connection (`TCP_NODELAY`: small requests must not wait on
    /// Nagle).
    pub async fn connect(&self) -> Result<TcpStream, ConnectError> {
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| ConnectError::Timeout)?
        .map_err(ConnectError::Tcp)?;
        stream.set_nodelay(true).map_err(ConnectError::Tcp)?;
        Ok(stream)
    }

    /// Takes a connection back after a whole exchange.
    pub fn checkin(&self, stream: TcpStream) {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        let stale = idle
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) > POOL_IDLE_TIMEOUT)
            .count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE {
            idle.push((stream, now));
        }
    }

    /// Idle connections now (tests).
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}

/// Whether an idle connection has neither ended nor sent anything: tokio
/// answers `WouldBlock` from its cached readiness without a system call
/// unless the reactor saw the socket become readable, and then the read
/// tells end (0), unasked bytes, or an error — each a connection not to use.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

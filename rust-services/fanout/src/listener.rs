//! Binding the listening socket, optionally with `SO_REUSEPORT`.
//!
//! With `--reuse-port` several processes bind the same address and the
//! kernel spreads incoming connections over them; with the Kafka path they
//! then serve one audience. The socket is built with socket2 (options must
//! be set before `bind`) and handed to tokio.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Pending connections the kernel may hold (capped by `somaxconn`): large,
/// so that a burst of WebSocket clients is not refused.
const BACKLOG: i32 = 4096;

/// Binds `addr` (`HOST:PORT`, the first address it resolves to), with
/// `SO_REUSEADDR` and, if `reuse_port`, `SO_REUSEPORT`. Must be called
/// inside a tokio runtime.
pub fn bind(addr: &str, reuse_port: bool) -> io::Result<TcpListener> {
    let addr: SocketAddr = addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing")
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_listeners_share_a_port_with_reuse_port() {
        let first = bind("127.0.0.1:0", true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind(&addr.to_string(), true).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
    }

    #[tokio::test]
    async fn without_reuse_port_the_second_bind_fails() {
        let first = bind("127.0.0.1:0", false).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind(&addr.to_string(), false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn both_listeners_accept_connections() {
        let first = bind("127.0.0.1:0", true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind(&addr.to_string(), true).unwrap();
        // The kernel hashes connections over the two sockets; with enough
        // connections both get some.
        let mut clients = Vec::new();
        for _ in 0..64 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let mut counts = [0usize; 2];
        for (i, listener) in [&first, &second].into_iter().enumerate() {
            while let Ok(Ok(_)) =
                tokio::time::timeout(std::time::Duration::from_millis(50), listener.accept()).await
            {
                counts[i] += 1;
            }
        }
        assert_eq!(counts[0] + counts[1], 64);
        assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
    }
}

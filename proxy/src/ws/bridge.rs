//! WebSockets over TLS: a TLS stream handed to the relay as a plain socket.
//!
//! The relay ([`super::relay`]) waits on socket readiness and reads
//! into a buffer on its stack, which is what keeps an idle
//! proxied connection at a few KiB; a TLS stream has no such readiness (a
//! record may be half received, decrypted bytes may sit in rustls's
//! buffers). Rather than give the relay a second, buffered engine, a TLS
//! side (a client on a TLS listener, a `https://` upstream spoken to as
//! `wss://`) is bridged: one task copies between the TLS stream and one end
//! of a loopback TCP connection, and the relay drives the other end exactly
//! as it drives a plain connection. Frames, pairing, comparison, closing
//! and 1001 on shutdown are therefore the same code for `ws://` and
//! `wss://`.
//!
//! What it costs, per TLS side of a connection: two loopback sockets (two
//! descriptors), one task with tokio's copy buffers (8 KiB each way) and
//! one extra copy of every byte. Plain connections pay nothing.
//!
//! The loopback connection is made to a listener bound for this one
//! connection on `127.0.0.1:0`, and the accepted peer must be the socket
//! this process just connected from: another local process that races to
//! connect to the port is dropped, never relayed.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// How long the loopback connection may take (it is local: a timeout means
/// something else is wrong).
const BRIDGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Copies between `stream` and a new loopback connection, on a task of its
/// own, and returns the connection's other end. The task ends when both
/// directions have ended (each end's EOF is passed on as a shutdown, which
/// on the TLS side sends `close_notify`) or either side fails.
pub async fn bridge<S>(stream: S) -> io::Result<TcpStream>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let near = TcpStream::connect(addr).await?;
    let ours = near.local_addr()?;
    let far = tokio::time::timeout(BRIDGE_TIMEOUT, async {
        loop {
            let (far, peer) = listener.accept().await?;
            if peer == ours {
                return Ok::<_, io::Error>(far);
            }
            // Not the connection we made: someone else's, dropped unread.
        }
    })
    .await
    .map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "the loopback bridge did not connect",
        )
    })??;
    drop(listener);
    // Small frames must not wait for Nagle on either hop.
    let _ = near.set_nodelay(true);
    let _ = far.set_nodelay(true);
    tokio::spawn(async move {
        let (mut stream, mut far) = (stream, far);
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut far).await;
    });
    Ok(near)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_cross_the_bridge_both_ways_and_eof_is_passed_on() {
        let (mut outside, inside) = tokio::io::duplex(1024);
        let mut relay_end = bridge(inside).await.unwrap();
        outside.write_all(b"from the client").await.unwrap();
        let mut buf = [0u8; 15];
        relay_end.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from the client");
        relay_end.write_all(b"from the primary").await.unwrap();
        let mut buf = [0u8; 16];
        outside.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from the primary");
        // The relay's end closing is the outside's EOF.
        relay_end.shutdown().await.unwrap();
        assert_eq!(outside.read(&mut buf).await.unwrap(), 0);
    }
}

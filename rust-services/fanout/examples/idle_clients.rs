//! Opens N idle WebSocket subscribers to a fan-out server and holds them
//! open until its standard input closes — the client half of the
//! idle-connection memory measurement.
//!
//! ```text
//! cargo run --release -p parallax-fanout --example idle_clients -- ADDR N [TOPICS] [SOURCES]
//! ```
//! Connects `N` clients to `ws://ADDR/v1/subscribe?topics=TOPICS` (default
//! `t`), waits for each one's 101 and subscription frame, prints
//! `connected N`, then holds. Clients bind round-robin to `SOURCES` source
//! addresses 127.0.0.2, 127.0.0.3, … (default 4): one source address can
//! reach one destination port at most ~28K times (the ephemeral range).
//! They never read again, so run the server with a long
//! `--ping-interval-secs` or it will (rightly) reap them.
//!
//! Measuring (the server in its own process, as each process may hold at
//! most 20,000 descriptors): note the server's `VmRSS` in
//! `/proc/PID/status`, connect N clients, note it again, and divide the
//! difference by N; repeat at two sizes to separate fixed from per-connection
//! cost.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

/// Handshakes in flight at once.
const CONCURRENCY: usize = 200;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: idle_clients ADDR N [TOPICS] [SOURCES]");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1].parse().expect("ADDR is HOST:PORT");
    let count: usize = args[2].parse().expect("N is a number");
    let topics: Arc<str> = args.get(3).map_or("t", |s| s.as_str()).into();
    let sources: u8 = args
        .get(4)
        .map_or(4, |s| s.parse().expect("SOURCES is a number"));

    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let source = Ipv4Addr::new(127, 0, 0, 2 + (i % sources as usize) as u8);
        let topics = topics.clone();
        tasks.push(tokio::spawn(async move {
            let stream = connect(addr, source, &topics).await;
            drop(permit);
            stream
        }));
    }
    let mut streams = Vec::with_capacity(count);
    for task in tasks {
        streams.push(task.await.unwrap());
    }
    println!("connected {}", streams.len());
    // Hold until stdin closes.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    drop(streams);
}

/// One client: handshake, then the subscription frame.
async fn connect(addr: SocketAddr, source: Ipv4Addr, topics: &str) -> TcpStream {
    let mut attempt = 0;
    let mut stream = loop {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source.into(), 0)).unwrap();
        match socket.connect(addr).await {
            Ok(stream) => break stream,
            Err(e) if attempt < 20 => {
                attempt += 1;
                eprintln!("connect: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("connect: {e}"),
        }
    };
    let request = format!(
        "GET /v1/subscribe?topics={topics} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "server closed during the handshake");
        received.extend_from_slice(&buf[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            assert!(received.starts_with(b"HTTP/1.1 101"), "no upgrade");
            let frame = &received[end + 4..];
            if frame.len() >= 2 && frame.len() >= 2 + (frame[1] & 0x7f) as usize {
                return stream;
            }
        }
    }
}

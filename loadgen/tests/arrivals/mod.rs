//! A real HTTP/1.1 server that notes when each request arrived, for the
//! tests that hold the open model's arrivals to its schedule's spacing.
//!
//! Plain blocking threads, one per connection: a request's time is read
//! the moment its head is in, with no runtime of its own to fall behind
//! (tests build without optimisation, and an unoptimised async server
//! notes arrivals late on a busy machine). Requests are body-less GETs;
//! every answer is the same 2-byte 200.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Each request's arrival and the slot it named (`?n=SLOT`), if any.
pub type Log = Arc<Mutex<Vec<(Instant, Option<u64>)>>>;

/// Starts the server; it lives as long as the test process.
pub fn serve() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let noted = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let log = Arc::clone(&noted);
            std::thread::spawn(move || answer(stream.unwrap(), &log));
        }
    });
    (addr, log)
}

/// Serves one keep-alive connection until the client closes it.
fn answer(mut stream: TcpStream, log: &Log) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut have = 0;
    loop {
        let Ok(got) = stream.read(&mut buf[have..]) else {
            return;
        };
        if got == 0 {
            return;
        }
        let at = Instant::now();
        have += got;
        // Every complete head in the buffer (a client may pipeline).
        while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            let line = buf[..end].split(|&b| b == b'\r').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let slot = line
                .split_once("n=")
                .and_then(|(_, rest)| rest.split(' ').next())
                .and_then(|n| n.parse().ok());
            log.lock().unwrap().push((at, slot));
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .is_err()
            {
                return;
            }
            buf.copy_within(end + 4..have, 0);
            have -= end + 4;
        }
        assert!(have < buf.len(), "a request head over 16 KiB");
    }
}

/// How the arrivals were spaced.
#[derive(Debug)]
pub struct Spacing {
    pub arrivals: usize,
    /// The median gap between consecutive arrivals.
    pub median_gap: Duration,
    /// The share of gaps under 20 µs: requests that arrived together.
    pub together: f64,
    /// The median of how far the gap between slots `n` and `n + 1`'s
    /// arrivals was from the schedule's `1 / rate`, over the arrivals that
    /// named their slot: the jitter the generator adds, blind to a slow
    /// drift of the whole run. On whole milliseconds it is 200 µs or more
    /// at 1,500–5,000 requests/s.
    pub median_jitter: Duration,
}

/// The spacing of the logged arrivals at `rate` requests per second.
pub fn spacing(log: &Log, rate: f64) -> Spacing {
    let mut log = log.lock().unwrap().clone();
    log.sort_by_key(|(at, _)| *at);
    let mut gaps: Vec<Duration> = log.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort();
    let together = gaps
        .iter()
        .filter(|g| **g < Duration::from_micros(20))
        .count();
    let mut by_slot: Vec<(u64, std::time::Instant)> = log
        .iter()
        .filter_map(|(at, slot)| Some(((*slot)?, *at)))
        .collect();
    by_slot.sort();
    let mut jitter: Vec<f64> = by_slot
        .windows(2)
        .filter(|w| w[1].0 == w[0].0 + 1)
        .map(|w| {
            let gap = w[1].1.saturating_duration_since(w[0].1).as_secs_f64()
                - w[0].1.saturating_duration_since(w[1].1).as_secs_f64();
            (gap - 1.0 / rate).abs()
        })
        .collect();
    jitter.sort_by(f64::total_cmp);
    Spacing {
        arrivals: log.len(),
        median_gap: gaps.get(gaps.len() / 2).copied().unwrap_or_default(),
        together: together as f64 / gaps.len().max(1) as f64,
        median_jitter: Duration::from_secs_f64(
            jitter.get(jitter.len() / 2).copied().unwrap_or(0.0),
        ),
    }
}

//! Memory under churn: PUTs of random ids with random value sizes against a
//! running session cache, printing the process's RSS against the accounted
//! `cache_bytes` as it goes. The issue's target: RSS ≤ 1.3 × accounted bytes.
//!
//! ```text
//! cargo build --release -p parallax-session-cache
//! target/release/parallax-session-cache --listen 127.0.0.1:8081 &
//! cargo run --release -p parallax-session-cache --example churn -- \
//!     --addr 127.0.0.1:8081 --seconds 60
//! ```
//!
//! Values are uniform in 64 B–64 KiB; ids are drawn from `--ids` (default
//! 20,000, about 640 MiB of values: with the default 256 MiB capacity every
//! shard is full and evicting). Plain HTTP/1.1 over keep-alive connections,
//! one per thread; loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Args {
    addr: String,
    seconds: u64,
    ids: u64,
    threads: usize,
    min_bytes: usize,
    max_bytes: usize,
}

fn args() -> Args {
    let mut args = Args {
        addr: "127.0.0.1:8081".into(),
        seconds: 60,
        ids: 20_000,
        threads: 2,
        min_bytes: 64,
        max_bytes: 64 * 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value,
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--ids" => args.ids = value.parse().expect("--ids N"),
            "--threads" => args.threads = value.parse().expect("--threads N"),
            "--min-bytes" => args.min_bytes = value.parse().expect("--min-bytes N"),
            "--max-bytes" => args.max_bytes = value.parse().expect("--max-bytes N"),
            _ => panic!("unknown flag {flag}"),
        }
    }
    args
}

/// A keep-alive HTTP/1.1 connection that reads whole responses.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("the cache is listening");
        stream.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Sends `head` and `body`; returns the status and the response body.
    fn call(&mut self, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, body)
    }
}

/// `name value` from a Prometheus exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

fn report(conn: &mut Conn, started: Instant, puts: u64) {
    let (_, body) = conn.call("GET /metrics HTTP/1.1\r\nHost: churn\r\n\r\n", &[]);
    let text = String::from_utf8(body).unwrap();
    let rss = sample(&text, "process_resident_memory_bytes");
    let bytes = sample(&text, "cache_bytes");
    let entries = sample(&text, "cache_entries");
    println!(
        "{:>5.0}s  puts {:>9}  entries {:>7}  cache_bytes {:>7.1} MiB  rss {:>7.1} MiB  rss/bytes {:.3}",
        started.elapsed().as_secs_f64(),
        puts,
        entries,
        bytes / 1048576.0,
        rss / 1048576.0,
        rss / bytes.max(1.0),
    );
}

fn main() {
    let args = args();
    let stop = AtomicBool::new(false);
    let puts = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut metrics = Conn::open(&args.addr);
    std::thread::scope(|s| {
        for t in 0..args.threads {
            let (args, stop, puts) = (&args, &stop, &puts);
            s.spawn(move || {
                let mut conn = Conn::open(&args.addr);
                let mut rng = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(t as u64 + 1);
                let buf = vec![b'x'; args.max_bytes];
                while !stop.load(Ordering::Relaxed) {
                    // xorshift64
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let id = rng % args.ids;
                    let len = args.min_bytes
                        + ((rng >> 32) as usize % (args.max_bytes - args.min_bytes + 1));
                    let head = format!(
                        "PUT /v1/sessions/s{id} HTTP/1.1\r\nHost: churn\r\nContent-Length: {len}\r\n\r\n"
                    );
                    let (status, _) = conn.call(&head, &buf[..len]);
                    assert_eq!(status, 204, "PUT answered {status}");
                    puts.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(5).min(deadline - Instant::now()));
            report(&mut metrics, started, puts.load(Ordering::Relaxed));
        }
        stop.store(true, Ordering::Relaxed);
    });
}

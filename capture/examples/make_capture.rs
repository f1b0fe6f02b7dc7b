//! Writes a synthetic capture for the benchmarks in `docs/benchmarks.md`:
//! `--requests` requests at `--rate` per second (evenly spaced), spread
//! over `--conns` connections, each `METHOD PATH` with a body read from
//! `--body FILE` (e.g. `parallax load ingest --write-batch batch.bin`) or
//! `--body-bytes N` pseudo-random (incompressible) bytes, or
//! `--json-body-bytes N` a JSON document of about N bytes that differs per
//! request as real traffic does (ids, users, timestamps, values drawn from
//! the same generator; field names and event types repeat), sent as
//! `application/json`.
//!
//! ```sh
//! cargo run --release -p parallax-capture --example make_capture -- \
//!     --out /tmp/ingest.plxcap --requests 30000 --rate 1000 --method POST \
//!     --path /v1/events --body /tmp/batch.bin
//! ```

use std::path::PathBuf;

use bytes::Bytes;
use parallax_capture::format::{Meta, Record, Request};
use parallax_capture::CaptureWriter;

fn main() {
    let mut out = PathBuf::from("capture.plxcap");
    let mut requests = 10_000u64;
    let mut rate = 1000.0f64;
    let mut conns = 16u64;
    let mut method = "GET".to_owned();
    let mut path = "/v1/sessions/{n}".to_owned();
    let mut body = Bytes::new();
    let mut body_bytes = 0usize;
    let mut json_body_bytes = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().expect("a value after each flag");
        match a.as_str() {
            "--out" => out = v().into(),
            "--requests" => requests = v().parse().expect("a count"),
            "--rate" => rate = v().parse().expect("a rate"),
            "--conns" => conns = v().parse().expect("a count"),
            "--method" => method = v(),
            "--path" => path = v(),
            "--body" => body = std::fs::read(v()).expect("a readable body file").into(),
            "--body-bytes" => body_bytes = v().parse().expect("a size"),
            "--json-body-bytes" => json_body_bytes = v().parse().expect("a size"),
            other => panic!("unknown flag {other}"),
        }
    }
    let file = std::fs::File::create(&out).expect("a writable output");
    let mut w = CaptureWriter::new(file, &Meta::new("synthetic", 0)).expect("write");
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for n in 0..requests {
        let body = if json_body_bytes > 0 {
            Bytes::from(json_body(n, json_body_bytes, &mut x))
        } else if body_bytes > 0 {
            let mut b = Vec::with_capacity(body_bytes);
            while b.len() < body_bytes {
                b.extend_from_slice(&next(&mut x).to_le_bytes());
            }
            b.truncate(body_bytes);
            Bytes::from(b)
        } else {
            body.clone()
        };
        let record = Record::Request(Request {
            at_us: (n as f64 * 1e6 / rate) as u64,
            conn: Some(n % conns),
            method: method.clone(),
            target: path.replace("{n}", &n.to_string()),
            headers: vec![(
                "content-type".into(),
                if body.is_empty() {
                    "text/plain".into()
                } else if json_body_bytes > 0 {
                    "application/json".into()
                } else {
                    "application/x-protobuf".into()
                },
            )],
            body,
            body_truncated: false,
            status: Some(200),
            latency_us: Some(500),
        });
        w.append(&record).expect("write");
        if n % 1000 == 999 {
            w.flush().expect("flush");
        }
    }
    let written = w.bytes_written();
    w.finish().expect("finish");
    eprintln!(
        "{}: {requests} requests, {:.1} MiB",
        out.display(),
        written as f64 / (1 << 20) as f64
    );
}

/// xorshift64: the pseudo-random numbers of the synthetic bodies.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A batch of events of about `size` bytes for request `n`: the shape of
/// an ingest client's JSON (ids, users, timestamps and values vary; keys
/// and event types repeat).
fn json_body(n: u64, size: usize, x: &mut u64) -> Vec<u8> {
    const TYPES: [&str; 4] = ["page_view", "click", "add_to_cart", "purchase"];
    let mut b = String::from("{\"events\":[");
    let mut i = 0u64;
    while b.len() + 140 < size || i == 0 {
        let v = next(x);
        if i > 0 {
            b.push(',');
        }
        b.push_str(&format!(
            "{{\"eventId\":\"{n:08x}-{i:04x}-{:012x}\",\"type\":\"{}\",\"userId\":\"u{}\",\"tsMs\":{},\"value\":{}.{:02}}}",
            v >> 16,
            TYPES[(v % 4) as usize],
            (v >> 8) % 1_000_000,
            1_764_900_000_000 + n * 5 + i,
            (v >> 40) % 1000,
            (v >> 32) % 100,
        ));
        i += 1;
    }
    b.push_str("]}");
    b.into_bytes()
}

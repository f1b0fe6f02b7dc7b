//! The capture format end to end (write, crash, read back, rotate), the
//! importers, and replays into an in-process server.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parallax_capture::format::{Meta, Record, Request, WsMessage};
use parallax_capture::replay::{self, Pace, ReplayOptions, Schedule, Target};
use parallax_capture::rewrite::{Filter, Rewrite};
use parallax_capture::summary::Summary;
use parallax_capture::{CaptureReader, CaptureWriter, Rotation, Segments, Source, Tail};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plx-capture-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn request(i: u64, conn: u64) -> Record {
    Record::Request(Request {
        at_us: i * 1000,
        conn: Some(conn),
        method: if i & 1 == 0 { "GET" } else { "POST" }.into(),
        target: format!("/v1/items/{i}?q=1"),
        headers: vec![("x-seq".into(), i.to_string())],
        body: Bytes::from(format!("{{\"id\":\"ev-{i:06}\"}}")),
        body_truncated: false,
        status: Some(200),
        latency_us: Some(100 + i),
    })
}

fn write_capture(path: &Path, n: u64) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = CaptureWriter::new(file, &Meta::new("test", 1)).unwrap();
    for i in 0..n {
        w.append(&request(i, i % 3)).unwrap();
        if i % 10 == 9 {
            w.flush().unwrap();
        }
    }
    w.finish().unwrap();
}

fn read_all(path: &Path) -> (Vec<Record>, Tail) {
    let mut r = CaptureReader::open(path).unwrap();
    let records: Vec<_> = r.by_ref().collect();
    (records, r.tail().clone())
}

#[test]
fn a_capture_reads_back_record_for_record() {
    let d = dir("roundtrip");
    let path = d.join("c.plxcap");
    write_capture(&path, 1000);
    let (records, tail) = read_all(&path);
    assert_eq!(tail, Tail::Complete);
    assert_eq!(records.len(), 1000);
    assert_eq!(records[7], request(7, 1));
    // It is a plain zstd stream.
    let raw = zstd::stream::decode_all(std::fs::File::open(&path).unwrap()).unwrap();
    assert!(raw.starts_with(b"PLXCAP\0\x02"));
}

#[test]
fn a_version_1_capture_still_reads_and_a_future_version_is_refused_by_name() {
    let d = dir("versions");
    let path = d.join("c.plxcap");
    write_capture(&path, 20);
    let mut raw = zstd::stream::decode_all(std::fs::File::open(&path).unwrap()).unwrap();
    // Version 1 wrote these records (kind 1) the same way.
    raw[7] = 1;
    std::fs::write(&path, zstd::bulk::compress(&raw, 1).unwrap()).unwrap();
    let (records, tail) = read_all(&path);
    assert_eq!(tail, Tail::Complete);
    assert_eq!(records.len(), 20);
    assert_eq!(records[7], request(7, 1));
    raw[7] = 3;
    std::fs::write(&path, zstd::bulk::compress(&raw, 1).unwrap()).unwrap();
    let error = CaptureReader::open(&path)
        .err()
        .expect("version 3 refused")
        .to_string();
    assert!(error.contains("version 3"), "{error}");
    assert!(error.contains("reads 1 to 2"), "{error}");
}

#[test]
fn a_killed_writer_leaves_every_flushed_record_readable() {
    let d = dir("killed");
    let path = d.join("c.plxcap");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = CaptureWriter::new(file, &Meta::new("test", 1)).unwrap();
    for i in 0..25 {
        w.append(&request(i, 0)).unwrap();
        if i == 19 {
            w.flush().unwrap();
        }
    }
    // Dropped without `finish`: records 20-24 were never flushed (as when
    // the process is killed). Every flush wrote a whole frame, so the
    // file ends cleanly after record 19; a kill in the middle of a
    // frame's write is the cut file below.
    std::mem::forget(w);
    let (records, tail) = read_all(&path);
    assert_eq!(records.len(), 20, "every flushed record");
    assert_eq!(records[19], request(19, 0));
    assert_eq!(tail, Tail::Complete);
}

#[test]
fn a_file_cut_anywhere_reads_up_to_its_last_complete_record() {
    let d = dir("cut");
    let path = d.join("c.plxcap");
    write_capture(&path, 300);
    let full = std::fs::read(&path).unwrap();
    let mut last = 0;
    for cut in (20..full.len()).step_by(97) {
        let p = d.join("cut.plxcap");
        std::fs::write(&p, &full[..cut]).unwrap();
        let Ok(mut r) = CaptureReader::open(&p) else {
            continue; // cut inside the preamble and meta
        };
        let records: Vec<_> = r.by_ref().collect();
        assert!(matches!(r.tail(), Tail::Truncated { .. }), "cut at {cut}");
        for (i, rec) in records.iter().enumerate() {
            assert_eq!(*rec, request(i as u64, i as u64 % 3), "cut at {cut}");
        }
        assert!(
            records.len() >= last,
            "a longer prefix never reads fewer records"
        );
        last = records.len();
    }
    assert!(last >= 290, "{last}");
}

/// A request with `n` pseudo-random (incompressible) body bytes.
fn random_request(i: u64, n: usize) -> Record {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i;
    let mut body = Vec::with_capacity(n + 8);
    while body.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.extend_from_slice(&x.to_le_bytes());
    }
    body.truncate(n);
    let Record::Request(mut r) = request(i, i % 3) else {
        unreachable!()
    };
    r.body = body.into();
    Record::Request(r)
}

#[test]
fn incompressible_frames_are_stored_and_read_back_and_compressible_ones_are_not() {
    let d = dir("stored");
    let probe = parallax_capture::writer::PROBE_BYTES as usize;
    // Random bodies: the first PROBE_BYTES are compressed (a probe), what
    // follows is stored; a min_ratio of 0 never stores.
    for (min_ratio, stores) in [(1.5, true), (0.0, false)] {
        let path = d.join(format!("random-{min_ratio}.plxcap"));
        let mut w =
            CaptureWriter::new(std::fs::File::create(&path).unwrap(), &Meta::new("t", 1)).unwrap();
        w.set_min_ratio(min_ratio);
        let n = (3 * probe / 1100) as u64;
        let mut stored_seen = false;
        for i in 0..n {
            w.append(&random_request(i, 1024)).unwrap();
            if i % 50 == 49 {
                w.flush().unwrap();
                if w.storing() && !stored_seen {
                    // Judged on the probe alone: at most one flush
                    // (50 records) past it went through zstd.
                    assert!(
                        i * 1100 < probe as u64 + 50 * 1100,
                        "stored from record {i}"
                    );
                }
                stored_seen |= w.storing();
            }
        }
        w.finish().unwrap();
        assert_eq!(stored_seen, stores, "min_ratio {min_ratio}");
        let (records, tail) = read_all(&path);
        assert_eq!(tail, Tail::Complete);
        assert_eq!(records.len() as u64, n);
        assert_eq!(records[n as usize - 1], random_request(n - 1, 1024));
        // Still one plain zstd stream, with its checksums checked.
        let raw = zstd::stream::decode_all(std::fs::File::open(&path).unwrap()).unwrap();
        assert!(raw.starts_with(b"PLXCAP\0\x02"));
    }
    // JSON-like bodies compress far beyond 1.5x: never stored.
    let path = d.join("json.plxcap");
    let mut w =
        CaptureWriter::new(std::fs::File::create(&path).unwrap(), &Meta::new("t", 1)).unwrap();
    w.set_min_ratio(1.5);
    for i in 0..(3 * probe / 40) as u64 {
        w.append(&request(i, i % 3)).unwrap();
        if i % 500 == 499 {
            w.flush().unwrap();
            assert!(!w.storing(), "record {i}");
        }
    }
    w.finish().unwrap();
    assert_eq!(read_all(&path).1, Tail::Complete);
}

#[test]
fn a_killed_writer_leaves_every_flushed_record_of_a_stored_frame_readable() {
    let d = dir("stored-killed");
    let path = d.join("c.plxcap");
    let mut w =
        CaptureWriter::new(std::fs::File::create(&path).unwrap(), &Meta::new("t", 1)).unwrap();
    w.set_min_ratio(1.5);
    let mut i = 0;
    // Past the first (compressed) frame, into a stored one.
    while !w.storing() {
        w.append(&random_request(i, 4096)).unwrap();
        w.flush().unwrap();
        i += 1;
    }
    let flushed = i + 10;
    while i < flushed {
        w.append(&random_request(i, 4096)).unwrap();
        i += 1;
    }
    w.flush().unwrap();
    for j in 0..5 {
        w.append(&random_request(i + j, 4096)).unwrap();
    }
    // Killed: 5 records never flushed.
    std::mem::forget(w);
    let (records, tail) = read_all(&path);
    assert_eq!(records.len() as u64, flushed, "every flushed record");
    assert_eq!(records.last(), Some(&random_request(flushed - 1, 4096)));
    assert_eq!(tail, Tail::Complete);
    // Cut anywhere inside the stored frames: whole records up to the cut.
    let full = std::fs::read(&path).unwrap();
    let p = d.join("cut.plxcap");
    let mut last = 0;
    for cut in (full.len() - 50_000..full.len()).step_by(4999) {
        std::fs::write(&p, &full[..cut]).unwrap();
        let (records, _) = read_all(&p);
        assert!(records.len() >= last, "cut at {cut}");
        for (k, r) in records
            .iter()
            .enumerate()
            .skip(records.len().saturating_sub(3))
        {
            assert_eq!(*r, random_request(k as u64, 4096), "cut at {cut}");
        }
        last = records.len();
    }
}

#[test]
fn captures_at_every_level_read_back_through_the_reader_the_replay_schedule_and_zstd() {
    let d = dir("levels");
    let mut sizes = Vec::new();
    for level in [-7, -5, -3, -1, 1, 3, 9] {
        let path = d.join(format!("l{level}.plxcap"));
        let rotation = Rotation {
            max_file_bytes: 1 << 30,
            max_files: 0,
            level,
            min_ratio: 1.5,
        };
        let mut s = Segments::new(&path, Meta::new("proxy", 1), rotation);
        // As the recorder writes: encoded batches, each its own frames.
        let mut batch = Vec::new();
        for i in 0..600 {
            parallax_capture::format::encode(&request(i, i % 3), &mut batch);
            if i % 200 == 199 {
                s.write_frames(&batch, 200).unwrap();
                batch.clear();
            }
        }
        s.close().unwrap();
        let files: Vec<PathBuf> = parallax_capture::writer::existing_segments(&path)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(files.len(), 1, "level {level}");
        let (records, tail) = read_all(&files[0]);
        assert_eq!(tail, Tail::Complete, "level {level}");
        assert_eq!(records.len(), 600, "level {level}");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(*r, request(i as u64, i as u64 % 3), "level {level}");
        }
        // The path `parallax replay` reads.
        let scheduled = Schedule::open(&files, &ReplayOptions::default())
            .unwrap()
            .map(|item| item.unwrap().request.target)
            .collect::<Vec<_>>();
        assert_eq!(scheduled.len(), 600, "level {level}");
        assert_eq!(scheduled[599], "/v1/items/599?q=1");
        // One plain zstd stream, checksums checked; and the zstd tool's
        // view of it where the tool is installed.
        let raw = zstd::stream::decode_all(std::fs::File::open(&files[0]).unwrap()).unwrap();
        assert!(raw.starts_with(b"PLXCAP\0\x02"), "level {level}");
        if let Ok(out) = std::process::Command::new("zstd")
            .arg("-dcq")
            .arg(&files[0])
            .output()
        {
            assert!(out.status.success(), "zstd -dc at level {level}");
            assert_eq!(out.stdout, raw, "zstd -dc at level {level}");
        }
        sizes.push((level, std::fs::metadata(&files[0]).unwrap().len()));
    }
    // The level is honoured: the fastest writes a larger file than 9.
    assert!(sizes[0].1 > sizes[6].1, "{sizes:?}");
}

#[test]
fn segments_rotate_by_size_and_read_back_as_one_capture() {
    let d = dir("rotate");
    let path = d.join("traffic.plxcap");
    let mut meta = Meta::new("proxy", 1_000_000);
    meta.service = Some("ingest".into());
    let mut s = Segments::new(
        &path,
        meta,
        Rotation {
            max_file_bytes: 2000,
            max_files: 0,
            level: parallax_capture::writer::FAST_LEVEL,
            min_ratio: 0.0,
        },
    );
    for i in 0..2000 {
        s.append(&request(i, i % 5)).unwrap();
        if i % 50 == 49 {
            s.flush().unwrap();
        }
    }
    s.close().unwrap();
    let files = parallax_capture::writer::existing_segments(&path);
    assert!(files.len() > 3, "{files:?}");
    let mut paths: Vec<PathBuf> = files.into_iter().map(|(_, p)| p).collect();
    paths.reverse(); // order of the arguments does not matter
    let mut source = Source::open(&paths).unwrap();
    let mut n = 0;
    while let Some(r) = source.next_record().unwrap() {
        assert_eq!(r, request(n, n % 5));
        n += 1;
    }
    assert_eq!(n, 2000);
    // A restarted recorder continues the numbering.
    let again = Segments::new(
        &path,
        Meta::new("proxy", 2),
        Rotation {
            max_file_bytes: 1 << 20,
            max_files: 2,
            level: parallax_capture::writer::LEVEL,
            min_ratio: 1.5,
        },
    );
    drop(again);
}

#[test]
fn the_summary_collapses_ids_and_counts() {
    let d = dir("summary");
    let path = d.join("c.plxcap");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = CaptureWriter::new(file, &Meta::new("proxy", 1)).unwrap();
    for i in 0..100 {
        w.append(&request(i, i % 4)).unwrap();
    }
    w.append(&Record::Ws(WsMessage {
        at_us: 200_000,
        conn: Some(9),
        from_client: true,
        opcode: 1,
        payload: Bytes::from_static(b"hi"),
    }))
    .unwrap();
    w.append(&Record::Gap {
        at_us: 200_001,
        dropped: 7,
    })
    .unwrap();
    w.finish().unwrap();
    let mut source = Source::open(&[path]).unwrap();
    let s = Summary::of(&mut source).unwrap();
    assert_eq!(s.requests, 100);
    assert_eq!(s.routes["GET /v1/items/{id}"], 50);
    assert_eq!(s.ws_messages, 1);
    assert_eq!(s.dropped, 7);
    assert_eq!(s.connections(), 4);
    let text = s.render(&source);
    assert!(text.contains("100 requests"), "{text}");
}

// ------------------------------------------------------------------ replay

#[derive(Debug, Clone)]
struct Seen {
    conn: u64,
    method: String,
    target: String,
    body: Bytes,
    header: Option<String>,
}

/// An in-process server that remembers every request and its connection.
async fn server() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let conns = Arc::new(AtomicU64::new(0));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let conn = conns.fetch_add(1, Ordering::Relaxed);
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let log = Arc::clone(&log);
                    async move {
                        let method = req.method().to_string();
                        let target = req.uri().to_string();
                        let header = req
                            .headers()
                            .get("x-replay")
                            .map(|v| v.to_str().unwrap().to_owned());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let status = if target.contains("missing") { 404 } else { 200 };
                        log.lock().unwrap().push(Seen {
                            conn,
                            method,
                            target,
                            body,
                            header,
                        });
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"ok")))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn target(addr: SocketAddr) -> Target {
    Target::parse(&format!("http://{addr}")).unwrap()
}

#[tokio::test]
async fn a_capture_replays_with_its_sessions_in_order() {
    let d = dir("sessions");
    let path = d.join("c.plxcap");
    write_capture(&path, 60);
    let (addr, seen) = server().await;
    let options = ReplayOptions {
        pace: Pace::Speed(4.0),
        ..ReplayOptions::default()
    };
    let report = replay::run(&[path], &options, &target(addr), |_| {})
        .await
        .unwrap();
    assert_eq!(report.sent, 60);
    assert_eq!(report.completed, 60);
    assert_eq!(report.statuses[&200], 60);
    assert_eq!(report.status_same, 60);
    assert_eq!(report.errors(), 0);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 60);
    // Three recorded connections: each one's requests on one server
    // connection, in recorded order.
    for c in 0..3u64 {
        let mine: Vec<_> = seen
            .iter()
            .filter(|s| {
                s.target.starts_with("/v1/items/") && {
                    let i: u64 = s.target[10..].split('?').next().unwrap().parse().unwrap();
                    i % 3 == c
                }
            })
            .collect();
        assert_eq!(mine.len(), 20);
        assert!(
            mine.iter().all(|s| s.conn == mine[0].conn),
            "one connection per session"
        );
        let order: Vec<u64> = mine
            .iter()
            .map(|s| s.target[10..].split('?').next().unwrap().parse().unwrap())
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }
    // Sessions run side by side: find request 1 rather than expect it
    // second.
    let one = seen
        .iter()
        .find(|s| s.target.split('?').next() == Some("/v1/items/1"))
        .expect("request 1 replayed");
    assert_eq!(&one.body[..], b"{\"id\":\"ev-000001\"}");
    // 60 requests 1 ms apart at 4x: about 15 ms of schedule.
    assert!(
        report.scheduled <= Duration::from_millis(16),
        "{:?}",
        report.scheduled
    );
}

#[tokio::test]
async fn loops_rewrite_ids_and_filters_apply() {
    let d = dir("loops");
    let path = d.join("c.plxcap");
    write_capture(&path, 10);
    let (addr, seen) = server().await;
    let options = ReplayOptions {
        pace: Pace::Rate(2000.0),
        loops: 3,
        filter: Filter::new(&[], &["post".into()]).unwrap(),
        rewrite: Rewrite::new(
            &["X-Replay: yes".into()],
            &[],
            &[("^/v1/".into(), "/v2/".into())],
            Some("ev-"),
            Some("L{loop}-"),
        )
        .unwrap(),
        sessions: false,
        ..ReplayOptions::default()
    };
    let report = replay::run(&[path], &options, &target(addr), |_| {})
        .await
        .unwrap();
    assert_eq!(report.sent, 15, "5 POSTs, 3 loops");
    assert_eq!(report.skipped.filtered, 15);
    let seen = seen.lock().unwrap().clone();
    assert!(seen
        .iter()
        .all(|s| s.method == "POST" && s.target.starts_with("/v2/")));
    assert!(seen.iter().all(|s| s.header.as_deref() == Some("yes")));
    let bodies: std::collections::HashSet<_> = seen.iter().map(|s| s.body.clone()).collect();
    assert_eq!(bodies.len(), 15, "every loop's ids are fresh");
    assert!(bodies.contains(&Bytes::from_static(b"{\"id\":\"L2-000009\"}")));
}

#[tokio::test]
async fn a_truncated_capture_replays_up_to_its_last_record() {
    let d = dir("truncated-replay");
    let path = d.join("c.plxcap");
    write_capture(&path, 200);
    let full = std::fs::read(&path).unwrap();
    let cut = d.join("cut.plxcap");
    std::fs::write(&cut, &full[..full.len() * 2 / 3]).unwrap();
    let (records, tail) = read_all(&cut);
    assert!(matches!(tail, Tail::Truncated { .. }));
    let (addr, seen) = server().await;
    let options = ReplayOptions {
        pace: Pace::Rate(5000.0),
        ..ReplayOptions::default()
    };
    let report = replay::run(&[cut], &options, &target(addr), |_| {})
        .await
        .unwrap();
    assert!(report.truncated);
    assert_eq!(report.sent as usize, records.len());
    assert_eq!(seen.lock().unwrap().len(), records.len());
}

const GOR: &str = "1 a1 1700000000000000000 0\nPOST /v1/events HTTP/1.1\r\nHost: example\r\nContent-Length: 9\r\n\r\n{\"n\":\"1\"}\n🐵🙈🙉\n2 a1 1700000000001000000 900000\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\n🐵🙈🙉\n1 b2 1700000000010000000 0\nGET /v1/sessions/missing HTTP/1.1\r\nHost: example\r\n\r\n\n🐵🙈🙉\n2 b2 1700000000011000000 400000\nHTTP/1.1 404 Not Found\r\n\r\n\n🐵🙈🙉\n1 c3 1700000000020000000 0\nGET /healthz HTTP/1.1\r\nHost: example\r\n\r\n\n🐵🙈🙉\n";

#[tokio::test]
async fn a_hand_written_gor_file_replays() {
    let d = dir("gor");
    let path = d.join("requests.gor");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(GOR.as_bytes())
        .unwrap();
    assert_eq!(
        parallax_capture::source::detect(&path).unwrap(),
        parallax_capture::Format::Gor
    );
    let (addr, seen) = server().await;
    let report = replay::run(&[path], &ReplayOptions::default(), &target(addr), |_| {})
        .await
        .unwrap();
    assert_eq!(report.sent, 3);
    assert_eq!(report.statuses[&200], 2);
    assert_eq!(report.statuses[&404], 1);
    assert_eq!(report.status_same, 2, "POST 200 and GET 404 as recorded");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(&seen[0].body[..], b"{\"n\":\"1\"}");
    assert_eq!(seen[2].target, "/healthz");
}

const HAR: &str = r#"{"log":{"version":"1.2","creator":{"name":"hand","version":"1"},"entries":[
 {"startedDateTime":"2026-12-05T08:00:00.000Z","time":3.2,
  "request":{"method":"POST","url":"http://shop.example/v1/orders?src=har","httpVersion":"HTTP/1.1",
    "headers":[{"name":"Content-Type","value":"application/json"},{"name":"Host","value":"shop.example"}],
    "queryString":[],"cookies":[],"headersSize":-1,"bodySize":13,
    "postData":{"mimeType":"application/json","text":"{\"qty\":\"2\"}"}},
  "response":{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","headers":[],"cookies":[],"content":{"size":0,"mimeType":"text/plain"},"redirectURL":"","headersSize":-1,"bodySize":0},
  "cache":{},"timings":{"send":0,"wait":3,"receive":0}},
 {"startedDateTime":"2026-12-05T08:00:00.050Z","time":1,
  "request":{"method":"GET","url":"https://shop.example/v1/orders/77","httpVersion":"HTTP/2","headers":[{"name":":authority","value":"shop.example"}],
    "queryString":[],"cookies":[],"headersSize":-1,"bodySize":0},
  "response":{"status":200,"statusText":"","httpVersion":"HTTP/2","headers":[],"cookies":[],"content":{"size":0,"mimeType":"text/plain"},"redirectURL":"","headersSize":-1,"bodySize":0},
  "cache":{},"timings":{"send":0,"wait":1,"receive":0}}
]}}"#;

#[tokio::test]
async fn a_har_file_replays() {
    let d = dir("har");
    let path = d.join("shop.har");
    std::fs::write(&path, HAR).unwrap();
    let (addr, seen) = server().await;
    let report = replay::run(
        std::slice::from_ref(&path),
        &ReplayOptions::default(),
        &target(addr),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.sent, 2);
    assert_eq!(report.status_same, 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].target, "/v1/orders?src=har");
    assert_eq!(&seen[0].body[..], b"{\"qty\":\"2\"}");
    assert_eq!(seen[1].target, "/v1/orders/77");
    let mut source = Source::open(&[path]).unwrap();
    let s = Summary::of(&mut source).unwrap();
    assert_eq!(s.routes["GET /v1/orders/{id}"], 1);
    assert!((s.duration_secs() - 0.05).abs() < 1e-9);
}

#[test]
fn the_schedule_spaces_items_by_speed_or_rate() {
    let d = dir("schedule");
    let path = d.join("c.plxcap");
    write_capture(&path, 5);
    let speed = ReplayOptions {
        pace: Pace::Speed(2.0),
        ..ReplayOptions::default()
    };
    let dues: Vec<_> = Schedule::open(std::slice::from_ref(&path), &speed)
        .unwrap()
        .map(|i| i.unwrap().due)
        .collect();
    assert_eq!(dues[4], Duration::from_micros(2000));
    let rate = ReplayOptions {
        pace: Pace::Rate(100.0),
        loops: 0,
        duration: Some(Duration::from_millis(95)),
        ..ReplayOptions::default()
    };
    let items: Vec<_> = Schedule::open(&[path], &rate)
        .unwrap()
        .map(|i| i.unwrap())
        .collect();
    assert_eq!(items.len(), 10, "0 to 90 ms at 100/s, looping");
    assert_eq!(items[9].due, Duration::from_millis(90));
    assert_eq!(items[9].loop_n, 1);
    assert_ne!(
        items[0].conn, items[5].conn,
        "sessions are distinct per loop"
    );
}

#[test]
fn a_record_written_after_later_arrivals_is_due_at_once_not_in_the_past() {
    // The recorder writes a request when its exchange ends: a streamed
    // request that arrived at 1 ms and ended at 40 ms follows the ones
    // that arrived at 2 and 3 ms.
    let d = dir("out-of-order");
    let path = d.join("c.plxcap");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = CaptureWriter::new(file, &Meta::new("test", 1)).unwrap();
    for i in [0, 2, 3, 1, 4] {
        w.append(&request(i, i)).unwrap();
    }
    w.finish().unwrap();
    let dues: Vec<_> = Schedule::open(std::slice::from_ref(&path), &ReplayOptions::default())
        .unwrap()
        .map(|i| i.unwrap().due.as_micros())
        .collect();
    assert_eq!(dues, [0, 2000, 3000, 3000, 4000]);
}

/// A WebSocket server that answers each text message `m` with `echo:m`,
/// and first greets with `hello`.
async fn ws_echo() -> SocketAddr {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let _ = ws.send(Message::text("hello")).await;
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() {
                        let reply = format!("echo:{}", m.to_text().unwrap());
                        let _ = ws.send(Message::text(reply)).await;
                    } else if m.is_close() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn ws(at_us: u64, from_client: bool, opcode: u8, payload: &'static str) -> Record {
    Record::Ws(WsMessage {
        at_us,
        conn: Some(5),
        from_client,
        opcode,
        payload: Bytes::from_static(payload.as_bytes()),
    })
}

#[tokio::test]
async fn a_websocket_session_replays_with_its_frames_paired() {
    let d = dir("ws");
    let path = d.join("c.plxcap");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = CaptureWriter::new(file, &Meta::new("test", 1)).unwrap();
    w.append(&Record::Request(Request {
        at_us: 0,
        conn: Some(5),
        method: "GET".into(),
        target: "/v1/subscribe?topic=a".into(),
        headers: vec![
            ("upgrade".into(), "websocket".into()),
            (
                "sec-websocket-key".into(),
                "dGhlIHNhbXBsZSBub25jZQ==".into(),
            ),
            ("x-client".into(), "t".into()),
        ],
        status: Some(101),
        ..Request::default()
    }))
    .unwrap();
    // Recorded: the greeting, two exchanges — the second answer differs
    // from what this server sends — and one frame it never sends.
    for r in [
        ws(1000, false, 1, "hello"),
        ws(2000, true, 1, "a"),
        ws(2500, false, 1, "echo:a"),
        ws(4000, true, 1, "b"),
        ws(4500, false, 1, "ECHO:b"),
        ws(5000, false, 1, "bye"),
        ws(6000, true, 8, "\u{3}\u{e8}"),
    ] {
        w.append(&r).unwrap();
    }
    // A message of a connection whose handshake is not in the capture.
    w.append(&Record::Ws(WsMessage {
        at_us: 6500,
        conn: Some(99),
        from_client: true,
        opcode: 1,
        payload: Bytes::from_static(b"orphan"),
    }))
    .unwrap();
    w.finish().unwrap();

    let addr = ws_echo().await;
    let options = ReplayOptions {
        pace: Pace::Speed(2.0),
        ws_linger: Duration::from_millis(300),
        ..ReplayOptions::default()
    };
    let report = replay::run(std::slice::from_ref(&path), &options, &target(addr), |_| {})
        .await
        .unwrap();
    assert_eq!(report.statuses[&101], 1, "{report:?}");
    assert_eq!(report.status_same, 1);
    assert_eq!(report.skipped.websocket, 1, "the orphan message");
    let ws = &report.websocket;
    assert_eq!((ws.sessions, ws.failed), (1, 0));
    assert_eq!(ws.sent, 3, "two texts and the close");
    assert_eq!((ws.expected, ws.received), (4, 3));
    assert_eq!(
        (ws.same, ws.different, ws.missing, ws.extra),
        (2, 1, 1, 0),
        "{ws:?}"
    );
    assert_eq!(ws.samples[0].index, 2);
    assert_eq!(ws.samples[0].expected.as_deref(), Some("ECHO:b"));
    assert_eq!(ws.samples[0].received.as_deref(), Some("echo:b"));
    assert_eq!(ws.samples[1].received, None, "bye is missing");

    // WebSockets off: the session is skipped and counted.
    let options = ReplayOptions {
        websocket: false,
        ..options
    };
    let report = replay::run(&[path], &options, &target(addr), |_| {})
        .await
        .unwrap();
    assert_eq!(report.sent, 0);
    assert_eq!(report.websocket.sessions, 0);
    assert_eq!(report.skipped.websocket, 9);
}

#[test]
fn capture_info_counts_goreplay_responses_whose_request_never_came() {
    let d = dir("gor-orphans");
    let path = d.join("x.gor");
    // A response with no request (GoReplay writes one for a request it
    // could not reassemble), then a request of its own.
    std::fs::write(
        &path,
        "2 abcdef0123456789abcdef01 1764900000000000000 0\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\n🐵🙈🙉\n\
         1 1111111111111111111111111111111111111111 1764900000100000000 0\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n\n🐵🙈🙉\n",
    )
    .unwrap();
    let mut source = Source::open(&[path]).unwrap();
    let summary = Summary::of(&mut source).unwrap();
    assert_eq!(summary.requests, 1);
    let text = summary.render(&source);
    assert!(
        text.contains(
            "0 GoReplay payloads that do not parse, 1 responses whose request is not in the file"
        ),
        "{text}"
    );
}

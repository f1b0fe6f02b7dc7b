//! Recording at the proxy (`[services.record]`): what reaches the capture
//! (redacted, with the primary's status and latency), that it replays to
//! the same answers, that a full disk costs records and never a client's
//! answer, that sampling is sticky, and that WebSocket sessions are
//! recorded message by message and replay with their frames paired.

#[path = "support/grpc.rs"]
mod grpc;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::Request;
use http_body_util::Full;
use parallax_capture::format::Record;
use parallax_capture::replay::{self, Pace, ReplayOptions, Target};
use parallax_capture::writer::existing_segments;
use parallax_capture::Source;
use support::*;
use tokio_tungstenite::tungstenite::Message;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plx-record-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn record_table(path: &Path, extra: &str) -> String {
    format!(
        "[services.record]\npath = \"{}\"\nflush_interval_ms = 20\n{extra}",
        path.display()
    )
}

/// The records of every segment of the capture at `path`.
fn records(path: &Path) -> (Vec<Record>, Source) {
    let files: Vec<PathBuf> = existing_segments(path)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let mut source = Source::open(&files).unwrap();
    let mut out = Vec::new();
    while let Some(r) = source.next_record().unwrap() {
        out.push(r);
    }
    (out, source)
}

fn requests(records: &[Record]) -> Vec<&parallax_capture::Request> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Request(r) => Some(r),
            _ => None,
        })
        .collect()
}

async fn metric(proxy: &TestProxy, name: &str) -> f64 {
    parallax_conformance::metrics::samples(&proxy.metrics().await)
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// Records dropped for `reason`, from a scrape of the proxy's metrics.
fn dropped(metrics: &str, reason: &str) -> f64 {
    sum(metrics, "parallax_record_dropped_total", "reason", reason)
}

async fn wait_metric(proxy: &TestProxy, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = metric(proxy, name).await;
        if v >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {v}, expected {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn answer_by_path(seen: &Seen) -> http::Response<Reply> {
    if seen.target.contains("missing") {
        json(404, r#"{"code":"not_found"}"#)
    } else {
        echo(seen)
    }
}

#[tokio::test]
async fn recorded_traffic_is_redacted_and_replays_to_the_same_answers() {
    let d = dir("replay");
    let path = d.join("svc.plxcap");
    let primary = upstream(answer_by_path).start().await;
    let shadow = upstream(answer_by_path).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("redact = [\"header:x-api-key\", \"/**/password\"]")
        .set("mirror_percent = 50")
        .tables(&record_table(&path, ""))
        .start()
        .await;
    for i in 0..40 {
        let request = if i % 2 == 0 {
            let target = if i % 10 == 0 {
                format!("/v1/items/missing-{i}")
            } else {
                format!("/v1/items/{i}?token=s3cret&page=2")
            };
            Request::get(target)
                .header("authorization", "Bearer abc")
                .header("x-api-key", "k")
                .body(Full::default())
                .unwrap()
        } else {
            Request::post("/v1/events")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(format!(
                    r#"{{"id":"e{i}","user":{{"password":"hunter2"}}}}"#
                ))))
                .unwrap()
        };
        let answer = proxy.send(request).await;
        assert!(answer.status == 200 || answer.status == 404);
    }
    wait_metric(&proxy, "parallax_record_records_total", 40.0).await;
    assert!(metric(&proxy, "parallax_record_bytes_total").await > 0.0);
    assert_eq!(metric(&proxy, "parallax_record_dropped_total").await, 0.0);

    let (recs, source) = records(&path);
    assert_eq!(source.meta().unwrap().service.as_deref(), Some("svc"));
    let reqs = requests(&recs);
    assert_eq!(reqs.len(), 40, "mirrored or not, every request is recorded");
    assert!(reqs.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    let get = reqs
        .iter()
        .find(|r| r.target.starts_with("/v1/items/1"))
        .unwrap();
    assert_eq!(get.header("authorization"), Some("[redacted]"));
    assert_eq!(get.header("x-api-key"), Some("[redacted]"));
    assert!(
        get.header("x-forwarded-for").is_none(),
        "as the client sent it"
    );
    assert_eq!(get.target, "/v1/items/12?token=[redacted]&page=2");
    assert_eq!(get.status, Some(200));
    assert!(get.latency_us.is_some());
    let post = reqs.iter().find(|r| r.method == "POST").unwrap();
    let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(body["user"]["password"], "[redacted]");
    assert_eq!(body["id"], "e1");
    let missing = reqs.iter().find(|r| r.target.contains("missing")).unwrap();
    assert_eq!(missing.status, Some(404));
    assert!(reqs.iter().all(|r| r.conn.is_some()));

    // Replayed into a fresh primary: the same statuses for every request.
    let target = upstream(answer_by_path).start().await;
    let files: Vec<PathBuf> = existing_segments(&path)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let options = ReplayOptions {
        pace: Pace::Speed(20.0),
        ..ReplayOptions::default()
    };
    let report = replay::run(
        &files,
        &options,
        &Target::parse(&format!("http://{}", target.addr)).unwrap(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.sent, 40);
    assert_eq!(report.status_same, 40, "{:?}", report.statuses);
    let replayed = target.seen();
    let original = primary.seen();
    assert_eq!(replayed.len(), 40);
    for (r, o) in replayed.iter().zip(&original) {
        assert_eq!(r.method, o.method);
        assert_eq!(r.target.replace("[redacted]", "s3cret"), o.target);
        if r.method == "POST" {
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_slice(&r.body).unwrap(),
                serde_json::from_slice(&o.body).unwrap(),
            );
            assert_eq!(a["id"], b["id"]);
        }
    }
}

#[tokio::test]
async fn a_capture_being_written_reads_up_to_its_last_flush() {
    // As if the proxy were killed now: every record the writer took is in
    // a whole frame already.
    let d = dir("live");
    let path = d.join("svc.plxcap");
    let primary = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(primary.addr)
        .set("mirror_percent = 0")
        .tables(&record_table(&path, ""))
        .start()
        .await;
    for i in 0..10 {
        proxy.get(&format!("/x/{i}")).await;
    }
    wait_metric(&proxy, "parallax_record_records_total", 10.0).await;
    let copy = d.join("copy.plxcap");
    std::fs::copy(existing_segments(&path)[0].1.clone(), &copy).unwrap();
    let mut source = Source::open(std::slice::from_ref(&copy)).unwrap();
    let mut n = 0;
    while source.next_record().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 10);
    assert!(!source.truncated(), "the file ends at a whole frame");
    drop(proxy);
}

#[tokio::test]
async fn incompressible_traffic_is_stored_uncompressed_and_reads_back_while_recording() {
    // 600 requests with 16 KiB random bodies: ~9.6 MiB, past the first
    // (compressed) 4 MiB frame, which compresses < 1.5x, so the recorder
    // stores what follows in zstd raw blocks.
    let d = dir("stored");
    let path = d.join("svc.plxcap");
    let primary = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(primary.addr)
        .set("mirror_percent = 0")
        .tables(&record_table(&path, ""))
        .start()
        .await;
    let body = |i: u64| {
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i;
        (0..2048)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect::<Vec<u8>>()
    };
    for i in 0..600u64 {
        let r = Request::post(format!("/blob/{i}"))
            .body(Full::new(Bytes::from(body(i))))
            .unwrap();
        assert_eq!(proxy.send(r).await.status, 200);
    }
    wait_metric(&proxy, "parallax_record_records_total", 600.0).await;
    // Read while the proxy still writes (as if killed now).
    let file = existing_segments(&path)[0].1.clone();
    let bytes = std::fs::read(&file).unwrap();
    // A stored frame's header: zstd's magic, checksum flag, 128 KiB window
    // (the compressor's own frames here are single-segment, with their
    // content size).
    let stored = [0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x38];
    assert!(
        bytes.windows(6).any(|w| w == stored),
        "no stored frame in {} bytes",
        bytes.len()
    );
    let copy = d.join("copy.plxcap");
    std::fs::write(&copy, &bytes).unwrap();
    let mut source = Source::open(std::slice::from_ref(&copy)).unwrap();
    let mut all = Vec::new();
    while let Some(r) = source.next_record().unwrap() {
        all.push(r);
    }
    let requests = requests(&all);
    assert_eq!(requests.len(), 600);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.target, format!("/blob/{i}"));
        assert_eq!(&r.body[..], &body(i as u64)[..], "request {i}");
    }
    // (Finished frames' checksums are checked by zstd in the capture
    // crate's tests; a TestProxy's shutdown is not awaited here.)
    drop(proxy);
}

#[tokio::test]
async fn sampling_is_sticky_by_the_services_key() {
    let d = dir("sticky");
    let path = d.join("svc.plxcap");
    let primary = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(primary.addr)
        .set("mirror_percent = 0")
        .set("sticky_key = \"header:x-user\"")
        .tables(&record_table(&path, "sample_percent = 50"))
        .start()
        .await;
    for round in 0..3 {
        for user in 0..40 {
            let r = Request::get(format!("/u/{user}/{round}"))
                .header("x-user", format!("user-{user}"))
                .body(Full::default())
                .unwrap();
            assert_eq!(proxy.send(r).await.status, 200);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (recs, _) = records(&path);
    let reqs = requests(&recs);
    let mut users = std::collections::BTreeMap::<String, usize>::new();
    for r in &reqs {
        *users
            .entry(r.header("x-user").unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        users.values().all(|n| *n == 3),
        "all of a user's requests or none: {users:?}"
    );
    assert!(
        (10..=30).contains(&users.len()),
        "about half the users: {}",
        users.len()
    );
}

/// A tmpfs of `size` mounted at `at` (root only), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_drops_records_and_clients_never_notice() {
    let d = dir("full");
    let Some(_fs) = Tmpfs::mount(&d, "160k") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let path = d.join("svc.plxcap");
    let primary = upstream(|s: &Seen| json(200, &format!(r#"{{"n":{}}}"#, s.body.len())))
        .start()
        .await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(primary.addr)
        .set("mirror_percent = 0")
        .tables(&record_table(&path, "max_file_bytes = 65536"))
        .start()
        .await;
    // Incompressible bodies: 400 × 2 KiB fill 160 KiB several times over.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let started = Instant::now();
    for i in 0..400 {
        let body: Vec<u8> = (0..2048)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let r = Request::post(format!("/upload/{i}"))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let answer = proxy.send(r).await;
        assert_eq!(answer.status, 200, "request {i}");
        assert_eq!(answer.text(), r#"{"n":2048}"#);
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = proxy.metrics().await;
    let written = metric(&proxy, "parallax_record_records_total").await;
    let failed = dropped(&text, "write_failed");
    let full = dropped(&text, "queue_full");
    assert!(
        written > 0.0,
        "something was recorded before the disk filled"
    );
    assert!(failed > 0.0, "drops counted: {text}");
    assert!(
        written + failed + full >= 400.0,
        "every record accounted for: {written} + {failed} + {full}"
    );
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    // What is on the disk reads back, up to the last complete record of
    // each segment.
    let (recs, _source) = records(&path);
    let reqs = requests(&recs);
    assert!(!reqs.is_empty());
    assert!(
        reqs.len() as f64 <= written + 1.0,
        "{} > {written}",
        reqs.len()
    );
    assert!(reqs.iter().all(|r| r.body.len() == 2048));
}

#[tokio::test]
async fn a_websocket_session_is_recorded_message_by_message() {
    let d = dir("ws");
    let path = d.join("svc.plxcap");
    // An echo server for WebSocket upgrades.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
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
    let proxy = proxy()
        .primary(echo_addr)
        .shadow(echo_addr)
        .set("mirror_percent = 0")
        .tables(&record_table(&path, ""))
        .start()
        .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/subscribe", proxy.addr))
        .await
        .unwrap();
    for i in 0..3 {
        ws.send(Message::text(format!("{{\"id\":{i}}}")))
            .await
            .unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert_eq!(reply.to_text().unwrap(), format!("echo:{{\"id\":{i}}}"));
    }
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    wait_metric(&proxy, "parallax_record_records_total", 8.0).await;
    let (recs, _) = records(&path);
    let handshake = requests(&recs)[0].clone();
    assert_eq!(handshake.status, Some(101));
    assert_eq!(handshake.target, "/v1/subscribe");
    let messages: Vec<_> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Ws(m) => Some(m),
            _ => None,
        })
        .collect();
    let texts: Vec<(bool, String)> = messages
        .iter()
        .filter(|m| m.opcode == 1)
        .map(|m| {
            (
                m.from_client,
                String::from_utf8_lossy(&m.payload).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        texts,
        [
            (true, "{\"id\":0}".to_owned()),
            (false, "echo:{\"id\":0}".to_owned()),
            (true, "{\"id\":1}".to_owned()),
            (false, "echo:{\"id\":1}".to_owned()),
            (true, "{\"id\":2}".to_owned()),
            (false, "echo:{\"id\":2}".to_owned()),
        ]
    );
    assert!(messages.iter().all(|m| m.conn == handshake.conn));
    assert!(
        messages.iter().any(|m| m.opcode == 8 && m.from_client),
        "the client's close"
    );
    assert!(messages.windows(2).all(|w| w[0].at_us <= w[1].at_us));

    // Replayed as a session straight to the echo server: the handshake,
    // the three messages and the close at their times, every recorded
    // frame answered alike.
    let files: Vec<PathBuf> = existing_segments(&path)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let options = ReplayOptions {
        pace: Pace::Speed(4.0),
        ..ReplayOptions::default()
    };
    let target = Target::parse(&format!("http://{echo_addr}")).unwrap();
    let report = replay::run(&files, &options, &target, |_| {})
        .await
        .unwrap();
    assert_eq!(report.status_same, 1, "the 101");
    let ws = &report.websocket;
    assert_eq!((ws.sessions, ws.failed, ws.sent), (1, 0, 4), "{ws:?}");
    assert_eq!(
        (
            ws.expected,
            ws.received,
            ws.same,
            ws.different,
            ws.missing,
            ws.extra
        ),
        (3, 3, 3, 0, 0, 0),
        "{ws:?}"
    );
}

/// The session-cache twins (`PARALLAX_CACHE_GO_BIN`,
/// `PARALLAX_CACHE_RUST_BIN`, as `twins.rs`): the cache corpus recorded
/// through the proxy (Go primary, Rust shadow), then replayed in order into
/// a fresh Go cache and a fresh Rust cache — every replayed answer has the
/// status the primary gave when it was recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_corpus_recorded_before_the_twins_replays_to_the_same_answers_on_both() {
    use parallax_conformance::cache::corpus as cache_corpus;
    use parallax_conformance::{service, Implementation, Service, ServiceBuilder};
    async fn spawn(builder: ServiceBuilder) -> Service {
        tokio::task::spawn_blocking(move || builder.spawn())
            .await
            .unwrap()
    }
    let with_flags = |imp: &Implementation| {
        cache_corpus::flags()
            .into_iter()
            .fold(service(imp), |b, (flag, value)| b.flag(flag, value))
    };
    let d = dir("twins");
    let path = d.join("cache.plxcap");
    let primary = spawn(with_flags(&Implementation::go_cache())).await;
    let shadow = spawn(with_flags(&Implementation::rust_cache())).await;
    let proxy = proxy()
        .primary(primary.addr())
        .shadow(shadow.addr())
        .set("max_mirror_body_bytes = 4194304")
        .tables(&record_table(&path, "max_body_bytes = 4194304"))
        .start()
        .await;
    let mut statuses = Vec::new();
    for step in cache_corpus::corpus() {
        let answer = wire(proxy.addr, step.request.clone()).await;
        assert_eq!(answer.status, step.status, "{}", step.name);
        statuses.push(answer.status);
    }
    let n = statuses.len() as f64;
    wait_metric(&proxy, "parallax_record_records_total", n).await;
    assert_eq!(metric(&proxy, "parallax_record_dropped_total").await, 0.0);
    let (recs, _) = records(&path);
    let recorded: Vec<u16> = requests(&recs).iter().map(|r| r.status.unwrap()).collect();
    assert_eq!(recorded, statuses);

    let files: Vec<PathBuf> = existing_segments(&path)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    // One connection, in recorded order: the corpus is stateful.
    let options = ReplayOptions {
        pace: Pace::Rate(500.0),
        sessions: false,
        max_connections: 1,
        ..ReplayOptions::default()
    };
    for imp in [Implementation::go_cache(), Implementation::rust_cache()] {
        let fresh = spawn(with_flags(&imp)).await;
        let target = Target::parse(&format!("http://{}", fresh.addr())).unwrap();
        let report = replay::run(&files, &options, &target, |_| {})
            .await
            .unwrap();
        assert_eq!(report.sent as usize, statuses.len(), "{}", imp.name);
        // A value over the size limit may be refused (413) before its body
        // is read, and the connection closed under the replayer while it
        // still writes the body: then there is no answer to compare.
        let unanswered: u64 = report.transport_errors.values().sum();
        assert!(
            unanswered <= 2,
            "{}: {:?}",
            imp.name,
            report.transport_errors
        );
        assert_eq!(
            report.status_same + unanswered,
            statuses.len() as u64,
            "{}: {:?} against recorded {:?}",
            imp.name,
            report.statuses,
            statuses
        );
        assert_eq!(report.status_different, 0, "{}", imp.name);
    }
}

/// What the raw upstream answers: a small JSON body, 404 for `/missing`.
fn raw_answer(line: &str) -> Vec<u8> {
    let (status, body) = if line.contains("/missing") {
        ("404 Not Found", r#"{"code":"not_found"}"#)
    } else {
        ("200 OK", r#"{"ok":true}"#)
    };
    format!("HTTP/1.1 {status}\r\ndate: Sat, 05 Dec 2026 15:00:00 GMT\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_http1_path_records_what_the_hyper_path_records() {
    use parallax_proxy::h1::Http1Path;
    let d = dir("raw-h1");
    let mut captured = Vec::new();
    let requests_sent: [&[u8]; 4] = [
        b"GET /v1/items/7?token=s3cret&page=2 HTTP/1.1\r\nHost: h\r\nX-Mixed-Case: 1\r\nAuthorization: Bearer abc\r\nX-Api-Key: k\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.2\r\nKeep-Alive: 5\r\n\r\n",
        b"POST /v1/events HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 41\r\n\r\n{\"id\":\"e1\",\"user\":{\"password\":\"hunter2\"}}",
        b"GET /missing HTTP/1.1\r\nHost: h\r\n\r\n",
        b"DELETE /v1/items/7 HTTP/1.1\r\nHost: h\r\nConnection: close\r\nClose: x\r\n\r\n",
    ];
    // Forwarded only on the raw path, then mirrored on the raw path and on
    // hyper's (mirrored requests are recorded as any other).
    for (path, percent) in [
        (Http1Path::Raw, 0),
        (Http1Path::RawMirrored, 100),
        (Http1Path::Hyper, 100),
    ] {
        let primary = raw_upstream(raw_answer, false).await;
        let file = d.join(format!("{path:?}.plxcap"));
        let proxy = proxy()
            .primary(primary.addr)
            .shadow(down())
            .set(&format!("mirror_percent = {percent}"))
            .set("redact = [\"header:x-api-key\", \"/**/password\"]")
            .tables(&record_table(&file, ""))
            .http1(path)
            .start()
            .await;
        let answer = talk(
            proxy.addr,
            &requests_sent,
            Duration::from_millis(20),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(status_lines(&answer).len(), 4, "{path:?}");
        wait_metric(&proxy, "parallax_record_records_total", 4.0).await;
        // The raw path forwards header names as the client sent them; hyper
        // in lower case: this proxy took the path it was given.
        let forwarded = String::from_utf8_lossy(&primary.requests()[0]).into_owned();
        assert_eq!(
            forwarded.contains("X-Mixed-Case"),
            path != Http1Path::Hyper,
            "{forwarded}"
        );
        let (recs, _) = records(&file);
        let seen: Vec<_> = requests(&recs)
            .into_iter()
            .map(|r| {
                (
                    r.method.clone(),
                    r.target.clone(),
                    r.headers.clone(),
                    r.body.clone(),
                    r.status,
                    r.conn.is_some(),
                    r.latency_us.is_some(),
                )
            })
            .collect();
        captured.push(seen);
    }
    assert_eq!(captured[0].len(), 4);
    assert_eq!(captured[0], captured[1]);
    assert_eq!(captured[0], captured[2]);
    let get = &captured[0][0];
    assert_eq!(get.1, "/v1/items/7?token=[redacted]&page=2");
    assert!(get
        .2
        .contains(&("x-api-key".to_owned(), "[redacted]".to_owned())));
}

/// A bidirectional gRPC call in lockstep (each message sent only once the
/// previous one came back) through a recording proxy over h2c, with
/// `extra` service settings: the call completes, and the capture reads back
/// with the request stream's bytes, the primary's status and its latency.
/// Returns the proxy (for its metrics) and the shadow's call count.
async fn a_recorded_chat(name: &str, extra: &str) -> (TestProxy, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let d = dir(name);
    let path = d.join("svc.plxcap");
    let calls = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let primary = grpc::echo_stream_server(Arc::clone(&calls[0])).await;
    let shadow = grpc::echo_stream_server(Arc::clone(&calls[1])).await;
    let proxy = proxy()
        .primary(primary)
        .shadow(shadow)
        .set("primary_http2 = true\nshadow_http2 = true")
        .set(extra)
        .tables(&record_table(&path, ""))
        .start()
        .await;
    let messages: [&[u8]; 3] = [b"one", b"two", b"three"];
    let (back, trailers) = grpc::chat(proxy.addr, &messages).await;
    let sent: Vec<Bytes> = messages.iter().map(|m| grpc::grpc_frame(m)).collect();
    assert_eq!(back, sent);
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-sent"], "3", "the request's trailers went on");
    wait_metric(&proxy, "parallax_record_records_total", 1.0).await;
    assert_eq!(metric(&proxy, "parallax_record_dropped_total").await, 0.0);
    let (recs, _) = records(&path);
    let reqs = requests(&recs);
    assert_eq!(reqs.len(), 1);
    let call = reqs[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.target, "/echo.v1.Echo/Chat");
    assert_eq!(call.header("content-type"), Some("application/grpc"));
    assert_eq!(
        &call.body[..],
        &sent.concat()[..],
        "every message, in order"
    );
    assert_eq!(call.status, Some(200));
    assert!(call.latency_us.is_some());
    assert_eq!(calls[0].load(Ordering::SeqCst), 1);
    let shadow_calls = calls[1].load(Ordering::SeqCst);
    (proxy, shadow_calls)
}

/// Recording never makes the client wait for its own stream's end: a
/// bidirectional call whose client waits for each answer before sending on
/// gets through a recording, unmirrored route (read whole first, it would
/// deadlock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_bidirectional_call_in_lockstep_gets_through_and_is_recorded_whole() {
    let (_proxy, shadow_calls) = a_recorded_chat("bidi", "mirror_percent = 0").await;
    assert_eq!(shadow_calls, 0);
}

/// A recorded and mirrored stream is teed once for both: the call gets
/// through, the shadow gets its copy and is compared, and the record has
/// the whole stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_and_mirrored_bidirectional_call_is_recorded_and_compared() {
    let (proxy, shadow_calls) = a_recorded_chat("bidi-mirrored", "mirror_percent = 100").await;
    proxy.wait_outcome("compared", 1.0).await;
    assert_eq!(proxy.result("match").await, 1.0);
    assert_eq!(shadow_calls, 1);
}

/// A recorded stream past `max_body_bytes` keeps flowing both ways (the
/// lockstep chat completes, every message through) while its record is
/// dropped and counted (`body_too_large`); the shadow still gets its copy,
/// within its own, larger limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_stream_past_the_record_limit_flows_on_and_its_record_is_dropped() {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    let d = dir("bidi-too-large");
    let path = d.join("svc.plxcap");
    let calls = Arc::new(AtomicUsize::new(0));
    let primary = grpc::echo_stream_server(Arc::clone(&calls)).await;
    let shadow = grpc::echo_stream_server(Arc::clone(&calls)).await;
    let proxy = proxy()
        .primary(primary)
        .shadow(shadow)
        .set("primary_http2 = true\nshadow_http2 = true")
        .tables(&record_table(&path, "max_body_bytes = 16"))
        .start()
        .await;
    // 15 bytes each on the wire: the second is past the record's limit.
    let messages: [&[u8]; 3] = [b"0123456789", b"abcdefghij", b"ABCDEFGHIJ"];
    let (back, _) = grpc::chat(proxy.addr, &messages).await;
    let sent: Vec<Bytes> = messages.iter().map(|m| grpc::grpc_frame(m)).collect();
    assert_eq!(back, sent);
    wait_metric(&proxy, "parallax_record_dropped_total", 1.0).await;
    let metrics = proxy.metrics().await;
    let too_large = dropped(&metrics, "body_too_large");
    assert_eq!(too_large, 1.0);
    proxy.wait_outcome("compared", 1.0).await;
    assert_eq!(proxy.result("match").await, 1.0);
    assert_eq!(metric(&proxy, "parallax_record_records_total").await, 0.0);
}

/// A chunked HTTP/1.1 request longer than `max_body_bytes` reaches the
/// primary intact while its record is dropped and counted
/// (`body_too_large`); a short chunked request after it is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_request_past_the_record_limit_is_forwarded_whole_and_its_record_dropped() {
    let d = dir("chunked");
    let path = d.join("svc.plxcap");
    let primary = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(down())
        .set("mirror_percent = 0")
        .tables(&record_table(&path, "max_body_bytes = 100"))
        .start()
        .await;
    let chunk = |c: u8| {
        let mut part = format!("{:x}\r\n", 60).into_bytes();
        part.extend(std::iter::repeat_n(c, 60));
        part.extend_from_slice(b"\r\n");
        part
    };
    let head = b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (a, b, c) = (chunk(b'a'), chunk(b'b'), chunk(b'c'));
    let answer = talk(
        proxy.addr,
        &[head, &a, &b, &c, b"0\r\n\r\n"],
        Duration::from_millis(20),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"]);
    let whole = [[b'a'; 60], [b'b'; 60], [b'c'; 60]].concat();
    assert_eq!(&primary.seen()[0].body[..], &whole[..], "forwarded intact");
    wait_metric(&proxy, "parallax_record_dropped_total", 1.0).await;
    let metrics = proxy.metrics().await;
    let too_large = dropped(&metrics, "body_too_large");
    assert_eq!(too_large, 1.0);

    let short = b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let answer = talk(
        proxy.addr,
        &[short],
        Duration::ZERO,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"]);
    wait_metric(&proxy, "parallax_record_records_total", 1.0).await;
    let (recs, _) = records(&path);
    let reqs = requests(&recs);
    assert_eq!(reqs.len(), 1, "only the short one");
    assert_eq!(&reqs[0].body[..], b"hello");
    assert!(
        recs.iter()
            .any(|r| matches!(r, Record::Gap { dropped: 1, .. })),
        "the dropped record leaves a gap"
    );
}

//! WebSocket shadowing: the proxy relays upgrades to the primary, shadows
//! sampled connections, and classifies the shadow's frames against the
//! primary's.
//!
//! Real processes where it matters — the fan-out twins (Go primary, Rust
//! shadow) from `PARALLAX_FANOUT_GO_BIN` / `PARALLAX_FANOUT_RUST_BIN`, and
//! Python's `websockets` as a third-party client (`scripts/deps.sh`
//! installs it) — and purpose-built upstreams ([`scripted`]) for a shadow
//! that misbehaves on purpose. `scripts/test.sh` provides the binaries.
//!
//! The tests are synchronous (the conformance suite's WebSocket client and
//! twin runner are); the proxy runs on a runtime of its own.

#[path = "support/ws.rs"]
mod scripted;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallax_conformance::fanout::{
    assert_frame, assert_frames, notification, publish, subscribe_path, subscription_frame,
    upgrade_request, Notification, FRAME_DEADLINE,
};
use parallax_conformance::ws::{Client, Event};
use parallax_conformance::{service, Implementation, Request, Service};
use scripted::{note, Script, ScriptedWs, SUBSCRIBED};
use support::*;
use tokio::runtime::Runtime;

const PUBLISHED_AT: u64 = 1_764_000_000_000_000;
const RESULTS: [&str; 7] = [
    "matched",
    "missing",
    "extra",
    "different",
    "reordered",
    "overflow",
    "unresolved",
];

/// A proxy on its own runtime, read from synchronous code.
struct Harness {
    rt: Runtime,
    proxy: TestProxy,
}

impl Harness {
    fn start(primary: SocketAddr, shadow: SocketAddr, settings: &[&str]) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut builder = proxy().primary(primary).shadow(shadow);
        for line in settings {
            builder = builder.set(line);
        }
        let proxy = rt.block_on(builder.start());
        Harness { rt, proxy }
    }

    fn metrics(&self) -> String {
        self.rt.block_on(self.proxy.metrics())
    }

    /// Sum of the series of `name` with `label=value` (any label if `None`).
    fn value(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        parallax_conformance::metrics::samples(&self.metrics())
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| label.is_none_or(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
            .sum()
    }

    fn frames(&self, result: &str) -> f64 {
        self.value("parallax_ws_frames_total", Some(("result", result)))
    }

    /// Every frame result with a non-zero count.
    fn results(&self) -> Vec<(String, f64)> {
        RESULTS
            .iter()
            .map(|r| (r.to_string(), self.frames(r)))
            .filter(|(_, n)| *n > 0.0)
            .collect()
    }

    /// Waits until `what` reaches `at_least`, failing after 15 s.
    #[track_caller]
    fn wait(&self, what: &str, at_least: f64, read: impl Fn(&Harness) -> f64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = read(self);
            if now >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} stayed at {now}, expected {at_least}; frames: {:?}",
                self.results()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_frames(&self, result: &str, at_least: f64) {
        self.wait(result, at_least, |h| h.frames(result));
    }

    fn connections(&self, backend: &str) -> f64 {
        self.value("parallax_ws_connections", Some(("backend", backend)))
    }

    fn open(&self, path: &str) -> Client {
        Client::open(self.proxy.addr, path)
    }
}

fn fanout_twins() -> (Service, Service) {
    (
        service(&Implementation::go_fanout()).spawn(),
        service(&Implementation::rust_fanout()).spawn(),
    )
}

fn notifications(topic: &str, prefix: &str, n: usize) -> Vec<Notification> {
    (0..n)
        .map(|i| {
            notification(
                topic,
                &format!(r#"{{"seq":{i},"text":"héllo \"{prefix}\""}}"#),
            )
            .id(&format!("{prefix}-{i}"))
            .published_at(PUBLISHED_AT + i as u64)
        })
        .collect()
}

/// `fanout_connections` of a twin.
fn twin_connections(twin: &Service) -> f64 {
    let text = twin.send(&Request::get("/metrics")).text();
    parallax_conformance::metrics::samples(&text)
        .iter()
        .find(|s| s.name == "fanout_connections")
        .map_or(-1.0, |s| s.value)
}

#[track_caller]
fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ----------------------------------------------------------------------------
// The real twins

#[test]
fn a_mirrored_fanout_session_delivers_every_frame_and_matches_them_all() {
    let (go, rust) = fanout_twins();
    let h = Harness::start(go.addr(), rust.addr(), &[]);

    let mut client = h.open(&subscribe_path("news"));
    assert_frame(
        &mut client,
        &subscription_frame(["news"]),
        "subscription frame",
    );
    // The shadow's own subscription frame paired with the primary's: from
    // now on the shadow receives what is published.
    h.wait_frames("matched", 1.0);
    let notes = notifications("news", "n", 20);
    for n in &notes {
        publish(&go, n);
        publish(&rust, n);
    }
    assert_frames(&mut client, &notes, "through the proxy");
    // A client op reaches both upstreams: both answer with the new set.
    // Sent once the shadow delivered every notification: the twins may
    // order a subscription frame and a queued notification differently.
    h.wait_frames("matched", 21.0);
    client
        .send_text(r#"{"op":"subscribe","topics":["more"]}"#)
        .unwrap();
    assert_frame(
        &mut client,
        &subscription_frame(["more", "news"]),
        "after subscribe",
    );
    h.wait_frames("matched", 22.0);
    assert_eq!(h.results(), vec![("matched".to_owned(), 22.0)]);
    assert_eq!(
        h.value("parallax_ws_delivery_skew_seconds_count", None),
        22.0
    );
    assert_eq!(h.connections("primary"), 1.0);
    assert_eq!(h.connections("shadow"), 1.0);
    assert_eq!(
        h.value("parallax_ws_upgrades_total", Some(("outcome", "mirrored"))),
        1.0
    );

    // The client's close reaches both twins; the primary's answer reaches
    // the client.
    client.close(1000).unwrap();
    assert_eq!(client.next(FRAME_DEADLINE), Event::Close(Some(1000)));
    wait_until("both twins to drop the connection", || {
        twin_connections(&go) == 0.0 && twin_connections(&rust) == 0.0
    });
    h.wait("connections to close", 1.0, |h| {
        f64::from(h.connections("primary") == 0.0 && h.connections("shadow") == 0.0)
    });
    assert_eq!(h.results(), vec![("matched".to_owned(), 22.0)]);
    assert_eq!(
        h.value("parallax_ws_shadow_ends_total", None),
        0.0,
        "a close the client started is no shadow failure"
    );
}

#[test]
fn the_primarys_close_code_reaches_the_client() {
    let (go, rust) = fanout_twins();
    let h = Harness::start(go.addr(), rust.addr(), &[]);
    let mut client = h.open(&subscribe_path("news"));
    assert_frame(
        &mut client,
        &subscription_frame(["news"]),
        "subscription frame",
    );
    // The contract closes on a binary frame with 1003.
    client.send_binary(b"\x00").unwrap();
    client.assert_closed_with(1003, FRAME_DEADLINE, "a binary frame");
    h.wait("the relay to end", 1.0, |h| {
        f64::from(h.connections("primary") == 0.0)
    });
}

#[test]
fn a_refused_upgrade_reaches_the_client_verbatim() {
    let (go, rust) = fanout_twins();
    let h = Harness::start(go.addr(), rust.addr(), &[]);
    for path in [subscribe_path("a!b"), subscribe_path("")] {
        let request = upgrade_request(&path);
        let direct = go.send(&request);
        let proxied = h.rt.block_on(wire(h.proxy.addr, request));
        assert_eq!(proxied.status, 400, "{path}: {}", proxied.text());
        assert_eq!(comparable(&proxied), comparable(&direct), "{path}");
    }
    assert_eq!(
        h.value(
            "parallax_ws_upgrades_total",
            Some(("outcome", "primary_refused"))
        ),
        2.0
    );
}

#[test]
fn killing_the_shadow_mid_stream_leaves_the_clients_stream_intact() {
    let (go, rust) = fanout_twins();
    let h = Harness::start(go.addr(), rust.addr(), &[]);
    let mut client = h.open(&subscribe_path("news"));
    assert_frame(
        &mut client,
        &subscription_frame(["news"]),
        "subscription frame",
    );
    h.wait_frames("matched", 1.0);
    let before = notifications("news", "before", 3);
    for n in &before {
        publish(&go, n);
        publish(&rust, n);
    }
    assert_frames(&mut client, &before, "before the kill");
    h.wait_frames("matched", 4.0);

    rust.signal("KILL");
    let after = notifications("news", "after", 5);
    for n in &after {
        publish(&go, n);
    }
    assert_frames(&mut client, &after, "after the kill");
    h.wait("the shadow's end to be counted", 1.0, |h| {
        h.value("parallax_ws_shadow_ends_total", None)
    });
    assert_eq!(h.connections("shadow"), 0.0);
    assert_eq!(h.connections("primary"), 1.0);
    // Still a working connection both ways.
    client
        .send_text(r#"{"op":"subscribe","topics":["x"]}"#)
        .unwrap();
    assert_frame(
        &mut client,
        &subscription_frame(["news", "x"]),
        "after the kill",
    );
    drop(rust);
}

#[test]
fn a_python_websockets_client_works_through_the_proxy() {
    let (go, rust) = fanout_twins();
    let h = Harness::start(go.addr(), rust.addr(), &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/ws_client.py");
    let url = format!("ws://{}{}", h.proxy.addr, subscribe_path("news"));
    let mut child = Command::new("python3")
        .arg(script)
        .arg(&url)
        .arg("3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (with `websockets`: scripts/deps.sh installs it)");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(FRAME_DEADLINE)
            .expect("a line from the Python client")
    };
    assert_eq!(next(), subscription_frame(["news"]));
    h.wait_frames("matched", 1.0);
    let notes = notifications("news", "py", 3);
    for n in &notes {
        publish(&go, n);
        publish(&rust, n);
    }
    for n in &notes {
        assert_eq!(next(), n.frame());
    }
    // The op only once the shadow delivered the notifications too: the
    // twins may order a subscription frame and a queued notification
    // differently, and that would be (rightly) counted `reordered`.
    h.wait_frames("matched", 4.0);
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    assert_eq!(next(), subscription_frame(["news", "other"]));
    assert_eq!(next(), "closed 1000");
    assert!(child.wait().unwrap().success());
    h.wait_frames("matched", 5.0);
    assert_eq!(h.results(), vec![("matched".to_owned(), 5.0)]);
}

/// A proxy with a TLS listener (a certificate for `localhost`) in front of
/// `primary` and `shadow`.
fn tls_harness(cert: &TestCert, primary: SocketAddr, shadow: SocketAddr) -> Harness {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let builder = proxy().primary(primary).shadow(shadow).tables(&format!(
        "[services.tls]\ncert_file = {:?}\nkey_file = {:?}",
        cert.cert_file.display().to_string(),
        cert.key_file.display().to_string()
    ));
    let proxy = rt.block_on(builder.start());
    Harness { rt, proxy }
}

#[test]
fn a_python_websockets_client_over_tls_is_relayed_mirrored_and_matched() {
    // wss:// to the proxy (HTTP/1.1 by ALPN), ws:// to the fan-out twins.
    let cert = TestCert::new("ws-downstream");
    let (go, rust) = fanout_twins();
    let h = tls_harness(&cert, go.addr(), rust.addr());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/ws_client.py");
    let url = format!(
        "wss://localhost:{}{}",
        h.proxy.addr.port(),
        subscribe_path("news")
    );
    let mut child = Command::new("python3")
        .arg(script)
        .arg(&url)
        .arg("3")
        .arg(&cert.cert_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (with `websockets`: scripts/deps.sh installs it)");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(FRAME_DEADLINE)
            .expect("a line from the Python client")
    };
    assert_eq!(next(), subscription_frame(["news"]));
    h.wait_frames("matched", 1.0);
    let notes = notifications("news", "tls", 3);
    for n in &notes {
        publish(&go, n);
        publish(&rust, n);
    }
    for n in &notes {
        assert_eq!(next(), n.frame());
    }
    h.wait_frames("matched", 4.0);
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    assert_eq!(next(), subscription_frame(["news", "other"]));
    assert_eq!(next(), "closed 1000");
    assert!(child.wait().unwrap().success());
    h.wait_frames("matched", 5.0);
    assert_eq!(h.results(), vec![("matched".to_owned(), 5.0)]);
    assert_eq!(
        h.value("parallax_ws_upgrades_total", Some(("outcome", "mirrored"))),
        1.0
    );
}

#[test]
fn a_wss_primary_is_relayed_and_compared_like_a_ws_one() {
    // The primary is https:// (spoken to as wss://): a second proxy with a
    // TLS listener in front of the Go twin. The shadow is the Rust twin on
    // ws://. The client speaks plain ws:// to the outer proxy.
    let cert = TestCert::new("ws-upstream");
    let (go, rust) = fanout_twins();
    let inner = tls_harness(&cert, go.addr(), rust.addr());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\nprimary = \"https://localhost:{}\"\nshadow = \"http://{}\"\n[services.upstream_tls]\nca_file = {:?}\n",
        inner.proxy.addr.port(),
        rust.addr(),
        cert.cert_file.display().to_string()
    );
    let outer = Harness {
        proxy: rt.block_on(proxy_from_toml(&toml)),
        rt,
    };
    let mut client = outer.open(&subscribe_path("news"));
    assert_frame(
        &mut client,
        &subscription_frame(["news"]),
        "subscription frame over wss",
    );
    outer.wait_frames("matched", 1.0);
    // The inner proxy mirrors to the Rust twin too: it holds two
    // subscribers, the Go twin one.
    let notes = notifications("news", "wss", 5);
    for n in &notes {
        publish(&go, n);
        publish(&rust, n);
    }
    assert_frames(&mut client, &notes, "through a wss:// primary");
    outer.wait_frames("matched", 6.0);
    assert_eq!(outer.results(), vec![("matched".to_owned(), 6.0)]);
    client.close(1000).unwrap();
    assert_eq!(client.next(FRAME_DEADLINE), Event::Close(Some(1000)));
    wait_until("the Go twin to drop the connection", || {
        twin_connections(&go) == 0.0
    });
}

// ----------------------------------------------------------------------------
// Purpose-built upstreams

/// The shadow skips `b`, swaps `c` and `d`, changes `e`'s body and adds
/// `x`.
fn wrong(frames: Vec<String>) -> Vec<String> {
    let mut out = vec![frames[0].clone(), frames[3].clone(), frames[2].clone()];
    out.push(note("e", r#"{"v":2,"w":"same"}"#));
    out.push(frames[5].clone());
    out.push(note("x", "{}"));
    out
}

#[test]
fn a_wrong_shadow_is_classified_missing_reordered_different_and_extra() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let primary = rt.block_on(ScriptedWs::start(Script::Faithful));
    let shadow = rt.block_on(ScriptedWs::start(Script::Custom(Arc::new(wrong))));
    let h = Harness::start(primary.addr, shadow.addr, &["ws_match_window_ms = 300"]);

    let mut client = h.open("/v1/stream");
    assert_frame(&mut client, SUBSCRIBED, "first frame");
    h.wait_frames("matched", 1.0);
    let frames: Vec<String> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|id| {
            let body = if *id == "e" {
                r#"{"v":1,"w":"same"}"#
            } else {
                "{}"
            };
            note(id, body)
        })
        .collect();
    primary.broadcast(&frames);
    shadow.broadcast(&frames);
    for f in &frames {
        assert_frame(&mut client, f, "the primary's frames, unchanged");
    }
    h.wait_frames("missing", 1.0);
    h.wait_frames("extra", 1.0);
    h.wait_frames("matched", 4.0);
    let mut results = h.results();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        results,
        [
            ("different".to_owned(), 1.0),
            ("extra".to_owned(), 1.0),
            ("matched".to_owned(), 4.0),
            ("missing".to_owned(), 1.0),
            ("reordered".to_owned(), 1.0),
        ]
    );

    // One sample per mismatch, as for HTTP, the result as `:websocket`.
    let samples = h.rt.block_on(h.proxy.admin_json("/admin/mismatches"));
    let samples = samples["services"]["svc"]["other"].as_array().unwrap();
    let mut kinds: Vec<String> = samples
        .iter()
        .map(|s| s["request"]["headers"][0][1].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["different", "extra", "missing", "reordered"]);
    let different = samples
        .iter()
        .find(|s| s["request"]["headers"][0][1] == "different")
        .unwrap();
    assert_eq!(different["target"], "/v1/stream");
    assert_eq!(different["mismatches"][0]["path"], "/body/v");
    assert_eq!(different["primary"]["body"]["body"]["v"], 1);
    assert_eq!(different["shadow"]["body"]["body"]["v"], 2);
    drop(rt);
}

#[test]
fn client_frames_reach_both_upstreams_unchanged() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let primary = rt.block_on(ScriptedWs::start(Script::Faithful));
    let shadow = rt.block_on(ScriptedWs::start(Script::Faithful));
    let h = Harness::start(primary.addr, shadow.addr, &[]);
    let mut client = h.open("/v1/stream");
    assert_frame(&mut client, SUBSCRIBED, "first frame");
    // The shadow is connected (its first frame paired): nothing waits in the
    // bounded queue of a shadow still connecting.
    h.wait_frames("matched", 1.0);
    let big = format!(r#"{{"op":"{}"}}"#, "x".repeat(70_000));
    for text in ["hello", "héllo wörld", big.as_str()] {
        client.send_text(text).unwrap();
    }
    wait_until("both upstreams to receive three messages", || {
        primary.received.lock().len() == 3 && shadow.received.lock().len() == 3
    });
    assert_eq!(*primary.received.lock(), ["hello", "héllo wörld", &big]);
    assert_eq!(*shadow.received.lock(), ["hello", "héllo wörld", &big]);
}

#[test]
fn a_shadow_that_never_answers_the_upgrade_delays_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let primary = rt.block_on(ScriptedWs::start(Script::Faithful));
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let h = Harness::start(
        primary.addr,
        silent.local_addr().unwrap(),
        &["shadow_timeout_ms = 60000"],
    );
    let mut client = h.open("/v1/stream");
    assert_frame(&mut client, SUBSCRIBED, "first frame");
    let frames = vec![note("a", "1"), note("b", "2")];
    primary.broadcast(&frames);
    for f in &frames {
        assert_frame(&mut client, f, "while the shadow hangs");
    }
    // All of it happened while the shadow's handshake was still pending.
    assert_eq!(h.value("parallax_ws_shadow_ends_total", None), 0.0);
    assert_eq!(h.connections("shadow"), 0.0);
    client.close(1000).unwrap();
    assert_eq!(client.next(FRAME_DEADLINE), Event::Close(Some(1000)));
    // The connection's end abandons the shadow's handshake; what waited for
    // it is unresolved, not missing.
    h.wait("the relay to end", 1.0, |h| {
        f64::from(h.connections("primary") == 0.0)
    });
    assert_eq!(h.frames("missing"), 0.0);
}

#[test]
fn a_shadow_refusing_the_upgrade_is_counted_and_the_client_goes_on() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let primary = rt.block_on(ScriptedWs::start(Script::Faithful));
    let shadow = rt.block_on(upstream(|_| json(404, r#"{"code":"not_found"}"#)).start());
    let h = Harness::start(primary.addr, shadow.addr, &[]);
    let mut client = h.open("/v1/stream");
    assert_frame(&mut client, SUBSCRIBED, "first frame");
    h.wait("the refusal to be counted", 1.0, |h| {
        h.value("parallax_ws_shadow_ends_total", Some(("reason", "refused")))
    });
    let frames = vec![note("a", "1")];
    primary.broadcast(&frames);
    assert_frame(&mut client, &frames[0], "after the shadow refused");
}

#[test]
fn sampled_out_connections_are_relayed_without_a_shadow() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let primary = rt.block_on(ScriptedWs::start(Script::Faithful));
    let shadow = rt.block_on(upstream(echo).start());
    let h = Harness::start(primary.addr, shadow.addr, &["mirror_percent = 0"]);
    let mut client = h.open("/v1/stream");
    assert_frame(&mut client, SUBSCRIBED, "first frame");
    primary.broadcast(&[note("a", "1")]);
    assert_frame(&mut client, &note("a", "1"), "sampled out");
    assert_eq!(
        h.value(
            "parallax_ws_upgrades_total",
            Some(("outcome", "sampled_out"))
        ),
        1.0
    );
    assert_eq!(shadow.connections(), 0);
    assert!(h.results().is_empty(), "{:?}", h.results());
}

#[test]
fn an_unreachable_primary_is_502_primary_unavailable() {
    let h = Harness::start(down(), down(), &[]);
    let response =
        h.rt.block_on(wire(h.proxy.addr, upgrade_request("/v1/stream")));
    assert_eq!(response.status, 502);
    assert!(
        response.text().contains("primary_unavailable"),
        "{}",
        response.text()
    );
}

#[test]
fn a_shadow_that_cannot_take_the_clients_frames_is_cut_off_not_waited_for() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let primary = rt.block_on(ScriptedWs::start(Script::Faithful));
    // Never answers the upgrade: the client's frames queue for it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let h = Harness::start(
        primary.addr,
        silent.local_addr().unwrap(),
        &[
            "shadow_timeout_ms = 60000",
            "ws_shadow_max_queued_bytes = 1000",
        ],
    );
    let mut client = h.open("/v1/stream");
    assert_frame(&mut client, SUBSCRIBED, "first frame");
    let text = "x".repeat(1500);
    client.send_text(&text).unwrap();
    h.wait("the shadow to be cut off", 1.0, |h| {
        h.value("parallax_ws_shadow_ends_total", Some(("reason", "stalled")))
    });
    wait_until("the primary to get the message", || {
        primary.received.lock().len() == 1
    });
    assert_eq!(primary.received.lock()[0], text);
    primary.broadcast(&[note("a", "1")]);
    assert_frame(&mut client, &note("a", "1"), "after the shadow was cut off");
}

#[test]
fn proxy_shutdown_closes_websockets_with_1001() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let primary = rt.block_on(ScriptedWs::start(Script::Faithful));
    let shadow = rt.block_on(ScriptedWs::start(Script::Faithful));
    let Harness {
        rt: proxy_rt,
        proxy,
    } = Harness::start(primary.addr, shadow.addr, &[]);
    let mut client = Client::open(proxy.addr, "/v1/stream");
    assert_frame(&mut client, SUBSCRIBED, "first frame");
    // Dropping the test proxy is its shutdown signal.
    drop(proxy);
    assert_eq!(client.next(FRAME_DEADLINE), Event::Close(Some(1001)));
    drop(proxy_rt);
}

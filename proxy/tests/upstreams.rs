//! The client path against purpose-built upstreams: the client gets exactly
//! the primary's answer, streamed, whatever the shadow does, and every copy
//! ends in the right `parallax_mirror_total` outcome.

#[path = "support/grpc.rs"]
mod grpc;
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use grpc::{chat, echo_stream_server, grpc_frame};
use http::Request;
use http_body_util::{BodyExt, Full};
use parallax_conformance::Request as WireRequest;
use support::*;
use tokio::sync::mpsc;

/// A primary with a bit of everything: JSON, text, custom and repeated
/// headers, empty answers, errors, and a streamed (chunked) body.
fn varied(seen: &Seen) -> http::Response<Reply> {
    let path = seen.target.split('?').next().unwrap_or("");
    match path {
        "/json" => json(200, r#"{"id":7,"tags":["a","b"]}"#),
        "/text" => text(200, "plain words\n"),
        "/headers" => http::Response::builder()
            .status(201)
            .header("content-type", "application/json")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("x-request-echo", seen.target.as_str())
            .header("cache-control", "no-store")
            .body(Reply::Full(Bytes::from_static(b"{}")))
            .unwrap(),
        "/empty" => http::Response::builder()
            .status(204)
            .body(Reply::Full(Bytes::new()))
            .unwrap(),
        "/missing" => json(404, r#"{"code":"not_found","message":"no such route"}"#),
        "/stream" => {
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                for part in ["one,", "two,", "three"] {
                    let _ = tx.send(Bytes::from_static(part.as_bytes())).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
            http::Response::builder()
                .header("content-type", "text/plain")
                .body(Reply::Channel(ChannelBody(rx)))
                .unwrap()
        }
        "/echo" => echo(seen),
        _ => json(404, "{}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_through_the_proxy_equal_direct_answers_from_the_primary() {
    let primary = upstream(varied).start().await;
    let shadow = upstream(varied).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .start()
        .await;
    let requests = [
        WireRequest::get("/json"),
        WireRequest::get("/json?page=2&q=%20x"),
        WireRequest::get("/text"),
        WireRequest::get("/headers"),
        WireRequest::get("/empty"),
        WireRequest::get("/missing"),
        WireRequest::get("/stream"),
        WireRequest::head("/json"),
        WireRequest::delete("/json"),
        WireRequest::post("/echo")
            .content_type("application/octet-stream")
            .body(vec![7u8; 5000]),
        WireRequest::put("/echo")
            .body(b"chunked body".to_vec())
            .chunked(),
    ];
    for request in requests {
        let label = format!("{} {}", request.method, request.path);
        let direct = wire(primary.addr, request.clone()).await;
        let proxied = wire(proxy.addr, request).await;
        assert_eq!(comparable(&proxied), comparable(&direct), "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_answer_is_streamed_not_buffered() {
    let primary = upstream(|_| {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"first")).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = tx.send(Bytes::from_static(b"second")).await;
        });
        http::Response::new(Reply::Channel(ChannelBody(rx)))
    })
    .start()
    .await;
    let shadow = upstream(|_| http::Response::new(Reply::Full(Bytes::from_static(b"firstsecond"))))
        .start()
        .await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .start()
        .await;

    let started = Instant::now();
    let uri = format!("http://{}/download", proxy.addr);
    let response = client()
        .request(Request::get(uri).body(Full::<Bytes>::default()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the first chunk took {:?}: the answer was buffered",
        started.elapsed()
    );
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");
    // The teed copy is whole: the shadow's identical answer matches.
    proxy.wait_outcome("compared", 1.0).await;
    assert_eq!(proxy.result("match").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_stay_behind_host_is_kept_and_forwarded_for_appended() {
    let primary = upstream(echo).start().await;
    let shadow = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("shadow_marker_header = \"x-parallax-shadow\"")
        .start()
        .await;
    let request = WireRequest::get("/echo")
        .header("Connection", "X-Hop")
        .header("X-Hop", "1")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Authorization", "Basic eDp5")
        .header("TE", "gzip")
        .header("X-Forwarded-For", "10.1.1.1")
        .header("X-Keep", "yes");
    let answer = wire(proxy.addr, request).await;
    assert_eq!(answer.status, 200);
    proxy.wait_outcome("compared", 1.0).await;

    for (who, upstream) in [("primary", &primary), ("shadow", &shadow)] {
        let seen = upstream.seen().pop().unwrap();
        let h = &seen.headers;
        for gone in ["x-hop", "keep-alive", "proxy-authorization", "te"] {
            assert!(!h.contains_key(gone), "{who} got {gone}: {h:?}");
        }
        assert_eq!(h["x-keep"], "yes", "{who}");
        assert_eq!(
            h["host"],
            proxy.addr.to_string(),
            "{who}: Host is the client's"
        );
        assert_eq!(h["x-forwarded-for"], "10.1.1.1, 127.0.0.1", "{who}");
    }
    assert_eq!(shadow.seen()[0].headers["x-parallax-shadow"], "1");
    assert!(!primary.seen()[0].headers.contains_key("x-parallax-shadow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_of_the_answer_stay_behind() {
    let primary = upstream(|_| {
        http::Response::builder()
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "1")
            .header("x-kept", "1")
            .body(Reply::Full(Bytes::from_static(b"ok")))
            .unwrap()
    })
    .start()
    .await;
    let shadow = upstream(|_| text(200, "ok")).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .start()
        .await;
    let answer = proxy.get("/").await;
    assert!(
        !answer.headers.contains_key("x-upstream-hop"),
        "{:?}",
        answer.headers
    );
    assert_eq!(answer.headers["x-kept"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shadow_does_not_delay_the_client() {
    let primary = upstream(|_| json(200, r#"{"ok":true}"#)).start().await;
    let shadow = upstream(|_| json(200, r#"{"ok":true}"#))
        .delay(Duration::from_secs(2))
        .start()
        .await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("shadow_timeout_ms = 5000")
        .start()
        .await;
    for _ in 0..3 {
        let answer = proxy.get("/slow").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), r#"{"ok":true}"#);
        assert!(
            answer.elapsed < Duration::from_secs(1),
            "the client waited {:?} for a 2 s shadow",
            answer.elapsed
        );
    }
    // The copies were still compared, later.
    proxy.wait_outcome("compared", 3.0).await;
    assert_eq!(proxy.result("match").await, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_slower_than_its_timeout_counts_as_shadow_timeout() {
    let primary = upstream(|_| json(200, "{}")).start().await;
    let shadow = upstream(|_| json(200, "{}"))
        .delay(Duration::from_secs(2))
        .start()
        .await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("shadow_timeout_ms = 200")
        .start()
        .await;
    let answer = proxy.get("/").await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.elapsed < Duration::from_secs(1),
        "{:?}",
        answer.elapsed
    );
    proxy.wait_outcome("shadow_timeout", 1.0).await;
    assert_eq!(proxy.outcome("compared").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_answering_500_is_compared_as_a_mismatch_and_never_seen() {
    let primary = upstream(|_| json(200, r#"{"accepted":1}"#)).start().await;
    let shadow = upstream(|_| json(500, r#"{"code":"internal"}"#))
        .start()
        .await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .start()
        .await;
    let answer = proxy.get("/v1/x").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), r#"{"accepted":1}"#);
    proxy.wait_outcome("compared", 1.0).await;
    assert_eq!(proxy.result("mismatch").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_resetting_the_connection_counts_as_shadow_error() {
    let primary = upstream(varied).start().await;
    let (shadow, shadow_hits) = resetting().await;
    let proxy = proxy().primary(primary.addr).shadow(shadow).start().await;
    for path in ["/json", "/text"] {
        let direct = wire(primary.addr, WireRequest::get(path)).await;
        let proxied = wire(proxy.addr, WireRequest::get(path)).await;
        assert_eq!(comparable(&proxied), comparable(&direct), "{path}");
    }
    proxy.wait_outcome("shadow_error", 2.0).await;
    assert!(shadow_hits.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_is_down_counts_as_shadow_error() {
    let primary = upstream(varied).start().await;
    let proxy = proxy().primary(primary.addr).shadow(down()).start().await;
    let direct = wire(primary.addr, WireRequest::get("/json")).await;
    let proxied = wire(proxy.addr, WireRequest::get("/json")).await;
    assert_eq!(comparable(&proxied), comparable(&direct));
    proxy.wait_outcome("shadow_error", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_beyond_the_in_flight_limit_are_dropped() {
    let primary = upstream(|_| json(200, "{}")).start().await;
    let shadow = upstream(|_| json(200, "{}"))
        .delay(Duration::from_secs(2))
        .start()
        .await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("shadow_max_in_flight = 1")
        .set("shadow_timeout_ms = 5000")
        .start()
        .await;
    for _ in 0..3 {
        let answer = proxy.get("/").await;
        assert_eq!(answer.status, 200);
        assert!(
            answer.elapsed < Duration::from_secs(1),
            "{:?}",
            answer.elapsed
        );
    }
    // The first copy holds the only slot for 2 s; the next two are dropped.
    assert_eq!(proxy.outcome("dropped_queue_full").await, 2.0);
    proxy.wait_outcome("compared", 1.0).await;
    assert_eq!(shadow.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_mirrored_at_zero_percent() {
    let primary = upstream(echo).start().await;
    let shadow = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("mirror_percent = 0")
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(proxy.get("/").await.status, 200);
    }
    assert_eq!(proxy.outcome("sampled_out").await, 3.0);
    assert_eq!(primary.hits(), 3);
    assert_eq!(shadow.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safe_policy_keeps_writes_from_the_shadow() {
    let primary = upstream(echo).start().await;
    let shadow = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("mirror_methods = \"safe\"")
        .start()
        .await;
    let post = Request::post("/echo").body(Full::from("x")).unwrap();
    assert_eq!(proxy.send(post).await.status, 200);
    assert_eq!(proxy.outcome("sampled_out").await, 1.0);
    assert_eq!(proxy.get("/echo").await.status, 200);
    proxy.wait_outcome("compared", 1.0).await;
    let methods: Vec<_> = shadow.seen().iter().map(|s| s.method.to_string()).collect();
    assert_eq!(methods, ["GET"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_mirror_limit_goes_to_the_primary_only() {
    let primary = upstream(echo).start().await;
    let shadow = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("max_mirror_body_bytes = 16")
        .start()
        .await;
    let body = vec![b'x'; 100];
    // Declared length, then chunked (found out while reading).
    let declared = WireRequest::post("/echo").body(body.clone());
    let chunked = WireRequest::post("/echo").body(body.clone()).chunked();
    for request in [declared, chunked] {
        let answer = wire(proxy.addr, request).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.text(),
            r#"{"method":"POST","target":"/echo","length":100}"#
        );
    }
    // The chunked one is teed, and its copy given up in the mirror task.
    proxy.wait_outcome("body_too_large", 2.0).await;
    assert_eq!(shadow.hits(), 0);
    // A body within the limit is mirrored.
    let small = WireRequest::post("/echo").body(b"tiny".to_vec()).chunked();
    assert_eq!(wire(proxy.addr, small).await.status, 200);
    proxy.wait_outcome("compared", 1.0).await;
    assert_eq!(shadow.seen()[0].body, "tiny");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_the_compare_limit_streams_whole_but_is_not_compared() {
    let big = "y".repeat(10_000);
    let body = big.clone();
    let primary = upstream(move |_| text(200, &body)).start().await;
    let body = big.clone();
    let shadow = upstream(move |_| text(200, &body)).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("max_compare_body_bytes = 1024")
        .start()
        .await;
    let answer = proxy.get("/big").await;
    assert_eq!(answer.text(), big);
    proxy.wait_outcome("body_too_large", 1.0).await;
    assert_eq!(proxy.outcome("compared").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_primary_is_a_502_from_the_proxy_and_no_comparison() {
    let shadow = upstream(echo).start().await;
    let proxy = proxy().primary(down()).shadow(shadow.addr).start().await;
    let answer = proxy.get("/x").await;
    assert_eq!(answer.status, 502);
    assert_eq!(
        answer.text(),
        r#"{"code":"primary_unavailable","message":"the primary upstream did not answer"}"#
    );
    proxy.wait_outcome("primary_error", 1.0).await;
    assert_eq!(proxy.outcome("compared").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled() {
    let primary = upstream(echo).start().await;
    let shadow = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .start()
        .await;
    for _ in 0..5 {
        // A fresh client connection each time (`Connection: close`).
        assert_eq!(
            wire(proxy.addr, WireRequest::get("/echo")).await.status,
            200
        );
        // An upstream connection goes back to the pool just after the
        // answer's last byte; give it that moment.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Five client connections, but upstream connections are reused: without
    // pooling there would be five. (At most two: a request can still race
    // the previous connection's return to the pool on a loaded machine.)
    assert!(
        primary.connections() <= 2,
        "{} primary connections",
        primary.connections()
    );
    proxy.settle(5.0).await;
    assert!(
        shadow.connections() <= 2,
        "{} shadow connections",
        shadow.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_upstream_closed_while_idle_is_not_used() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An HTTP/1.1 upstream that answers one request per connection as if it
    // would keep it, then closes it 20 ms later (an idle timeout).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                let _ = stream.write_all(answer).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    let shadow = upstream(echo).start().await;
    let proxy = proxy()
        .primary(addr)
        .shadow(shadow.addr)
        .set("mirror_percent = 0")
        .start()
        .await;
    for i in 0..3 {
        let answer = wire(proxy.addr, WireRequest::get("/x")).await;
        assert_eq!(answer.status, 200, "request {i}: {answer:?}");
        // Past the upstream's idle close.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_without_host_reaches_an_http1_upstream_with_its_authority() {
    let primary = upstream(echo).start().await;
    let shadow = upstream(echo).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .start()
        .await;
    let response = h2c_client()
        .request(
            Request::get(format!("http://{}/echo", proxy.addr))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    proxy.settle(1.0).await;
    for up in [&primary, &shadow] {
        let seen = up.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].target, "/echo");
        assert_eq!(seen[0].headers["host"], up.addr.to_string().as_str());
    }
}

// ------------------------------------------------------- HTTP/2 and TLS

/// An HTTP/2-only client with prior knowledge (h2c).
fn h2c_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// `curl` (a client nobody here wrote) with `args`, returning its stdout.
async fn curl(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(&args)
            .output()
            .expect("curl runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "curl {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_with_prior_knowledge_are_served_mirrored_and_compared() {
    let primary = upstream(varied).start().await;
    let shadow = upstream(varied).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .start()
        .await;
    let client = h2c_client();
    for i in 0..5 {
        let response = client
            .request(
                Request::get(format!("http://{}/json?i={i}", proxy.addr))
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(!body.is_empty());
    }
    // curl, HTTP/2 by prior knowledge.
    let said = curl(vec![
        "--http2-prior-knowledge".into(),
        "-w".into(),
        "\n%{http_version}".into(),
        format!("http://{}/json?i=9", proxy.addr),
    ])
    .await;
    assert!(said.ends_with("\n2"), "{said}");
    proxy.wait_outcome("compared", 6.0).await;
    assert_eq!(proxy.result("match").await, 6.0);
    // The upstreams got HTTP/1.1 with the client's authority as Host.
    let seen = primary.seen();
    assert!(
        seen[0].headers.get("host").is_some(),
        "{:?}",
        seen[0].headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_get_h2_or_http1_by_alpn() {
    let cert = TestCert::new("downstream");
    let primary = upstream(varied).start().await;
    let shadow = upstream(varied).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .tables(&format!(
            "[services.tls]\ncert_file = {:?}\nkey_file = {:?}",
            cert.cert_file.display().to_string(),
            cert.key_file.display().to_string()
        ))
        .start()
        .await;
    let port = proxy.addr.port();
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let said = curl(vec![
            flag.into(),
            "--cacert".into(),
            cert.cert_file.display().to_string(),
            "--resolve".into(),
            format!("localhost:{port}:127.0.0.1"),
            "-w".into(),
            "\n%{http_version}".into(),
            format!("https://localhost:{port}/json?i=1"),
        ])
        .await;
        assert!(said.ends_with(&format!("\n{version}")), "{flag}: {said}");
    }
    proxy.wait_outcome("compared", 2.0).await;
    assert_eq!(proxy.result("match").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_h2c_upstreams_are_spoken_to_in_their_own_protocol() {
    let cert = TestCert::new("upstream");
    let primary = upstream(varied).tls(&cert).start().await;
    let shadow = upstream(varied).http2().start().await;
    let secondary = upstream(varied).tls(&cert).http2().start().await;
    let port = |a: std::net::SocketAddr| a.port();
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\nprimary = \"https://localhost:{}\"\nshadow = \"http://127.0.0.1:{}\"\nsecondary = \"https://localhost:{}\"\nshadow_http2 = true\nsecondary_http2 = true\n[services.upstream_tls]\nca_file = {:?}\n",
        port(primary.addr),
        port(shadow.addr),
        port(secondary.addr),
        cert.cert_file.display().to_string()
    );
    let proxy = proxy_from_toml(&toml).await;
    for i in 0..4 {
        let answer = proxy.get(&format!("/json?i={i}")).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    proxy.wait_outcome("compared", 4.0).await;
    assert_eq!(proxy.result("mismatch").await, 0.0);
    assert_eq!((primary.hits(), shadow.hits(), secondary.hits()), (4, 4, 4));

    // Without the CA, the https primary is not trusted: 502, never a leak.
    let untrusted = toml.replace(
        &format!("ca_file = {:?}", cert.cert_file.display().to_string()),
        "dangerously_skip_certificate_verification = false",
    );
    let proxy = proxy_from_toml(&untrusted).await;
    assert_eq!(proxy.get("/json?i=1").await.status, 502);
    // For staging, verification can be switched off, by its loud name.
    let staging = toml.replace(
        &format!("ca_file = {:?}", cert.cert_file.display().to_string()),
        "dangerously_skip_certificate_verification = true",
    );
    let proxy = proxy_from_toml(&staging).await;
    assert_eq!(proxy.get("/json?i=1").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_is_a_start_up_error_naming_the_setting() {
    let cert = TestCert::new("bad");
    let other = TestCert::new("other");
    let with_tls = |cert_file: &str, key_file: &str| {
        format!("admin_listen = \"127.0.0.1:0\"\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\nprimary = \"127.0.0.1:1\"\nshadow = \"127.0.0.1:2\"\n[services.tls]\ncert_file = {cert_file:?}\nkey_file = {key_file:?}\n")
    };
    let error = |text: String| {
        parallax_proxy::Config::parse(&text, "t")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    };
    let c = cert.cert_file.display().to_string();
    let k = cert.key_file.display().to_string();
    let e = error(with_tls("/nonexistent/cert.pem", &k));
    assert!(
        e.starts_with("services[0].tls.cert_file: cannot read"),
        "{e}"
    );
    let e = error(with_tls(&k, &k));
    assert!(
        e.starts_with("services[0].tls.cert_file: ") && e.contains("no certificate"),
        "{e}"
    );
    let e = error(with_tls(&c, &other.key_file.display().to_string()));
    assert!(e.starts_with("services[0].tls.key_file: "), "{e}");
    let e = error(with_tls(&c, &c));
    assert!(e.starts_with("services[0].tls.key_file: "), "{e}");
}

// ------------------------------------------------------- hostile HTTP/2

/// One HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

/// GET `path` in HPACK: indexed :method GET and :scheme http, literal :path
/// and :authority (never indexed, so every block stands alone).
fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    for (index, value) in [(4u8, path), (1u8, "proxy")] {
        b.push(0x10 | index);
        b.push(value.len() as u8);
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// Reads frames until the server closes the connection or `deadline`;
/// returns the GOAWAY error code if one came, and whether it closed.
async fn until_closed(
    stream: &mut tokio::net::TcpStream,
    deadline: Duration,
) -> (Option<u32>, bool) {
    use tokio::io::AsyncReadExt;
    let mut goaway = None;
    let mut buf = Vec::new();
    let until = Instant::now() + deadline;
    loop {
        let mut chunk = [0u8; 16384];
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (goaway, true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (goaway, false),
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            if buf[3] == GOAWAY && len >= 8 {
                goaway = Some(u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]));
            }
            buf.drain(..9 + len);
        }
    }
}

/// A proxy in front of `varied` upstreams, and a check that it still serves
/// an ordinary client.
async fn hardened() -> (TestProxy, TestUpstream, TestUpstream) {
    let primary = upstream(varied).start().await;
    let shadow = upstream(varied).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .start()
        .await;
    (proxy, primary, shadow)
}

async fn still_serves(proxy: &TestProxy) {
    let started = Instant::now();
    let response = h2c_client()
        .request(
            Request::get(format!("http://{}/json", proxy.addr))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect("another h2 client is served");
    assert_eq!(response.status(), 200);
    assert_eq!(proxy.get("/json").await.status, 200, "and an HTTP/1.1 one");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_gets_goaway_and_other_clients_are_served() {
    use tokio::io::AsyncWriteExt;
    let (proxy, primary, _shadow) = hardened().await;
    let mut attacker = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    let block = get_block("/json");
    let attempts = 20_000u32;
    for i in 0..attempts {
        let id = 1 + 2 * i;
        out.extend(frame(HEADERS, END_HEADERS, id, &block));
        out.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    // Written in one go; the server may close before it has read it all.
    let _ = attacker.write_all(&out).await;
    let (goaway, closed) = until_closed(&mut attacker, Duration::from_secs(10)).await;
    assert!(closed, "the attacker's connection is closed");
    assert_eq!(goaway, Some(0xb), "GOAWAY with ENHANCE_YOUR_CALM");
    assert!(
        primary.hits() < (attempts / 10) as usize,
        "only a bounded share of the reset streams reached the primary: {}",
        primary.hits()
    );
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_list_bomb_and_a_continuation_flood_are_refused() {
    use tokio::io::AsyncWriteExt;
    let (proxy, primary, _shadow) = hardened().await;
    let mut attacker = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    attacker.write_all(PREFACE).await.unwrap();
    attacker
        .write_all(&frame(SETTINGS, 0, 0, &[]))
        .await
        .unwrap();
    // One HEADERS, then CONTINUATION frames of 16 KiB literal headers,
    // 8 MiB in all, never ending the header block.
    attacker
        .write_all(&frame(HEADERS, END_STREAM, 1, &get_block("/json")))
        .await
        .unwrap();
    let mut header = vec![0x10, 0x05];
    header.extend_from_slice(b"x-big");
    header.extend_from_slice(&[0x7f, 0x81, 0x7f]); // value length 16384 (HPACK integer)
    header.extend(std::iter::repeat_n(b'a', 16384));
    for _ in 0..512 {
        if attacker
            .write_all(&frame(CONTINUATION, 0, 1, &header))
            .await
            .is_err()
        {
            break;
        }
    }
    let (_, closed) = until_closed(&mut attacker, Duration::from_secs(10)).await;
    assert!(
        closed,
        "the connection is closed rather than buffering 8 MiB of headers"
    );
    assert_eq!(primary.hits(), 0, "the request never reached an upstream");
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_preface_is_closed_without_harm() {
    use tokio::io::AsyncWriteExt;
    let (proxy, primary, _shadow) = hardened().await;
    for garbage in [
        &b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n\x00\x00\x00\x04\x00"[..],
        &b"\x00\x00\x12\x04\x00\x00\x00\x00\x00garbage-before-preface"[..],
        &[0xffu8; 64][..],
    ] {
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let _ = s.write_all(garbage).await;
        let (_, closed) = until_closed(&mut s, Duration::from_secs(10)).await;
        assert!(closed, "closed after {garbage:?}");
    }
    assert_eq!(primary.hits(), 0);
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_opens_its_window_cannot_grow_the_proxys_memory() {
    use tokio::io::AsyncWriteExt;
    let big = Bytes::from(vec![b'x'; 4 << 20]);
    let primary = upstream(move |_| {
        http::Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Reply::Full(big.clone()))
            .unwrap()
    })
    .start()
    .await;
    let shadow = upstream(varied).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("mirror_percent = 0")
        .start()
        .await;
    let rss = || {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 4096
    };
    let before = rss();
    let mut attacker = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut out = PREFACE.to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: the server may send no DATA at all.
    out.extend(frame(SETTINGS, 0, 0, &[0x00, 0x04, 0, 0, 0, 0]));
    let streams = 100u32;
    for i in 0..streams {
        out.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1 + 2 * i,
            &get_block("/big"),
        ));
    }
    attacker.write_all(&out).await.unwrap();
    // 100 streams x 4 MiB = 400 MiB if the answers were buffered.
    let deadline = Instant::now() + Duration::from_secs(5);
    while primary.hits() < streams as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "the proxy buffered {} MiB for a client that reads nothing",
        grown >> 20
    );
    let answer = proxy.get("/other").await;
    assert!(answer.status.is_success() || answer.status == 404);
    drop(attacker);
}

// ------------------------------------------------------------------ gRPC

/// A unary gRPC answer: `IngestResponse { accepted }` framed, then the
/// status in the trailers.
fn grpc_answer(accepted: u8, status: &str) -> http::Response<Reply> {
    let message = [0x08, accepted];
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", status.parse().unwrap());
    http::Response::builder()
        .header("content-type", "application/grpc")
        .body(Reply::Trailed(Bytes::from(body), Some(trailers)))
        .unwrap()
}

/// gRPC over HTTP/2 end to end: an h2 client, h2c backends, trailers
/// forwarded to the client, `te: trailers` kept, and the comparison made
/// message by message at protobuf field paths and on `grpc-status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_proxied_with_trailers_and_compared_message_by_message() {
    let primary = upstream(|_| grpc_answer(2, "0")).http2().start().await;
    let shadow = upstream(|seen| {
        if seen.target.ends_with("/Publish") {
            grpc_answer(3, "0")
        } else {
            grpc_answer(2, "14")
        }
    })
    .http2()
    .start()
    .await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("primary_http2 = true\nshadow_http2 = true")
        .tables(
            "[services.compare]\nprotobuf_message = \"parallax.ingest.v1.IngestResponse\"\n[[services.routes]]\ntemplate = \"/parallax.ingest.v1.IngestService/Publish\"\n[[services.routes]]\ntemplate = \"/parallax.ingest.v1.IngestService/Health\"",
        )
        .start()
        .await;
    let client = h2c_client();
    for method in ["Publish", "Health"] {
        let request = Request::post(format!(
            "http://{}/parallax.ingest.v1.IngestService/{method}",
            proxy.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected
            .trailers()
            .cloned()
            .expect("trailers reach the client");
        assert_eq!(trailers["grpc-status"], "0", "the primary's status");
    }
    proxy.wait_outcome("compared", 2.0).await;
    assert!(primary
        .seen()
        .iter()
        .all(|s| s.headers.get("te").is_some_and(|v| v == "trailers")));
    let samples = proxy.admin_json("/admin/mismatches").await;
    let kinds = |route: &str| -> Vec<(String, String)> {
        samples["services"]["svc"][route][0]["mismatches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["path"].as_str().unwrap().to_owned(),
                    d["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        kinds("/parallax.ingest.v1.IngestService/Publish"),
        [("/0/accepted".to_owned(), "value".to_owned())]
    );
    assert_eq!(
        kinds("/parallax.ingest.v1.IngestService/Health"),
        [("grpc-status".to_owned(), "status".to_owned())]
    );
}

/// A bidirectional call whose client waits for each answer before sending
/// on gets through a mirrored route: the primary gets every message as it
/// is sent (and the request's trailers), and the shadow the whole stream
/// once the client ended it, compared message by message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidirectional_call_in_lockstep_gets_through_a_mirrored_route_and_is_compared() {
    let calls = [
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    ];
    let primary = echo_stream_server(std::sync::Arc::clone(&calls[0])).await;
    let shadow = echo_stream_server(std::sync::Arc::clone(&calls[1])).await;
    let proxy = proxy()
        .primary(primary)
        .shadow(shadow)
        .set("primary_http2 = true\nshadow_http2 = true")
        .start()
        .await;
    let messages: [&[u8]; 3] = [b"one", b"two", b"three"];
    let (back, trailers) = chat(proxy.addr, &messages).await;
    let want: Vec<Bytes> = messages.iter().map(|m| grpc_frame(m)).collect();
    assert_eq!(back, want);
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(
        trailers["x-sent"], "3",
        "the request's trailers reached the primary"
    );
    proxy.wait_outcome("compared", 1.0).await;
    assert_eq!(proxy.result("match").await, 1.0);
    assert_eq!(calls[1].load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A streamed request longer than `max_mirror_body_bytes` reaches the
/// primary whole, and the copy is given up as `body_too_large`: the shadow
/// never gets a partial stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_the_mirror_limit_reaches_the_primary_whole_and_is_not_mirrored() {
    let calls = [
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    ];
    let primary = echo_stream_server(std::sync::Arc::clone(&calls[0])).await;
    let shadow = echo_stream_server(std::sync::Arc::clone(&calls[1])).await;
    let proxy = proxy()
        .primary(primary)
        .shadow(shadow)
        .set("primary_http2 = true\nshadow_http2 = true\nmax_mirror_body_bytes = 16")
        .start()
        .await;
    // 15 bytes each on the wire: the second is past the limit.
    let messages: [&[u8]; 3] = [b"0123456789", b"abcdefghij", b"ABCDEFGHIJ"];
    let (back, _) = chat(proxy.addr, &messages).await;
    let want: Vec<Bytes> = messages.iter().map(|m| grpc_frame(m)).collect();
    assert_eq!(back, want);
    proxy.wait_outcome("body_too_large", 1.0).await;
    assert_eq!(proxy.outcome("compared").await, 0.0);
    assert_eq!(calls[0].load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(calls[1].load(std::sync::atomic::Ordering::SeqCst), 0);
}

// ------------------------------------------------ the raw HTTP/1.1 path (h1)

use parallax_proxy::h1::Http1Path;

/// A pass-through proxy (nothing mirrored) in front of `primary` on the
/// raw path or on hyper's.
async fn pass_through(primary: std::net::SocketAddr, path: Http1Path) -> TestProxy {
    proxy()
        .primary(primary)
        .shadow(down())
        .set("mirror_percent = 0")
        .http1(path)
        .start()
        .await
}

/// The raw upstream's answers, by request line: sized, chunked (with an
/// extension and a trailer), close-framed, HEAD-sized, 204, 304, 103 then
/// 200, and the default echoing the request line's length.
fn scripted(line: &str) -> Vec<u8> {
    let date = "date: Sat, 05 Dec 2026 15:00:00 GMT\r\n";
    let text = if line.starts_with("GET /chunked ") {
        format!("HTTP/1.1 200 OK\r\n{date}Transfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n")
    } else if line.starts_with("GET /close ") {
        format!("HTTP/1.1 200 OK\r\n{date}\r\nuntil the end")
    } else if line.starts_with("HEAD ") {
        format!("HTTP/1.1 200 OK\r\n{date}Content-Length: 42\r\n\r\n")
    } else if line.starts_with("GET /204 ") {
        format!("HTTP/1.1 204 No Content\r\n{date}\r\n")
    } else if line.starts_with("GET /304 ") {
        format!("HTTP/1.1 304 Not Modified\r\n{date}ETag: \"x\"\r\n\r\n")
    } else if line.starts_with("GET /hints ") {
        format!("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n{date}Content-Length: 2\r\n\r\nok")
    } else {
        format!("HTTP/1.1 200 OK\r\n{date}Content-Length: {}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n{line}", line.len())
    };
    text.into_bytes()
}

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_path_forwards_the_clients_bytes_but_for_the_hop_rules() {
    let primary = raw_upstream(scripted, false).await;
    let proxy = pass_through(primary.addr, Http1Path::Raw).await;
    let request = b"POST /a/b?c=d HTTP/1.1\r\nHost: svc.example\r\nX-Mixed-Case: Kept As Sent\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\nX-Forwarded-For: 10.1.1.1\r\nContent-Length: 5\r\n\r\nhello";
    let answer = talk(proxy.addr, &[request], Duration::ZERO, QUIET).await;
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    // The upstream's hop-by-hop headers stay behind too.
    assert!(
        !answer.to_ascii_lowercase().contains("keep-alive"),
        "{answer}"
    );
    assert_eq!(
        String::from_utf8(primary.requests().concat()).unwrap(),
        "POST /a/b?c=d HTTP/1.1\r\nHost: svc.example\r\nX-Mixed-Case: Kept As Sent\r\nContent-Length: 5\r\nx-forwarded-for: 10.1.1.1, 127.0.0.1\r\n\r\nhello"
    );
    // Counted as the hyper path counts a request it does not mirror.
    assert_eq!(proxy.outcome("sampled_out").await, 1.0);
    let metrics = proxy.metrics().await;
    assert_eq!(
        sum(
            &metrics,
            "parallax_upstream_request_duration_seconds_count",
            "backend",
            "primary"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_and_pipelined_requests_are_answered_in_order_on_one_connection() {
    let primary = raw_upstream(scripted, false).await;
    let proxy = pass_through(primary.addr, Http1Path::Raw).await;
    // One after another on one connection, then 50 pipelined in one write.
    let one = |i: usize| format!("GET /n/{i} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes();
    let each: Vec<Vec<u8>> = (0..20).map(one).collect();
    let each: Vec<&[u8]> = each.iter().map(Vec::as_slice).collect();
    let answer = talk(proxy.addr, &each, Duration::from_millis(5), QUIET).await;
    assert_eq!(status_lines(&answer).len(), 20);
    let pipelined: Vec<u8> = (20..70).flat_map(one).collect();
    let answer = talk(proxy.addr, &[&pipelined], Duration::ZERO, QUIET).await;
    let text = String::from_utf8(answer).unwrap();
    assert_eq!(status_lines(text.as_bytes()).len(), 50);
    let mut from = 0;
    for i in 20..70 {
        let at = text[from..].find(&format!("GET /n/{i} HTTP/1.1")).unwrap();
        from += at + 1;
    }
    // Two client connections, and the upstream connection reused.
    assert_eq!(primary.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_split_across_many_reads_arrives_whole() {
    let primary = raw_upstream(scripted, false).await;
    let proxy = pass_through(primary.addr, Http1Path::Raw).await;
    let request = b"PUT /split HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789";
    let parts: Vec<&[u8]> = request.chunks(7).collect();
    let answer = talk(proxy.addr, &parts, Duration::from_millis(10), QUIET).await;
    assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"]);
    let seen = String::from_utf8(primary.requests().concat()).unwrap();
    assert!(seen.ends_with("\r\n\r\n0123456789"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_close_framed_head_204_304_and_1xx_answers_are_relayed_as_hyper_would() {
    let primary = raw_upstream(scripted, false).await;
    let raw = pass_through(primary.addr, Http1Path::Raw).await;
    let hyper = pass_through(primary.addr, Http1Path::Hyper).await;
    let get = |path: &str, method: &str| format!("{method} {path} HTTP/1.1\r\nHost: h\r\n\r\n");
    // Chunked: the framing goes through as sent, the end found, and the
    // connection serves the next request.
    let both = format!("{}{}", get("/chunked", "GET"), get("/after", "GET"));
    let answer =
        String::from_utf8(talk(raw.addr, &[both.as_bytes()], Duration::ZERO, QUIET).await).unwrap();
    assert!(
        answer.contains("transfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\nHTTP/1.1 200 OK"),
        "{answer}"
    );
    assert!(!answer.contains("Trailer:"), "{answer}");
    // Framed by close: sent whole, then the client connection closes.
    let answer = String::from_utf8(
        talk(
            raw.addr,
            &[get("/close", "GET").as_bytes()],
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .await,
    )
    .unwrap();
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nuntil the end"), "{answer}");
    // No body for HEAD, 204, 304; 1xx heads go before the answer. Each is
    // followed by a request on the same connection, so a body that was
    // wrongly expected would swallow it.
    for (path, method, lines) in [
        ("/head", "HEAD", vec!["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]),
        (
            "/204",
            "GET",
            vec!["HTTP/1.1 204 No Content", "HTTP/1.1 200 OK"],
        ),
        (
            "/304",
            "GET",
            vec!["HTTP/1.1 304 Not Modified", "HTTP/1.1 200 OK"],
        ),
    ] {
        let twice = format!("{}{}", get(path, method), get("/next", "GET"));
        for proxy in [&raw, &hyper] {
            let answer = talk(proxy.addr, &[twice.as_bytes()], Duration::ZERO, QUIET).await;
            assert_eq!(status_lines(&answer), lines, "{path}");
        }
        let answer = talk(raw.addr, &[twice.as_bytes()], Duration::ZERO, QUIET).await;
        if method == "HEAD" {
            assert!(String::from_utf8_lossy(&answer).contains("Content-Length: 42"));
        }
    }
    let answer = talk(
        raw.addr,
        &[get("/hints", "GET").as_bytes()],
        Duration::ZERO,
        QUIET,
    )
    .await;
    assert_eq!(
        status_lines(&answer),
        ["HTTP/1.1 103 Early Hints", "HTTP/1.1 200 OK"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_is_the_same_502_on_the_raw_path() {
    let proxy = pass_through(down(), Http1Path::Raw).await;
    let request = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    let answer = String::from_utf8(
        talk(
            proxy.addr,
            &[request, request],
            Duration::from_millis(50),
            QUIET,
        )
        .await,
    )
    .unwrap();
    // Twice on one connection: a 502 does not close it.
    assert_eq!(
        status_lines(answer.as_bytes()),
        ["HTTP/1.1 502 Bad Gateway"; 2]
    );
    assert!(
        answer.contains("content-type: application/json\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with(
        r#"{"code":"primary_unavailable","message":"the primary upstream did not answer"}"#
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_upstream_closed_is_left_out_and_a_fresh_one_used() {
    // Every answer says keep-alive, and every connection is then closed.
    let primary = raw_upstream(scripted, true).await;
    let proxy = pass_through(primary.addr, Http1Path::Raw).await;
    for i in 0..4 {
        let request = format!("POST /r/{i} HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
        let answer = talk(proxy.addr, &[request.as_bytes()], Duration::ZERO, QUIET).await;
        assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"], "request {i}");
        // Time for the upstream's close to reach the proxy's reactor.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Four answers, four upstream connections, no request sent twice.
    assert_eq!(primary.connections(), 4);
    assert_eq!(primary.requests().len(), 4);
}

/// An upstream that answers the first request on each connection (keep-alive)
/// and reads the second, then closes without answering it: the request
/// reached it, and what it did with it is unknown.
async fn answers_once_then_swallows() -> (
    std::net::SocketAddr,
    std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = std::sync::Arc::clone(&log);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 0.. {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let line = String::from_utf8_lossy(&buf)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    buf.clear();
                    log.lock().push(line);
                    if n > 0 {
                        return;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_upstream_took_and_dropped_is_resent_only_when_idempotent() {
    let (primary, seen) = answers_once_then_swallows().await;
    let proxy = pass_through(primary, Http1Path::Raw).await;
    let get = b"GET /idem HTTP/1.1\r\nHost: h\r\n\r\n";
    let post = b"POST /write HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
    // First: answered, and its upstream connection pooled.
    let answer = talk(proxy.addr, &[get], Duration::ZERO, QUIET).await;
    assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"]);
    // A GET on the pooled connection is swallowed, then sent again on a
    // fresh one, which answers it.
    let answer = talk(proxy.addr, &[get], Duration::ZERO, QUIET).await;
    assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"]);
    // A POST on the pooled connection is swallowed: the upstream may have
    // acted on it, so the client gets the 502 and it is not sent twice.
    let answer = talk(proxy.addr, &[post], Duration::ZERO, QUIET).await;
    assert_eq!(status_lines(&answer), ["HTTP/1.1 502 Bad Gateway"]);
    let seen = seen.lock().clone();
    assert_eq!(
        seen.iter()
            .filter(|l| l.starts_with("POST /write "))
            .count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("GET /idem ")).count(),
        3,
        "{seen:?}"
    );
}

/// Inputs hyper must judge: the raw path hands each to hyper, so the
/// client's answers (status lines, or none) are the same on both paths.
const HOSTILE: &[&str] = &[
    // Smuggling shapes.
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 5\r\n\r\nabcde",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    // Folding, bad names and values, bad lines.
    "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX Bad: a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Nul: a\0b\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n",
    "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.1\nHost: h\n\n",
    "GET / HTTP/9.9\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    "G@T / HTTP/1.1\r\nHost: h\r\n\r\n",
    "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "GET http://h/abs HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /frag#x HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /caf\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /a\\b|c HTTP/1.1\r\nHost: h\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n",
    "garbage\r\n\r\n",
    "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03",
];

/// Bad chunked bodies: hyper streams the body to the upstream, so whether
/// the client gets the upstream's answer or hyper's 400 is a race on
/// either path (this upstream answers as soon as it has the head).
const BAD_CHUNKED: &[&str] = &[
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_odd_inputs_are_answered_exactly_as_hyper_answers_them() {
    let primary = raw_upstream(scripted, false).await;
    let raw = pass_through(primary.addr, Http1Path::Raw).await;
    let hyper = pass_through(primary.addr, Http1Path::Hyper).await;
    let mut cases: Vec<Vec<u8>> = HOSTILE.iter().map(|c| c.as_bytes().to_vec()).collect();
    // A head past the raw path's limit (hyper's own limit then applies),
    // and too many headers.
    cases.push(
        format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
            "a".repeat(20_000)
        )
        .into_bytes(),
    );
    let many: String = (0..120).map(|i| format!("x-{i}: v\r\n")).collect();
    cases.push(format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n").into_bytes());
    // Each after a good request on the same connection, so the raw path
    // has served it before it meets the odd one.
    let good = b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n";
    for case in &cases {
        let mut both = good.to_vec();
        both.extend_from_slice(case);
        let parts: [&[u8]; 1] = [&both];
        let (from_raw, from_hyper) = tokio::join!(
            talk(raw.addr, &parts, Duration::ZERO, QUIET),
            talk(hyper.addr, &parts, Duration::ZERO, QUIET)
        );
        let shown = String::from_utf8_lossy(&case[..case.len().min(120)]).into_owned();
        assert_eq!(
            status_lines(&from_raw),
            status_lines(&from_hyper),
            "{shown:?}"
        );
        assert!(!status_lines(&from_raw).is_empty(), "{shown:?}");
    }
    for case in BAD_CHUNKED {
        let mut both = good.to_vec();
        both.extend_from_slice(case.as_bytes());
        let lines = status_lines(&talk(raw.addr, &[&both], Duration::ZERO, QUIET).await);
        assert!(
            lines == ["HTTP/1.1 200 OK"; 2]
                || lines == ["HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request"],
            "{case:?}: {lines:?}"
        );
    }
    // A head past hyper's limit too: hyper's 431 — unless the client is
    // still sending when hyper closes, and the reset loses it (on either
    // path) — and the upstream never sees it.
    let mut huge = good.to_vec();
    huge.extend_from_slice(
        format!(
            "GET /huge HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
            "a".repeat(500_000)
        )
        .as_bytes(),
    );
    let from_raw = talk(raw.addr, &[&huge], Duration::ZERO, QUIET).await;
    let lines = status_lines(&from_raw);
    assert!(
        lines == ["HTTP/1.1 200 OK"]
            || lines
                == [
                    "HTTP/1.1 200 OK",
                    "HTTP/1.1 431 Request Header Fields Too Large"
                ],
        "{lines:?}"
    );
    assert!(primary
        .requests()
        .iter()
        .all(|r| !r.starts_with(b"GET /huge")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_is_waited_for_and_a_websocket_upgrade_goes_to_hyper() {
    let primary = raw_upstream(scripted, false).await;
    let proxy = pass_through(primary.addr, Http1Path::Raw).await;
    // A head dribbled a few bytes at a time is still served.
    let head = b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n";
    let parts: Vec<&[u8]> = head.chunks(3).collect();
    let answer = talk(proxy.addr, &parts, Duration::from_millis(20), QUIET).await;
    assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"]);
    // An upgrade after a raw request reaches hyper's WebSocket path: the
    // raw upstream is no WebSocket server, so the proxy answers for it.
    let both = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let answer = talk(proxy.addr, &[both], Duration::ZERO, QUIET).await;
    let lines = status_lines(&answer);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "HTTP/1.1 200 OK");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]
    /// However the client's bytes are split into reads, the upstream gets
    /// the same bytes.
    #[test]
    fn random_splits_give_the_same_upstream_bytes(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(0usize..4000, 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let primary = raw_upstream(scripted, false).await;
            let proxy = pass_through(primary.addr, Http1Path::Raw).await;
            // `Connection: close` (a hop-by-hop header the upstream never
            // sees): the answer ends with the connection, so a loaded box
            // cannot make a quiet gap look like the end.
            let mut request = format!(
                "POST /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (request.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut parts = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([request.len()]) {
                parts.push(&request[from..cut]);
                from = cut;
            }
            let answer = talk(proxy.addr, &parts, Duration::from_millis(2), CLOSED).await;
            assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"]);
            let mut expected = format!(
                "POST /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nContent-Length: {}\r\nx-forwarded-for: 127.0.0.1\r\n\r\n",
                body.len()
            )
            .into_bytes();
            expected.extend_from_slice(&body);
            assert_eq!(primary.requests().concat(), expected);
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_idle_raw_connections_close_and_one_in_flight_finishes_with_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let primary = upstream(echo)
        .delay(Duration::from_millis(400))
        .start()
        .await;
    let proxy = pass_through(primary.addr, Http1Path::Raw).await;
    let request = b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n";
    // One connection served once and then idle, one with a request in flight.
    let mut idle = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    idle.write_all(request).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = idle.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    let mut busy = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    busy.write_all(request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(proxy); // its shutdown signal
    let read_to_end = |mut stream: tokio::net::TcpStream| async move {
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all))
            .await
            .expect("the proxy closes the connection")
            .unwrap();
        String::from_utf8(all).unwrap()
    };
    assert_eq!(read_to_end(idle).await, "");
    let answer = read_to_end(busy).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_is_cut_off_after_hypers_header_read_timeout_on_both_paths() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let primary = raw_upstream(scripted, false).await;
    let raw = pass_through(primary.addr, Http1Path::Raw).await;
    let hyper = pass_through(primary.addr, Http1Path::Hyper).await;
    // A head that never ends: one more header line every 2 s.
    let trickle = |addr| async move {
        let started = Instant::now();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut i = 0;
        loop {
            let mut chunk = [0u8; 1024];
            match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), answer),
                Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    i += 1;
                    let line = format!("x-{i}: v\r\n");
                    if stream.write_all(line.as_bytes()).await.is_err() {
                        return (started.elapsed(), answer);
                    }
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "never cut off");
        }
    };
    let ((raw_after, raw_answer), (hyper_after, hyper_answer)) =
        tokio::join!(trickle(raw.addr), trickle(hyper.addr));
    assert_eq!(status_lines(&raw_answer), status_lines(&hyper_answer));
    for after in [raw_after, hyper_after] {
        assert!(
            after >= Duration::from_secs(29) && after < Duration::from_secs(40),
            "{after:?}"
        );
    }
    assert!(primary.requests().is_empty());
}

// ------------------------------- mirrored requests on the raw HTTP/1.1 path

/// The primary of the mirrored comparisons: a sized JSON answer, a chunked
/// one (two chunks, an extension) with a trailer and without, one framed by
/// close, one over the compare limit, by path.
fn mirrored_primary(line: &str) -> Vec<u8> {
    let date = "date: Sat, 05 Dec 2026 15:00:00 GMT\r\n";
    let text = if line.starts_with("GET /chunked ") {
        format!("HTTP/1.1 200 OK\r\n{date}content-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n6;x=1\r\n{{\"n\":[\r\n5\r\n1,2]}}\r\n0\r\nx-sum: 11\r\n\r\n")
    } else if line.starts_with("GET /plain-chunked ") {
        format!("HTTP/1.1 200 OK\r\n{date}content-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{{\"n\":[\r\n5\r\n1,2]}}\r\n0\r\n\r\n")
    } else if line.starts_with("GET /close ") {
        format!("HTTP/1.1 200 OK\r\n{date}content-type: text/plain\r\n\r\nuntil the end")
    } else if line.starts_with("GET /big ") {
        let big = "y".repeat(3000);
        format!(
            "HTTP/1.1 200 OK\r\n{date}content-type: text/plain\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        )
    } else {
        let body = r#"{"a":1,"b":"x"}"#;
        format!("HTTP/1.1 200 OK\r\n{date}content-type: application/json\r\nx-version: 1\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}", body.len())
    };
    text.into_bytes()
}

/// The shadow: the same bodies, sized, except `/sized`'s, which differs;
/// for the `/shadow-*` paths (the primary's answer is `/sized`'s) the
/// shadow's own framings: chunked with a trailer field and a differing
/// body, framed by close, chunked over the compare limit, after a 103.
fn mirrored_shadow(line: &str) -> Vec<u8> {
    let date = "date: Sat, 05 Dec 2026 15:00:00 GMT\r\n";
    let json = "content-type: application/json\r\nx-version: 1\r\n";
    let special = if line.starts_with("GET /shadow-trailers ") {
        Some(format!("HTTP/1.1 200 OK\r\n{date}{json}Transfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n7\r\n{{\"a\":1,\r\n8;e=1\r\n\"b\":\"y\"}}\r\n0\r\nx-sum: 11\r\nX-Sum: 12\r\n\r\n"))
    } else if line.starts_with("GET /shadow-close ") {
        Some(format!(
            "HTTP/1.1 200 OK\r\n{date}{json}\r\n{{\"a\":1,\"b\":\"x\"}}"
        ))
    } else if line.starts_with("GET /shadow-big ") {
        let chunk = "z".repeat(700);
        Some(format!("HTTP/1.1 200 OK\r\n{date}{json}Transfer-Encoding: chunked\r\n\r\n2bc\r\n{chunk}\r\n2bc\r\n{chunk}\r\n0\r\n\r\n"))
    } else if line.starts_with("GET /shadow-hints ") {
        Some(format!("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n{date}{json}Content-Length: 15\r\n\r\n{{\"a\":1,\"b\":\"x\"}}"))
    } else {
        None
    };
    if let Some(text) = special {
        return text.into_bytes();
    }
    let (kind, body) = if line.contains("chunked ") {
        ("application/json", r#"{"n":[1,2]}"#.to_owned())
    } else if line.starts_with("GET /close ") {
        ("text/plain", "until the end".to_owned())
    } else if line.starts_with("GET /big ") {
        ("text/plain", "y".repeat(3000))
    } else {
        ("application/json", r#"{"a":2,"b":"x"}"#.to_owned())
    };
    format!(
        "HTTP/1.1 200 OK\r\n{date}content-type: {kind}\r\nx-version: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a proxy's mirroring produced: outcomes, comparison results, the
/// primary's timings counted, and the samples (their time left out).
async fn mirroring_seen(proxy: &TestProxy) -> Vec<String> {
    let metrics = proxy.metrics().await;
    let mut seen: Vec<String> = [
        "compared",
        "body_too_large",
        "primary_error",
        "shadow_error",
        "shadow_timeout",
        "sampled_out",
        "dropped_queue_full",
    ]
    .iter()
    .map(|o| {
        format!(
            "outcome {o} {}",
            sum(&metrics, "parallax_mirror_total", "outcome", o)
        )
    })
    .collect();
    for result in ["match", "mismatch", "noise"] {
        let n = sum(&metrics, "parallax_comparisons_total", "result", result);
        seen.push(format!("result {result} {n}"));
    }
    for backend in ["primary", "shadow"] {
        let n = sum(
            &metrics,
            "parallax_upstream_request_duration_seconds_count",
            "backend",
            backend,
        );
        seen.push(format!("timed {backend} {n}"));
    }
    let mut samples = proxy.admin_json("/admin/mismatches").await;
    for route in samples["services"]["svc"]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        for sample in route.as_array_mut().unwrap() {
            sample.as_object_mut().unwrap().remove("at_unix_ms");
        }
    }
    seen.push(samples.to_string());
    seen
}

/// Sends each of `paths` (a GET with a mixed-case `Host`, one connection
/// each) through a proxy on `path` and returns the answers, what the
/// proxy's mirroring produced, and what the primary and the shadow got.
async fn mirrored_run(
    path: Http1Path,
    primary_down: bool,
    paths: &[&str],
) -> (Vec<String>, Vec<String>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    // Closing after each answer: an answer framed by close ends there.
    let primary = raw_upstream(mirrored_primary, true).await;
    let shadow = raw_upstream(mirrored_shadow, true).await;
    let proxy = proxy()
        .primary(if primary_down { down() } else { primary.addr })
        .shadow(shadow.addr)
        .set("max_compare_body_bytes = 1024")
        .http1(path)
        .start()
        .await;
    let mut answers = Vec::new();
    for p in paths {
        let request = format!("GET {p} HTTP/1.1\r\nHost: svc.example\r\nX-Case: Kept\r\n\r\n");
        let answer = talk(proxy.addr, &[request.as_bytes()], Duration::ZERO, QUIET).await;
        let mut answer = String::from_utf8(answer).unwrap();
        // The proxies date a 502 (and the answers) with the current second.
        if let Some(at) = answer.find("\r\ndate: ") {
            let at = at + 2;
            answer.replace_range(at + 6..at + 35, "<now>");
        }
        answers.push(answer);
    }
    proxy.settle(paths.len() as f64).await;
    (
        answers,
        mirroring_seen(&proxy).await,
        primary.requests(),
        shadow.requests(),
    )
}

/// `requests` sorted (a copy may reach the shadow after the next
/// request's, when the client's connection closed as soon as the answer
/// ended), with header names in lower case when `lower`.
fn sorted_requests(requests: &[Vec<u8>], lower: bool) -> Vec<Vec<u8>> {
    let mut requests: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| {
            if !lower {
                return r.clone();
            }
            let text = String::from_utf8(r.clone()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let mut lines = head.split("\r\n");
            let mut out = lines.next().unwrap().to_owned();
            for line in lines {
                let (name, value) = line.split_once(':').unwrap();
                out += &format!("\r\n{}:{value}", name.to_ascii_lowercase());
            }
            format!("{out}\r\n\r\n{body}").into_bytes()
        })
        .collect();
    requests.sort();
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_request_on_the_raw_path_is_compared_as_on_hypers() {
    let paths = [
        "/sized",
        "/plain-chunked",
        "/chunked",
        "/close",
        "/big",
        "/shadow-trailers",
        "/shadow-close",
        "/shadow-big",
        "/shadow-hints",
    ];
    let (raw_answers, raw, raw_primary, raw_shadow) =
        mirrored_run(Http1Path::RawMirrored, false, &paths).await;
    let (hyper_answers, hyper, hyper_primary, hyper_shadow) =
        mirrored_run(Http1Path::Hyper, false, &paths).await;
    // The raw path with the copy sent by hyper's client: as before the raw
    // shadow client.
    let (hs_answers, hs, _, hs_shadow) = mirrored_run(Http1Path::HyperShadow, false, &paths).await;
    // The raw path forwarded them (the client's header case kept), hyper
    // did not; the shadow got the same copies from both.
    let first = |requests: &[Vec<u8>]| String::from_utf8(requests[0].clone()).unwrap();
    assert!(
        first(&raw_primary).contains("\r\nHost: svc.example\r\n"),
        "{}",
        first(&raw_primary)
    );
    assert!(
        first(&hyper_primary).contains("\r\nhost: svc.example\r\n"),
        "{}",
        first(&hyper_primary)
    );
    // The raw shadow client sends the shadow the very bytes the primary
    // got; hyper's client sends the same fields, its names in lower case.
    assert_eq!(raw_shadow.len(), paths.len());
    assert_eq!(
        sorted_requests(&raw_shadow, false),
        sorted_requests(&raw_primary, false)
    );
    assert_eq!(
        sorted_requests(&raw_shadow, true),
        sorted_requests(&hyper_shadow, false)
    );
    assert_eq!(
        sorted_requests(&hs_shadow, false),
        sorted_requests(&hyper_shadow, false)
    );
    assert_eq!(hs_answers, raw_answers);
    // The client got the same answers (each path frames a chunked or
    // close-framed body its own way: the pass-through tests above).
    let statuses = |answers: &[String]| -> Vec<Vec<String>> {
        answers.iter().map(|a| status_lines(a.as_bytes())).collect()
    };
    assert_eq!(statuses(&raw_answers), statuses(&hyper_answers));
    assert!(raw_answers[2].ends_with("6;x=1\r\n{\"n\":[\r\n5\r\n1,2]}\r\n0\r\nx-sum: 11\r\n\r\n"));
    // Outcomes, results, timings and samples (the shadow's trailer fields
    // among them): the same.
    assert_eq!(raw, hyper);
    assert_eq!(hs, hyper);
    for seen in [
        "outcome compared 6",
        "outcome body_too_large 2",
        "outcome primary_error 1",
        "result mismatch 2",
        "result match 4",
        "timed shadow 9",
    ] {
        assert!(raw.contains(&seen.to_owned()), "{seen}: {raw:?}");
    }
    let samples = raw.last().unwrap();
    assert!(samples.contains(r#""target":"/sized""#), "{samples}");
    assert!(samples.contains("trailer:x-sum"), "{samples}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_on_the_mirrored_raw_path_is_hypers_502_and_primary_error() {
    let (raw_answers, raw, _, raw_shadow) =
        mirrored_run(Http1Path::RawMirrored, true, &["/sized"]).await;
    let (hyper_answers, hyper, _, hyper_shadow) =
        mirrored_run(Http1Path::Hyper, true, &["/sized"]).await;
    assert!(
        raw_answers[0].starts_with("HTTP/1.1 502 "),
        "{raw_answers:?}"
    );
    assert_eq!(raw_answers, hyper_answers);
    assert_eq!(raw, hyper);
    assert!(
        raw.contains(&"outcome primary_error 1".to_owned()),
        "{raw:?}"
    );
    // The copy still went to the shadow on both (by the raw client as the
    // client sent its header names).
    assert_eq!(
        sorted_requests(&raw_shadow, true),
        sorted_requests(&hyper_shadow, false)
    );
    assert_eq!(raw_shadow.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_slow_shadow_never_slows_the_mirrored_raw_path() {
    let primary = raw_upstream(mirrored_primary, false).await;
    let slow = upstream(|_| json(200, r#"{"a":1,"b":"x"}"#))
        .delay(Duration::from_secs(2))
        .start()
        .await;
    for (shadow, outcome) in [(down(), "shadow_error"), (slow.addr, "shadow_timeout")] {
        let proxy = proxy()
            .primary(primary.addr)
            .shadow(shadow)
            .set("shadow_timeout_ms = 1500")
            .http1(Http1Path::RawMirrored)
            .start()
            .await;
        for _ in 0..3 {
            let started = Instant::now();
            let answer = talk(
                proxy.addr,
                &[b"GET /sized HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"],
                Duration::ZERO,
                QUIET,
            )
            .await;
            assert!(status_lines(&answer) == ["HTTP/1.1 200 OK"], "{answer:?}");
            // `talk` waits for the close: the answer itself was not held.
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "the client waited {:?}",
                started.elapsed()
            );
        }
        proxy.wait_outcome(outcome, 3.0).await;
    }
    let requests = primary.requests();
    assert!(String::from_utf8_lossy(&requests[0]).contains("\r\nHost: h\r\n"));
}

/// Long enough for an answer to arrive: `talk` returns when the proxy
/// closes the connection (these requests ask it to).
const CLOSED: Duration = Duration::from_secs(5);

/// A shadow that reads each request, writes `prefix` (maybe nothing, maybe
/// a head and part of a body) and then never another byte, holding the
/// connection open: frozen.
async fn frozen(prefix: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 4096];
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                let _ = stream.write_all(prefix).await;
                // Frozen until the proxy gives up on it.
                let _ = stream.read(&mut [0u8; 1]).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_shadow_is_cut_at_its_timeout_and_frees_its_in_flight_slot_on_the_raw_path() {
    let primary = raw_upstream(mirrored_primary, false).await;
    let get = b"GET /sized HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    for prefix in [
        &b""[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"a\":",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a",
    ] {
        let proxy = proxy()
            .primary(primary.addr)
            .shadow(frozen(prefix).await)
            .set("shadow_timeout_ms = 400\nshadow_max_in_flight = 1")
            .http1(Http1Path::RawMirrored)
            .start()
            .await;
        // The first copy holds the only slot; the second finds none.
        for _ in 0..2 {
            let started = Instant::now();
            let answer = talk(proxy.addr, &[get], Duration::ZERO, CLOSED).await;
            assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"], "{prefix:?}");
            assert!(
                started.elapsed() < Duration::from_millis(300),
                "the client waited {:?} on a frozen shadow",
                started.elapsed()
            );
        }
        assert_eq!(proxy.outcome("dropped_queue_full").await, 1.0);
        // Cut at the deadline: counted, and the slot is free again.
        proxy.wait_outcome("shadow_timeout", 1.0).await;
        let answer = talk(proxy.addr, &[get], Duration::ZERO, CLOSED).await;
        assert_eq!(status_lines(&answer), ["HTTP/1.1 200 OK"]);
        proxy.wait_outcome("shadow_timeout", 2.0).await;
        assert_eq!(proxy.outcome("dropped_queue_full").await, 1.0, "{prefix:?}");
        assert_eq!(proxy.outcome("compared").await, 0.0, "{prefix:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_shadow_client_resends_only_idempotent_copies_the_shadow_swallowed() {
    let primary = raw_upstream(
        |_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        false,
    )
    .await;
    let (shadow, seen) = answers_once_then_swallows().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow)
        .http1(Http1Path::RawMirrored)
        .start()
        .await;
    let get = b"GET /idem HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let post = b"POST /write HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    // Answered; the shadow's connection goes back to its pool.
    talk(proxy.addr, &[get], Duration::ZERO, CLOSED).await;
    proxy.wait_outcome("compared", 1.0).await;
    // A GET copy on the pooled connection is swallowed, then sent again on
    // a fresh one, which answers it.
    talk(proxy.addr, &[get], Duration::ZERO, CLOSED).await;
    proxy.wait_outcome("compared", 2.0).await;
    // A POST copy swallowed on the pooled connection is not sent again:
    // the shadow may have acted on it.
    talk(proxy.addr, &[post], Duration::ZERO, CLOSED).await;
    proxy.wait_outcome("shadow_error", 1.0).await;
    let seen = seen.lock().clone();
    let count = |prefix: &str| seen.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("POST /write "), 1, "{seen:?}");
    assert_eq!(count("GET /idem "), 3, "{seen:?}");
    assert_eq!(proxy.outcome("compared").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_shadow_client_keeps_its_connection_alive() {
    let primary = raw_upstream(mirrored_primary, false).await;
    let shadow = raw_upstream(mirrored_shadow, false).await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .http1(Http1Path::RawMirrored)
        .start()
        .await;
    for n in 1..=10 {
        let request: &[u8] = if n % 2 == 0 {
            b"GET /plain-chunked HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        } else {
            b"GET /sized HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        };
        talk(proxy.addr, &[request], Duration::ZERO, CLOSED).await;
        proxy.wait_outcome("compared", f64::from(n)).await;
    }
    assert_eq!(shadow.requests().len(), 10);
    assert_eq!(shadow.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_shadow_copy_carries_the_marker_once_and_the_primary_none() {
    let primary = raw_upstream(mirrored_primary, false).await;
    let shadow = raw_upstream(mirrored_shadow, false).await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("shadow_marker_header = \"x-parallax-shadow\"")
        .http1(Http1Path::RawMirrored)
        .start()
        .await;
    let request = b"POST /x HTTP/1.1\r\nHost: h\r\nX-Parallax-Shadow: spoofed\r\nX-A: 1\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
    talk(proxy.addr, &[request], Duration::ZERO, CLOSED).await;
    proxy.wait_outcome("compared", 1.0).await;
    let text = |requests: Vec<Vec<u8>>| String::from_utf8(requests.concat()).unwrap();
    // The primary gets what the client sent (but the hop rules); the
    // shadow the same with the marker instead of any the client sent, as
    // `HeaderMap::insert` makes it on hyper's path.
    assert_eq!(
        text(primary.requests()),
        "POST /x HTTP/1.1\r\nHost: h\r\nX-Parallax-Shadow: spoofed\r\nX-A: 1\r\nContent-Length: 5\r\nx-forwarded-for: 127.0.0.1\r\n\r\nhello"
    );
    assert_eq!(
        text(shadow.requests()),
        "POST /x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nContent-Length: 5\r\nx-forwarded-for: 127.0.0.1\r\nx-parallax-shadow: 1\r\n\r\nhello"
    );
}

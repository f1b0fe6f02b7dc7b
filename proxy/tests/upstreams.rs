//! The client path against purpose-built upstreams: the client gets exactly
//! the primary's answer, streamed, whatever the shadow does, and every copy
//! ends in the right `parallax_mirror_total` outcome.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
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
        .header("TE", "trailers")
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
    assert_eq!(proxy.outcome("body_too_large").await, 2.0);
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

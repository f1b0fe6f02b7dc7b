//! The canary release: the shadow serves its share of clients, steps up
//! while it does as well as the primary, and is rolled back by the proxy —
//! for failures, latency or mismatches — without a client ever getting an
//! answer it would not have had from the primary when the shadow is down.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use support::*;

fn by(name: &'static str) -> impl Fn(&Seen) -> http::Response<Reply> + Send + Sync {
    move |_| json(200, &format!(r#"{{"by":"{name}"}}"#))
}

/// A `[services.canary]` table; `extra` lines are added to it. Unless
/// `extra` sets it, the latency slack is a second: a scheduling hiccup on a
/// busy test machine must not pass for a slow shadow.
fn canary(weights: &str, extra: &str) -> String {
    let slack = if extra.contains("p99_slack_ms") {
        ""
    } else {
        "p99_slack_ms = 1000\n"
    };
    format!("[services.canary]\nweights_percent = {weights}\nstep_secs = 60\nwindow_secs = 0.2\nmin_requests = 20\n{slack}{extra}")
}

async fn state(proxy: &TestProxy) -> Value {
    proxy.admin_json("/admin/canary").await["services"]["svc"].clone()
}

/// Sends GETs until the canary's state is `want`, failing after 10 s.
async fn drive_until(proxy: &TestProxy, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for _ in 0..10 {
            let answer = proxy.get("/x").await;
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
        let s = state(proxy).await;
        if s["state"] == want {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "canary never reached {want}: {s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_serves_its_share_and_the_rest_is_mirrored() {
    let primary = upstream(by("primary")).start().await;
    let shadow = upstream(by("shadow")).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .tables(&canary("[25]", ""))
        .start()
        .await;
    let mut from_shadow = 0;
    for _ in 0..400 {
        let answer = proxy.get("/x").await;
        assert_eq!(answer.status, 200);
        from_shadow += usize::from(answer.text().contains("shadow"));
    }
    assert!((90..=110).contains(&from_shadow), "{from_shadow} of 400");
    // The shadow saw its own share plus a mirror copy of every other one.
    proxy.settle(400.0 - from_shadow as f64).await;
    assert_eq!(primary.hits(), 400 - from_shadow);
    assert_eq!(shadow.hits(), 400);
    let metrics = proxy.metrics().await;
    parallax_conformance::metrics::promtool_check(&metrics).unwrap();
    parallax_conformance::metrics::assert_family_types(
        &metrics,
        &[
            ("parallax_canary_weight_ratio", "gauge"),
            ("parallax_canary_requests_total", "counter"),
            ("parallax_canary_fallbacks_total", "counter"),
            ("parallax_canary_rollbacks_total", "counter"),
        ],
    );
    assert!(metrics.contains("parallax_canary_weight_ratio{service=\"svc\"} 0.25"));
    let served = sum(
        &metrics,
        "parallax_canary_requests_total",
        "backend",
        "shadow",
    );
    assert_eq!(served, from_shadow as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_answering_500_is_rolled_back_and_clients_return_to_the_primary() {
    let primary = upstream(by("primary")).start().await;
    let failing = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&failing);
    let shadow = upstream(move |_| {
        if f.load(Ordering::SeqCst) {
            json(500, r#"{"code":"internal"}"#)
        } else {
            json(200, r#"{"by":"shadow"}"#)
        }
    })
    .start()
    .await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .tables(&canary("[50]", ""))
        .start()
        .await;
    for _ in 0..50 {
        assert_eq!(proxy.get("/x").await.status, 200);
    }
    assert_eq!(state(&proxy).await["state"], "stepping");

    failing.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        proxy.get("/x").await;
        let s = state(&proxy).await;
        if s["state"] == "rolled_back" {
            break s;
        }
        assert!(Instant::now() < deadline, "never rolled back: {s}");
    };
    assert_eq!(s["rollback"]["reason"], "error_rate");
    assert_eq!(s["weight_percent"], 0.0);
    let judged = &s["rollback"]["window"]["shadow"];
    assert!(judged["failures"].as_u64().unwrap() > 0, "{s}");

    for _ in 0..100 {
        let answer = proxy.get("/x").await;
        assert_eq!(answer.status, 200);
        assert!(answer.text().contains("primary"));
    }
    let metrics = proxy.metrics().await;
    assert_eq!(
        sum(
            &metrics,
            "parallax_canary_rollbacks_total",
            "reason",
            "error_rate"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shadow_is_rolled_back_for_latency() {
    let primary = upstream(by("primary")).start().await;
    let shadow = upstream(by("shadow"))
        .delay(Duration::from_millis(25))
        .start()
        .await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("mirror_percent = 0")
        .tables(&canary("[50]", "max_p99_ratio = 2\np99_slack_ms = 10"))
        .start()
        .await;
    let s = drive_until(&proxy, "rolled_back").await;
    assert_eq!(s["rollback"]["reason"], "latency", "{s}");
    let window = &s["rollback"]["window"];
    assert!(
        window["shadow"]["p99_us"].as_u64().unwrap() >= 25_000,
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatching_answers_roll_back_when_a_mismatch_budget_is_set() {
    let primary = upstream(by("primary")).start().await;
    let shadow = upstream(by("shadow")).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .tables(&canary("[10]", "max_mismatch_rate = 0.05"))
        .start()
        .await;
    let s = drive_until(&proxy, "rolled_back").await;
    assert_eq!(s["rollback"]["reason"], "mismatch", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_shadow_never_fails_a_client_and_is_rolled_back() {
    let primary = upstream(by("primary")).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(down())
        .set("mirror_percent = 0")
        .tables(&canary("[50]", ""))
        .start()
        .await;
    let s = drive_until(&proxy, "rolled_back").await;
    assert_eq!(s["rollback"]["reason"], "error_rate");
    let metrics = proxy.metrics().await;
    let fallbacks = sum(
        &metrics,
        "parallax_canary_fallbacks_total",
        "service",
        "svc",
    );
    assert!(fallbacks >= 20.0, "{fallbacks}");
    assert_eq!(
        primary.hits() as f64,
        sum(
            &metrics,
            "parallax_canary_requests_total",
            "backend",
            "primary"
        ) + 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_off_exchange_is_retried_on_the_primary_only_when_idempotent() {
    let primary = upstream(echo).start().await;
    let (shadow, _) = resetting().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow)
        .set("mirror_percent = 0")
        .tables("[services.canary]\nweights_percent = [100]")
        .start()
        .await;
    let get = proxy.get("/items/1").await;
    assert_eq!(get.status, 200, "{}", get.text());
    assert!(get.text().contains(r#""method":"GET""#));
    let put = proxy
        .send(
            Request::put("/items/1")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());

    let post = proxy
        .send(
            Request::post("/items")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        )
        .await;
    assert_eq!(post.status, 502);
    assert!(
        post.text().contains("canary_unavailable"),
        "{}",
        post.text()
    );
    assert_eq!(primary.hits(), 2, "the POST must not be sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_shadow_steps_up_to_complete() {
    let primary = upstream(by("same")).start().await;
    let shadow = upstream(by("same")).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .tables("[services.canary]\nweights_percent = [20, 100]\nstep_secs = 0.3\nwindow_secs = 0.1\nmin_requests = 5\np99_slack_ms = 1000")
        .start()
        .await;
    assert_eq!(state(&proxy).await["weight_percent"], 20.0);
    let s = drive_until(&proxy, "complete").await;
    assert_eq!(s["weight_percent"], 100.0);
    assert!(s["rollback"].is_null());
    // Everything now comes from the shadow, and nothing is mirrored.
    let before = primary.hits();
    for _ in 0..20 {
        proxy.get("/x").await;
    }
    assert_eq!(primary.hits(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_can_roll_back_and_restart_by_hand() {
    let primary = upstream(by("primary")).start().await;
    let shadow = upstream(by("shadow")).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .tables(&canary("[5, 50]", ""))
        .start()
        .await;
    let rolled = proxy.admin_post("/admin/canary/svc/rollback").await;
    assert_eq!(rolled.status, 200);
    let s = state(&proxy).await;
    assert_eq!(s["state"], "rolled_back");
    assert_eq!(s["rollback"]["reason"], "manual");
    for _ in 0..20 {
        assert!(proxy.get("/x").await.text().contains("primary"));
    }

    assert_eq!(
        proxy.admin_post("/admin/canary/svc/restart").await.status,
        200
    );
    let s = state(&proxy).await;
    assert_eq!(s["state"], "stepping");
    assert_eq!(s["weight_percent"], 5.0);

    assert_eq!(
        proxy.admin_post("/admin/canary/nope/rollback").await.status,
        404
    );
    assert_eq!(
        proxy.admin_post("/admin/canary/svc/promote").await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_too_long_to_take_over_stays_with_the_primary() {
    let primary = upstream(echo).start().await;
    let shadow = upstream(by("shadow")).start().await;
    let proxy = proxy()
        .primary(primary.addr)
        .shadow(shadow.addr)
        .set("max_mirror_body_bytes = 16")
        .tables("[services.canary]\nweights_percent = [100]")
        .start()
        .await;
    let long = proxy
        .send(
            Request::post("/items")
                .body(Full::new(Bytes::from(vec![b'x'; 100])))
                .unwrap(),
        )
        .await;
    assert_eq!(long.status, 200);
    assert!(long.text().contains(r#""length":100"#), "{}", long.text());
    assert_eq!(shadow.hits(), 0);
    assert_eq!(proxy.outcome("body_too_large").await, 1.0);
    let short = proxy.get("/x").await;
    assert!(short.text().contains("shadow"));
}

//! A shadowed ingest run: the Go reference (primary) publishes to `<t>`,
//! the Rust twin (shadow) to `<t>.shadow`, and `parallax-proxy` mirrors
//! every batch from the primary to the shadow. The differ, connected before
//! the traffic, sees every event on both topics and finds them all matched.
//!
//! Needs `PARALLAX_INGEST_GO_BIN`, `PARALLAX_INGEST_RUST_BIN` and Kafka at
//! `PARALLAX_KAFKA_BROKERS` (default `127.0.0.1:9092`); `scripts/test.sh`
//! provides them all.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parallax_conformance::events::{batch, encode, event};
use parallax_conformance::kafka;
use parallax_conformance::{service, Implementation, Request, Service, ServiceBuilder};
use parallax_kafka_diff::Start;
use parallax_proxy::{Config, Proxy};
use support::*;
use tokio::sync::oneshot;

const BATCHES: usize = 20;
const BATCH_SIZE: usize = 25;

/// Starts a twin on a blocking thread (the builder waits for its log line).
async fn spawn(builder: ServiceBuilder) -> Service {
    tokio::task::spawn_blocking(move || builder.spawn())
        .await
        .unwrap()
}

/// The proxy in-process: the Go primary answers, the Rust shadow gets a copy.
async fn proxy(
    primary: SocketAddr,
    shadow: SocketAddr,
) -> (SocketAddr, SocketAddr, oneshot::Sender<()>) {
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\n\n[[services]]\nname = \"ingest\"\n\
         listen = \"127.0.0.1:0\"\nprimary = \"http://{primary}\"\nshadow = \"http://{shadow}\"\n"
    );
    let config = Config::parse(&toml, "test.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let proxy = Proxy::bind(&config).await.expect("the proxy binds");
    let (addr, admin) = (proxy.service_addr("ingest").unwrap(), proxy.admin_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(proxy.serve(async move {
        let _ = stopped.await;
    }));
    (addr, admin, stop)
}

/// Waits until the proxy accounted for `n` mirror copies (they finish after
/// the client's answer), failing after 30 s.
async fn settle(proxy_admin: SocketAddr, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = get(proxy_admin, "/metrics").await;
        let done: f64 = parallax_conformance::metrics::samples(&metrics)
            .iter()
            .filter(|s| s.name == "parallax_mirror_total")
            .map(|s| s.value)
            .sum();
        if done >= n {
            let compared = parallax_conformance::metrics::value(
                &metrics,
                "parallax_mirror_total",
                &[("outcome", "compared")],
            );
            assert_eq!(
                compared,
                Some(n),
                "every copy reached the shadow:\n{metrics}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mirror outcomes stayed at {done} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadowed_ingest_run_publishes_identical_records_on_both_topics() {
    let topic = kafka::unique_topic("kd-ingest");
    let shadow_topic = format!("{topic}.shadow");
    let go = spawn(service(&Implementation::go()).topic(&topic)).await;
    let rust = spawn(service(&Implementation::rust()).topic(&shadow_topic)).await;
    let (proxy_addr, proxy_admin, _stop_proxy) = proxy(go.addr(), rust.addr()).await;

    let running = connect(config(&topic, &shadow_topic, Start::Now)).await;
    for b in 0..BATCHES {
        let events = (0..BATCH_SIZE).map(|i| {
            event(&format!("b{b}-e{i}"))
                .tenant(&format!("tenant-{}", (b * BATCH_SIZE + i) % 11))
                .kind(if i % 2 == 0 { "click" } else { "page_view" })
                .attribute("region", ["eu", "us", "ap"][i % 3])
                .attribute("seq", &i.to_string())
                .payload(format!("payload {b}/{i}").into_bytes())
        });
        let request = Request::protobuf(encode(&batch(events)));
        let answer = tokio::task::spawn_blocking(move || {
            parallax_conformance::http::send(proxy_addr, &request)
        })
        .await
        .unwrap();
        assert_eq!(answer.status, 200, "batch {b}: {answer:?}");
    }
    settle(proxy_admin, BATCHES as f64).await;

    let (comparison, admin) = running.until_idle(Duration::from_secs(3)).await;
    let total = (BATCHES * BATCH_SIZE) as u64;
    assert_eq!(comparison.consumed_primary, total, "{comparison}");
    assert_eq!(comparison.consumed_shadow, total, "{comparison}");
    assert_eq!(comparison.matched, total, "{comparison}");
    assert!(!comparison.has_differences(), "{comparison}");
    assert!(comparison.samples.is_empty(), "{comparison}");

    let metrics = admin.get("/metrics").await;
    parallax_conformance::metrics::promtool_check(&metrics).unwrap();
    assert_eq!(
        parallax_conformance::metrics::value(
            &metrics,
            "parallax_kafka_records_total",
            &[("result", "matched")]
        ),
        Some(total as f64),
        "{metrics}"
    );
}

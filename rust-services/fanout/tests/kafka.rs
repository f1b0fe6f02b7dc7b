//! The Kafka path against a real broker (`PARALLAX_KAFKA_BROKERS`, default
//! `127.0.0.1:9092`; `scripts/kafka.sh up` starts one): several processes
//! on one port serve one audience.

mod support;

use std::time::Duration;

use support::{close_code, next_text, Binary};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn brokers() -> String {
    std::env::var("PARALLAX_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A topic no other test run uses.
fn unique_topic() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("fanout-test-{}-{nanos}", std::process::id())
}

fn start(listen: &str, topic: &str) -> Binary {
    let brokers = brokers();
    let mut server = Binary::start(
        &[
            "--listen",
            listen,
            "--reuse-port",
            "--kafka-brokers",
            &brokers,
            "--kafka-topic",
            topic,
        ],
        &[],
    );
    server.wait_for_line("consuming Kafka notifications");
    server
}

#[tokio::test]
async fn processes_sharing_a_port_all_deliver_one_notification() {
    let topic = unique_topic();
    let first = start("127.0.0.1:0", &topic);
    let client = first.client();
    assert_eq!(
        client.get("/readyz").await,
        (200, r#"{"status":"ready"}"#.into())
    );
    // Connected while only the first process listens: surely on the first.
    let mut on_first = client.ws("news").await;
    let second = start(&first.addr.to_string(), &topic);
    // From now on the kernel spreads connections over both processes.
    let mut spread = Vec::new();
    for _ in 0..32 {
        spread.push(client.ws("news").await);
    }
    let (status, answer) = client
        .notify(r#"{"id":"k-1","topic":"news","published_at_unix_us":7,"body":{"via":"kafka"}}"#)
        .await;
    assert_eq!((status, answer.as_str()), (202, r#"{"id":"k-1"}"#));
    let frame = r#"{"id":"k-1","topic":"news","published_at_unix_us":7,"body":{"via":"kafka"}}"#;
    assert_eq!(next_text(&mut on_first).await, frame);
    for ws in &mut spread {
        assert_eq!(next_text(ws).await, frame);
    }

    // Stop the first: its clients are closed with 1001; those left are the
    // second's, and they received the notification above too.
    let stopping = tokio::task::spawn_blocking(move || first.terminate());
    assert_eq!(close_code(&mut on_first).await, Some(CloseCode::Away));
    let outcomes = futures::future::join_all(spread.into_iter().map(|mut ws| async move {
        let closed = tokio::time::timeout(Duration::from_secs(2), close_code(&mut ws)).await;
        (closed.is_ok(), ws)
    }))
    .await;
    assert_eq!(stopping.await.unwrap().code(), Some(0));
    let mut on_second: Vec<_> = outcomes
        .into_iter()
        .filter(|(closed, _)| !closed)
        .map(|(_, ws)| ws)
        .collect();
    assert!(
        !on_second.is_empty(),
        "no connection landed on the second process"
    );
    let (status, _) = client
        .notify(r#"{"id":"k-2","topic":"news","published_at_unix_us":8,"body":2}"#)
        .await;
    assert_eq!(status, 202);
    for ws in &mut on_second {
        assert_eq!(
            next_text(ws).await,
            r#"{"id":"k-2","topic":"news","published_at_unix_us":8,"body":2}"#
        );
    }
    let stopping = tokio::task::spawn_blocking(move || second.terminate());
    for ws in &mut on_second {
        assert_eq!(close_code(ws).await, Some(CloseCode::Away));
    }
    assert_eq!(stopping.await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn kafka_unreachable_means_503_for_readiness_and_notify() {
    let server = Binary::start(
        &["--listen", "127.0.0.1:0", "--kafka-brokers", "127.0.0.1:1"],
        &[],
    );
    let client = server.client();
    let body = r#"{"code":"kafka_unavailable","message":"Kafka did not acknowledge the notification; retry later"}"#;
    assert_eq!(client.get("/readyz").await, (503, body.into()));
    let started = std::time::Instant::now();
    let (status, answer) = client.notify(r#"{"topic":"t","body":1}"#).await;
    assert_eq!((status, answer.as_str()), (503, body));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert_eq!(server.terminate().code(), Some(0));
}

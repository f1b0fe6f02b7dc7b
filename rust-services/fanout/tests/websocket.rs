//! The WebSocket side over real sockets: handshake, subscription frames,
//! fan-out, client ops, close codes, liveness, slow consumers, shutdown.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use support::{close_code, next_text, send_text, server, PATIENCE};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_first_frame_lists_the_sorted_deduplicated_topics() {
    let server = server().start().await;
    let mut raw = server.raw("b,a,B,a").await;
    let (first, payload) = raw.frame().await;
    assert_eq!(first, 0x81, "a final text frame");
    assert_eq!(payload, br#"{"op":"subscribed","topics":["B","a","b"]}"#);
}

#[tokio::test]
async fn a_notification_reaches_exactly_the_subscribers_of_its_topic_as_sent() {
    let server = server().start().await;
    let mut a = server.ws("a").await;
    let mut ab = server.ws("a,b").await;
    let mut c = server.ws("c").await;
    server
        .eventually("3 connections", |s| s.hub.connections() == 3)
        .await;
    let body = r#"{ "x" : [1, 2.50, "\u00e9"] , "y":null }"#;
    let expected = server.notify_simple("n-1", "a", body).await;
    assert_eq!(next_text(&mut a).await, expected);
    assert_eq!(next_text(&mut ab).await, expected);
    let second = server.notify_simple("n-2", "b", "2").await;
    assert_eq!(next_text(&mut ab).await, second);
    // c got nothing: the next thing it sees is its own topic's notification.
    let third = server.notify_simple("n-3", "c", "3").await;
    assert_eq!(next_text(&mut c).await, third);
    assert_eq!(
        server.metric("fanout_messages_sent_total"),
        Some("4".into())
    );
    assert_eq!(server.metric("fanout_connections"), Some("3".into()));
}

#[tokio::test]
async fn id_and_topic_are_escaped_and_the_body_is_verbatim() {
    let server = server().start().await;
    let mut ws = server.ws("t").await;
    let request = "{\"id\":\"a\\\"\\u2028<\\u0001>\",\"topic\":\"t\",\"published_at_unix_us\":42,\"body\":[\"\\u00e9\" ,\t{}]}";
    let (status, answer) = server.notify(request).await;
    assert_eq!(status, 202);
    assert_eq!(answer, "{\"id\":\"a\\\"\\u2028<\\u0001>\"}");
    assert_eq!(
        next_text(&mut ws).await,
        "{\"id\":\"a\\\"\\u2028<\\u0001>\",\"topic\":\"t\",\"published_at_unix_us\":42,\"body\":[\"\\u00e9\" ,\t{}]}"
    );
}

#[tokio::test]
async fn notifications_of_a_topic_arrive_in_the_order_they_were_accepted() {
    let server = server().start().await;
    let mut ws = server.ws("t,u").await;
    let mut expected = Vec::new();
    for i in 0..50 {
        let topic = if i % 2 == 0 { "t" } else { "u" };
        expected.push(
            server
                .notify_simple(&format!("n{i}"), topic, &i.to_string())
                .await,
        );
    }
    for frame in expected {
        assert_eq!(next_text(&mut ws).await, frame);
    }
}

#[tokio::test]
async fn client_ops_change_the_set_and_each_is_answered_with_the_whole_set() {
    let server = server().start().await;
    let mut ws = server.ws("a,b").await;
    send_text(&mut ws, r#"{"op":"subscribe","topics":["c","a"]}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"op":"subscribed","topics":["a","b","c"]}"#
    );
    send_text(&mut ws, r#"{"op":"unsubscribe","topics":["a","b","zz"]}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"op":"subscribed","topics":["c"]}"#
    );
    let c = server.notify_simple("n-c", "c", "1").await;
    assert_eq!(next_text(&mut ws).await, c);
    // An empty set keeps the connection open and idle.
    send_text(&mut ws, r#"{"op":"unsubscribe","topics":["c"]}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"op":"subscribed","topics":[]}"#
    );
    server.notify_simple("n-gone", "c", "2").await;
    // An op with an empty list changes nothing and is still answered.
    send_text(&mut ws, r#"{"op":"subscribe","topics":[]}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"op":"subscribed","topics":[]}"#
    );
    send_text(&mut ws, r#"{"op":"subscribe","topics":["a"]}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"op":"subscribed","topics":["a"]}"#
    );
    let a = server.notify_simple("n-a", "a", "3").await;
    assert_eq!(next_text(&mut ws).await, a);
    assert_eq!(server.hub.subscribers("c"), 0);
}

#[tokio::test]
async fn a_topic_seen_in_the_subscription_frame_is_delivered_from_then_on() {
    let server = server().start().await;
    let mut ws = server.ws("a").await;
    send_text(&mut ws, r#"{"op":"subscribe","topics":["b"]}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"op":"subscribed","topics":["a","b"]}"#
    );
    // No waiting: once the frame is seen, the subscription is in place.
    let b = server.notify_simple("n-b", "b", "1").await;
    assert_eq!(next_text(&mut ws).await, b);
}

#[tokio::test]
async fn unsupported_messages_close_with_1003() {
    let server = server().start().await;
    let sixty_five: Vec<String> = (0..65).map(|i| format!("\"t{i}\"")).collect();
    let too_many = format!(
        r#"{{"op":"subscribe","topics":[{}]}}"#,
        sixty_five.join(",")
    );
    let sixty_four: Vec<String> = (0..64).map(|i| format!("\"t{i}\"")).collect();
    let sixty_four = format!(
        r#"{{"op":"subscribe","topics":[{}]}}"#,
        sixty_four.join(",")
    );
    let texts = [
        "not json",
        "[]",
        r#"{"op":"publish","topics":["a"]}"#,
        r#"{"op":"subscribe"}"#,
        r#"{"op":"subscribe","topics":["a b"]}"#,
        r#"{"op":"subscribe","topics":null}"#,
        r#"{"op":"subscribe","topics":["a"],"extra":1}"#,
        too_many.as_str(),
    ];
    for text in texts {
        let mut ws = server.ws("a").await;
        send_text(&mut ws, text).await;
        assert_eq!(
            close_code(&mut ws).await,
            Some(CloseCode::Unsupported),
            "{text}"
        );
    }
    // 64 in total is fine; one more is not.
    let mut ws = server.ws("t0").await;
    send_text(&mut ws, &sixty_four).await;
    let frame = next_text(&mut ws).await;
    assert_eq!(frame.matches('"').count(), 2 * 64 + 6, "{frame}");
    send_text(&mut ws, r#"{"op":"subscribe","topics":["x"]}"#).await;
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Unsupported));

    let mut ws = server.ws("a").await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Unsupported));
}

#[tokio::test]
async fn text_that_is_not_utf8_closes_with_1007() {
    let server = server().start().await;
    let mut raw = server.raw("a").await;
    raw.frame().await;
    raw.send(0x81, b"{\"op\":\"\xff\"}").await;
    assert_eq!(raw.close_code().await, Some(1007));
    raw.expect_eof().await;
}

#[tokio::test]
async fn messages_over_4096_bytes_close_with_1009() {
    let server = server().start().await;
    // One frame over the limit, refused from its header.
    let mut raw = server.raw("a").await;
    raw.frame().await;
    raw.send(0x81, &[b' '; 4097]).await;
    assert_eq!(raw.close_code().await, Some(1009));
    raw.expect_eof().await;
    // Fragments count together.
    let mut raw = server.raw("a").await;
    raw.frame().await;
    raw.send(0x01, &[b' '; 3000]).await;
    raw.send(0x80, &[b' '; 1097]).await;
    assert_eq!(raw.close_code().await, Some(1009));
    // Exactly 4096 is accepted (and here, as JSON, a valid op).
    let mut raw = server.raw("a").await;
    raw.frame().await;
    let op = r#"{"op":"subscribe","topics":["b"]}"#;
    let mut message = op.as_bytes().to_vec();
    message.resize(4096, b' ');
    raw.send(0x81, &message).await;
    let (_, payload) = raw.frame().await;
    assert_eq!(payload, br#"{"op":"subscribed","topics":["a","b"]}"#);
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let server = server().start().await;
    for (name, bytes) in [
        ("unmasked", vec![0x81, 0x02, b'{', b'}']),
        ("reserved bit", support::masked(0xC1, b"{}")),
        ("reserved opcode", support::masked(0x83, b"")),
    ] {
        let mut raw = server.raw("a").await;
        raw.frame().await;
        tokio::io::AsyncWriteExt::write_all(&mut raw.stream, &bytes)
            .await
            .unwrap();
        assert_eq!(raw.close_code().await, Some(1002), "{name}");
    }
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong_carrying_its_payload() {
    let server = server().start().await;
    let mut raw = server.raw("a").await;
    raw.frame().await;
    raw.send(0x89, b"are you there").await;
    assert_eq!(raw.frame().await, (0x8A, b"are you there".to_vec()));
}

#[tokio::test]
async fn a_close_is_answered_with_a_close_and_the_connection_is_freed() {
    let server = server().start().await;
    let mut raw = server.raw("a").await;
    raw.frame().await;
    raw.send(0x88, &1000u16.to_be_bytes()).await;
    assert_eq!(raw.close_code().await, Some(1000));
    raw.expect_eof().await;
    server
        .eventually("no connection", |s| s.hub.connections() == 0)
        .await;
    assert_eq!(server.hub.subscribers("a"), 0);
    assert_eq!(server.metric("fanout_connections"), Some("0".into()));

    let mut ws = server.ws("a").await;
    ws.close(None).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(PATIENCE, ws.next()).await.unwrap(),
        Some(Ok(Message::Close(_))) | None
    ));
}

#[tokio::test]
async fn a_client_that_vanishes_is_forgotten() {
    let server = server().start().await;
    let ws = server.ws("a,b").await;
    server
        .eventually("one connection", |s| s.hub.connections() == 1)
        .await;
    drop(ws);
    server
        .eventually("no connection", |s| s.hub.connections() == 0)
        .await;
    assert_eq!(server.hub.subscribers("a") + server.hub.subscribers("b"), 0);
}

#[tokio::test]
async fn a_slow_consumer_loses_its_oldest_frames_then_is_closed_with_1013() {
    let server = server().queue(4, 8).start().await;
    let mut fast = server.ws("t").await;
    // The slow client never reads until the end, so the socket buffers fill
    // up, then its queue, then the drops begin.
    let mut slow = server.raw("t").await;
    let body = format!("\"{}\"", "x".repeat(60_000));
    let frame = parallax_fanout::frame::notification("n", "t", 1, &body);
    let mut broadcasts = 0;
    while server.metric(r#"fanout_dropped_total{reason="slow_consumer_closed"}"#)
        != Some("1".into())
    {
        assert!(broadcasts < 10_000, "the slow consumer was never closed");
        server.hub.broadcast("t", &frame);
        broadcasts += 1;
        // The fast client keeps up.
        assert_eq!(next_text(&mut fast).await.len(), frame.len());
    }
    // At least drop-limit drops (exactly 8 unless a write squeezed in
    // between drops and restarted the run), then the close.
    let drops: u64 = server
        .metric(r#"fanout_dropped_total{reason="queue_full"}"#)
        .unwrap()
        .parse()
        .unwrap();
    assert!(drops >= 8, "{drops} drops");
    // The slow client reads what made it to its socket, then the close.
    assert_eq!(slow.close_code().await, Some(1013));
    slow.expect_eof().await;
    drop(slow);
    // The fast one is unaffected.
    server.hub.broadcast("t", &frame);
    assert_eq!(next_text(&mut fast).await.len(), frame.len());
    server
        .eventually("slow one gone", |s| s.hub.connections() == 1)
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_pinged_then_closed_with_1001_after_two_intervals() {
    let server = server()
        .ping_interval(Duration::from_secs(30))
        .start()
        .await;
    let mut raw = server.raw("a").await;
    let started = tokio::time::Instant::now();
    raw.frame().await;
    let (first, payload) = raw.frame().await;
    assert_eq!((first, payload.len()), (0x89, 0), "an empty ping");
    assert!(started.elapsed() >= Duration::from_secs(30));
    // No timeout here: under paused time it would fire before the close.
    let (first, payload) = raw.frame().await;
    assert_eq!((first, payload), (0x88, 1001u16.to_be_bytes().to_vec()));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(60) && elapsed < Duration::from_secs(61),
        "{elapsed:?}"
    );
    raw.expect_eof().await;
}

#[tokio::test(start_paused = true)]
async fn silence_is_counted_from_the_last_frame_received() {
    let server = server()
        .ping_interval(Duration::from_secs(30))
        .start()
        .await;
    let mut raw = server.raw("a").await;
    let started = tokio::time::Instant::now();
    raw.frame().await;
    // Answer the first ping (at 30 s), then fall silent.
    assert_eq!(raw.frame().await.0, 0x89);
    raw.send(0x8A, b"").await;
    assert_eq!(raw.frame().await.0, 0x89, "pinged again at 60 s");
    let (first, payload) = raw.frame().await;
    assert_eq!((first, payload), (0x88, 1001u16.to_be_bytes().to_vec()));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(90) && elapsed < Duration::from_secs(91),
        "closed two intervals after the pong at 30 s, not at {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_answers_pings_stays_connected() {
    let server = server()
        .ping_interval(Duration::from_secs(30))
        .start()
        .await;
    let mut raw = server.raw("a").await;
    raw.frame().await;
    for _ in 0..5 {
        let (first, payload) = raw.frame().await;
        assert_eq!(first, 0x89);
        raw.send(0x8A, &payload).await;
    }
    assert_eq!(server.hub.connections(), 1);
    // Any frame counts as a sign of life, not only pongs.
    let (first, _) = raw.frame().await;
    assert_eq!(first, 0x89);
    raw.send(0x81, br#"{"op":"subscribe","topics":["b"]}"#)
        .await;
    let (_, payload) = raw.frame().await;
    assert_eq!(payload, br#"{"op":"subscribed","topics":["a","b"]}"#);
    let (first, _) = raw.frame().await;
    assert_eq!(first, 0x89, "still pinged, not closed");
}

#[tokio::test]
async fn shutdown_closes_every_websocket_with_1001() {
    let server = server().start().await;
    let mut a = server.ws("a").await;
    let mut b = server.ws("b").await;
    server
        .eventually("two connections", |s| s.hub.connections() == 2)
        .await;
    let hub = server.hub.clone();
    let stopping = tokio::spawn(server.stop());
    assert_eq!(close_code(&mut a).await, Some(CloseCode::Away));
    assert_eq!(close_code(&mut b).await, Some(CloseCode::Away));
    drop((a, b));
    stopping.await.unwrap();
    assert_eq!(hub.connections(), 0);
}

#[tokio::test]
async fn before_the_upgrade_426_then_400_over_a_real_socket() {
    let server = server().start().await;
    let (status, body) = server
        .http("GET /v1/subscribe?topics=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status, 426);
    assert_eq!(
        body,
        r#"{"code":"upgrade_required","message":"this route needs a WebSocket upgrade"}"#
    );
    let (status, body) = server
        .http("GET /v1/subscribe?topics=a,,b HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"code":"invalid_topics","message":"topics must be 1-64 names of 1-64 bytes of A-Z a-z 0-9 . _ -"}"#
    );
    assert_eq!(server.hub.connections(), 0);
    let text = server.metrics.render();
    assert!(
        text.contains(r#"http_requests_total{route="/v1/subscribe",status="426"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn bytes_sent_right_after_the_handshake_are_not_lost() {
    let server = server().start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut request = b"GET /v1/subscribe?topics=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec();
    request.extend(support::masked(
        0x81,
        br#"{"op":"subscribe","topics":["b"]}"#,
    ));
    tokio::io::AsyncWriteExt::write_all(&mut stream, &request)
        .await
        .unwrap();
    let mut raw = support::Raw { stream };
    // Skip the 101 head.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tokio::io::AsyncReadExt::read_exact(&mut raw.stream, &mut byte)
            .await
            .unwrap();
        head.push(byte[0]);
    }
    assert_eq!(
        raw.frame().await.1,
        br#"{"op":"subscribed","topics":["a"]}"#
    );
    assert_eq!(
        raw.frame().await.1,
        br#"{"op":"subscribed","topics":["a","b"]}"#
    );
}

//! The notification fan-out contract (`docs/contract-fanout.md`), one
//! behaviour per test, checked against every implementation: each case below
//! runs once as `go::<case>` and once as `rust::<case>`. The `twins_*` tests
//! at the end compare the twins with each other.
//!
//! Needs `PARALLAX_FANOUT_GO_BIN`, `PARALLAX_FANOUT_RUST_BIN`, `promtool`,
//! and for the Kafka path a running Kafka (`PARALLAX_KAFKA_BROKERS`, default
//! `127.0.0.1:9092`; `scripts/kafka.sh up`). `scripts/test.sh` provides them.
//!
//! That a frame does *not* arrive is shown without waiting for silence: a
//! marker notification on a topic the client does hold is sent after it, and
//! the marker must be the next frame (a connection's queue is FIFO and the
//! `202` comes only once the notification is queued).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parallax_conformance::contract::{assert_error, assert_error_for, assert_method_not_allowed};
use parallax_conformance::fanout::corpus::{self, RICH_BODY};
use parallax_conformance::fanout::{
    accepted, assert_frame, assert_frames, close, frame, many_topics, notification,
    notification_of_size, notify, op, publish, subscribe_path, subscriber, subscription_frame,
    upgrade_request, FanoutError, Notification, FRAME_DEADLINE, MAX_ID_BYTES, MAX_MESSAGE_BYTES,
    MAX_NOTIFY_BYTES, MAX_TOPICS, MAX_TOPIC_BYTES, NOTIFY, SUBSCRIBE,
};
use parallax_conformance::grpc::{self, StreamEvent};
use parallax_conformance::http::InFlight;
use parallax_conformance::parity::{self, excerpt};
use parallax_conformance::service::assert_flags_refused;
use parallax_conformance::ws::{Client, Event};
use parallax_conformance::{
    for_each_implementation, metrics, service, Implementation, Request, Service,
};

for_each_implementation! {
    go = Implementation::go_fanout(), rust = Implementation::rust_fanout();
    // Before the upgrade
    a_subscribe_without_upgrade_is_426_upgrade_required,
    the_upgrade_is_checked_before_the_topics,
    invalid_topics_are_400_invalid_topics_before_the_upgrade,
    handshake_errors_the_websocket_library_detects_are_400,
    the_subscription_frame_lists_the_topics_sorted_without_duplicates,
    sixty_four_topics_and_64_byte_names_are_accepted,
    // Delivery
    a_notification_reaches_every_subscriber_of_its_topic_and_no_other,
    the_frame_is_exact_with_the_body_verbatim_and_the_id_escaped,
    bodies_of_every_json_kind_are_delivered_verbatim,
    a_missing_id_is_32_random_lower_case_hex_characters,
    a_missing_publication_time_is_the_time_of_receipt,
    notifications_of_one_topic_arrive_in_order,
    // Client ops
    subscribe_adds_topics_and_answers_the_whole_set,
    unsubscribe_removes_topics_and_answers_the_whole_set,
    unsubscribing_from_everything_keeps_the_connection_open,
    // Bad frames
    a_binary_frame_closes_with_1003,
    invalid_ops_close_with_1003,
    a_65th_topic_closes_with_1003,
    a_text_frame_that_is_not_utf8_closes_with_1007,
    a_message_over_4096_bytes_closes_with_1009,
    a_message_of_4096_bytes_is_accepted,
    a_ping_is_answered_with_a_pong,
    a_close_is_answered_with_a_close,
    a_fragmented_op_is_one_message,
    fragments_over_4096_bytes_in_total_close_with_1009,
    // Liveness
    a_peer_silent_for_two_ping_intervals_is_closed_with_1001_and_freed,
    a_peer_that_answers_pings_stays_connected,
    // Notify
    an_accepted_notification_answers_202_with_its_id,
    invalid_notifications_are_400_invalid_notification,
    a_body_over_16384_bytes_is_413_body_too_large_declared_or_chunked,
    a_body_of_16384_bytes_is_accepted,
    a_content_type_other_than_json_is_415,
    content_type_parameters_are_ignored,
    // Slow consumers
    a_slow_consumer_is_closed_with_1013_while_a_reading_one_gets_everything,
    // Routes, probes, metrics
    probes_answer_ok_and_ready,
    other_methods_are_405_with_allow,
    unknown_routes_are_404_not_found,
    metrics_pass_promtool_check_metrics,
    metrics_expose_the_contract_families,
    fanout_connections_tracks_open_connections,
    messages_sent_and_delivery_lag_count_written_frames,
    // Shutdown
    sigterm_closes_websockets_with_1001_and_exits_zero,
    sigint_shuts_down_like_sigterm,
    // Configuration
    invalid_flag_values_exit_non_zero_naming_the_flag,
    flags_win_over_environment_variables,
    environment_variables_apply_when_no_flag_is_given,
    // Kafka path
    processes_sharing_a_port_through_kafka_deliver_to_every_subscriber_once,
    notify_is_503_kafka_unavailable_when_kafka_does_not_acknowledge,
    readyz_is_503_while_kafka_is_unreachable,
    // The corpus, against the contract's statuses
    corpus_statuses_follow_the_contract,
    // gRPC: FanoutService/Subscribe
    grpc_subscribe_streams_the_notifications_of_its_topics_in_order,
    grpc_subscribe_refuses_bad_requests_with_the_contract_statuses,
    a_slow_grpc_subscriber_ends_with_resource_exhausted_while_a_reading_one_gets_everything,
    grpc_reflection_describes_the_service_for_grpcurl,
    sigterm_ends_grpc_streams_with_unavailable_and_exits_zero,
    a_grpc_subscriber_that_goes_away_is_freed_and_counted_canceled,
}

/// A publication time for notifications that name one.
const PUBLISHED_AT: u64 = 1_764_000_000_000_000;
/// How long a process may take to exit after SIGTERM: the grace period the
/// suite gives it, and a margin.
const GRACE_MS: u64 = 3000;
const GRACE_AND_MARGIN: Duration = Duration::from_secs(15);

// ----------------------------------------------------------------------------
// Before the upgrade

fn a_subscribe_without_upgrade_is_426_upgrade_required(implementation: &Implementation) {
    let fanout = service(implementation).spawn();

    for (what, request) in [
        ("a plain GET", Request::get(&subscribe_path("a"))),
        (
            "an upgrade to h2c",
            Request::get(&subscribe_path("a"))
                .header("Upgrade", "h2c")
                .header("Connection", "Upgrade"),
        ),
    ] {
        assert_error_for(&fanout.send(&request), FanoutError::UpgradeRequired, what);
    }
}

fn the_upgrade_is_checked_before_the_topics(implementation: &Implementation) {
    let fanout = service(implementation).spawn();

    for path in [SUBSCRIBE.to_owned(), subscribe_path("a!b")] {
        let response = fanout.send(&Request::get(&path));
        assert_error_for(
            &response,
            FanoutError::UpgradeRequired,
            format!("GET {path}"),
        );
    }
}

fn invalid_topics_are_400_invalid_topics_before_the_upgrade(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let too_long = "n".repeat(MAX_TOPIC_BYTES + 1);

    let mut paths = vec![SUBSCRIBE.to_owned(), format!("{SUBSCRIBE}?other=a")];
    paths.extend(
        [
            "",
            "a,,b",
            ",a",
            "a,",
            "a!b",
            "a/b",
            "a%20b",
            "caf%C3%A9",
            &too_long,
            &format!("a,{too_long}"),
            &many_topics(MAX_TOPICS + 1),
        ]
        .map(subscribe_path),
    );
    for path in paths {
        let response = fanout.send(&upgrade_request(&path));
        assert_error_for(
            &response,
            FanoutError::InvalidTopics,
            format!("an upgrade of {}", excerpt(path.as_bytes())),
        );
    }
}

/// Only the status is the contract's: the body is the library's own.
fn handshake_errors_the_websocket_library_detects_are_400(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let path = subscribe_path("a");
    let mut without_key = upgrade_request(&path);
    without_key
        .headers
        .retain(|(name, _)| name != "Sec-WebSocket-Key");
    let mut version_8 = upgrade_request(&path);
    for (name, value) in &mut version_8.headers {
        if name == "Sec-WebSocket-Version" {
            *value = "8".to_owned();
        }
    }

    for (what, request) in [("no key", without_key), ("version 8", version_8)] {
        let response = fanout.send(&request);
        assert_eq!(response.status, 400, "{what}: {}", response.text());
    }
}

fn the_subscription_frame_lists_the_topics_sorted_without_duplicates(
    implementation: &Implementation,
) {
    let fanout = service(implementation).spawn();

    let mut client = Client::open(fanout.addr(), &subscribe_path("b,A,a,_x,1,a.b,a-b,b,a"));

    assert_frame(
        &mut client,
        r#"{"op":"subscribed","topics":["1","A","_x","a","a-b","a.b","b"]}"#,
        "subscription frame",
    );
}

fn sixty_four_topics_and_64_byte_names_are_accepted(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let longest = "n".repeat(MAX_TOPIC_BYTES);

    subscriber(&fanout, &many_topics(MAX_TOPICS));
    subscriber(&fanout, &format!("{longest},a"));
}

// ----------------------------------------------------------------------------
// Delivery

fn a_notification_reaches_every_subscriber_of_its_topic_and_no_other(
    implementation: &Implementation,
) {
    let fanout = service(implementation).spawn();
    let mut only_a = subscriber(&fanout, "a");
    let mut a_and_b = subscriber(&fanout, "a,b");
    let mut only_b = subscriber(&fanout, "b");
    let on_a = notification("a", r#"{"k":1}"#)
        .id("n-1")
        .published_at(PUBLISHED_AT);
    let marker = marker("b");

    publish(&fanout, &on_a);
    publish(&fanout, &marker);

    assert_frame(&mut only_a, &on_a.frame(), "subscriber of a");
    assert_frame(&mut a_and_b, &on_a.frame(), "subscriber of a and b");
    assert_frame(&mut a_and_b, &marker.frame(), "subscriber of a and b");
    assert_frame(
        &mut only_b,
        &marker.frame(),
        "subscriber of b only (the notification on a must not reach it)",
    );
}

/// The body keeps its whitespace, escapes and number spelling; the id is
/// decoded from the request and re-escaped by the shared rules.
fn the_frame_is_exact_with_the_body_verbatim_and_the_id_escaped(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");
    let request = format!(
        r#"{{ "topic" : "a", "id": "n-\"q\"\\\u0041\u00e9\/\t\u0001\u2028<&>", "published_at_unix_us": 9223372036854775807, "body" :  {RICH_BODY}  }}"#
    );
    let id = "n-\"q\"\\Aé/\t\u{1}\u{2028}<&>";

    let response = fanout.send(&notify(request));

    assert_eq!(
        (response.status, response.text()),
        (202, accepted(id)),
        "answer to the notify"
    );
    assert_frame(
        &mut client,
        &frame(id, "a", 9_223_372_036_854_775_807, RICH_BODY),
        "notification frame",
    );
}

fn bodies_of_every_json_kind_are_delivered_verbatim(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");
    let bodies = [
        "null",
        "true",
        "false",
        "0",
        "-1.50e-3",
        r#""text \u00e9 é \"""#,
        "[]",
        "[ 1 ,\n 2 ]",
        "{}",
        r#"{"nested":{"deep":[{"x":null}]}}"#,
    ];

    let notifications: Vec<Notification> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            notification("a", body)
                .id(&format!("kind-{i}"))
                .published_at(PUBLISHED_AT)
        })
        .collect();
    for n in &notifications {
        publish(&fanout, n);
    }

    assert_frames(&mut client, &notifications, "bodies of every kind");
}

fn a_missing_id_is_32_random_lower_case_hex_characters(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");
    let without_id = notification("a", "1").published_at(PUBLISHED_AT);

    let ids = [publish(&fanout, &without_id), publish(&fanout, &without_id)];

    for id in &ids {
        assert!(
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "generated id {id:?}"
        );
        assert_frame(
            &mut client,
            &frame(id, "a", PUBLISHED_AT, "1"),
            "frame of a notification without id",
        );
    }
    assert_ne!(ids[0], ids[1], "two generated ids");
}

fn a_missing_publication_time_is_the_time_of_receipt(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");

    let before = now_unix_us();
    publish(&fanout, &notification("a", "2").id("t-1"));
    let after = now_unix_us();

    let text = String::from_utf8(client.text(FRAME_DEADLINE)).expect("UTF-8 frame");
    let published_at: u64 = text
        .strip_prefix(r#"{"id":"t-1","topic":"a","published_at_unix_us":"#)
        .and_then(|rest| rest.strip_suffix(r#","body":2}"#))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("frame {text:?} is not the notification with a time"));
    // One second of slack for clocks read at different granularities.
    let slack = 1_000_000;
    assert!(
        (before - slack..=after + slack).contains(&published_at),
        "published_at_unix_us {published_at} not within [{before}, {after}] (±1 s)"
    );
}

fn notifications_of_one_topic_arrive_in_order(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "o");

    let notifications: Vec<Notification> = (0..200)
        .map(|i| {
            notification("o", &i.to_string())
                .id(&format!("o-{i:03}"))
                .published_at(PUBLISHED_AT + i)
        })
        .collect();
    for n in &notifications {
        publish(&fanout, n);
    }

    assert_frames(&mut client, &notifications, "one topic");
}

// ----------------------------------------------------------------------------
// Client ops

fn subscribe_adds_topics_and_answers_the_whole_set(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "b");

    client.send_text(&op("subscribe", ["c", "a"])).unwrap();

    assert_frame(
        &mut client,
        &subscription_frame(["a", "b", "c"]),
        "answer to subscribe",
    );
    let on_c = marker("c");
    publish(&fanout, &on_c);
    assert_frame(&mut client, &on_c.frame(), "notification on a new topic");
}

fn unsubscribe_removes_topics_and_answers_the_whole_set(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a,b,c");

    client.send_text(&op("unsubscribe", ["a", "c"])).unwrap();

    assert_frame(
        &mut client,
        &subscription_frame(["b"]),
        "answer to unsubscribe",
    );
    publish(&fanout, &marker("a"));
    let on_b = marker("b");
    publish(&fanout, &on_b);
    assert_frame(
        &mut client,
        &on_b.frame(),
        "next frame (the notification on a must not arrive)",
    );
}

fn unsubscribing_from_everything_keeps_the_connection_open(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a,b");

    client.send_text(&op("unsubscribe", ["a", "b"])).unwrap();

    assert_frame(
        &mut client,
        r#"{"op":"subscribed","topics":[]}"#,
        "answer to unsubscribing from everything",
    );
    publish(&fanout, &marker("a"));
    client.ping(b"still there?").unwrap();
    assert_eq!(
        client.next(FRAME_DEADLINE),
        Event::Pong(b"still there?".to_vec()),
        "an idle connection answers pings"
    );
    client.send_text(&op("subscribe", ["c"])).unwrap();
    assert_frame(&mut client, &subscription_frame(["c"]), "resubscribing");
    let on_c = marker("c");
    publish(&fanout, &on_c);
    assert_frame(&mut client, &on_c.frame(), "after resubscribing");
}

// ----------------------------------------------------------------------------
// Bad frames

fn a_binary_frame_closes_with_1003(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");

    client
        .send_binary(op("subscribe", ["b"]).as_bytes())
        .unwrap();

    client.assert_closed_with(close::UNSUPPORTED_DATA, FRAME_DEADLINE, "a binary frame");
}

fn invalid_ops_close_with_1003(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let too_long = "n".repeat(MAX_TOPIC_BYTES + 1);

    for text in [
        "not json".to_owned(),
        "[]".to_owned(),
        r#"{"op":"subscribe","topics":["b"]"#.to_owned(),
        r#"{"topics":["b"]}"#.to_owned(),
        op("dance", ["b"]),
        op("Subscribe", ["b"]),
        r#"{"op":"subscribe"}"#.to_owned(),
        r#"{"op":"subscribe","topics":"b"}"#.to_owned(),
        r#"{"op":"subscribe","topics":[1]}"#.to_owned(),
        op("subscribe", [""]),
        op("subscribe", ["b c"]),
        op("unsubscribe", ["b!"]),
        op("subscribe", [too_long.as_str()]),
    ] {
        let mut client = subscriber(&fanout, "a");
        client.send_text(&text).unwrap();
        client.assert_closed_with(close::UNSUPPORTED_DATA, FRAME_DEADLINE, &text);
    }
}

fn a_65th_topic_closes_with_1003(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");
    let topics: Vec<String> = (0..MAX_TOPICS).map(|i| format!("t{i}")).collect();
    let (up_to_64, the_65th) = topics.split_at(MAX_TOPICS - 1);

    client
        .send_text(&op("subscribe", up_to_64.iter().map(String::as_str)))
        .unwrap();
    let mut all: Vec<&str> = up_to_64.iter().map(String::as_str).collect();
    all.push("a");
    assert_frame(&mut client, &subscription_frame(all), "64 topics in total");
    client
        .send_text(&op("subscribe", the_65th.iter().map(String::as_str)))
        .unwrap();

    client.assert_closed_with(close::UNSUPPORTED_DATA, FRAME_DEADLINE, "a 65th topic");
}

fn a_text_frame_that_is_not_utf8_closes_with_1007(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");

    client
        .send_raw_text(b"{\"op\":\"subscribe\",\"topics\":[\"b\xff\"]}")
        .unwrap();

    client.assert_closed_with(close::INVALID_PAYLOAD, FRAME_DEADLINE, "invalid UTF-8");
}

fn a_message_over_4096_bytes_closes_with_1009(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");

    client
        .send_text(&padded_subscribe_op("b", MAX_MESSAGE_BYTES + 1))
        .unwrap();

    client.assert_closed_with(close::MESSAGE_TOO_BIG, FRAME_DEADLINE, "4097 bytes");
}

fn a_message_of_4096_bytes_is_accepted(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");

    client
        .send_text(&padded_subscribe_op("b", MAX_MESSAGE_BYTES))
        .unwrap();

    assert_frame(
        &mut client,
        &subscription_frame(["a", "b"]),
        "answer to a 4096-byte subscribe",
    );
}

fn a_ping_is_answered_with_a_pong(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");

    client.ping(b"ping payload").unwrap();

    assert_eq!(
        client.next(FRAME_DEADLINE),
        Event::Pong(b"ping payload".to_vec())
    );
}

fn a_close_is_answered_with_a_close(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");

    client.close(1000).unwrap();

    let event = client.next(FRAME_DEADLINE);
    assert!(
        matches!(event, Event::Close(_)),
        "answer to a close: {event:?}"
    );
}

fn a_fragmented_op_is_one_message(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");
    let text = op("subscribe", ["b"]);
    let (first, rest) = text.as_bytes().split_at(5);
    let (middle, last) = rest.split_at(10);

    client.send_fragmented_text(&[first, middle, last]).unwrap();

    assert_frame(
        &mut client,
        &subscription_frame(["a", "b"]),
        "answer to a fragmented subscribe",
    );
}

/// Each fragment is small; the message they make is not.
fn fragments_over_4096_bytes_in_total_close_with_1009(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");
    let text = padded_subscribe_op("b", MAX_MESSAGE_BYTES + 1);
    let fragments: Vec<&[u8]> = text.as_bytes().chunks(1000).collect();

    client.send_fragmented_text(&fragments).unwrap();

    client.assert_closed_with(
        close::MESSAGE_TOO_BIG,
        FRAME_DEADLINE,
        "4097 bytes in fragments of 1000",
    );
}

// ----------------------------------------------------------------------------
// Liveness

/// The client reads frames off the socket itself, so no pong ever goes
/// back; the server pings every second and gives up after two.
fn a_peer_silent_for_two_ping_intervals_is_closed_with_1001_and_freed(
    implementation: &Implementation,
) {
    let fanout = service(implementation)
        .flag("--ping-interval-secs", 1)
        .spawn();
    let mut silent = subscriber(&fanout, "a");
    let opened = Instant::now();

    let (pings, end) = silent.silently_until_closed(FRAME_DEADLINE);

    let after = opened.elapsed();
    assert_eq!(
        end,
        Event::Close(Some(close::GOING_AWAY)),
        "a silent peer after {pings} pings and {after:?}"
    );
    assert!(
        after >= Duration::from_millis(1900),
        "closed after {after:?}, before two intervals of silence"
    );
    metric_reaches(&fanout, "fanout_connections", &[], 0.0);
}

/// Three ping intervals pass; the client answers the pings (tungstenite
/// does, as it reads) and stays subscribed.
fn a_peer_that_answers_pings_stays_connected(implementation: &Implementation) {
    let fanout = service(implementation)
        .flag("--ping-interval-secs", 1)
        .spawn();
    let mut client = subscriber(&fanout, "a");

    let event = client.next(Duration::from_secs(3));

    assert_eq!(event, Event::Silence, "three ping intervals");
    let on_a = marker("a");
    publish(&fanout, &on_a);
    assert_frame(&mut client, &on_a.frame(), "after three ping intervals");
}

// ----------------------------------------------------------------------------
// Notify

fn an_accepted_notification_answers_202_with_its_id(implementation: &Implementation) {
    let fanout = service(implementation).spawn();

    let response = fanout.send(&notification("a", "1").id("n-\"1\"/é").request());

    assert_eq!(
        (response.status, response.text()),
        (202, r#"{"id":"n-\"1\"/é"}"#.to_owned())
    );
}

fn invalid_notifications_are_400_invalid_notification(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let too_long_topic = "n".repeat(MAX_TOPIC_BYTES + 1);
    let too_long_id = "i".repeat(MAX_ID_BYTES + 1);

    for body in [
        String::new(),
        "not json".to_owned(),
        r#"{"topic":"a","body":"#.to_owned(),
        r#"{"topic":"a","body":1} x"#.to_owned(),
        "null".to_owned(),
        r#""a""#.to_owned(),
        r#"[{"topic":"a","body":1}]"#.to_owned(),
        r#"{"body":1}"#.to_owned(),
        r#"{"topic":"a"}"#.to_owned(),
        r#"{"topic":"","body":1}"#.to_owned(),
        r#"{"topic":"a b","body":1}"#.to_owned(),
        format!(r#"{{"topic":"{too_long_topic}","body":1}}"#),
        r#"{"topic":1,"body":1}"#.to_owned(),
        r#"{"topic":null,"body":1}"#.to_owned(),
        r#"{"topic":"a","body":1,"extra":true}"#.to_owned(),
        r#"{"topic":"a","body":1,"id":""}"#.to_owned(),
        format!(r#"{{"topic":"a","body":1,"id":"{too_long_id}"}}"#),
        r#"{"topic":"a","body":1,"id":5}"#.to_owned(),
        r#"{"topic":"a","body":1,"published_at_unix_us":-1}"#.to_owned(),
        r#"{"topic":"a","body":1,"published_at_unix_us":1.5}"#.to_owned(),
        r#"{"topic":"a","body":1,"published_at_unix_us":"1"}"#.to_owned(),
    ] {
        let response = fanout.send(&notify(body.clone()));
        assert_error_for(
            &response,
            FanoutError::InvalidNotification,
            format!("notify {body:?}"),
        );
    }
}

fn a_body_over_16384_bytes_is_413_body_too_large_declared_or_chunked(
    implementation: &Implementation,
) {
    let fanout = service(implementation).spawn();
    let request = notification_of_size("a", "big", MAX_NOTIFY_BYTES + 1).request();

    assert_error_for(
        &fanout.send(&request),
        FanoutError::BodyTooLarge,
        "16385 bytes",
    );
    assert_error_for(
        &fanout.send(&request.chunked()),
        FanoutError::BodyTooLarge,
        "16385 bytes, chunked",
    );
}

fn a_body_of_16384_bytes_is_accepted(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut client = subscriber(&fanout, "a");
    let largest = notification_of_size("a", "largest", MAX_NOTIFY_BYTES);

    publish(&fanout, &largest);

    assert_frame(&mut client, &largest.frame(), "the largest notification");
}

fn a_content_type_other_than_json_is_415(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let body = notification("a", "1").id("n-1").json();

    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonl"),
    ] {
        let mut request = Request::post(NOTIFY).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.content_type(content_type);
        }
        assert_error_for(
            &fanout.send(&request),
            FanoutError::UnsupportedMediaType,
            format!("Content-Type {content_type:?}"),
        );
    }
}

fn content_type_parameters_are_ignored(implementation: &Implementation) {
    let fanout = service(implementation).spawn();

    let response = fanout.send(
        &Request::post(NOTIFY)
            .content_type("application/json; charset=utf-8")
            .body(notification("a", "1").id("n-1").json()),
    );

    assert_eq!((response.status, response.text()), (202, accepted("n-1")));
}

// ----------------------------------------------------------------------------
// Slow consumers

/// The slow client reads nothing after its subscription frame, through a
/// small fixed receive buffer, while ~4 KiB notifications fill the socket
/// buffers; the reading client must still get every one of them in order.
/// The sender keeps at most [`READER_WINDOW`] notifications ahead of the
/// reading client, so only the slow one can overflow its queue.
fn a_slow_consumer_is_closed_with_1013_while_a_reading_one_gets_everything(
    implementation: &Implementation,
) {
    const READER_WINDOW: usize = 4;
    const AT_LEAST: usize = 2000;
    const AT_MOST: usize = 12_000;
    let fanout = service(implementation)
        .flag("--queue-capacity", 8)
        .flag("--drop-limit", 16)
        .spawn();
    let mut slow = Client::open_with_receive_buffer(fanout.addr(), &subscribe_path("s"), 4096);
    assert_frame(&mut slow, &subscription_frame(["s"]), "slow subscriber");
    let mut reader = subscriber(&fanout, "s");
    let body = format!(r#""{}""#, "x".repeat(4000));
    let nth = |i: usize| {
        notification("s", &body)
            .id(&format!("s-{i:05}"))
            .published_at(PUBLISHED_AT)
    };
    let last = notification("s", "\"last\"")
        .id("last")
        .published_at(PUBLISHED_AT);

    let (read, sent) = thread::scope(|scope| {
        let (ack, acks) = mpsc::channel();
        let reading = scope.spawn(move || {
            let mut frames = Vec::new();
            loop {
                let frame = reader.text(FRAME_DEADLINE);
                let done = frame.starts_with(br#"{"id":"last""#);
                frames.push(frame);
                let _ = ack.send(());
                if done {
                    return frames;
                }
            }
        });
        let mut sent = 0;
        loop {
            if sent >= READER_WINDOW {
                acks.recv_timeout(FRAME_DEADLINE)
                    .expect("the reading subscriber stopped receiving");
            }
            publish(&fanout, &nth(sent));
            sent += 1;
            if sent >= AT_LEAST && sent % 250 == 0 && slow_consumers_closed(&fanout) >= 1.0 {
                break;
            }
            assert!(
                sent < AT_MOST,
                "no slow consumer closed after {sent} notifications of 4 KiB:\n{}",
                scrape(&fanout)
            );
        }
        publish(&fanout, &last);
        (reading.join().expect("the reading subscriber"), sent)
    });

    let expected: Vec<String> = (0..sent)
        .map(|i| nth(i).frame())
        .chain([last.frame()])
        .collect();
    if let Some(i) = (0..expected.len())
        .find(|&i| read.get(i).map(Vec::as_slice) != Some(expected[i].as_bytes()))
    {
        panic!(
            "the reading subscriber got {} of {} frames; frame {i} is {:?}, expected {}",
            read.len(),
            expected.len(),
            read.get(i).map(|f| excerpt(f)),
            excerpt(expected[i].as_bytes())
        );
    }
    let (skipped, end) = slow.until_closed(Duration::from_secs(30));
    assert!(
        matches!(
            end,
            Event::Close(Some(close::TRY_AGAIN_LATER)) | Event::Ended(_)
        ),
        "the slow subscriber ended with {end:?} after {skipped} frames, expected close 1013"
    );
    let exposition = scrape(&fanout);
    let dropped = |reason| {
        metrics::value(&exposition, "fanout_dropped_total", &[("reason", reason)]).unwrap_or(0.0)
    };
    assert!(
        dropped("queue_full") > 0.0,
        "queue_full drops in:\n{exposition}"
    );
    assert!(
        dropped("slow_consumer_closed") >= 1.0,
        "slow_consumer_closed in:\n{exposition}"
    );
}

// ----------------------------------------------------------------------------
// Routes, probes, metrics

fn probes_answer_ok_and_ready(implementation: &Implementation) {
    let fanout = service(implementation).spawn();

    for (path, body) in [
        ("/healthz", r#"{"status":"ok"}"#),
        ("/readyz", r#"{"status":"ready"}"#),
    ] {
        let response = fanout.send(&Request::get(path));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, body),
            "{path}"
        );
    }
}

fn other_methods_are_405_with_allow(implementation: &Implementation) {
    let fanout = service(implementation).spawn();

    for (path, allow, methods) in [
        (SUBSCRIBE, "GET", ["POST", "PUT", "DELETE", "HEAD"]),
        (NOTIFY, "POST", ["GET", "PUT", "DELETE", "HEAD"]),
        ("/healthz", "GET", ["POST", "PUT", "DELETE", "HEAD"]),
        ("/readyz", "GET", ["POST", "PUT", "DELETE", "HEAD"]),
        ("/metrics", "GET", ["POST", "PUT", "DELETE", "HEAD"]),
    ] {
        for method in methods {
            assert_method_not_allowed(&fanout, method, path, allow, FanoutError::MethodNotAllowed);
        }
    }
}

fn unknown_routes_are_404_not_found(implementation: &Implementation) {
    let fanout = service(implementation).spawn();

    for request in [
        Request::get("/"),
        Request::get("/v1/subscribe/a"),
        Request::post("/v1/notify/"),
        Request::post("/v2/notify"),
        Request::get("/healthz/"),
        Request::get("/metrics/x"),
        Request::delete("/nope"),
    ] {
        let what = format!("{} {}", request.method, request.path);
        assert_error_for(&fanout.send(&request), FanoutError::NotFound, what);
    }
}

fn metrics_pass_promtool_check_metrics(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let _subscribers = exercise(&fanout);

    let exposition = scrape(&fanout);

    if let Err(problems) = metrics::promtool_check(&exposition) {
        panic!("{problems}\n--- exposition ---\n{exposition}");
    }
}

fn metrics_expose_the_contract_families(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let _subscribers = exercise(&fanout);

    let exposition = scrape(&fanout);

    metrics::assert_family_types(
        &exposition,
        &[
            ("fanout_connections", "gauge"),
            ("fanout_messages_sent_total", "counter"),
            ("fanout_delivery_lag_seconds", "histogram"),
            ("http_requests_total", "counter"),
            ("http_request_duration_seconds", "histogram"),
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
        ],
    );
    metrics::assert_values(
        &exposition,
        "http_requests_total",
        ["route", "status"],
        &[
            ([NOTIFY, "202"], 2.0),
            ([NOTIFY, "400"], 1.0),
            ([SUBSCRIBE, "426"], 1.0),
            (["unmatched", "404"], 1.0),
        ],
    );
}

fn fanout_connections_tracks_open_connections(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut clients: Vec<Client> = (0..3).map(|_| subscriber(&fanout, "a")).collect();
    metric_reaches(&fanout, "fanout_connections", &[], 3.0);

    drop(clients.pop());
    metric_reaches(&fanout, "fanout_connections", &[], 2.0);

    clients.push(subscriber(&fanout, "b"));
    metric_reaches(&fanout, "fanout_connections", &[], 3.0);

    clients.clear();
    metric_reaches(&fanout, "fanout_connections", &[], 0.0);
}

fn messages_sent_and_delivery_lag_count_written_frames(implementation: &Implementation) {
    let fanout = service(implementation).spawn();
    let mut clients = [subscriber(&fanout, "a"), subscriber(&fanout, "a,b")];
    let notifications: Vec<Notification> = (0..5)
        .map(|i| {
            notification("a", "1")
                .id(&format!("m-{i}"))
                .published_at(PUBLISHED_AT)
        })
        .collect();

    for n in &notifications {
        publish(&fanout, n);
    }
    for client in &mut clients {
        assert_frames(client, &notifications, "subscriber of a");
    }

    metric_reaches(&fanout, "fanout_messages_sent_total", &[], 10.0);
    let exposition = scrape(&fanout);
    let lag_count = metrics::value(&exposition, "fanout_delivery_lag_seconds_count", &[]);
    assert!(
        lag_count.is_some_and(|count| count >= 10.0),
        "fanout_delivery_lag_seconds_count {lag_count:?} for 10 frames written in:\n{exposition}"
    );
}

// ----------------------------------------------------------------------------
// Shutdown

fn sigterm_closes_websockets_with_1001_and_exits_zero(implementation: &Implementation) {
    shuts_down_gracefully_on(implementation, "TERM");
}

fn sigint_shuts_down_like_sigterm(implementation: &Implementation) {
    shuts_down_gracefully_on(implementation, "INT");
}

/// Subscribers are closed with 1001; a notify in flight (its body half
/// sent) still gets its answer.
fn shuts_down_gracefully_on(implementation: &Implementation, signal: &str) {
    let mut fanout = service(implementation).shutdown_grace_ms(GRACE_MS).spawn();
    let mut clients = [subscriber(&fanout, "a"), subscriber(&fanout, "a,b")];
    let in_flight = InFlight::begin(
        fanout.addr(),
        &notification_of_size("a", "in-flight", 4096).request(),
    );

    fanout.signal(signal);

    for client in &mut clients {
        client.assert_closed_with(close::GOING_AWAY, FRAME_DEADLINE, format!("SIG{signal}"));
    }
    let response = in_flight.finish();
    assert_eq!(
        (response.status, response.text()),
        (202, accepted("in-flight")),
        "the notify in flight at SIG{signal}"
    );
    let status = fanout.wait_for_exit(GRACE_AND_MARGIN);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status after SIG{signal}: {status:?}"
    );
}

// ----------------------------------------------------------------------------
// Configuration

fn invalid_flag_values_exit_non_zero_naming_the_flag(implementation: &Implementation) {
    assert_flags_refused(
        implementation,
        &[
            ("--queue-capacity", "lots"),
            ("--queue-capacity", "1.5"),
            ("--drop-limit", "lots"),
            ("--ping-interval-secs", "lots"),
            ("--shutdown-grace-ms", "lots"),
        ],
    );
}

fn flags_win_over_environment_variables(implementation: &Implementation) {
    let fanout = service(implementation)
        .env("FANOUT_QUEUE_CAPACITY", "lots")
        .flag("--queue-capacity", 8)
        .spawn();

    assert_eq!(fanout.send(&Request::get("/healthz")).status, 200);
}

fn environment_variables_apply_when_no_flag_is_given(implementation: &Implementation) {
    let (status, output) = service(implementation)
        .env("FANOUT_DROP_LIMIT", "lots")
        .exit_at_startup();

    assert!(
        !status.success(),
        "FANOUT_DROP_LIMIT=lots: exit status {status}"
    );
    assert!(
        output.contains("drop-limit") || output.contains("DROP_LIMIT"),
        "FANOUT_DROP_LIMIT=lots: the message names neither:\n{output}"
    );
}

// ----------------------------------------------------------------------------
// Kafka path

/// Two processes of one twin share a port (`--reuse-port`) and one Kafka
/// topic; subscribers spread over both by the kernel each receive every
/// notification once, whichever process took the notify.
fn processes_sharing_a_port_through_kafka_deliver_to_every_subscriber_once(
    implementation: &Implementation,
) {
    const SUBSCRIBERS: usize = 20;
    let first = service(implementation)
        .with_kafka()
        .switch("--reuse-port")
        .spawn();
    ready(&first, 1);
    let second = service(implementation)
        .topic(first.topic())
        .listen(first.addr())
        .switch("--reuse-port")
        .spawn();
    assert_eq!(second.addr(), first.addr(), "the second process's address");
    // Connections land on either process at random: twenty ready answers in
    // a row leave a not-ready process a chance of one in a million.
    ready(&first, 20);

    let mut subscribers: Vec<Client> = (0..SUBSCRIBERS).map(|_| subscriber(&first, "k")).collect();
    assert_both_processes_hold_subscribers(&first, SUBSCRIBERS);
    let notifications = [
        notification("k", RICH_BODY)
            .id("k-1")
            .published_at(PUBLISHED_AT),
        notification("k", "null")
            .id("k-2")
            .published_at(PUBLISHED_AT + 1),
    ];
    for n in &notifications {
        publish(&first, n);
    }

    // The second notification right after the first shows the first came
    // only once (one key, one partition, one order).
    for (i, client) in subscribers.iter_mut().enumerate() {
        assert_frames(client, &notifications, &format!("subscriber {i}"));
    }
    drop(second);
}

fn notify_is_503_kafka_unavailable_when_kafka_does_not_acknowledge(
    implementation: &Implementation,
) {
    let fanout = service(implementation).kafka("127.0.0.1:1").spawn();

    let started = Instant::now();
    let response = fanout.send(&notification("a", "1").id("n-1").request());

    assert_error(&response, FanoutError::KafkaUnavailable);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "503 after {:?}: Kafka is given 5 s",
        started.elapsed()
    );
}

fn readyz_is_503_while_kafka_is_unreachable(implementation: &Implementation) {
    let fanout = service(implementation).kafka("127.0.0.1:1").spawn();

    let response = fanout.send(&Request::get("/readyz"));

    assert_eq!(response.status, 503, "{}", response.text());
    assert!(
        response.text().contains(r#""code":"kafka_unavailable""#),
        "body {}",
        response.text()
    );
}

// ----------------------------------------------------------------------------
// The corpus and the twins

fn corpus_statuses_follow_the_contract(implementation: &Implementation) {
    let fanout = service(implementation).spawn();

    parity::assert_statuses(implementation.name, &corpus::corpus(), &fanout);
}

/// For every corpus request, in order: the same status, `Content-Type`,
/// `Retry-After`, `Allow` and body.
#[test]
fn twins_answer_the_corpus_byte_for_byte() {
    let go = service(&Implementation::go_fanout()).spawn();
    let rust = service(&Implementation::rust_fanout()).spawn();

    parity::assert_twins_agree(&corpus::corpus(), &go, &rust);
}

/// The same notifications and client ops give both twins' subscribers the
/// same frames, byte for byte.
#[test]
fn twins_send_identical_frames_for_identical_notifications() {
    let twins = [
        service(&Implementation::go_fanout()).spawn(),
        service(&Implementation::rust_fanout()).spawn(),
    ];
    let notifications = [
        notification("p1", RICH_BODY).id("p-1").published_at(0),
        notification("p2", "null")
            .id("p-\"2\"\t\u{2028}é<>&")
            .published_at(PUBLISHED_AT),
        notification("p1", "[ 1, 2.0, -3e3 ]")
            .id(&"i".repeat(MAX_ID_BYTES))
            .published_at(9_223_372_036_854_775_807),
        notification("p3", r#""\u0000\ud800x""#)
            .id("p-4")
            .published_at(1),
        notification("p2", "{}").id("p-5").published_at(2),
    ];

    let [go, rust] = twins.each_ref().map(|fanout| {
        let mut client = Client::open(fanout.addr(), &subscribe_path("p2,p1,p1"));
        let mut frames = vec![client.text(FRAME_DEADLINE)];
        for (i, n) in notifications.iter().enumerate() {
            if i == 3 {
                client.send_text(&op("subscribe", ["p3"])).unwrap();
                frames.push(client.text(FRAME_DEADLINE));
                client.send_text(&op("unsubscribe", ["p1"])).unwrap();
                frames.push(client.text(FRAME_DEADLINE));
            }
            publish(fanout, n);
            frames.push(client.text(FRAME_DEADLINE));
        }
        frames
    });

    let show = |frames: &[Vec<u8>]| {
        frames
            .iter()
            .map(|f| excerpt(f))
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    assert!(
        go == rust,
        "the twins' frames differ:\ngo:\n  {}\nrust:\n  {}",
        show(&go),
        show(&rust)
    );
}

// ----------------------------------------------------------------------------
// Helpers

/// A notification on `topic` whose frame shows that nothing sent before it
/// on other topics reached the client.
fn marker(topic: &str) -> Notification {
    notification(topic, r#""marker""#)
        .id(&format!("marker-{topic}"))
        .published_at(PUBLISHED_AT)
}

/// `{"op":"subscribe","topics":["<topic>"]}` with spaces inside, exactly
/// `bytes` long.
fn padded_subscribe_op(topic: &str, bytes: usize) -> String {
    let tail = format!(r#""topics":["{topic}"]}}"#);
    let head = r#"{"op":"subscribe","#;
    let padding = bytes - head.len() - tail.len();
    let text = format!("{head}{}{tail}", " ".repeat(padding));
    assert_eq!(text.len(), bytes);
    text
}

fn now_unix_us() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    u64::try_from(since_epoch.as_micros()).expect("microseconds fit u64")
}

fn scrape(fanout: &Service) -> String {
    let response = fanout.send(&Request::get("/metrics"));
    assert_eq!(response.status, 200, "GET /metrics");
    response.text()
}

fn slow_consumers_closed(fanout: &Service) -> f64 {
    metrics::value(
        &scrape(fanout),
        "fanout_dropped_total",
        &[("reason", "slow_consumer_closed")],
    )
    .unwrap_or(0.0)
}

/// Scrapes `/metrics` until `name{labels}` is `expected` (the service
/// updates it asynchronously), or panics after [`FRAME_DEADLINE`].
#[track_caller]
fn metric_reaches(fanout: &Service, name: &str, labels: &[(&str, &str)], expected: f64) {
    let deadline = Instant::now() + FRAME_DEADLINE;
    loop {
        let exposition = scrape(fanout);
        let value = metrics::value(&exposition, name, labels);
        if value == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} is {value:?}, not {expected}, after {FRAME_DEADLINE:?}:\n{exposition}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `/readyz` until it answers 200 `in_a_row` times in a row.
fn ready(fanout: &Service, in_a_row: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut streak = 0;
    while streak < in_a_row {
        let response = fanout.send(&Request::get("/readyz"));
        if response.status == 200 {
            streak += 1;
        } else {
            streak = 0;
            assert!(
                Instant::now() < deadline,
                "/readyz still answers {} {} after 30 s",
                response.status,
                response.text()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Both processes behind one port hold some of the `total` subscribers:
/// some scrape shows a process with more than none and fewer than all.
fn assert_both_processes_hold_subscribers(shared: &Service, total: usize) {
    let all = total as f64;
    let mut seen = Vec::new();
    for _ in 0..40 {
        let count = metrics::value(&scrape(shared), "fanout_connections", &[]);
        if count.is_some_and(|c| c > 0.0 && c < all) {
            return;
        }
        seen.push(count);
    }
    panic!("every scrape of the shared port shows {seen:?} of {total} subscribers on one process");
}

/// Two subscribers, two delivered notifications, a refused notify, a
/// refused subscribe and an unknown route. Returns the subscribers, to be
/// kept open while the caller scrapes.
fn exercise(fanout: &Service) -> Vec<Client> {
    let mut clients = vec![subscriber(fanout, "a"), subscriber(fanout, "a,b")];
    let notifications = [
        notification("a", "1").id("e-1").published_at(PUBLISHED_AT),
        notification("b", "2").id("e-2").published_at(PUBLISHED_AT),
    ];
    for n in &notifications {
        publish(fanout, n);
    }
    assert_frame(&mut clients[0], &notifications[0].frame(), "exercise");
    assert_frame(&mut clients[1], &notifications[0].frame(), "exercise");
    assert_frame(&mut clients[1], &notifications[1].frame(), "exercise");
    for (request, status) in [
        (notify("[]"), 400),
        (Request::get(&subscribe_path("a")), 426),
        (Request::get("/nope"), 404),
    ] {
        assert_eq!(fanout.send(&request).status, status, "{}", request.path);
    }
    clients
}

// ----------------------------------------------------------------------------
// gRPC: FanoutService/Subscribe (docs/contract-fanout.md, "gRPC")

/// The next message of `stream`, or a panic naming the status it ended with.
#[track_caller]
fn next_message(stream: &grpc::Stream, what: &str) -> Vec<u8> {
    match stream.next(FRAME_DEADLINE) {
        StreamEvent::Message(message) => message,
        StreamEvent::End(answer) => panic!(
            "{what}: the stream ended with {:?} {:?} instead of a message",
            answer.grpc_status,
            answer.message()
        ),
    }
}

/// The Notification message the contract fixes for `n`.
fn message_of(n: &Notification) -> Vec<u8> {
    grpc::notification_message(
        n.id.as_deref().expect("an id"),
        &n.topic,
        n.published_at_unix_us.expect("a publication time") as i64,
        &n.body,
    )
}

fn grpc_subscribe_streams_the_notifications_of_its_topics_in_order(
    implementation: &Implementation,
) {
    let fanout = service(implementation).grpc().spawn();
    // 27 notifications on a and b, then the marker: the stream then ends.
    let stream = grpc::open_stream(
        fanout.grpc_addr(),
        &grpc::subscribe_call_with_limit(&["b", "a", "b"], 28),
        None,
    );
    stream.headers(FRAME_DEADLINE);
    // A WebSocket subscriber of the same hub gets the same notifications.
    let mut ws = subscriber(&fanout, "a,b");
    let notifications: Vec<Notification> = (0..40)
        .map(|i| {
            let topic = ["a", "b", "c"][i % 3];
            notification(topic, &format!(r#"{{"n": {i}, "s": "é<>&"}}"#))
                .id(&format!("{topic}-{i:02}"))
                .published_at(PUBLISHED_AT + i as u64)
        })
        .collect();
    for n in &notifications {
        publish(&fanout, n);
    }
    let marker = notification("a", "null").id("marker").published_at(0);
    publish(&fanout, &marker);

    let expected: Vec<&Notification> = notifications
        .iter()
        .filter(|n| n.topic != "c")
        .chain([&marker])
        .collect();
    for n in &expected {
        let message = next_message(&stream, "subscriber of a,b");
        assert_eq!(
            message,
            message_of(n),
            "the message of {} (topic c must not arrive; a and b in the order sent)",
            n.json()
        );
        assert_frame(&mut ws, &n.frame(), "WebSocket subscriber of a,b");
    }
    assert_eq!(expected.len(), 28);
    match stream.next(FRAME_DEADLINE) {
        StreamEvent::End(answer) => assert_eq!(
            (answer.code(), answer.message(), answer.error_code.clone()),
            (Some(grpc::code::OK), String::new(), None),
            "the end after `limit` notifications: {answer:?}"
        ),
        StreamEvent::Message(m) => panic!("a message past the limit: {m:?}"),
    }
    // Counted as a call that ended OK, and its messages as sent frames
    // (28 over WebSocket, 28 over gRPC).
    metric_reaches(
        &fanout,
        "grpc_server_handled_total",
        &[
            ("grpc_service", "parallax.fanout.v1.FanoutService"),
            ("grpc_method", "Subscribe"),
            ("grpc_code", "OK"),
        ],
        1.0,
    );
    metric_reaches(&fanout, "fanout_messages_sent_total", &[], 56.0);
}

fn grpc_subscribe_refuses_bad_requests_with_the_contract_statuses(implementation: &Implementation) {
    let fanout = service(implementation).grpc().spawn();
    let many: Vec<String> = (0..=MAX_TOPICS).map(|i| format!("t{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let cases = [
        (
            "no topics",
            grpc::subscribe_call(&[]),
            grpc::code::INVALID_ARGUMENT,
            Some("invalid_topics"),
        ),
        (
            "an empty name",
            grpc::subscribe_call(&["a", ""]),
            grpc::code::INVALID_ARGUMENT,
            Some("invalid_topics"),
        ),
        (
            "a bad byte",
            grpc::subscribe_call(&["a!b"]),
            grpc::code::INVALID_ARGUMENT,
            Some("invalid_topics"),
        ),
        (
            "65 topics",
            grpc::subscribe_call(&many),
            grpc::code::INVALID_ARGUMENT,
            Some("invalid_topics"),
        ),
        (
            "invalid UTF-8",
            grpc::Call::raw(grpc::frame(0, &[0x0a, 0x01, 0xff])).path(grpc::SUBSCRIBE),
            grpc::code::INVALID_ARGUMENT,
            Some("malformed_request"),
        ),
        (
            "a truncated request",
            grpc::Call::raw(grpc::frame(0, &[0x0a, 0x05, b'a'])).path(grpc::SUBSCRIBE),
            grpc::code::INVALID_ARGUMENT,
            Some("malformed_request"),
        ),
        (
            "no message",
            grpc::Call::raw(Vec::new()).path(grpc::SUBSCRIBE),
            grpc::code::INTERNAL,
            None,
        ),
        (
            "a request over 16 KiB",
            grpc::Call::raw(grpc::frame(0, &vec![0; 16_385])).path(grpc::SUBSCRIBE),
            grpc::code::RESOURCE_EXHAUSTED,
            None,
        ),
        (
            "an unknown method",
            grpc::Call::raw(grpc::frame(0, b"")).path("/parallax.fanout.v1.FanoutService/Nope"),
            grpc::code::UNIMPLEMENTED,
            None,
        ),
    ];
    for (what, call, code, error_code) in cases {
        let answer = grpc::call(fanout.grpc_addr(), &call);
        assert_eq!(
            (answer.code(), answer.error_code.as_deref()),
            (Some(code), error_code),
            "{what}: {answer:?}"
        );
        assert!(
            answer.body.is_empty(),
            "{what}: a message was sent: {answer:?}"
        );
    }
}

fn a_slow_grpc_subscriber_ends_with_resource_exhausted_while_a_reading_one_gets_everything(
    implementation: &Implementation,
) {
    const AT_MOST: usize = 4000;
    let fanout = service(implementation)
        .grpc()
        .flag("--queue-capacity", 8)
        .flag("--drop-limit", 16)
        .spawn();
    // A 4 KiB HTTP/2 window that is never given back until resume: the
    // server can send one notification, then the queue fills.
    let mut slow = grpc::open_stream(
        fanout.grpc_addr(),
        &grpc::subscribe_call(&["s"]),
        Some(4096),
    );
    slow.headers(FRAME_DEADLINE);
    let reader = grpc::open_stream(fanout.grpc_addr(), &grpc::subscribe_call(&["s"]), None);
    reader.headers(FRAME_DEADLINE);
    let body = format!(r#""{}""#, "x".repeat(4000));
    let nth = |i: usize| {
        notification("s", &body)
            .id(&format!("s-{i:05}"))
            .published_at(PUBLISHED_AT)
    };
    let mut sent = 0;
    while slow_consumers_closed(&fanout) < 1.0 {
        // The reader keeps up: it takes each message before the next.
        publish(&fanout, &nth(sent));
        assert_eq!(
            next_message(&reader, "the reading subscriber"),
            message_of(&nth(sent))
        );
        sent += 1;
        assert!(
            sent < AT_MOST,
            "no slow gRPC subscriber closed after {sent} notifications of 4 KiB:\n{}",
            scrape(&fanout)
        );
    }
    slow.resume();
    let mut received = 0;
    let answer = loop {
        match slow.next(FRAME_DEADLINE) {
            StreamEvent::Message(message) => {
                assert_eq!(
                    message,
                    message_of(&nth(received)),
                    "the slow subscriber's messages are a prefix"
                );
                received += 1;
            }
            StreamEvent::End(answer) => break answer,
        }
    };
    assert_eq!(
        (answer.code(), answer.error_code.as_deref()),
        (Some(grpc::code::RESOURCE_EXHAUSTED), Some("slow_consumer")),
        "the slow subscriber's end: {answer:?}"
    );
    assert!(
        received < sent,
        "the slow subscriber got all {sent} notifications: nothing was dropped"
    );
    // The reader is still subscribed and complete.
    let last = notification("s", "\"last\"")
        .id("last")
        .published_at(PUBLISHED_AT);
    publish(&fanout, &last);
    assert_eq!(
        next_message(&reader, "the reading subscriber"),
        message_of(&last)
    );
}

fn grpc_reflection_describes_the_service_for_grpcurl(implementation: &Implementation) {
    let fanout = service(implementation).grpc().spawn();
    let addr = fanout.grpc_addr();
    let (code, list) = grpc::run_grpcurl_reflection(addr, &["list"], None);
    assert_eq!(
        (code, list.as_str()),
        (
            0,
            "grpc.reflection.v1.ServerReflection\ngrpc.reflection.v1alpha.ServerReflection\nparallax.fanout.v1.FanoutService\n"
        )
    );
    let (code, text) =
        grpc::run_grpcurl_reflection(addr, &["describe", "parallax.fanout.v1.Notification"], None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("int64 published_at_unix_us = 3;"), "{text}");
    // grpcurl builds the request from the reflected descriptors.
    let (code, text) = grpc::run_grpcurl_reflection(
        addr,
        &["parallax.fanout.v1.FanoutService/Subscribe"],
        Some(r#"{"topics":["a b"]}"#),
    );
    assert_eq!(code, 64 + 3, "grpcurl exits 64 + the status code: {text}");
    assert!(text.contains("topics must be 1-64 names"), "{text}");
}

fn sigterm_ends_grpc_streams_with_unavailable_and_exits_zero(implementation: &Implementation) {
    let mut fanout = service(implementation)
        .grpc()
        .shutdown_grace_ms(GRACE_MS)
        .spawn();
    let stream = grpc::open_stream(fanout.grpc_addr(), &grpc::subscribe_call(&["a"]), None);
    stream.headers(FRAME_DEADLINE);
    let mut ws = subscriber(&fanout, "a");

    fanout.signal("TERM");

    match stream.next(FRAME_DEADLINE) {
        StreamEvent::End(answer) => assert_eq!(
            (
                answer.code(),
                answer.message(),
                answer.error_code.as_deref()
            ),
            (
                Some(grpc::code::UNAVAILABLE),
                "the server is shutting down".to_owned(),
                Some("going_away")
            ),
            "the stream's end at SIGTERM: {answer:?}"
        ),
        StreamEvent::Message(m) => panic!("a message at SIGTERM: {m:?}"),
    }
    ws.assert_closed_with(close::GOING_AWAY, FRAME_DEADLINE, "SIGTERM");
    let status = fanout.wait_for_exit(GRACE_AND_MARGIN);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status after SIGTERM: {status:?}"
    );
}

/// Python's grpcio (gRPC's C core) subscribes to both twins: a refused
/// request, then a stream of three notifications; both twins give it the
/// same lines — statuses, trailers and every message's bytes, which are
/// the contract's encoding.
#[test]
fn grpcio_gets_the_same_subscribe_streams_from_both_twins() {
    let twins = [
        service(&Implementation::go_fanout()).grpc().spawn(),
        service(&Implementation::rust_fanout()).grpc().spawn(),
    ];
    let calls = [
        ("bad", grpc::subscribe_call(&["a b"]).body[5..].to_vec()),
        (
            "three",
            grpc::subscribe_call_with_limit(&["t"], 3).body[5..].to_vec(),
        ),
    ];
    let notifications: Vec<Notification> = (1..=3)
        .map(|i| {
            notification("t", &format!(r#"{{"i": {i}, "s": "\u00e9"}}"#))
                .id(&format!("py-{i}"))
                .published_at(PUBLISHED_AT + i)
        })
        .collect();
    let [go, rust] = twins.each_ref().map(|fanout| {
        let calls: Vec<(&str, Vec<u8>)> = calls.iter().map(|(n, m)| (*n, m.clone())).collect();
        let child = grpc::spawn_grpcio(fanout.grpc_addr(), grpc::SUBSCRIBE, &calls, true, None);
        let deadline = Instant::now() + FRAME_DEADLINE;
        while metrics::value(&scrape(fanout), "fanout_connections", &[]).unwrap_or(0.0) < 1.0 {
            assert!(Instant::now() < deadline, "grpcio never subscribed");
            thread::sleep(Duration::from_millis(10));
        }
        for n in &notifications {
            publish(fanout, n);
        }
        grpc::grpcio_lines(child)
    });
    assert_eq!(go, rust, "grpcio sees the twins differ");
    let messages: Vec<String> = notifications
        .iter()
        .map(|n| grpc::hex(&message_of(n)))
        .collect();
    assert_eq!(
        go,
        [
            "bad INVALID_ARGUMENT \"topics must be 1-64 names of 1-64 bytes of A-Z a-z 0-9 . _ -\" invalid_topics - -"
                .to_owned(),
            format!("three OK \"\" - - {}", messages.join(",")),
        ]
    );
}

fn a_grpc_subscriber_that_goes_away_is_freed_and_counted_canceled(implementation: &Implementation) {
    let fanout = service(implementation).grpc().spawn();
    let mut stream = grpc::open_stream(fanout.grpc_addr(), &grpc::subscribe_call(&["a"]), None);
    stream.headers(FRAME_DEADLINE);
    metric_reaches(&fanout, "fanout_connections", &[], 1.0);
    let n = notification("a", "1").id("before").published_at(1);
    publish(&fanout, &n);
    assert_eq!(next_message(&stream, "the subscriber"), message_of(&n));

    stream.cancel();

    metric_reaches(&fanout, "fanout_connections", &[], 0.0);
    metric_reaches(
        &fanout,
        "grpc_server_handled_total",
        &[
            ("grpc_service", "parallax.fanout.v1.FanoutService"),
            ("grpc_method", "Subscribe"),
            ("grpc_code", "Canceled"),
        ],
        1.0,
    );
    // Notifying the topic afterwards reaches nobody and fails nothing.
    publish(&fanout, &notification("a", "2").id("after").published_at(2));
}

/// The twins stream the same bytes for the same notifications, answer the
/// same statuses (wire text and trailers) to bad and broken calls, and
/// describe the service alike by reflection.
#[test]
fn twins_answer_grpc_subscribe_byte_for_byte() {
    let twins = [
        service(&Implementation::go_fanout()).grpc().spawn(),
        service(&Implementation::rust_fanout()).grpc().spawn(),
    ];
    let notifications = [
        notification("p1", RICH_BODY).id("p-1").published_at(0),
        notification("p2", "null")
            .id("p-\"2\"\t\u{2028}é<>&")
            .published_at(PUBLISHED_AT),
        notification("p1", "[ 1, 2.0, -3e3 ]")
            .id(&"i".repeat(MAX_ID_BYTES))
            .published_at(9_223_372_036_854_775_807),
        notification("p2", "{}").id("p-5").published_at(2),
    ];
    let mut calls: Vec<(&str, grpc::Call)> = vec![
        ("invalid topics", grpc::subscribe_call(&["a", "b c"])),
        ("no topics", grpc::subscribe_call(&[])),
        (
            "malformed",
            grpc::Call::raw(grpc::frame(0, &[0x0a, 0x01, 0xff])).path(grpc::SUBSCRIBE),
        ),
        (
            "over 16 KiB",
            grpc::Call::raw(grpc::frame(0, &vec![0; 16_385])).path(grpc::SUBSCRIBE),
        ),
    ];
    calls.extend(
        grpc::framing_cases()
            .into_iter()
            // 8 MiB is the ingest limit; Subscribe's is 16 KiB (tested above).
            .filter(|(name, _)| !name.contains("8_mib"))
            .map(|(name, call)| {
                let call = if call.path == grpc::PUBLISH {
                    call.path(grpc::SUBSCRIBE)
                } else {
                    call
                };
                (name, call)
            }),
    );

    let [go, rust] = twins.each_ref().map(|fanout| {
        let stream = grpc::open_stream(
            fanout.grpc_addr(),
            &grpc::subscribe_call(&["p2", "p1"]),
            None,
        );
        stream.headers(FRAME_DEADLINE);
        let mut out: Vec<String> = Vec::new();
        for n in &notifications {
            publish(fanout, n);
            out.push(format!(
                "{:?}",
                next_message(&stream, "subscriber of p1,p2")
            ));
        }
        for (name, call) in &calls {
            out.push(format!(
                "{name}: {:?}",
                grpc::call(fanout.grpc_addr(), call)
            ));
        }
        let (_, describe) = grpc::run_grpcurl_reflection(
            fanout.grpc_addr(),
            &["describe", "parallax.fanout.v1.FanoutService"],
            None,
        );
        out.push(describe);
        out
    });
    for (g, r) in go.iter().zip(&rust) {
        assert_eq!(g, r, "the twins differ");
    }
    assert_eq!(go.len(), rust.len());
}

//! The event-ingestion contract (`docs/contract-ingest.md`), one behaviour per
//! test, checked against every implementation: each case below runs once as
//! `go::<case>` and once as `rust::<case>`. The corpus tests at the end compare
//! the twins with each other.
//!
//! Needs `PARALLAX_INGEST_GO_BIN`, `PARALLAX_INGEST_RUST_BIN`, a Kafka at
//! `PARALLAX_KAFKA_BROKERS` (default `127.0.0.1:9092`) and `promtool`;
//! `scripts/test.sh` provides them.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parallax_conformance::contract::{
    assert_error, assert_error_for, assert_ok, assert_ok_for, reason, ServiceError, JSON,
    MAX_BODY_BYTES, MAX_EVENTS, MAX_EVENT_ID_BYTES, MAX_PAYLOAD_BYTES, PROTOBUF,
};
use parallax_conformance::corpus::{self, Kafka};
use parallax_conformance::events::{
    batch, bytes_long, encode, event, ingest_response, rejection, valid_events,
};
use parallax_conformance::http::InFlight;
use parallax_conformance::kafka::{self, murmur2_partition, Record, PARTITIONS};
use parallax_conformance::pb::Event;
use parallax_conformance::service::KAFKA_READ_DEADLINE;
use parallax_conformance::{
    differential, for_each_implementation, grpc, http, metrics, parity, service, wire,
    Implementation, Request, Response, Service,
};
use prost::Message;

/// Bootstrap address where nothing listens: Kafka is down.
const NO_KAFKA: &str = "127.0.0.1:1";
/// Produce timeout of the Kafka-down cases.
const SHORT_PRODUCE_TIMEOUT_MS: u64 = 2000;

for_each_implementation! {
    go = Implementation::go(), rust = Implementation::rust();
    // Publishing
    happy_path_publishes_every_accepted_event,
    events_are_in_kafka_when_the_200_arrives,
    records_are_keyed_by_tenant_with_one_event_id_header,
    record_values_are_the_deterministic_encoding_of_the_event,
    records_are_partitioned_by_murmur2_of_the_tenant,
    // Response encoding and negotiation
    json_request_gets_an_exact_json_response,
    an_empty_json_batch_answers_zero_and_an_empty_list,
    accept_protobuf_turns_a_json_request_into_a_protobuf_answer,
    accept_json_turns_a_protobuf_request_into_a_json_answer,
    accept_wildcard_falls_back_to_the_request_type,
    the_first_known_type_in_accept_wins_whatever_the_q_values,
    content_type_ignores_case_and_parameters_and_accepts_protobuf_aliases,
    json_rejections_escape_event_ids_like_go_encoding_json,
    // JSON request decoding
    json_fields_are_accepted_under_json_and_proto_names,
    json_int64_may_be_a_number_or_a_string,
    json_payload_accepts_standard_and_url_safe_base64_padded_or_not,
    json_null_fields_mean_their_defaults,
    a_json_field_given_under_both_names_is_malformed,
    an_unknown_json_field_is_malformed,
    syntactically_broken_json_is_malformed,
    an_empty_json_body_is_malformed,
    // Per-event validation
    each_invalid_event_is_rejected_with_its_reason_in_batch_order,
    only_valid_events_reach_kafka,
    the_first_failing_rule_gives_the_reason,
    a_duplicate_of_a_rejected_event_is_still_a_duplicate,
    lengths_are_counted_in_utf8_bytes,
    a_batch_where_every_event_is_rejected_still_answers_200,
    an_empty_protobuf_body_is_an_empty_batch,
    // Limits
    a_batch_of_exactly_10000_events_is_accepted,
    a_batch_of_10001_events_is_413_too_many_events,
    a_body_of_exactly_8_mib_is_accepted,
    a_declared_body_over_8_mib_is_413_even_if_well_formed,
    a_chunked_body_over_8_mib_is_413,
    the_size_limit_is_checked_before_decoding,
    malformed_protobuf_is_400,
    // Media types, routes, methods
    unsupported_content_types_are_415,
    the_content_type_is_judged_before_the_body_is_requested,
    unknown_routes_are_404,
    other_methods_on_events_are_405_allowing_post,
    other_methods_on_probes_and_metrics_are_405_allowing_get,
    // Probes
    healthz_answers_ok,
    readyz_answers_ready_when_kafka_is_reachable,
    // Metrics
    metrics_expose_the_contract_families,
    metrics_count_requests_by_route_and_status,
    metrics_count_events_by_outcome,
    metrics_pass_promtool_check_metrics,
    // Kafka unavailable
    kafka_down_answers_503_with_retry_after_within_the_produce_timeout,
    readyz_is_503_when_kafka_is_unreachable,
    healthz_stays_ok_when_kafka_is_unreachable,
    a_batch_with_nothing_to_publish_answers_200_even_when_kafka_is_down,
    // Shutdown
    an_in_flight_request_completes_after_sigterm,
    in_flight_events_are_published_before_exit,
    the_service_exits_zero_once_drained,
    no_new_connections_are_served_after_sigterm,
    sigint_shuts_down_like_sigterm,
    the_grace_period_bounds_a_stuck_request,
    // Configuration
    flags_win_over_environment_variables,
    // The corpus, against the contract's statuses
    corpus_statuses_follow_the_contract,
    // gRPC
    grpc_publish_answers_like_post_v1_events,
    grpc_publishes_the_records_http_publishes,
    grpc_framing_errors_get_grpc_statuses,
    grpc_calls_drain_on_sigterm,
    grpc_calls_are_counted,
}

// ----------------------------------------------------------------------------
// Publishing

/// Three valid events: 200, `accepted=3`, three records that decode to them.
fn happy_path_publishes_every_accepted_event(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let events = corpus::three_rich_events();

    let response = ingest.send(&protobuf(&events));

    assert_ok(&response, PROTOBUF, &encode(&ingest_response(3, [])));
    let published = by_event_id(&ingest.records(3));
    assert_eq!(published.len(), 3, "records: {published:?}");
    for sent in &events {
        let record = &published[&sent.event_id];
        assert_eq!(&Event::decode(record.value.as_slice()).unwrap(), sent);
    }
}

/// The 200 is sent only after Kafka acknowledged every accepted event.
fn events_are_in_kafka_when_the_200_arrives(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&protobuf(&valid_events("acked", 25)));

    assert_ok(&response, PROTOBUF, &encode(&ingest_response(25, [])));
    assert_eq!(ingest.records_now().len(), 25);
}

/// Key = `tenant_id`; exactly one header, `event-id` = `event_id`.
fn records_are_keyed_by_tenant_with_one_event_id_header(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let events = corpus::three_rich_events();

    assert_eq!(ingest.send(&protobuf(&events)).status, 200);

    let records = ingest.records(3);
    assert_eq!(records.len(), 3);
    for sent in &events {
        let record = records
            .iter()
            .find(|r| r.value == encode(sent))
            .unwrap_or_else(|| panic!("no record for {}", sent.event_id));
        assert_eq!(record.key.as_deref(), Some(sent.tenant_id.as_bytes()));
        assert_eq!(
            record.headers,
            vec![("event-id".to_owned(), sent.event_id.as_bytes().to_vec())]
        );
    }
}

/// The value is re-encoded canonically (field order, sorted map keys,
/// defaults omitted), however the client ordered its bytes.
fn record_values_are_the_deterministic_encoding_of_the_event(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let body = wire::batch_of([wire::scrambled_event()]);

    assert_ok(
        &ingest.send(&Request::protobuf(body)),
        PROTOBUF,
        &encode(&ingest_response(1, [])),
    );

    let records = ingest.records(1);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].value,
        encode(&wire::scrambled_event_canonical()),
        "value must be the deterministic encoding"
    );
}

/// Records land on `toPositive(murmur2(tenant_id)) % partitions`.
fn records_are_partitioned_by_murmur2_of_the_tenant(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let events: Vec<Event> = (0..24)
        .map(|i| {
            event(&format!("p-{i}"))
                .tenant(&format!("tenant-{i}"))
                .build()
        })
        .collect();

    assert_eq!(ingest.send(&protobuf(&events)).status, 200);

    let records = ingest.records(events.len());
    assert_eq!(records.len(), events.len());
    for record in &records {
        let key = record.key.as_deref().expect("keyed record");
        assert_eq!(
            record.partition,
            murmur2_partition(key, PARTITIONS),
            "partition of key {:?}",
            String::from_utf8_lossy(key)
        );
    }
}

// ----------------------------------------------------------------------------
// Response encoding and negotiation

fn json_request_gets_an_exact_json_response(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::json(
        r#"{"events":[{"eventId":"j-1","tenantId":"t","type":"x"},{"eventId":"j-2","tenantId":"t","type":""},{"eventId":"j-3","tenantId":"t","type":"x"}]}"#,
    ));

    assert_ok(
        &response,
        JSON,
        br#"{"accepted":2,"rejected":[{"index":1,"eventId":"j-2","reason":"missing_type"}]}"#,
    );
}

fn an_empty_json_batch_answers_zero_and_an_empty_list(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::json("{}"));

    assert_ok(&response, JSON, br#"{"accepted":0,"rejected":[]}"#);
}

fn accept_protobuf_turns_a_json_request_into_a_protobuf_answer(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(
        &Request::json(r#"{"events":[{"eventId":"a-1","tenantId":"t","type":""}]}"#)
            .accept(PROTOBUF),
    );

    let expected = ingest_response(0, [rejection(0, "a-1", reason::MISSING_TYPE)]);
    assert_ok(&response, PROTOBUF, &encode(&expected));
}

fn accept_json_turns_a_protobuf_request_into_a_json_answer(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&protobuf(&[event("a-1").kind("").build()]).accept(JSON));

    assert_ok(
        &response,
        JSON,
        br#"{"accepted":0,"rejected":[{"index":0,"eventId":"a-1","reason":"missing_type"}]}"#,
    );
}

fn accept_wildcard_falls_back_to_the_request_type(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let json = ingest.send(&Request::json("{}").accept("*/*"));
    let proto = ingest.send(&Request::protobuf(Vec::new()).accept("*/*"));
    let unnamed = ingest.send(&Request::json("{}").accept("text/html"));

    assert_ok(&json, JSON, br#"{"accepted":0,"rejected":[]}"#);
    assert_ok(&proto, PROTOBUF, b"");
    assert_ok(&unnamed, JSON, br#"{"accepted":0,"rejected":[]}"#);
}

fn the_first_known_type_in_accept_wins_whatever_the_q_values(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(
        &Request::protobuf(Vec::new())
            .accept("text/html, Application/JSON;q=0.1, application/x-protobuf;q=1.0"),
    );

    assert_ok(&response, JSON, br#"{"accepted":0,"rejected":[]}"#);
}

fn content_type_ignores_case_and_parameters_and_accepts_protobuf_aliases(
    implementation: &Implementation,
) {
    let ingest = service(implementation).spawn();
    let body = encode(&batch([event("ct-1").kind("")]));
    let expected = encode(&ingest_response(
        0,
        [rejection(0, "ct-1", reason::MISSING_TYPE)],
    ));

    for content_type in [
        "application/protobuf",
        "application/vnd.google.protobuf",
        "APPLICATION/X-PROTOBUF; charset=binary",
        "application/x-protobuf ; proto=parallax.ingest.v1.EventBatch",
    ] {
        let response = ingest.send(
            &Request::post("/v1/events")
                .content_type(content_type)
                .body(body.clone()),
        );
        assert_ok_for(&response, PROTOBUF, &expected, content_type);
    }
    let json = ingest.send(
        &Request::post("/v1/events")
            .content_type("Application/Json; charset=utf-8")
            .body("{}"),
    );
    assert_ok(&json, JSON, br#"{"accepted":0,"rejected":[]}"#);
}

/// Escaping as Go's `encoding/json` with `SetEscapeHTML(false)`.
fn json_rejections_escape_event_ids_like_go_encoding_json(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&protobuf(&corpus::ids_needing_escapes()).accept(JSON));

    let expected = concat!(
        r#"{"accepted":0,"rejected":["#,
        r#"{"index":0,"eventId":"quote\"d","reason":"invalid_tenant_id"},"#,
        r#"{"index":1,"eventId":"back\\slash","reason":"invalid_tenant_id"},"#,
        r#"{"index":2,"eventId":"nl\nbs\bff\fcr\rtab\t","reason":"invalid_tenant_id"},"#,
        r#"{"index":3,"eventId":"ctl\u0001\u001f\u0000","reason":"invalid_tenant_id"},"#,
        r#"{"index":4,"eventId":"ls\u2028ps\u2029","reason":"invalid_tenant_id"},"#,
        r#"{"index":5,"eventId":"html<>&","reason":"invalid_tenant_id"},"#,
        "{\"index\":6,\"eventId\":\"emoji\u{1F600}\",\"reason\":\"invalid_tenant_id\"},",
        "{\"index\":7,\"eventId\":\"del\u{7f} \u{e9}\",\"reason\":\"invalid_tenant_id\"},",
        r#"{"index":8,"eventId":"slash/","reason":"invalid_tenant_id"}"#,
        "]}"
    );
    assert_ok(&response, JSON, expected.as_bytes());
}

// ----------------------------------------------------------------------------
// JSON request decoding

fn json_fields_are_accepted_under_json_and_proto_names(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::json(
        r#"{"events":[
            {"eventId":"camel","tenantId":"t-1","type":"click","occurredAtUnixMs":7,"attributes":{"b":"2","a":"1"},"payload":"aGk="},
            {"event_id":"snake","tenant_id":"t-2","type":"click","occurred_at_unix_ms":8,"attributes":{"k":"v"},"payload":"aGk="}
        ]}"#,
    ));

    assert_ok(&response, JSON, br#"{"accepted":2,"rejected":[]}"#);
    let published = decoded_by_event_id(&ingest.records(2));
    let expected = |id: &str, tenant: &str, at: i64| {
        event(id)
            .tenant(tenant)
            .kind("click")
            .occurred_at_unix_ms(at)
            .payload(&b"hi"[..])
    };
    assert_eq!(
        published["camel"],
        expected("camel", "t-1", 7)
            .attribute("a", "1")
            .attribute("b", "2")
            .build()
    );
    assert_eq!(
        published["snake"],
        expected("snake", "t-2", 8).attribute("k", "v").build()
    );
}

fn json_int64_may_be_a_number_or_a_string(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::json(
        r#"{"events":[
            {"eventId":"n","tenantId":"t","type":"x","occurredAtUnixMs":-9223372036854775808},
            {"eventId":"s","tenantId":"t","type":"x","occurredAtUnixMs":"9223372036854775807"}
        ]}"#,
    ));

    assert_ok(&response, JSON, br#"{"accepted":2,"rejected":[]}"#);
    let published = decoded_by_event_id(&ingest.records(2));
    assert_eq!(published["n"].occurred_at_unix_ms, i64::MIN);
    assert_eq!(published["s"].occurred_at_unix_ms, i64::MAX);
}

fn json_payload_accepts_standard_and_url_safe_base64_padded_or_not(
    implementation: &Implementation,
) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::json(
        r#"{"events":[
            {"eventId":"std-padded","tenantId":"t","type":"x","payload":"+/8="},
            {"eventId":"std-unpadded","tenantId":"t","type":"x","payload":"+/8"},
            {"eventId":"url-padded","tenantId":"t","type":"x","payload":"-_8="},
            {"eventId":"url-unpadded","tenantId":"t","type":"x","payload":"-_8"}
        ]}"#,
    ));

    assert_ok(&response, JSON, br#"{"accepted":4,"rejected":[]}"#);
    let published = decoded_by_event_id(&ingest.records(4));
    assert_eq!(published.len(), 4);
    for (id, event) in &published {
        assert_eq!(event.payload.as_ref(), [0xfb, 0xff], "payload of {id}");
    }
}

fn json_null_fields_mean_their_defaults(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::json(
        r#"{"events":[
            {"eventId":null,"tenantId":"t","type":"x"},
            {"eventId":"n-1","tenantId":null,"type":"x"},
            {"eventId":"n-2","tenantId":"t","type":null},
            {"eventId":"n-3","tenantId":"t","type":"x","occurredAtUnixMs":null,"attributes":null,"payload":null}
        ]}"#,
    ));

    assert_ok(
        &response,
        JSON,
        concat!(
            r#"{"accepted":1,"rejected":["#,
            r#"{"index":0,"eventId":"","reason":"invalid_event_id"},"#,
            r#"{"index":1,"eventId":"n-1","reason":"invalid_tenant_id"},"#,
            r#"{"index":2,"eventId":"n-2","reason":"missing_type"}]}"#
        )
        .as_bytes(),
    );
    let records = ingest.records(1);
    assert_eq!(records.len(), 1);
    let expected = event("n-3")
        .tenant("t")
        .kind("x")
        .occurred_at_unix_ms(0)
        .build();
    assert_eq!(records[0].value, encode(&expected));
}

fn a_json_field_given_under_both_names_is_malformed(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    for body in [
        r#"{"events":[{"eventId":"a","event_id":"b","tenantId":"t","type":"x"}]}"#,
        r#"{"events":[{"eventId":"a","tenantId":"t","tenant_id":"t","type":"x"}]}"#,
        r#"{"events":[{"eventId":"a","tenantId":"t","type":"x","type":"y"}]}"#,
    ] {
        assert_error_for(
            &ingest.send(&Request::json(body)),
            ServiceError::MalformedBody,
            body,
        );
    }
}

fn an_unknown_json_field_is_malformed(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    for body in [
        r#"{"events":[{"eventId":"a","tenantId":"t","type":"x","colour":"red"}]}"#,
        r#"{"events":[],"batchId":"b-1"}"#,
    ] {
        assert_error_for(
            &ingest.send(&Request::json(body)),
            ServiceError::MalformedBody,
            body,
        );
    }
}

fn syntactically_broken_json_is_malformed(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    for body in [
        r#"{"events":["#,
        r#"{"events":[]} trailing"#,
        r#"{events:[]}"#,
        r#"[]"#,
        r#"{"events":[{"eventId":5,"tenantId":"t","type":"x"}]}"#,
    ] {
        let response = ingest.send(&Request::json(body));
        assert_error_for(&response, ServiceError::MalformedBody, body);
    }
}

fn an_empty_json_body_is_malformed(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::json(""));

    assert_error(&response, ServiceError::MalformedBody);
}

// ----------------------------------------------------------------------------
// Per-event validation

fn each_invalid_event_is_rejected_with_its_reason_in_batch_order(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&protobuf(&corpus::every_rejection_reason()));

    let too_long_id = bytes_long(MAX_EVENT_ID_BYTES + 1);
    let expected = ingest_response(
        4,
        [
            rejection(0, "", reason::INVALID_EVENT_ID),
            rejection(1, &too_long_id, reason::INVALID_EVENT_ID),
            rejection(4, "dup", reason::DUPLICATE_EVENT_ID),
            rejection(5, "no-tenant", reason::INVALID_TENANT_ID),
            rejection(6, "long-tenant", reason::INVALID_TENANT_ID),
            rejection(8, "no-type", reason::MISSING_TYPE),
            rejection(9, "big-payload", reason::PAYLOAD_TOO_LARGE),
            rejection(11, "", reason::INVALID_EVENT_ID),
        ],
    );
    assert_ok(&response, PROTOBUF, &encode(&expected));
}

/// Rejected events are not published; the boundary values (128-byte id,
/// 64-byte tenant, 65,536-byte payload) and the first of two duplicates are.
fn only_valid_events_reach_kafka(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let sent = corpus::every_rejection_reason();

    assert_eq!(ingest.send(&protobuf(&sent)).status, 200);

    let published = decoded_by_event_id(&ingest.records(4));
    let valid = [2, 3, 7, 10];
    assert_eq!(published.keys().cloned().collect::<Vec<_>>(), {
        let mut ids: Vec<String> = valid.iter().map(|&i| sent[i].event_id.clone()).collect();
        ids.sort();
        ids
    });
    for i in valid {
        assert_eq!(published[&sent[i].event_id], sent[i], "event {i}");
    }
}

fn the_first_failing_rule_gives_the_reason(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let too_big = vec![0u8; MAX_PAYLOAD_BYTES + 1];

    let response = ingest.send(&protobuf(&[
        event("")
            .tenant("")
            .kind("")
            .payload(too_big.clone())
            .build(),
        event("x").build(),
        event("x")
            .tenant("")
            .kind("")
            .payload(too_big.clone())
            .build(),
        event("y")
            .tenant("")
            .kind("")
            .payload(too_big.clone())
            .build(),
        event("z").kind("").payload(too_big).build(),
    ]));

    let expected = ingest_response(
        1,
        [
            rejection(0, "", reason::INVALID_EVENT_ID),
            rejection(2, "x", reason::DUPLICATE_EVENT_ID),
            rejection(3, "y", reason::INVALID_TENANT_ID),
            rejection(4, "z", reason::MISSING_TYPE),
        ],
    );
    assert_ok(&response, PROTOBUF, &encode(&expected));
}

fn a_duplicate_of_a_rejected_event_is_still_a_duplicate(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&protobuf(&[
        event("a").tenant("").build(),
        event("a").build(),
    ]));

    let expected = ingest_response(
        0,
        [
            rejection(0, "a", reason::INVALID_TENANT_ID),
            rejection(1, "a", reason::DUPLICATE_EVENT_ID),
        ],
    );
    assert_ok(&response, PROTOBUF, &encode(&expected));
}

fn lengths_are_counted_in_utf8_bytes(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    // U+1F600 is 4 bytes, U+00E9 is 2.
    let id_128_bytes = "\u{1F600}".repeat(32);
    let id_132_bytes = "\u{1F600}".repeat(33);
    let tenant_64_bytes = "\u{e9}".repeat(32);
    let tenant_66_bytes = "\u{e9}".repeat(33);

    let response = ingest.send(&protobuf(&[
        event(&id_128_bytes).build(),
        event(&id_132_bytes).build(),
        event("t-64").tenant(&tenant_64_bytes).build(),
        event("t-66").tenant(&tenant_66_bytes).build(),
    ]));

    let expected = ingest_response(
        2,
        [
            rejection(1, &id_132_bytes, reason::INVALID_EVENT_ID),
            rejection(3, "t-66", reason::INVALID_TENANT_ID),
        ],
    );
    assert_ok(&response, PROTOBUF, &encode(&expected));
}

fn a_batch_where_every_event_is_rejected_still_answers_200(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&protobuf(&[
        event("a").kind("").build(),
        event("b").tenant("").build(),
    ]));

    let expected = ingest_response(
        0,
        [
            rejection(0, "a", reason::MISSING_TYPE),
            rejection(1, "b", reason::INVALID_TENANT_ID),
        ],
    );
    assert_ok(&response, PROTOBUF, &encode(&expected));
    assert!(ingest.records_now().is_empty());
}

/// An empty protobuf body decodes to an empty batch; the empty response
/// encodes to an empty body.
fn an_empty_protobuf_body_is_an_empty_batch(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::protobuf(Vec::new()));

    assert_ok(&response, PROTOBUF, b"");
}

// ----------------------------------------------------------------------------
// Limits

fn a_batch_of_exactly_10000_events_is_accepted(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&protobuf(&valid_events("max", MAX_EVENTS)));

    assert_ok(&response, PROTOBUF, &encode(&ingest_response(10_000, [])));
}

fn a_batch_of_10001_events_is_413_too_many_events(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&protobuf(&valid_events("over", MAX_EVENTS + 1)));

    assert_error(&response, ServiceError::TooManyEvents);
    assert!(ingest.records_now().is_empty(), "nothing is published");
}

fn a_body_of_exactly_8_mib_is_accepted(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let (body, events) = batch_of_exactly(MAX_BODY_BYTES);

    let response = ingest.send(&Request::protobuf(body));

    assert_ok(&response, PROTOBUF, &encode(&ingest_response(events, [])));
}

fn a_declared_body_over_8_mib_is_413_even_if_well_formed(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let (body, _) = batch_of_exactly(MAX_BODY_BYTES + 1);

    let response = ingest.send(&Request::protobuf(body));

    assert_error(&response, ServiceError::BodyTooLarge);
}

/// Without a `Content-Length` the limit applies to the bytes counted.
fn a_chunked_body_over_8_mib_is_413(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let (body, _) = batch_of_exactly(MAX_BODY_BYTES + 1);

    let response = ingest.send(&Request::protobuf(body).chunked());

    assert_error(&response, ServiceError::BodyTooLarge);
}

fn the_size_limit_is_checked_before_decoding(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::protobuf(vec![0xff; MAX_BODY_BYTES + 1]));

    assert_error(&response, ServiceError::BodyTooLarge);
}

fn malformed_protobuf_is_400(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let mut truncated = encode(&batch(valid_events("cut", 2)));
    truncated.truncate(truncated.len() - 3);

    for (what, body) in [
        ("garbage", vec![0xff; 16]),
        ("truncated", truncated),
        (
            "invalid UTF-8 in a string",
            vec![0x0a, 0x03, 0x0a, 0x01, 0xff],
        ),
    ] {
        let response = ingest.send(&Request::protobuf(body));
        assert_error_for(&response, ServiceError::MalformedBody, what);
    }
}

// ----------------------------------------------------------------------------
// Media types, routes, methods

fn unsupported_content_types_are_415(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let body = encode(&batch(valid_events("m", 1)));

    let requests = [
        Request::post("/v1/events")
            .content_type("text/plain")
            .body(body.clone()),
        Request::post("/v1/events").body(body.clone()),
        Request::post("/v1/events")
            .content_type("application/x-protobufx")
            .body(body),
    ];

    for request in &requests {
        let content_type = request.header_value("Content-Type").unwrap_or("(none)");
        let response = ingest.send(request);
        assert_error_for(&response, ServiceError::UnsupportedMediaType, content_type);
    }
    assert!(ingest.records_now().is_empty(), "nothing is published");
}

/// 415 comes before the body is read: a client that asks whether to send
/// its body (`Expect: 100-continue`) gets the 415 instead of `100 Continue`.
fn the_content_type_is_judged_before_the_body_is_requested(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let mut connection = TcpStream::connect(ingest.addr()).unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    write!(
        connection,
        "POST /v1/events HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\n\
         Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n",
        ingest.addr()
    )
    .unwrap();

    let mut reader = BufReader::new(&connection);
    let (status, headers) = http::read_head(&mut reader).expect("an answer without the body");
    assert_ne!(
        status, 100,
        "the service asked for the body of a text/plain request"
    );
    let response = http::read_body(&mut reader, status, headers, false).unwrap();
    assert_error(&response, ServiceError::UnsupportedMediaType);
}

fn unknown_routes_are_404(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    for request in [
        Request::get("/"),
        Request::get("/v1/event"),
        Request::protobuf(Vec::new()).at("/v1/events/extra"),
        Request::get("/healthz/"),
        Request::new("DELETE", "/nope"),
    ] {
        let response = ingest.send(&request);
        let what = format!("{} {}", request.method, request.path);
        assert_error_for(&response, ServiceError::NotFound, &what);
    }
}

fn other_methods_on_events_are_405_allowing_post(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let response = ingest.send(&Request::new(method, "/v1/events"));
        assert_error_for(&response, ServiceError::MethodNotAllowed, method);
        assert_eq!(response.header("Allow"), Some("POST"), "{method}");
    }
}

/// `HEAD` is a method other than GET, so it too is refused (without a body,
/// as HTTP requires for HEAD).
fn other_methods_on_probes_and_metrics_are_405_allowing_get(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = ingest.send(&Request::post(path));
        assert_error_for(&response, ServiceError::MethodNotAllowed, path);
        assert_eq!(response.header("Allow"), Some("GET"), "POST {path}");

        let head = ingest.send(&Request::new("HEAD", path));
        assert_eq!(head.status, 405, "HEAD {path}");
        assert_eq!(head.header("Allow"), Some("GET"), "HEAD {path}");
        assert_eq!(head.content_type(), Some(JSON), "HEAD {path}");
    }
}

// ----------------------------------------------------------------------------
// Probes

fn healthz_answers_ok(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::get("/healthz"));

    assert_eq!(
        (response.status, response.text().as_str()),
        (200, r#"{"status":"ok"}"#)
    );
}

fn readyz_answers_ready_when_kafka_is_reachable(implementation: &Implementation) {
    let ingest = service(implementation).spawn();

    let response = ingest.send(&Request::get("/readyz"));

    assert_eq!(
        (response.status, response.text().as_str()),
        (200, r#"{"status":"ready"}"#)
    );
}

// ----------------------------------------------------------------------------
// Metrics

fn metrics_expose_the_contract_families(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    exercise(&ingest);

    let exposition = scrape(&ingest);

    metrics::assert_family_types(
        &exposition,
        &[
            ("http_requests_total", "counter"),
            ("http_request_duration_seconds", "histogram"),
            ("ingest_events_total", "counter"),
            ("ingest_kafka_produce_errors_total", "counter"),
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
        ],
    );
}

fn metrics_count_requests_by_route_and_status(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    exercise(&ingest);

    let exposition = scrape(&ingest);

    metrics::assert_values(
        &exposition,
        "http_requests_total",
        ["route", "status"],
        &[
            (["/v1/events", "200"], 1.0),
            (["/healthz", "200"], 1.0),
            (["unmatched", "404"], 1.0),
        ],
    );
    let observed = metrics::value(
        &exposition,
        "http_request_duration_seconds_count",
        &[("route", "/v1/events")],
    );
    assert_eq!(observed, Some(1.0), "duration observations of /v1/events");
}

fn metrics_count_events_by_outcome(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    exercise(&ingest);

    let exposition = scrape(&ingest);

    let outcome = |o| metrics::value(&exposition, "ingest_events_total", &[("outcome", o)]);
    assert_eq!(outcome("accepted"), Some(2.0), "accepted in:\n{exposition}");
    assert_eq!(outcome("rejected"), Some(1.0), "rejected in:\n{exposition}");
    assert_eq!(
        metrics::value(&exposition, "ingest_kafka_produce_errors_total", &[]),
        Some(0.0)
    );
}

fn metrics_pass_promtool_check_metrics(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    exercise(&ingest);

    let exposition = scrape(&ingest);

    if let Err(problems) = metrics::promtool_check(&exposition) {
        panic!("{problems}\n--- exposition ---\n{exposition}");
    }
}

// ----------------------------------------------------------------------------
// Kafka unavailable

fn kafka_down_answers_503_with_retry_after_within_the_produce_timeout(
    implementation: &Implementation,
) {
    let ingest = without_kafka(implementation);
    let started = Instant::now();

    let response = ingest.send(&protobuf(&valid_events("down", 3)));

    assert_error(&response, ServiceError::KafkaUnavailable);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503 after {:?} with --produce-timeout-ms {SHORT_PRODUCE_TIMEOUT_MS}",
        started.elapsed()
    );
}

fn readyz_is_503_when_kafka_is_unreachable(implementation: &Implementation) {
    let ingest = without_kafka(implementation);

    let response = ingest.send(&Request::get("/readyz"));

    assert_error(&response, ServiceError::KafkaNotReachable);
}

fn healthz_stays_ok_when_kafka_is_unreachable(implementation: &Implementation) {
    let ingest = without_kafka(implementation);

    let response = ingest.send(&Request::get("/healthz"));

    assert_eq!(
        (response.status, response.text().as_str()),
        (200, r#"{"status":"ok"}"#)
    );
}

/// The 200 waits for Kafka's acknowledgement of every accepted event; with
/// none accepted there is nothing to wait for.
fn a_batch_with_nothing_to_publish_answers_200_even_when_kafka_is_down(
    implementation: &Implementation,
) {
    let ingest = without_kafka(implementation);

    let response = ingest.send(&protobuf(&[event("r").kind("").build()]).accept(JSON));

    assert_ok(
        &response,
        JSON,
        br#"{"accepted":0,"rejected":[{"index":0,"eventId":"r","reason":"missing_type"}]}"#,
    );
}

// ----------------------------------------------------------------------------
// Shutdown

fn an_in_flight_request_completes_after_sigterm(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    let in_flight = in_flight(&ingest, &valid_events("drain", 5));

    ingest.signal("TERM");
    thread::sleep(SIGNAL_SETTLE);
    let response = in_flight.finish();

    assert_ok(&response, PROTOBUF, &encode(&ingest_response(5, [])));
}

fn in_flight_events_are_published_before_exit(implementation: &Implementation) {
    let mut ingest = service(implementation).spawn();
    let events = valid_events("flush", 5);
    let in_flight = in_flight(&ingest, &events);

    ingest.signal("TERM");
    thread::sleep(SIGNAL_SETTLE);
    assert_eq!(in_flight.finish().status, 200);
    assert!(ingest.wait_for_exit(GRACE_AND_MARGIN).is_some(), "exit");

    let published = decoded_by_event_id(&ingest.records(events.len()));
    assert_eq!(published.len(), events.len());
}

fn the_service_exits_zero_once_drained(implementation: &Implementation) {
    let mut ingest = service(implementation).spawn();
    let in_flight = in_flight(&ingest, &valid_events("exit", 2));

    ingest.signal("TERM");
    thread::sleep(SIGNAL_SETTLE);
    assert_eq!(in_flight.finish().status, 200);

    let status = ingest.wait_for_exit(GRACE_AND_MARGIN);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status within the grace period: {status:?}"
    );
}

fn no_new_connections_are_served_after_sigterm(implementation: &Implementation) {
    let ingest = service(implementation).spawn();
    // Keeps the process alive while the new connection is tried.
    let in_flight = in_flight(&ingest, &valid_events("hold", 1));

    ingest.signal("TERM");
    thread::sleep(SIGNAL_SETTLE);
    let late = late_request(&ingest);
    let held = in_flight.finish();

    if let Some(response) = late {
        panic!(
            "a connection opened after SIGTERM was served: {} {}",
            response.status,
            response.text()
        );
    }
    assert_eq!(held.status, 200);
}

fn sigint_shuts_down_like_sigterm(implementation: &Implementation) {
    let mut ingest = service(implementation).spawn();
    let in_flight = in_flight(&ingest, &valid_events("int", 2));

    ingest.signal("INT");
    thread::sleep(SIGNAL_SETTLE);
    assert_ok(
        &in_flight.finish(),
        PROTOBUF,
        &encode(&ingest_response(2, [])),
    );

    let status = ingest.wait_for_exit(GRACE_AND_MARGIN);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status: {status:?}"
    );
}

/// A request that never completes does not hold the process past
/// `--shutdown-grace-ms`.
fn the_grace_period_bounds_a_stuck_request(implementation: &Implementation) {
    let mut ingest = service(implementation).shutdown_grace_ms(1000).spawn();
    let _stuck = in_flight(&ingest, &valid_events("stuck", 2));

    ingest.signal("TERM");
    let signalled = Instant::now();
    let status = ingest.wait_for_exit(Duration::from_secs(8));

    assert!(
        status.is_some(),
        "still running {:?} after SIGTERM with --shutdown-grace-ms 1000",
        signalled.elapsed()
    );
}

// ----------------------------------------------------------------------------
// Configuration

fn flags_win_over_environment_variables(implementation: &Implementation) {
    let decoy = kafka::unique_topic("decoy");
    kafka::create_topic(&decoy);
    let ingest = service(implementation).env("INGEST_TOPIC", &decoy).spawn();

    assert_eq!(ingest.send(&protobuf(&valid_events("flag", 1))).status, 200);

    assert_eq!(ingest.records(1).len(), 1, "records on the --topic topic");
    let on_decoy = kafka::read_topic(&decoy, 0, KAFKA_READ_DEADLINE);
    assert!(on_decoy.is_empty(), "records on the INGEST_TOPIC topic");
}

// ----------------------------------------------------------------------------
// The corpus

fn corpus_statuses_follow_the_contract(implementation: &Implementation) {
    let up = service(implementation).spawn();
    let down = without_kafka(implementation);

    let entries = corpus::corpus();
    let wrong = parity::wrong_statuses(entries.iter().map(|entry| {
        let target = match entry.kafka {
            Kafka::Reachable => &up,
            Kafka::Unreachable => &down,
        };
        (entry.name, &entry.request, entry.status, target)
    }));
    assert!(
        wrong.is_empty(),
        "{} of the corpus disagrees with the contract:\n{}",
        implementation.name,
        wrong.join("\n")
    );
}

/// The twins are interchangeable behind the shadowing proxy: for every corpus
/// request, the same status, `Content-Type`, `Retry-After`, `Allow` and body.
#[test]
fn twins_answer_the_corpus_byte_for_byte() {
    let go = Implementation::go();
    let rust = Implementation::rust();
    let up = [service(&go).spawn(), service(&rust).spawn()];
    let down = [without_kafka(&go), without_kafka(&rust)];

    let entries = corpus::corpus();
    let differences = parity::twin_differences(entries.iter().map(|entry| {
        let [go, rust] = match entry.kafka {
            Kafka::Reachable => &up,
            Kafka::Unreachable => &down,
        };
        (entry.name, &entry.request, [go, rust])
    }));
    assert!(
        differences.is_empty(),
        "the twins differ on {} of {} corpus entries:\n{}",
        differences.len(),
        entries.len(),
        differences.join("\n")
    );
}

/// The twins publish the same records (key, value, headers, partition) for
/// the same batch, including one carrying a field the contract does not
/// know and one with an empty attribute key and empty values (written out
/// inside their map entries), so a consumer cannot tell which twin produced
/// a record.
#[test]
fn twins_publish_identical_records() {
    let go = service(&Implementation::go()).spawn();
    let rust = service(&Implementation::rust()).spawn();
    let mut events = corpus::three_rich_events();
    events.extend(valid_events("same", 5));
    events.push(
        event("empty-attributes")
            .attribute("", "")
            .attribute("k", "")
            .build(),
    );
    let mut body = encode(&batch(events.clone()));
    body.extend(wire::batch_of([wire::event_with_unknown_field(
        "unknown-field",
    )]));
    let expected = events.len() + 1;

    for twin in [&go, &rust] {
        assert_eq!(
            twin.send(&Request::protobuf(body.clone())).status,
            200,
            "{}",
            twin.name()
        );
    }

    let go_records = comparable(go.records(expected));
    let rust_records = comparable(rust.records(expected));
    assert_eq!(go_records.len(), expected);
    assert_eq!(go_records, rust_records);
}

/// Random near-valid bodies ([`differential`]: protobuf with wrong wire
/// types, groups, broken varints, bad UTF-8; JSON with repeated keys,
/// int64 as strings and fractions, base64 variants), each sent to both
/// twins: the same status, headers and body for every one, and in the end
/// the same records in Kafka.
///
/// `PARALLAX_DIFF_CASES` (default 300, a few seconds) sets how many; the
/// seed is random per run, printed, and named on failure:
/// `PARALLAX_DIFF_SEED=<seed>` replays it. A longer hunt:
/// `PARALLAX_DIFF_CASES=20000 cargo test -p parallax-conformance --test ingest twins_answer_random`.
#[test]
fn twins_answer_random_near_valid_bodies_alike() {
    let seed = env_number("PARALLAX_DIFF_SEED").unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        now.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    let n = env_number("PARALLAX_DIFF_CASES").unwrap_or(300) as usize;
    eprintln!("differential: seed {seed}, {n} cases (PARALLAX_DIFF_SEED={seed} replays them)");
    // No linger: most bodies publish something, and the twins wait for it.
    let go = service(&Implementation::go())
        .flag("--linger-ms", 0)
        .spawn();
    let rust = service(&Implementation::rust())
        .flag("--linger-ms", 0)
        .spawn();

    let cases = differential::cases(seed, n);
    let names: Vec<String> = cases
        .iter()
        .map(|case| {
            format!(
                "{} [Content-Type {:?}, Accept {:?}] body {}",
                case.name,
                case.request.header_value("Content-Type").unwrap_or(""),
                case.request.header_value("Accept"),
                parity::excerpt(&case.request.body)
            )
        })
        .collect();
    let differences = parity::twin_differences(
        cases
            .iter()
            .zip(&names)
            .map(|(case, name)| (name.as_str(), &case.request, [&go, &rust])),
    );
    assert!(
        differences.is_empty(),
        "seed {seed}: the twins differ on {} of {n} random bodies (PARALLAX_DIFF_SEED={seed} replays them):\n{}",
        differences.len(),
        differences.join("\n")
    );

    let go_records = comparable(go.records_now());
    let rust_records = comparable(rust.records_now());
    let only_go: Vec<_> = go_records
        .iter()
        .filter(|r| !rust_records.contains(r))
        .collect();
    let only_rust: Vec<_> = rust_records
        .iter()
        .filter(|r| !go_records.contains(r))
        .collect();
    assert!(
        only_go.is_empty() && only_rust.is_empty() && go_records.len() == rust_records.len(),
        "seed {seed}: the twins published different records ({} and {}); only Go's:\n{}\nonly Rust's:\n{}",
        go_records.len(),
        rust_records.len(),
        describe(&only_go),
        describe(&only_rust),
    );
    eprintln!(
        "differential: {n} answers and {} records alike",
        go_records.len()
    );
}

// ----------------------------------------------------------------------------
// Helpers

// ----------------------------------------------------------------------------
// gRPC: IngestService/Publish (docs/contract-ingest.md, "gRPC")

/// Every protobuf request of the corpus, sent to one twin as `POST
/// /v1/events` and as a `Publish` call: the same outcome — the 200 body is
/// the response message byte for byte, each error its row of the mapping
/// table with the HTTP error's message and code.
fn grpc_publish_answers_like_post_v1_events(implementation: &Implementation) {
    let up = service(implementation).grpc().spawn();
    let down = without_kafka_grpc(implementation);
    let mut wrong = Vec::new();
    for (entry, message) in grpc_corpus() {
        let target = match entry.kafka {
            Kafka::Reachable => &up,
            Kafka::Unreachable => &down,
        };
        let http = target.send(&entry.request);
        let answer = grpc::call(target.grpc_addr(), &grpc::Call::publish(&message));
        let expected = grpc_equivalent(&http, message.len());
        let got = (
            answer.code(),
            answer.message(),
            answer.error_code.clone(),
            answer.retry_pushback_ms.clone(),
            answer.response_message().map(<[u8]>::to_vec),
        );
        if got != expected {
            wrong.push(format!(
                "{}: HTTP {} {:?}\n  expected {expected:?}\n  got      {got:?}",
                entry.name,
                http.status,
                parity::excerpt(&http.body)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} answers {} corpus requests differently over gRPC:\n{}",
        implementation.name,
        wrong.len(),
        wrong.join("\n")
    );
}

/// The records of a batch published over gRPC are those of the same batch
/// over HTTP: each record appears twice, once per surface.
fn grpc_publishes_the_records_http_publishes(implementation: &Implementation) {
    let ingest = service(implementation).grpc().spawn();
    let mut events = corpus::three_rich_events();
    events.extend(valid_events("grpc-same", 4));
    let body = encode(&batch(events.clone()));

    let answer = grpc::call(ingest.grpc_addr(), &grpc::Call::publish(&body));
    assert_eq!(answer.code(), Some(grpc::code::OK), "{answer:?}");
    assert_eq!(
        answer.response_message(),
        Some(&encode(&ingest_response(events.len() as u32, []))[..])
    );
    assert_eq!(ingest.send(&Request::protobuf(body)).status, 200);

    let records = comparable(ingest.records(2 * events.len()));
    assert_eq!(records.len(), 2 * events.len());
    for pair in records.chunks(2) {
        assert_eq!(pair[0], pair[1], "a record published over one surface only");
    }
}

/// Calls wrong as gRPC get grpc-go's answers from both twins: a bad content
/// type is HTTP 415, another method 405, an unknown path UNIMPLEMENTED, no
/// or two messages and broken framing INTERNAL, a message over 8 MiB
/// RESOURCE_EXHAUSTED before it is read.
fn grpc_framing_errors_get_grpc_statuses(implementation: &Implementation) {
    use grpc::code::*;
    let ingest = service(implementation).grpc().spawn();
    let expected = |name: &str| match name {
        "identity_encoding_is_plain" | "grpc_proto_content_type" => (200, OK),
        "no_content_type" | "json_content_type" | "grpc_lookalike_content_type" => {
            (415, INVALID_ARGUMENT)
        }
        "put_method" => (405, INTERNAL),
        "gzip_encoding_is_not_installed"
        | "unknown_method"
        | "unknown_service"
        | "malformed_method_name"
        | "root_path" => (200, UNIMPLEMENTED),
        "message_over_8_mib" | "prefix_declaring_4_gib" => (200, RESOURCE_EXHAUSTED),
        _ => (200, INTERNAL),
    };
    let mut wrong = Vec::new();
    for (name, call) in grpc::framing_cases() {
        let answer = grpc::call(ingest.grpc_addr(), &call);
        if (answer.http_status, answer.code().unwrap_or(u32::MAX)) != expected(name) {
            wrong.push(format!(
                "{name}: expected {:?}, got {answer:?}",
                expected(name)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}:\n{}",
        implementation.name,
        wrong.join("\n")
    );
}

/// SIGTERM with gRPC served: an in-flight call still completes, then the
/// process exits 0.
fn grpc_calls_drain_on_sigterm(implementation: &Implementation) {
    let mut ingest = service(implementation)
        .grpc()
        .kafka(NO_KAFKA)
        .produce_timeout_ms(SHORT_PRODUCE_TIMEOUT_MS)
        .spawn();
    let addr = ingest.grpc_addr();
    // Kafka is down: the call waits out the produce timeout in flight.
    let call = thread::spawn(move || {
        grpc::call(
            addr,
            &grpc::Call::publish(&encode(&batch(valid_events("drain", 1)))),
        )
    });
    thread::sleep(SIGNAL_SETTLE);
    ingest.signal("TERM");
    let answer = call.join().expect("the call returns");
    assert_eq!(answer.code(), Some(grpc::code::UNAVAILABLE), "{answer:?}");
    let status = ingest
        .wait_for_exit(GRACE_AND_MARGIN)
        .expect("exits after draining");
    assert!(status.success(), "{status}");
}

/// gRPC calls count into the same `ingest_events_total` as HTTP requests,
/// and those that reach `Publish` into `grpc_server_handled_total` by
/// status code (a call to an unknown method does not); the exposition
/// still passes promtool.
fn grpc_calls_are_counted(implementation: &Implementation) {
    let ingest = service(implementation).grpc().spawn();
    let body = encode(&batch([
        event("g-1").build(),
        event("g-2").kind("").build(),
    ]));
    let answer = grpc::call(ingest.grpc_addr(), &grpc::Call::publish(&body));
    assert_eq!(answer.code(), Some(grpc::code::OK), "{answer:?}");
    let malformed = grpc::call(ingest.grpc_addr(), &grpc::Call::publish(&[0x0a, 0x05]));
    assert_eq!(malformed.code(), Some(grpc::code::INVALID_ARGUMENT));
    let unknown = grpc::Call::publish(&[]).path("/parallax.ingest.v1.IngestService/Nope");
    assert_eq!(
        grpc::call(ingest.grpc_addr(), &unknown).code(),
        Some(grpc::code::UNIMPLEMENTED)
    );

    let exposition = scrape(&ingest);
    let outcome = |o| metrics::value(&exposition, "ingest_events_total", &[("outcome", o)]);
    assert_eq!(outcome("accepted"), Some(1.0), "{exposition}");
    assert_eq!(outcome("rejected"), Some(1.0), "{exposition}");
    let handled = |code| {
        metrics::value(
            &exposition,
            "grpc_server_handled_total",
            &[
                ("grpc_service", "parallax.ingest.v1.IngestService"),
                ("grpc_method", "Publish"),
                ("grpc_code", code),
            ],
        )
    };
    assert_eq!(handled("OK"), Some(1.0), "{exposition}");
    assert_eq!(handled("InvalidArgument"), Some(1.0), "{exposition}");
    assert!(!exposition.contains("Nope"), "{exposition}");
    assert!(
        exposition.contains("grpc_server_handling_seconds_count"),
        "{exposition}"
    );
    if let Err(problems) = metrics::promtool_check(&exposition) {
        panic!("{problems}\n--- exposition ---\n{exposition}");
    }
}

/// The twins give the same gRPC answers — HTTP status, content type,
/// `grpc-status`, `grpc-message` as on the wire, the contract's trailers and
/// the body's bytes — to every protobuf request of the corpus as a
/// `Publish` call and to every gRPC framing case.
#[test]
fn twins_answer_the_grpc_corpus_byte_for_byte() {
    let go = Implementation::go();
    let rust = Implementation::rust();
    let up = [service(&go).grpc().spawn(), service(&rust).grpc().spawn()];
    let down = [without_kafka_grpc(&go), without_kafka_grpc(&rust)];

    let mut calls: Vec<(String, grpc::Call, &[Service; 2])> = grpc_corpus()
        .into_iter()
        .map(|(entry, message)| {
            let target = match entry.kafka {
                Kafka::Reachable => &up,
                Kafka::Unreachable => &down,
            };
            (entry.name.to_owned(), grpc::Call::publish(&message), target)
        })
        .collect();
    for (name, call) in grpc::framing_cases() {
        calls.push((format!("framing_{name}"), call, &up));
    }
    let mut differences = Vec::new();
    for (name, call, [go, rust]) in &calls {
        let (go_answer, rust_answer) = thread::scope(|scope| {
            let go_answer = scope.spawn(|| grpc::call(go.grpc_addr(), call));
            let rust_answer = grpc::call(rust.grpc_addr(), call);
            (go_answer.join().expect("go call"), rust_answer)
        });
        if go_answer != rust_answer {
            differences.push(format!(
                "{name}:\n  go:   {go_answer:?}\n  rust: {rust_answer:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "the twins differ on {} of {} gRPC calls:\n{}",
        differences.len(),
        calls.len(),
        differences.join("\n")
    );
}

/// The same batch over gRPC to both twins: the same records (key, value,
/// headers, partition), unknown fields dropped, empty map entries kept.
#[test]
fn twins_publish_identical_records_over_grpc() {
    let go = service(&Implementation::go()).grpc().spawn();
    let rust = service(&Implementation::rust()).grpc().spawn();
    let mut events = corpus::three_rich_events();
    events.extend(valid_events("grpc", 5));
    events.push(event("grpc-empty-attributes").attribute("", "").build());
    let mut body = encode(&batch(events.clone()));
    body.extend(wire::batch_of([wire::event_with_unknown_field(
        "grpc-unknown",
    )]));
    let expected = events.len() + 1;

    for twin in [&go, &rust] {
        let answer = grpc::call(twin.grpc_addr(), &grpc::Call::publish(&body));
        assert_eq!(
            answer.code(),
            Some(grpc::code::OK),
            "{}: {answer:?}",
            twin.name()
        );
    }
    let go_records = comparable(go.records(expected));
    let rust_records = comparable(rust.records(expected));
    assert_eq!(go_records.len(), expected);
    assert_eq!(go_records, rust_records);
}

/// grpcurl (a Go module; JSON in, the service described by the checked-in
/// .proto) gets the same output and exit code from both twins: a batch with
/// a rejection, one over 10,000 events, an empty batch, a payload over the
/// limit.
#[test]
fn grpcurl_gets_the_same_answers_from_both_twins() {
    let go = service(&Implementation::go()).grpc().spawn();
    let rust = service(&Implementation::rust()).grpc().spawn();
    let many = (0..=MAX_EVENTS)
        .map(|i| format!(r#"{{"eventId":"m-{i}","tenantId":"t","type":"x"}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let publish = "parallax.ingest.v1.IngestService/Publish";
    let cases = [
        (
            "a rejection",
            publish,
            r#"{"events":[{"eventId":"c-1","tenantId":"t","type":"x","attributes":{"b":"2","a":"1"},"payload":"aGk="},{"eventId":"c-2","tenantId":"t"}]}"#.to_owned(),
            0,
            "\"reason\": \"missing_type\"",
        ),
        (
            "too many events",
            publish,
            format!(r#"{{"events":[{many}]}}"#),
            64 + 3,
            "\"message\": \"batch holds more than 10000 events\"",
        ),
        ("empty batch", publish, "{}".to_owned(), 0, "{}"),
        (
            "a payload over 64 KiB",
            publish,
            format!(
                r#"{{"events":[{{"eventId":"p-1","tenantId":"t","type":"x","payload":"{}"}}]}}"#,
                "A".repeat(4 * (MAX_PAYLOAD_BYTES / 3 + 1))
            ),
            0,
            "\"reason\": \"payload_too_large\"",
        ),
    ];
    for (name, method, json, code, needle) in cases {
        let [on_go, on_rust] =
            [&go, &rust].map(|t| grpc::run_grpcurl(t.grpc_addr(), method, &json));
        assert_eq!(on_go, on_rust, "{name}: grpcurl sees the twins differ");
        assert_eq!(on_go.0, code, "{name}: exit code; output {}", on_go.1);
        assert!(on_go.1.contains(needle), "{name}: {}", on_go.1);
    }
}

/// Both twins serve server reflection (v1 and v1alpha) describing the
/// contract alike, and grpcurl, with no `.proto` at hand, builds a
/// `Publish` from the reflected descriptors and gets the same answer.
#[test]
fn twins_describe_ingest_service_alike_by_reflection() {
    let go = service(&Implementation::go()).grpc().spawn();
    let rust = service(&Implementation::rust()).grpc().spawn();
    let cases: [(&[&str], Option<&str>, i32, &str); 5] = [
        (&["list"], None, 0, "grpc.reflection.v1.ServerReflection\ngrpc.reflection.v1alpha.ServerReflection\nparallax.ingest.v1.IngestService\n"),
        (&["describe", "parallax.ingest.v1.IngestService"], None, 0, "rpc Publish ( .parallax.ingest.v1.EventBatch ) returns ( .parallax.ingest.v1.IngestResponse );"),
        (&["describe", "parallax.ingest.v1.Event"], None, 0, "map<string, string> attributes = 5;"),
        (&["describe", "parallax.ingest.v1.Nope"], None, 1, "Symbol not found"),
        (
            &["parallax.ingest.v1.IngestService/Publish"],
            Some(r#"{"events":[{"eventId":"r-1","tenantId":"t","type":"x"},{"eventId":"r-1","tenantId":"t","type":"x"}]}"#),
            0,
            "\"reason\": \"duplicate_event_id\"",
        ),
    ];
    for (args, stdin, code, needle) in cases {
        let [on_go, on_rust] =
            [&go, &rust].map(|t| grpc::run_grpcurl_reflection(t.grpc_addr(), args, stdin));
        assert_eq!(
            on_go, on_rust,
            "grpcurl {args:?}: the twins' reflection differs"
        );
        assert_eq!(
            on_go.0, code,
            "grpcurl {args:?}: exit code; output {}",
            on_go.1
        );
        assert!(on_go.1.contains(needle), "grpcurl {args:?}: {}", on_go.1);
    }
}

/// Python's grpcio (gRPC's C core, no generated code) gets the same status,
/// details, trailers and response bytes from both twins for every protobuf
/// request of the corpus.
#[test]
fn grpcio_gets_the_same_answers_from_both_twins() {
    let go = service(&Implementation::go()).grpc().spawn();
    let rust = service(&Implementation::rust()).grpc().spawn();
    let calls: Vec<(&str, Vec<u8>)> = grpc_corpus()
        .into_iter()
        .filter(|(entry, _)| entry.kafka == Kafka::Reachable)
        .map(|(entry, message)| (entry.name, message))
        .collect();
    let on_go = grpc::run_grpcio(go.grpc_addr(), &calls);
    let on_rust = grpc::run_grpcio(rust.grpc_addr(), &calls);
    assert_eq!(on_go.len(), calls.len(), "{on_go:?}");
    let differences: Vec<_> = on_go
        .iter()
        .zip(&on_rust)
        .filter(|(g, r)| g != r)
        .map(|(g, r)| format!("  go:   {}\n  rust: {}", cut(g), cut(r)))
        .collect();
    assert!(
        differences.is_empty(),
        "grpcio sees the twins differ on {} calls:\n{}",
        differences.len(),
        differences.join("\n")
    );
    let codes: std::collections::BTreeSet<_> = on_go
        .iter()
        .filter_map(|line| line.split(' ').nth(1))
        .collect();
    for code in ["OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"] {
        assert!(codes.contains(code), "no {code} among {codes:?}");
    }
}

/// Every protobuf `POST /v1/events` of the corpus whose answer is protobuf
/// (no `Accept` naming JSON), with its body as a `Publish` message.
fn grpc_corpus() -> Vec<(corpus::Entry, Vec<u8>)> {
    corpus::corpus()
        .into_iter()
        .filter(|entry| {
            let request = &entry.request;
            let is_protobuf = |value: Option<&str>| {
                value.is_some_and(|v| {
                    let essence = v
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase();
                    [
                        "application/x-protobuf",
                        "application/protobuf",
                        "application/vnd.google.protobuf",
                    ]
                    .contains(&essence.as_str())
                })
            };
            request.method == "POST"
                && request.path == "/v1/events"
                && is_protobuf(request.header_value("Content-Type"))
                && (request.header_value("Accept").is_none()
                    || is_protobuf(request.header_value("Accept")))
        })
        .map(|entry| {
            let message = entry.request.body.clone();
            (entry, message)
        })
        .collect()
}

/// What a `Publish` call of a `len`-byte message answers where `POST
/// /v1/events` answered `http`: (code, message, parallax-error-code,
/// grpc-retry-pushback-ms, response message).
type GrpcOutcome = (
    Option<u32>,
    String,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

fn grpc_equivalent(http: &Response, len: usize) -> GrpcOutcome {
    use grpc::code::*;
    if http.status == 200 {
        return (Some(OK), String::new(), None, None, Some(http.body.clone()));
    }
    let body = http.text();
    let field = |name: &str| {
        let start = body.find(&format!("\"{name}\":\""))? + name.len() + 4;
        Some(body[start..start + body[start..].find('"')?].to_owned())
    };
    let (code, message) = (
        field("code").unwrap_or_default(),
        field("message").unwrap_or_default(),
    );
    match code.as_str() {
        "body_too_large" => (
            Some(RESOURCE_EXHAUSTED),
            format!("grpc: received message larger than max ({len} vs. {MAX_BODY_BYTES})"),
            None,
            None,
            None,
        ),
        "kafka_unavailable" => (
            Some(UNAVAILABLE),
            message,
            Some(code),
            Some("1000".to_owned()),
            None,
        ),
        _ => (Some(INVALID_ARGUMENT), message, Some(code), None, None),
    }
}

/// A service with gRPC whose Kafka is unreachable, with a short produce
/// timeout.
fn without_kafka_grpc(implementation: &Implementation) -> Service {
    service(implementation)
        .grpc()
        .kafka(NO_KAFKA)
        .produce_timeout_ms(SHORT_PRODUCE_TIMEOUT_MS)
        .spawn()
}

/// A long line, cut for a message.
fn cut(line: &str) -> &str {
    let mut end = line.len().min(300);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// What makes two twins' records the same: headers, key, partition, value
/// (not offsets), sorted.
type Comparable = (Vec<(String, Vec<u8>)>, Option<Vec<u8>>, i32, Vec<u8>);

fn comparable(records: Vec<Record>) -> Vec<Comparable> {
    let mut records: Vec<_> = records
        .into_iter()
        .map(|r| (r.headers, r.key, r.partition, r.value))
        .collect();
    records.sort();
    records
}

/// Up to ten records, one line each.
fn describe(records: &[&Comparable]) -> String {
    records
        .iter()
        .take(10)
        .map(|(headers, key, partition, value)| {
            let key = key.as_deref().map(String::from_utf8_lossy);
            format!(
                "  partition {partition} key {key:?} headers {headers:?} value {}",
                parity::excerpt(value)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A number from the environment, if set.
fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?} is not a number: {e}")),
    )
}

/// How long after a signal the suite lets the service start shutting down
/// before it acts: the one sleep used for synchronisation, unavoidable since
/// "shutting down" is not observable from outside.
const SIGNAL_SETTLE: Duration = Duration::from_millis(300);
/// The default 10 s grace period plus a margin.
const GRACE_AND_MARGIN: Duration = Duration::from_secs(15);

/// A service whose Kafka is unreachable, with a short produce timeout.
fn without_kafka(implementation: &Implementation) -> Service {
    service(implementation)
        .kafka(NO_KAFKA)
        .produce_timeout_ms(SHORT_PRODUCE_TIMEOUT_MS)
        .spawn()
}

/// `POST /v1/events` of these events as protobuf.
fn protobuf(events: &[Event]) -> Request {
    Request::protobuf(encode(&batch(events.iter().cloned())))
}

/// One accepted and one rejected event, a probe and an unknown route.
fn exercise(ingest: &Service) {
    let response = ingest.send(&protobuf(&[
        event("m-1").build(),
        event("m-2").kind("").build(),
        event("m-3").build(),
    ]));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(ingest.send(&Request::get("/healthz")).status, 200);
    assert_eq!(ingest.send(&Request::get("/nope")).status, 404);
}

fn scrape(ingest: &Service) -> String {
    let response = ingest.send(&Request::get("/metrics"));
    assert_eq!(response.status, 200, "GET /metrics");
    response.text()
}

/// Records by their `event-id` header.
fn by_event_id(records: &[Record]) -> BTreeMap<String, Record> {
    records
        .iter()
        .map(|r| {
            let ids = r.header_values("event-id");
            assert_eq!(ids.len(), 1, "one event-id header: {r:?}");
            (String::from_utf8_lossy(ids[0]).into_owned(), r.clone())
        })
        .collect()
}

/// Record values decoded, by event id.
fn decoded_by_event_id(records: &[Record]) -> BTreeMap<String, Event> {
    records
        .iter()
        .map(|r| {
            let event = Event::decode(r.value.as_slice()).expect("record value is an Event");
            (event.event_id.clone(), event)
        })
        .collect()
}

/// A valid protobuf batch of exactly `len` bytes: events with maximal
/// payloads, the last one trimmed to fit. Returns the body and its event count.
fn batch_of_exactly(len: usize) -> (Vec<u8>, u32) {
    let full = |i: usize| {
        event(&format!("size-{i:03}"))
            .payload(vec![b's'; MAX_PAYLOAD_BYTES])
            .build()
    };
    let entry_len = encode(&batch([full(0)])).len();
    // Whole events, leaving room for one more that holds the remainder.
    let mut whole = len / entry_len;
    if len - whole * entry_len < 64 {
        whole -= 1;
    }
    let mut events: Vec<Event> = (0..whole).map(full).collect();
    let base = encode(&batch(events.clone())).len();
    let last = events.len();
    let fitting = (0..=MAX_PAYLOAD_BYTES)
        .rev()
        .map(|payload| {
            event(&format!("size-{last:03}"))
                .payload(vec![b's'; payload])
                .build()
        })
        .find(|e| base + encode(&batch([e.clone()])).len() == len)
        .expect("a payload size that fits exactly");
    events.push(fitting);
    let body = encode(&batch(events.clone()));
    assert_eq!(body.len(), len);
    (body, u32::try_from(events.len()).unwrap())
}

/// A `POST /v1/events` of these events, half sent: see [`InFlight`].
fn in_flight(ingest: &Service, events: &[Event]) -> InFlight {
    InFlight::begin(ingest.addr(), &protobuf(events))
}

/// Tries `GET /healthz` on a new connection; the response, if served.
fn late_request(ingest: &Service) -> Option<Response> {
    let mut connection = TcpStream::connect_timeout(&ingest.addr(), Duration::from_secs(2)).ok()?;
    connection
        .set_read_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    write!(
        connection,
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        ingest.addr()
    )
    .ok()?;
    http::read_response(&mut BufReader::new(&connection), false).ok()
}

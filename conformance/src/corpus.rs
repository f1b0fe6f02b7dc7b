//! Requests both twins must answer identically: status, `Content-Type`,
//! `Retry-After`, `Allow` and body bytes.
//!
//! Each entry also names the status the contract prescribes, so two twins
//! that agree on a wrong answer are still caught.

use crate::contract::{
    JSON, MAX_BODY_BYTES, MAX_EVENTS, MAX_EVENT_ID_BYTES, MAX_PAYLOAD_BYTES, MAX_TENANT_ID_BYTES,
    PROTOBUF,
};
use crate::events::{batch, bytes_long, encode, event, valid_events};
use crate::http::Request;
use crate::pb::Event;

/// Whether the entry is sent to services whose Kafka is up or unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kafka {
    Reachable,
    Unreachable,
}

/// One request of the corpus.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: &'static str,
    pub request: Request,
    /// The status the contract prescribes.
    pub status: u16,
    pub kafka: Kafka,
}

fn entry(name: &'static str, status: u16, request: Request) -> Entry {
    Entry {
        name,
        request,
        status,
        kafka: Kafka::Reachable,
    }
}

fn kafka_down(name: &'static str, status: u16, request: Request) -> Entry {
    Entry {
        name,
        request,
        status,
        kafka: Kafka::Unreachable,
    }
}

fn protobuf_batch<E: Into<Event>>(events: impl IntoIterator<Item = E>) -> Request {
    Request::protobuf(encode(&batch(events)))
}

/// Three valid events with attributes and payloads.
pub fn three_rich_events() -> Vec<Event> {
    vec![
        event("rich-0")
            .attribute("page", "/home")
            .attribute("browser", "firefox")
            .payload(&b"\x00\x01binary\xff"[..])
            .build(),
        event("rich-1")
            .tenant("tenant-b")
            .kind("click")
            .occurred_at_unix_ms(-5)
            .build(),
        event("rich-2")
            .tenant("tenant-c")
            .attribute("z", "last")
            .attribute("a", "first")
            .payload(vec![7u8; 1000])
            .build(),
    ]
}

/// One event per rejection reason and per length boundary, in batch order.
pub fn every_rejection_reason() -> Vec<Event> {
    vec![
        event("").build(),
        event(&bytes_long(MAX_EVENT_ID_BYTES + 1)).build(),
        event(&bytes_long(MAX_EVENT_ID_BYTES)).build(),
        event("dup").build(),
        event("dup").tenant("").build(),
        event("no-tenant").tenant("").build(),
        event("long-tenant")
            .tenant(&bytes_long(MAX_TENANT_ID_BYTES + 1))
            .build(),
        event("max-tenant")
            .tenant(&bytes_long(MAX_TENANT_ID_BYTES))
            .build(),
        event("no-type").kind("").build(),
        event("big-payload")
            .payload(vec![1u8; MAX_PAYLOAD_BYTES + 1])
            .build(),
        event("max-payload")
            .payload(vec![2u8; MAX_PAYLOAD_BYTES])
            .build(),
        event("").tenant("").kind("").build(),
    ]
}

/// Events whose ids need every kind of JSON escaping, all rejected for
/// their empty tenant so the ids are echoed back.
pub fn ids_needing_escapes() -> Vec<Event> {
    [
        "quote\"d",
        "back\\slash",
        "nl\nbs\u{8}ff\u{c}cr\rtab\t",
        "ctl\u{1}\u{1f}\u{0}",
        "ls\u{2028}ps\u{2029}",
        "html<>&",
        "emoji\u{1F600}",
        "del\u{7f} é",
        "slash/",
    ]
    .into_iter()
    .map(|id| event(id).tenant("").build())
    .collect()
}

/// A protobuf body of exactly `len` bytes that is not a valid `EventBatch`.
fn garbage(len: usize) -> Vec<u8> {
    vec![0xff; len]
}

/// The corpus: every rule of the contract, good requests and bad.
pub fn corpus() -> Vec<Entry> {
    let valid_json = r#"{"events":[{"eventId":"j-1","tenantId":"tenant-a","type":"page_view"}]}"#;
    vec![
        // --- protobuf requests -------------------------------------------
        entry("protobuf_batch_of_three", 200, protobuf_batch(three_rich_events())),
        entry("protobuf_empty_body_is_an_empty_batch", 200, Request::protobuf(Vec::new())),
        entry("protobuf_every_rejection_reason", 200, protobuf_batch(every_rejection_reason())),
        entry(
            "protobuf_every_rejection_reason_answered_in_json",
            200,
            protobuf_batch(every_rejection_reason()).accept(JSON),
        ),
        entry(
            "protobuf_all_events_rejected",
            200,
            protobuf_batch([event("a").kind(""), event("b").tenant("")]),
        ),
        entry(
            "protobuf_alias_application_protobuf",
            200,
            Request::post("/v1/events")
                .content_type("application/protobuf")
                .body(encode(&batch(valid_events("alias", 1)))),
        ),
        entry(
            "protobuf_alias_application_vnd_google_protobuf",
            200,
            Request::post("/v1/events")
                .content_type("application/vnd.google.protobuf")
                .body(encode(&batch(valid_events("vnd", 1)))),
        ),
        entry(
            "protobuf_content_type_case_and_parameters_ignored",
            200,
            Request::post("/v1/events")
                .content_type("Application/X-Protobuf; charset=binary")
                .body(encode(&batch(valid_events("case", 1)))),
        ),
        entry("protobuf_malformed", 400, Request::protobuf(garbage(16))),
        entry(
            "protobuf_truncated",
            400,
            Request::protobuf({
                let mut body = encode(&batch(valid_events("cut", 2)));
                body.truncate(body.len() - 3);
                body
            }),
        ),
        entry(
            "protobuf_invalid_utf8_in_a_string_field",
            400,
            // EventBatch{events: [Event{event_id: b"\xff"}]}
            Request::protobuf(vec![0x0a, 0x03, 0x0a, 0x01, 0xff]),
        ),
        entry(
            "protobuf_escaped_rejected_event_ids_in_json",
            200,
            protobuf_batch(ids_needing_escapes()).accept(JSON),
        ),
        // --- Accept negotiation -------------------------------------------
        entry(
            "accept_protobuf_for_a_json_request",
            200,
            Request::json(valid_json).accept(PROTOBUF),
        ),
        entry(
            "accept_json_for_a_protobuf_request",
            200,
            protobuf_batch([event("acc-1"), event("acc-2").kind("")]).accept(JSON),
        ),
        entry(
            "accept_wildcard_falls_back_to_the_request_type",
            200,
            Request::json(valid_json).accept("*/*"),
        ),
        entry(
            "accept_naming_neither_falls_back_to_the_request_type",
            200,
            protobuf_batch([event("n-1").kind("")]).accept("text/html, */*;q=0.1"),
        ),
        entry(
            "accept_first_known_type_wins_whatever_the_q_values",
            200,
            protobuf_batch([event("q-1").kind("")])
                .accept("text/html, application/json;q=0.1, application/x-protobuf;q=1"),
        ),
        entry(
            "accept_protobuf_alias_and_case_insensitive",
            200,
            Request::json(valid_json).accept("Application/Vnd.Google.Protobuf"),
        ),
        // --- JSON requests ------------------------------------------------
        entry("json_batch", 200, Request::json(valid_json)),
        entry(
            "json_rich_event_with_json_names",
            200,
            Request::json(
                r#"{"events":[{"eventId":"r-1","tenantId":"tenant-a","type":"click","occurredAtUnixMs":1700000000000,"attributes":{"z":"1","a":"2"},"payload":"aGVsbG8="}]}"#,
            ),
        ),
        entry(
            "json_proto_field_names",
            200,
            Request::json(
                r#"{"events":[{"event_id":"p-1","tenant_id":"tenant-a","type":"click","occurred_at_unix_ms":5},{"event_id":"p-2","tenant_id":"","type":"click"}]}"#,
            ),
        ),
        entry(
            "json_int64_as_string_and_extremes",
            200,
            Request::json(
                r#"{"events":[{"eventId":"i-1","tenantId":"t","type":"x","occurredAtUnixMs":"1700000000000"},{"eventId":"i-2","tenantId":"t","type":"x","occurredAtUnixMs":"9223372036854775807"},{"eventId":"i-3","tenantId":"t","type":"x","occurredAtUnixMs":-9223372036854775808},{"eventId":"i-4","tenantId":"","type":"x","occurredAtUnixMs":"-1"}]}"#,
            ),
        ),
        entry(
            "json_int64_overflow_is_malformed",
            400,
            Request::json(
                r#"{"events":[{"eventId":"o-1","tenantId":"t","type":"x","occurredAtUnixMs":"9223372036854775808"}]}"#,
            ),
        ),
        entry(
            "json_int64_fraction_is_malformed",
            400,
            Request::json(
                r#"{"events":[{"eventId":"o-2","tenantId":"t","type":"x","occurredAtUnixMs":1.5}]}"#,
            ),
        ),
        entry(
            "json_base64_standard_and_url_safe_padded_or_not",
            200,
            Request::json(
                r#"{"events":[{"eventId":"b-1","tenantId":"t","type":"x","payload":"+/8="},{"eventId":"b-2","tenantId":"t","type":"x","payload":"+/8"},{"eventId":"b-3","tenantId":"t","type":"x","payload":"-_8="},{"eventId":"b-4","tenantId":"t","type":"x","payload":"-_8"},{"eventId":"b-5","tenantId":"","type":"x","payload":""}]}"#,
            ),
        ),
        entry(
            "json_base64_invalid_is_malformed",
            400,
            Request::json(r#"{"events":[{"eventId":"b-6","tenantId":"t","type":"x","payload":"a$b="}]}"#),
        ),
        entry(
            "json_null_fields_mean_defaults",
            200,
            Request::json(
                r#"{"events":[{"eventId":null,"tenantId":"t","type":"x"},{"eventId":"n-1","tenantId":null,"type":"x"},{"eventId":"n-2","tenantId":"t","type":null},{"eventId":"n-3","tenantId":"t","type":"x","occurredAtUnixMs":null,"attributes":null,"payload":null}]}"#,
            ),
        ),
        entry("json_events_null", 200, Request::json(r#"{"events":null}"#)),
        entry("json_empty_object", 200, Request::json("{}")),
        entry("json_empty_events", 200, Request::json(r#"{"events":[]}"#)),
        entry(
            "json_whitespace_everywhere",
            200,
            Request::json(" \n{ \"events\" :\t[ { \"eventId\" : \"w-1\" , \"tenantId\":\"t\",\"type\":\"x\" } ] }\r\n "),
        ),
        entry(
            "json_escaped_rejected_event_ids",
            200,
            Request::json(
                r#"{"events":[{"eventId":"quote\"d","type":"x"},{"eventId":"back\\slash","type":"x"},{"eventId":"nl\nbs\bff\fcr\rtab\t","type":"x"},{"eventId":"ctl\u0001\u001F\u0000","type":"x"},{"eventId":"ls\u2028ps\u2029","type":"x"},{"eventId":"html\u003c\u003e\u0026","type":"x"},{"eventId":"emoji😀\ud83d\ude00","type":"x"},{"eventId":"del\u007f é","type":"x"},{"eventId":"slash\/","type":"x"}]}"#,
            ),
        ),
        entry(
            "json_field_twice_under_both_names_is_malformed",
            400,
            Request::json(r#"{"events":[{"eventId":"d-1","event_id":"d-2","tenantId":"t","type":"x"}]}"#),
        ),
        entry(
            "json_field_twice_under_one_name_is_malformed",
            400,
            Request::json(r#"{"events":[{"eventId":"d-1","tenantId":"t","tenantId":"u","type":"x"}]}"#),
        ),
        entry(
            "json_unknown_event_field_is_malformed",
            400,
            Request::json(r#"{"events":[{"eventId":"u-1","tenantId":"t","type":"x","colour":"red"}]}"#),
        ),
        entry(
            "json_unknown_top_level_field_is_malformed",
            400,
            Request::json(r#"{"events":[],"extra":1}"#),
        ),
        entry("json_trailing_garbage_is_malformed", 400, Request::json(r#"{"events":[]} x"#)),
        entry("json_empty_body_is_malformed", 400, Request::json("")),
        entry("json_top_level_array_is_malformed", 400, Request::json("[]")),
        entry(
            "json_wrong_field_type_is_malformed",
            400,
            Request::json(r#"{"events":[{"eventId":5,"tenantId":"t","type":"x"}]}"#),
        ),
        entry(
            "json_attribute_value_not_a_string_is_malformed",
            400,
            Request::json(r#"{"events":[{"eventId":"a-1","tenantId":"t","type":"x","attributes":{"n":1}}]}"#),
        ),
        entry(
            "json_null_event_in_events_is_malformed",
            400,
            Request::json(r#"{"events":[null]}"#),
        ),
        entry(
            "json_invalid_utf8_is_malformed",
            400,
            Request::json(&b"{\"events\":[{\"eventId\":\"\xff\",\"tenantId\":\"t\",\"type\":\"x\"}]}"[..]),
        ),
        // --- limits ---------------------------------------------------------
        entry(
            "more_than_10000_events",
            413,
            protobuf_batch(valid_events("many", MAX_EVENTS + 1)),
        ),
        entry(
            "body_over_8_mib_declared",
            413,
            Request::protobuf(garbage(MAX_BODY_BYTES + 1)),
        ),
        entry(
            "body_over_8_mib_chunked",
            413,
            Request::protobuf(garbage(MAX_BODY_BYTES + 1)).chunked(),
        ),
        // --- media types ----------------------------------------------------
        entry(
            "text_plain_is_unsupported",
            415,
            Request::post("/v1/events")
                .content_type("text/plain")
                .body("hello"),
        ),
        entry(
            "missing_content_type_is_unsupported",
            415,
            Request::post("/v1/events").body(encode(&batch(valid_events("m", 1)))),
        ),
        entry(
            "json_lookalike_media_type_is_unsupported",
            415,
            Request::post("/v1/events")
                .content_type("application/jsonx")
                .body("{}"),
        ),
        // --- routes and methods -------------------------------------------
        entry("unknown_route", 404, Request::get("/nope")),
        entry("unknown_route_near_events", 404, Request::protobuf(Vec::new()).at("/v1/events/x")),
        entry("get_events_is_not_allowed", 405, Request::get("/v1/events")),
        entry("put_events_is_not_allowed", 405, Request::new("PUT", "/v1/events").body("{}")),
        entry("post_healthz_is_not_allowed", 405, Request::post("/healthz")),
        entry("head_healthz_is_not_allowed", 405, Request::new("HEAD", "/healthz")),
        entry("delete_readyz_is_not_allowed", 405, Request::new("DELETE", "/readyz")),
        entry("post_metrics_is_not_allowed", 405, Request::post("/metrics")),
        entry("healthz", 200, Request::get("/healthz")),
        entry("readyz", 200, Request::get("/readyz")),
        // --- Kafka unreachable ----------------------------------------------
        kafka_down("kafka_down_valid_batch", 503, protobuf_batch(valid_events("down", 2))),
        kafka_down(
            "kafka_down_json_batch",
            503,
            Request::json(valid_json).accept(JSON),
        ),
        kafka_down(
            "kafka_down_batch_with_nothing_to_publish",
            200,
            protobuf_batch([event("down-r").kind("")]).accept(JSON),
        ),
        kafka_down("kafka_down_readyz", 503, Request::get("/readyz")),
        kafka_down("kafka_down_healthz", 200, Request::get("/healthz")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn entry_names_are_unique() {
        let entries = corpus();
        let names: BTreeSet<_> = entries.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), entries.len());
    }

    #[test]
    fn the_corpus_covers_good_and_bad_requests() {
        let entries = corpus();
        assert!(entries.iter().filter(|e| e.status == 200).count() >= 25);
        assert!(entries.iter().filter(|e| e.status != 200).count() >= 25);
    }
}

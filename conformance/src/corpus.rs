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
use crate::wire::{self, WireType, GROUP_NESTING_LIMIT, MAX_FIELD_NUMBER};

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

/// A body of one event (`tenant-w`, `click`) with id `event_id`, then
/// `extra` wire bytes inside the event.
fn event_then(event_id: &str, extra: impl AsRef<[u8]>) -> Request {
    Request::protobuf(wire::batch_of([wire::event_then(event_id, extra.as_ref())]))
}

/// Wire bytes built by `build`.
fn bytes(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    build(&mut out);
    out
}

/// Protobuf bodies at the edges of the wire format: a known field with
/// the wrong wire type is an unknown field, unknown fields and groups are
/// skipped, broken framing is malformed ("Protobuf bodies: unknown fields
/// and wire types" in the contract).
fn protobuf_wire_format() -> Vec<Entry> {
    use WireType::*;
    let tenant = |out: &mut Vec<u8>| wire::bytes_field(out, 2, b"tenant-w");
    let kind = |out: &mut Vec<u8>| wire::bytes_field(out, 3, b"click");
    vec![
        // --- a known field with the wrong wire type: an unknown field ----
        entry(
            "protobuf_event_id_as_a_varint_is_an_unknown_field",
            200,
            Request::protobuf(wire::batch_of([bytes(|out| {
                wire::varint_field(out, 1, 5);
                tenant(out);
                kind(out);
            })]))
            .accept(JSON),
        ),
        entry(
            "protobuf_tenant_id_as_fixed64_is_an_unknown_field",
            200,
            Request::protobuf(wire::batch_of([bytes(|out| {
                wire::bytes_field(out, 1, b"wt-2");
                wire::key(out, 2, Fixed64);
                out.extend([7; 8]);
                kind(out);
            })]))
            .accept(JSON),
        ),
        entry(
            "protobuf_type_as_fixed32_is_an_unknown_field",
            200,
            Request::protobuf(wire::batch_of([bytes(|out| {
                wire::bytes_field(out, 1, b"wt-3");
                tenant(out);
                wire::key(out, 3, Fixed32);
                out.extend([7; 4]);
            })]))
            .accept(JSON),
        ),
        entry(
            "protobuf_occurred_at_as_bytes_is_an_unknown_field",
            200,
            event_then("wt-4", bytes(|out| wire::bytes_field(out, 4, b"\x01"))),
        ),
        entry(
            "protobuf_attributes_as_a_varint_is_an_unknown_field",
            200,
            event_then("wt-5", bytes(|out| wire::varint_field(out, 5, 1))),
        ),
        entry(
            "protobuf_payload_as_a_group_is_an_unknown_field",
            200,
            event_then(
                "wt-6",
                bytes(|out| wire::group(out, 6, &bytes(|g| wire::varint_field(g, 1, 1)), 6)),
            ),
        ),
        entry(
            "protobuf_events_as_fixed64_is_an_unknown_field",
            200,
            Request::protobuf(bytes(|out| {
                wire::key(out, 1, Fixed64);
                out.extend([7; 8]);
                out.extend(wire::batch_of([wire::event_then("wt-1", &[])]));
            })),
        ),
        entry(
            "protobuf_map_entry_key_as_a_varint_is_skipped",
            200,
            event_then(
                "wt-k",
                bytes(|out| {
                    let entry = bytes(|e| {
                        wire::varint_field(e, 1, 5);
                        wire::bytes_field(e, 2, b"value of the empty key");
                    });
                    wire::bytes_field(out, 5, &entry);
                }),
            ),
        ),
        // --- groups --------------------------------------------------------
        entry(
            "protobuf_unknown_group_is_skipped_whole",
            200,
            Request::protobuf(bytes(|out| {
                let contents = bytes(|g| {
                    wire::bytes_field(g, 1, b"not an event");
                    wire::varint_field(g, 2, 3);
                });
                wire::group(out, 99, &contents, 99);
                out.extend(wire::batch_of([wire::event_then(
                    "g-1",
                    &bytes(|e| wire::group(e, 98, &contents, 98)),
                )]));
            })),
        ),
        entry(
            "protobuf_nested_unknown_groups_are_skipped_whole",
            200,
            event_then(
                "g-2",
                bytes(|out| {
                    let inner = bytes(|g| {
                        wire::group(g, 101, &bytes(|h| wire::varint_field(h, 1, 1)), 101)
                    });
                    let middle = bytes(|g| wire::group(g, 100, &inner, 100));
                    wire::group(out, 99, &middle, 99);
                }),
            ),
        ),
        entry(
            "protobuf_groups_nested_10001_deep_are_skipped",
            200,
            Request::protobuf(wire::nested_groups(1, GROUP_NESTING_LIMIT)),
        ),
        entry(
            "protobuf_groups_nested_10002_deep_are_malformed",
            400,
            Request::protobuf(wire::nested_groups(1, GROUP_NESTING_LIMIT + 1)),
        ),
        entry(
            "protobuf_inside_a_group_field_numbers_may_reach_2_pow_31_minus_1",
            200,
            event_then(
                "g-3",
                bytes(|out| {
                    let contents = bytes(|g| wire::varint_field(g, (1 << 31) - 1, 1));
                    wire::group(out, 99, &contents, 99);
                }),
            ),
        ),
        entry(
            "protobuf_stray_end_group_is_malformed",
            400,
            Request::protobuf(bytes(|out| {
                out.extend(wire::batch_of([wire::event_then("e-1", &[])]));
                wire::key(out, 99, EndGroup);
            })),
        ),
        entry(
            "protobuf_stray_end_group_inside_an_event_is_malformed",
            400,
            event_then("e-2", bytes(|out| wire::key(out, 1, EndGroup))),
        ),
        entry(
            "protobuf_group_closed_by_another_field_number_is_malformed",
            400,
            event_then("e-3", bytes(|out| wire::group(out, 99, &[], 98))),
        ),
        entry(
            "protobuf_group_left_open_is_malformed",
            400,
            event_then("e-4", bytes(|out| wire::key(out, 99, StartGroup))),
        ),
        // --- framing errors ------------------------------------------------
        entry(
            "protobuf_wire_type_6_is_malformed",
            400,
            event_then(
                "e-5",
                bytes(|out| {
                    wire::key(out, 99, Reserved6);
                    out.push(0);
                }),
            ),
        ),
        entry(
            "protobuf_wire_type_7_on_a_known_field_is_malformed",
            400,
            event_then(
                "e-6",
                bytes(|out| {
                    wire::key(out, 1, Reserved7);
                    out.push(0);
                }),
            ),
        ),
        entry(
            "protobuf_field_number_0_is_malformed",
            400,
            event_then("e-7", bytes(|out| wire::varint_field(out, 0, 1))),
        ),
        entry(
            "protobuf_largest_field_number_is_an_unknown_field",
            200,
            event_then(
                "n-1",
                bytes(|out| wire::bytes_field(out, MAX_FIELD_NUMBER, b"far future")),
            ),
        ),
        entry(
            "protobuf_field_number_2_pow_29_is_malformed",
            400,
            event_then(
                "e-8",
                bytes(|out| wire::varint_field(out, MAX_FIELD_NUMBER + 1, 1)),
            ),
        ),
        entry(
            "protobuf_int64_as_a_10_byte_varint_keeps_its_low_64_bits",
            200,
            event_then(
                "v-1",
                bytes(|out| {
                    wire::key(out, 4, Varint);
                    wire::varint_padded(out, 5, 10);
                }),
            ),
        ),
        entry(
            "protobuf_int64_as_an_11_byte_varint_is_malformed",
            400,
            event_then(
                "e-9",
                bytes(|out| {
                    wire::key(out, 4, Varint);
                    wire::varint_padded(out, 5, 11);
                }),
            ),
        ),
        // --- UTF-8 ---------------------------------------------------------
        entry(
            "protobuf_invalid_utf8_in_an_attribute_key_is_malformed",
            400,
            event_then(
                "e-10",
                bytes(|out| wire::bytes_field(out, 5, &wire::map_entry(b"\xed\xa0\x80", b"v"))),
            ),
        ),
        entry(
            "protobuf_invalid_utf8_in_an_unknown_field_is_ignored",
            200,
            event_then("u-1", bytes(|out| wire::bytes_field(out, 99, b"\xff\xfe"))),
        ),
    ]
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
        entry(
            "json_int64_is_read_exactly_not_through_a_float",
            200,
            Request::json(
                r#"{"events":[{"eventId":"x-1","tenantId":"t","type":"x","occurredAtUnixMs":9223372036854775807.0},{"eventId":"x-2","tenantId":"t","type":"x","occurredAtUnixMs":"92233720368547758.07e2"},{"eventId":"x-3","tenantId":"t","type":"x","occurredAtUnixMs":9007199254740993.0}]}"#,
            ),
        ),
        entry(
            "json_int64_below_the_minimum_is_malformed",
            400,
            Request::json(
                r#"{"events":[{"eventId":"o-3","tenantId":"t","type":"x","occurredAtUnixMs":-9223372036854775809}]}"#,
            ),
        ),
        entry(
            "json_number_with_an_empty_exponent_is_malformed",
            400,
            Request::json(
                r#"{"events":[{"eventId":"o-4","tenantId":"t","type":"x","occurredAtUnixMs":1e}]}"#,
            ),
        ),
        entry(
            "json_base64_line_breaks_are_ignored",
            200,
            Request::json(
                r#"{"events":[{"eventId":"b-7","tenantId":"t","type":"x","payload":"aGVsbG8\r\n"},{"eventId":"b-8","tenantId":"t","type":"x","payload":"aGk=\n\n\n\n"}]}"#,
            )
            .accept(JSON),
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
    .into_iter()
    .chain(protobuf_wire_format())
    .collect()
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

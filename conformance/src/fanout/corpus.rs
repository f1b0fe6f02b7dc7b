//! HTTP requests both fan-out twins must answer identically — status,
//! `Content-Type`, `Retry-After`, `Allow` and body bytes — in order, to
//! services in local mode. Every request is complete in itself: notify
//! requests name their id, so the twins' answers do not depend on chance.
//!
//! A valid upgrade is not in the corpus (the HTTP client stops at a 101);
//! the WebSocket side is compared frame by frame in `tests/fanout.rs`.

use super::{
    many_topics, notification, notification_of_size, notify, subscribe_path, upgrade_request,
    MAX_ID_BYTES, MAX_NOTIFY_BYTES, MAX_TOPICS, MAX_TOPIC_BYTES, NOTIFY, SUBSCRIBE,
};
use crate::http::Request;
use crate::parity::{step, Step};

/// A body with whitespace, escapes and non-ASCII, to be passed on verbatim.
pub const RICH_BODY: &str = "{ \"text\" : \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\"\", \"n\" : 1.50e+2,\n\t\"list\" : [ true , null ], \"raw\" : \"é\" }";

/// The corpus, in the order it must be sent.
pub fn corpus() -> Vec<Step> {
    let full = |id: &str| {
        notification("c-news", RICH_BODY)
            .id(id)
            .published_at(1_764_000_000_000_000)
    };
    vec![
        // --- before the upgrade --------------------------------------------
        step(
            "subscribe_without_upgrade",
            426,
            Request::get(&subscribe_path("a")),
        ),
        step(
            "subscribe_upgrade_to_h2c",
            426,
            Request::get(&subscribe_path("a"))
                .header("Upgrade", "h2c")
                .header("Connection", "Upgrade"),
        ),
        step(
            "subscribe_without_upgrade_and_bad_topics",
            426,
            Request::get(&subscribe_path("a!")),
        ),
        step("subscribe_missing_topics", 400, upgrade_request(SUBSCRIBE)),
        step(
            "subscribe_empty_topics",
            400,
            upgrade_request(&subscribe_path("")),
        ),
        step(
            "subscribe_empty_name_in_list",
            400,
            upgrade_request(&subscribe_path("a,,b")),
        ),
        step(
            "subscribe_invalid_character",
            400,
            upgrade_request(&subscribe_path("a!b")),
        ),
        step(
            "subscribe_non_ascii_name",
            400,
            upgrade_request(&subscribe_path("caf%C3%A9")),
        ),
        step(
            "subscribe_too_many_topics",
            400,
            upgrade_request(&subscribe_path(&many_topics(MAX_TOPICS + 1))),
        ),
        step(
            "subscribe_name_too_long",
            400,
            upgrade_request(&subscribe_path(&"n".repeat(MAX_TOPIC_BYTES + 1))),
        ),
        step("subscribe_post", 405, Request::post(SUBSCRIBE)),
        // --- notify ----------------------------------------------------------
        step("notify_every_field", 202, full("c-1").request()),
        step(
            "notify_null_body",
            202,
            notification("c-news", "null").id("c-2").request(),
        ),
        step(
            "notify_charset_parameter",
            202,
            Request::post(NOTIFY)
                .content_type("application/json; charset=utf-8")
                .body(full("c-3").json()),
        ),
        step(
            "notify_id_needing_escapes",
            202,
            full("c-\"4\"\\\u{1}\t\u{2028}<é>").request(),
        ),
        step(
            "notify_largest_id",
            202,
            full(&"i".repeat(MAX_ID_BYTES)).request(),
        ),
        step(
            "notify_largest_body",
            202,
            notification_of_size("c-news", "c-5", MAX_NOTIFY_BYTES).request(),
        ),
        step("notify_invalid_json", 400, notify(r#"{"topic":"a","#)),
        step("notify_array", 400, notify(r#"[{"topic":"a","body":1}]"#)),
        step("notify_missing_topic", 400, notify(r#"{"body":1}"#)),
        step("notify_missing_body", 400, notify(r#"{"topic":"a"}"#)),
        step(
            "notify_invalid_topic",
            400,
            notify(r#"{"topic":"a b","body":1}"#),
        ),
        step(
            "notify_unknown_field",
            400,
            notify(r#"{"topic":"a","body":1,"extra":true}"#),
        ),
        step(
            "notify_id_too_long",
            400,
            full(&"i".repeat(MAX_ID_BYTES + 1)).request(),
        ),
        step(
            "notify_negative_published_at",
            400,
            notify(r#"{"topic":"a","body":1,"published_at_unix_us":-1}"#),
        ),
        step(
            "notify_too_large",
            413,
            notification_of_size("c-news", "c-6", MAX_NOTIFY_BYTES + 1).request(),
        ),
        step(
            "notify_text_plain",
            415,
            Request::post(NOTIFY)
                .content_type("text/plain")
                .body(full("c-7").json()),
        ),
        step(
            "notify_without_content_type",
            415,
            Request::post(NOTIFY).body(full("c-8").json()),
        ),
        step("notify_get", 405, Request::get(NOTIFY)),
        // --- other routes ----------------------------------------------------
        step("healthz", 200, Request::get("/healthz")),
        step("readyz", 200, Request::get("/readyz")),
        step("healthz_post", 405, Request::post("/healthz")),
        step("metrics_delete", 405, Request::delete("/metrics")),
        step("unknown_route", 404, Request::get("/v1/nope")),
        step("root", 404, Request::get("/")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_unique_and_cover_good_and_bad_requests() {
        crate::parity::assert_corpus_shape(&corpus(), 5, 15);
    }

    #[test]
    fn sized_notifications_have_the_exact_length() {
        let n = notification_of_size("t", "id", MAX_NOTIFY_BYTES);
        assert_eq!(n.request().body.len(), MAX_NOTIFY_BYTES);
    }
}

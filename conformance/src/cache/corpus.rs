//! Requests both session caches must answer identically — status,
//! `Content-Type`, `Content-Length` of bodiless answers, `Allow` and body
//! bytes — sent in order to services started with [`flags`], so earlier
//! PUTs set up later GETs.
//!
//! Each step also names the status the contract prescribes, so two twins
//! that agree on a wrong answer are still caught.

use super::{
    delete, get, head, put, MAX_ID_BYTES, MAX_TTL_SECS, MAX_VALUE_BYTES, TTL_HEADER, UNRESERVED,
};
use crate::http::Request;
use crate::parity::step;
pub use crate::parity::Step;

/// Shards of the corpus's services.
pub const SHARDS: u64 = 4;
/// Capacity of the corpus's services: 2048 bytes per shard, so a maximal
/// value is refused as `entry_too_large`.
pub const CAPACITY_BYTES: u64 = 8192;

/// The flags the corpus's services run with.
pub fn flags() -> [(&'static str, u64); 2] {
    [("--shards", SHARDS), ("--capacity-bytes", CAPACITY_BYTES)]
}

fn with_ttl(request: Request, ttl: &str) -> Request {
    request.header(TTL_HEADER, ttl)
}

/// The corpus, in the order it must be sent.
pub fn corpus() -> Vec<Step> {
    let long_id = "i".repeat(MAX_ID_BYTES);
    let too_long_id = "i".repeat(MAX_ID_BYTES + 1);
    vec![
        // --- storing and reading back --------------------------------------
        step(
            "put_text",
            204,
            put("c-a", "hello").content_type("text/plain; charset=utf-8"),
        ),
        step("get_text", 200, get("c-a")),
        step("head_text", 200, head("c-a")),
        step(
            "put_binary_without_content_type",
            204,
            put("c-b", b"\x00\x01\xfe\xff".to_vec()),
        ),
        step("get_binary_as_octet_stream", 200, get("c-b")),
        step("head_binary", 200, head("c-b")),
        step(
            "put_replacing",
            204,
            put("c-a", r#"{"v":2}"#).content_type("application/json"),
        ),
        step("get_replaced", 200, get("c-a")),
        step(
            "put_empty_value",
            204,
            put("c-empty", Vec::new()).content_type("text/plain"),
        ),
        step("get_empty_value", 200, get("c-empty")),
        step("head_empty_value", 200, head("c-empty")),
        step(
            "put_chunked",
            204,
            put("c-chunked", vec![b'c'; 700]).chunked(),
        ),
        step("get_chunked", 200, get("c-chunked")),
        step("delete_hit", 204, delete("c-b")),
        step("get_deleted", 404, get("c-b")),
        step("head_deleted", 404, head("c-b")),
        step("delete_missing", 404, delete("c-b")),
        // --- TTL ----------------------------------------------------------
        step("ttl_one", 204, with_ttl(put("c-ttl", "t"), "1")),
        step(
            "ttl_max",
            204,
            with_ttl(put("c-ttl", "t"), &MAX_TTL_SECS.to_string()),
        ),
        step("ttl_zero", 400, with_ttl(put("c-ttl", "t"), "0")),
        step("ttl_over_max", 400, with_ttl(put("c-ttl", "t"), "604801")),
        step("ttl_signed", 400, with_ttl(put("c-ttl", "t"), "+1")),
        step("ttl_negative", 400, with_ttl(put("c-ttl", "t"), "-1")),
        step("ttl_fraction", 400, with_ttl(put("c-ttl", "t"), "1.5")),
        step("ttl_word", 400, with_ttl(put("c-ttl", "t"), "abc")),
        step("ttl_empty", 400, with_ttl(put("c-ttl", "t"), "")),
        step(
            "ttl_overflow",
            400,
            with_ttl(put("c-ttl", "t"), "18446744073709551617"),
        ),
        // --- ids ----------------------------------------------------------
        step("id_max_length", 204, put(&long_id, "x")),
        step("get_id_max_length", 200, get(&long_id)),
        step("id_too_long", 400, put(&too_long_id, "x")),
        step("id_empty", 400, get("")),
        step("id_percent_encoded_space", 400, get("a%20b")),
        step("id_percent_encoded_slash", 400, delete("a%2Fb")),
        step("id_slash", 400, get("a/b")),
        step("id_non_ascii", 400, put("caf\u{e9}", "x")),
        step("id_sub_delim", 400, put("a+b", "x")),
        step("head_bad_id", 400, head("a%20b")),
        step("id_every_unreserved_byte", 204, put(UNRESERVED, "u")),
        step("get_every_unreserved_byte", 200, get(UNRESERVED)),
        // --- order of checks ------------------------------------------------
        step(
            "method_before_id",
            405,
            Request::post("/v1/sessions/bad%20id"),
        ),
        step("id_before_ttl", 400, with_ttl(put("bad%20id", "x"), "0")),
        step(
            "ttl_before_size",
            400,
            with_ttl(put("c-order", vec![0; MAX_VALUE_BYTES + 1]), "0"),
        ),
        step(
            "size_before_entry",
            413,
            put("c-order", vec![0; MAX_VALUE_BYTES + 1]),
        ),
        step(
            "entry_too_large",
            413,
            put("c-order", vec![0; MAX_VALUE_BYTES]),
        ),
        step("entry_too_large_left_the_id_empty", 404, get("c-order")),
        // --- routes and methods -------------------------------------------
        step(
            "post_session",
            405,
            Request::post("/v1/sessions/c-a").body("x"),
        ),
        step(
            "patch_session",
            405,
            Request::new("PATCH", "/v1/sessions/c-a"),
        ),
        step("healthz", 200, Request::get("/healthz")),
        step("readyz", 200, Request::get("/readyz")),
        step("post_healthz", 405, Request::post("/healthz")),
        step("put_readyz", 405, Request::put("/readyz")),
        step("head_healthz", 405, Request::head("/healthz")),
        step("delete_metrics", 405, Request::delete("/metrics")),
        step("root", 404, Request::get("/")),
        step("sessions_without_slash", 404, Request::get("/v1/sessions")),
        step("other_version", 404, Request::get("/v2/sessions/c-a")),
        step("healthz_with_slash", 404, Request::get("/healthz/")),
        step("delete_unknown_route", 404, Request::delete("/nope")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_unique_and_cover_good_and_bad_requests() {
        crate::parity::assert_corpus_shape(&corpus(), 20, 20);
    }
}

//! Decoding and validating a `POST /v1/notify` body.
//!
//! The body is one JSON object with exactly the fields `id` (optional),
//! `topic`, `published_at_unix_us` (optional) and `body`; anything else is
//! `400 invalid_notification`. `body` is kept as the exact bytes of its JSON
//! value ([`RawValue`] borrows them from the request), so the frame carries
//! it verbatim. Settled where the contract is silent (the Go twin matches):
//! - `null` is a value only for `body`; `"id":null`, `"topic":null` or
//!   `"published_at_unix_us":null` are invalid, not absent;
//! - `published_at_unix_us` must be written as a plain integer token
//!   (`0` or `[1-9][0-9]*`: no sign, fraction, exponent or leading zero)
//!   no larger than 9223372036854775807 (int64's maximum);
//! - `id` is 1–128 bytes after JSON unescaping;
//! - field names match exactly (Go's encoding/json would also accept
//!   `"Topic"`; the Go twin must refuse it as unknown);
//! - a repeated field keeps its last value (the contract leaves it open;
//!   the Go twin does the same);
//! - the request must be valid UTF-8 JSON (a lone surrogate escape such as
//!   `"\ud800"` in a string is refused).

use std::collections::HashMap;

use serde_json::value::RawValue;

use crate::frame;
use crate::topics::is_valid_name;
use bytes::Bytes;

/// The longest `id`, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// A valid notification, borrowing from the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification<'a> {
    pub id: String,
    pub topic: String,
    pub published_at_unix_us: u64,
    /// The exact bytes of the `body` value.
    pub body: &'a str,
}

impl Notification<'_> {
    /// The notification frame, built once for every subscriber.
    pub fn frame(&self) -> Bytes {
        frame::notification(&self.id, &self.topic, self.published_at_unix_us, self.body)
    }
}

/// The body is not a valid notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid notification: {0}")]
pub struct InvalidNotification(pub String);

/// Decodes `body`. `received_at_unix_us` stands in for an absent
/// `published_at_unix_us`; a random id for an absent `id`.
pub fn decode(
    body: &[u8],
    received_at_unix_us: u64,
) -> Result<Notification<'_>, InvalidNotification> {
    let invalid = |why: &str| InvalidNotification(why.to_owned());
    // Members by name, each value as its exact bytes. A repeated member
    // keeps its last value, as in the Go twin (outside the contract).
    let members: HashMap<String, &RawValue> =
        serde_json::from_slice(body).map_err(|e| InvalidNotification(e.to_string()))?;
    if let Some(name) = members.keys().find(|name| !FIELDS.contains(&name.as_str())) {
        return Err(InvalidNotification(format!("unknown field {name:?}")));
    }
    let string = |raw: &RawValue| serde_json::from_str::<String>(raw.get()).ok();
    let topic = members
        .get("topic")
        .and_then(|raw| string(raw))
        .filter(|topic| is_valid_name(topic))
        .ok_or_else(|| invalid("topic is missing or not a valid name"))?;
    let body = members
        .get("body")
        .ok_or_else(|| invalid("body is missing"))?;
    let id = match members.get("id") {
        Some(raw) => string(raw)
            .filter(|id| (1..=MAX_ID_BYTES).contains(&id.len()))
            .ok_or_else(|| invalid("id is not a string of 1-128 bytes"))?,
        None => random_id(),
    };
    let published_at_unix_us = match members.get("published_at_unix_us") {
        Some(raw) => plain_integer(raw.get())
            .ok_or_else(|| invalid("published_at_unix_us is not an integer in 0..=2^63-1"))?,
        None => received_at_unix_us,
    };
    Ok(Notification {
        id,
        topic,
        published_at_unix_us,
        body: body.get(),
    })
}

/// The members a notification may have.
const FIELDS: [&str; 4] = ["id", "topic", "published_at_unix_us", "body"];

/// `0` or `[1-9][0-9]*`, at most `i64::MAX`.
fn plain_integer(token: &str) -> Option<u64> {
    let bytes = token.as_bytes();
    let plain = !bytes.is_empty()
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || bytes.len() == 1);
    if !plain {
        return None;
    }
    token.parse::<u64>().ok().filter(|&n| n <= i64::MAX as u64)
}

/// 32 lower-case hex characters from a random 128-bit number.
pub fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Microseconds since the Unix epoch, by the wall clock.
pub fn now_unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000;

    fn ok(body: &str) -> Notification<'_> {
        decode(body.as_bytes(), NOW).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    #[test]
    fn a_full_notification_decodes() {
        let n = ok(
            r#"{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}"#,
        );
        assert_eq!(n.id, "n-1");
        assert_eq!(n.topic, "news");
        assert_eq!(n.published_at_unix_us, 1_764_000_000_000_000);
        assert_eq!(n.body, r#"{"any":"json"}"#);
    }

    #[test]
    fn absent_id_becomes_32_lower_case_hex_characters() {
        let a = ok(r#"{"topic":"t","body":1}"#);
        let b = ok(r#"{"topic":"t","body":1}"#);
        for id in [&a.id, &b.id] {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        }
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn absent_timestamp_is_the_time_of_receipt() {
        assert_eq!(ok(r#"{"topic":"t","body":1}"#).published_at_unix_us, NOW);
    }

    #[test]
    fn body_keeps_its_exact_bytes_including_whitespace_and_escapes() {
        for body in [
            "null",
            "0",
            "-1.50e+3",
            "\"\\u00e9\\n\u{2028}\"",
            "[ 1 ,2 ]",
            "{ \"b\" : 1 , \"a\" : [true,false,null] }",
        ] {
            let request = format!("{{\"topic\":\"t\",\"body\": {body} }}");
            assert_eq!(ok(&request).body, body, "{request}");
        }
    }

    #[test]
    fn escaped_strings_are_unescaped_before_validation() {
        let n = ok(r#"{"id":"\u0061\"","topic":"\u006e","body":0}"#);
        assert_eq!(n.id, "a\"");
        assert_eq!(n.topic, "n");
    }

    #[test]
    fn validation_table() {
        let long_id = "x".repeat(128);
        let too_long_id = "x".repeat(129);
        let accepted = [
            format!(r#"{{"id":"{long_id}","topic":"t","body":0}}"#),
            r#"{"id":"é","topic":"t","body":0}"#.to_owned(),
            r#"{"topic":"t","published_at_unix_us":0,"body":0}"#.to_owned(),
            r#"{"topic":"t","published_at_unix_us":9223372036854775807,"body":0}"#.to_owned(),
            r#" {"body":null,"topic":"a.B_c-1"} "#.to_owned(),
        ];
        for body in &accepted {
            ok(body);
        }
        let refused = [
            "",
            "null",
            "[]",
            r#"["n-1","t",0,0]"#,
            "\"x\"",
            "{",
            r#"{"topic":"t","body":0} x"#,
            r#"{"topic":"t","body":0}{}"#,
            r#"{"body":0}"#,
            r#"{"topic":"t"}"#,
            r#"{"topic":null,"body":0}"#,
            r#"{"topic":"","body":0}"#,
            r#"{"topic":"a b","body":0}"#,
            r#"{"topic":1,"body":0}"#,
            &format!(r#"{{"topic":"{}","body":0}}"#, "t".repeat(65)),
            r#"{"id":"","topic":"t","body":0}"#,
            &format!(r#"{{"id":"{too_long_id}","topic":"t","body":0}}"#),
            r#"{"id":null,"topic":"t","body":0}"#,
            r#"{"id":1,"topic":"t","body":0}"#,
            r#"{"topic":"t","published_at_unix_us":null,"body":0}"#,
            r#"{"topic":"t","published_at_unix_us":-1,"body":0}"#,
            r#"{"topic":"t","published_at_unix_us":-0,"body":0}"#,
            r#"{"topic":"t","published_at_unix_us":1.0,"body":0}"#,
            r#"{"topic":"t","published_at_unix_us":1e3,"body":0}"#,
            r#"{"topic":"t","published_at_unix_us":"1","body":0}"#,
            r#"{"topic":"t","published_at_unix_us":9223372036854775808,"body":0}"#,
            r#"{"topic":"t","body":0,"extra":1}"#,
            r#"{"Topic":"t","body":0}"#,
            r#"{"topic":"t","topic":"a b","body":0}"#,
            r#"{"id":"\ud800","topic":"t","body":0}"#,
            r#"{"topic":"t","body":01}"#,
            r#"{"topic":"t","body":[1,]}"#,
        ];
        for body in refused {
            assert!(
                decode(body.as_bytes(), NOW).is_err(),
                "{body:?} must be refused"
            );
        }
        assert!(decode(b"{\"topic\":\"t\",\"body\":\"\xff\"}", NOW).is_err());
    }

    #[test]
    fn a_repeated_field_keeps_its_last_value() {
        let n = ok(r#"{"topic":"a b","topic":"t","body":0,"body":[1]}"#);
        assert_eq!((n.topic.as_str(), n.body), ("t", "[1]"));
    }

    #[test]
    fn a_lone_surrogate_is_refused_in_kept_strings_but_a_body_passes_verbatim() {
        assert!(decode(br#"{"id":"\udc00","topic":"t","body":0}"#, NOW).is_err());
        assert_eq!(ok(r#"{"topic":"t","body":"\ud800"}"#).body, r#""\ud800""#);
    }

    #[test]
    fn deeply_nested_bodies_are_kept_verbatim() {
        let body = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let request = format!(r#"{{"topic":"t","body":{body}}}"#);
        let result = decode(request.as_bytes(), NOW);
        assert_eq!(result.map(|n| n.body.len()), Ok(2000));
    }

    #[test]
    fn frame_of_a_decoded_notification_embeds_the_body() {
        let n = ok(r#"{"id":"n-1","topic":"news","published_at_unix_us":5,"body": [1, 2] }"#);
        assert_eq!(
            n.frame(),
            r#"{"id":"n-1","topic":"news","published_at_unix_us":5,"body":[1, 2]}"#
        );
    }
}

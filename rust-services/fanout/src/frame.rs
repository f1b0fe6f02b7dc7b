//! The JSON payloads the server sends: notification and subscription frames.
//!
//! Both are written by hand, byte for byte as the contract spells them, with
//! the shared string escaper of `parallax_common::json`: serde_json would
//! agree on most inputs but not on U+2028/U+2029, and a notification's
//! `body` must not be re-encoded at all.

use bytes::Bytes;
use parallax_common::json;

use crate::topics::TopicSet;

/// `{"id":…,"topic":…,"published_at_unix_us":…,"body":…}` with `body`
/// copied verbatim. Built once per notification; every subscriber's queue
/// holds a clone of the same `Bytes` (a reference count, not a copy).
pub fn notification(id: &str, topic: &str, published_at_unix_us: u64, body: &str) -> Bytes {
    let mut out = String::with_capacity(64 + id.len() + topic.len() + body.len());
    out.push_str("{\"id\":");
    json::write_string(&mut out, id);
    out.push_str(",\"topic\":");
    json::write_string(&mut out, topic);
    out.push_str(",\"published_at_unix_us\":");
    out.push_str(&published_at_unix_us.to_string());
    out.push_str(",\"body\":");
    out.push_str(body);
    out.push('}');
    Bytes::from(out)
}

/// `{"op":"subscribed","topics":[…]}`: the connection's whole set, sorted.
pub fn subscribed(topics: &TopicSet) -> Bytes {
    let mut out = String::with_capacity(32 + topics.len() * 16);
    out.push_str("{\"op\":\"subscribed\",\"topics\":[");
    for (i, topic) in topics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_string(&mut out, topic);
    }
    out.push_str("]}");
    Bytes::from(out)
}

/// `{"id":…}`, the 202 answer of `POST /v1/notify`.
pub fn accepted(id: &str) -> String {
    let mut out = String::with_capacity(10 + id.len());
    out.push_str("{\"id\":");
    json::write_string(&mut out, id);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_frame_has_fixed_field_order_and_no_whitespace() {
        let frame = notification("n-1", "news", 1_764_000_000_000_000, r#"{"any":"json"}"#);
        assert_eq!(
            frame,
            r#"{"id":"n-1","topic":"news","published_at_unix_us":1764000000000000,"body":{"any":"json"}}"#
        );
    }

    #[test]
    fn notification_id_is_escaped_with_the_shared_rules() {
        let frame = notification("a\"\\\n\u{1}\u{2028}<é>", "t", 0, "null");
        assert_eq!(
            frame,
            "{\"id\":\"a\\\"\\\\\\n\\u0001\\u2028<é>\",\"topic\":\"t\",\"published_at_unix_us\":0,\"body\":null}"
        );
    }

    #[test]
    fn notification_body_is_copied_verbatim() {
        let body = "[1, 2.50,\t\"\\u00e9\u{2028}\" , {\"b\":1,\"a\":2}]";
        let frame = notification("x", "t", 7, body);
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(text.ends_with(&format!(",\"body\":{body}}}")), "{text}");
    }

    #[test]
    fn subscription_frame_lists_the_sorted_set() {
        let set = TopicSet::from_list(["b", "a", "B"]).unwrap();
        assert_eq!(
            subscribed(&set),
            r#"{"op":"subscribed","topics":["B","a","b"]}"#
        );
        assert_eq!(
            subscribed(&TopicSet::new()),
            r#"{"op":"subscribed","topics":[]}"#
        );
    }

    #[test]
    fn accepted_answer_escapes_the_id() {
        assert_eq!(accepted("n\"1"), r#"{"id":"n\"1"}"#);
    }
}

//! The notification fan-out contract (`docs/contract-fanout.md`): its
//! limits, error table, close codes, and the exact bytes of its frames.
//!
//! # Layout
//! - [`corpus`]: HTTP requests both twins must answer byte for byte alike.

pub mod corpus;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::contract::{ErrorAnswer, METHOD_NOT_ALLOWED, NO_SUCH_ROUTE};
use crate::http::Request;
use crate::parity::excerpt;
use crate::service::Service;
use crate::ws::Client;

/// Most topics a connection holds.
pub const MAX_TOPICS: usize = 64;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_BYTES: usize = 64;
/// Largest `POST /v1/notify` body.
pub const MAX_NOTIFY_BYTES: usize = 16_384;
/// Longest notification id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Largest client → server WebSocket message.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The subscription route.
pub const SUBSCRIBE: &str = "/v1/subscribe";
/// The notify route.
pub const NOTIFY: &str = "/v1/notify";

/// How long the suite waits for any frame or close it expects: generous,
/// since a busy machine runs both twins and their tests side by side.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(15);

/// WebSocket close codes of the contract.
pub mod close {
    /// SIGTERM/SIGINT, and a peer silent for two ping intervals.
    pub const GOING_AWAY: u16 = 1001;
    /// A binary frame, or a text frame that is not a valid op.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text frame that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message over 4096 bytes.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// A slow consumer, after `--drop-limit` drops in a row.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Every error answer of the contract's error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanoutError {
    InvalidTopics,
    InvalidNotification,
    NotFound,
    MethodNotAllowed,
    BodyTooLarge,
    UnsupportedMediaType,
    UpgradeRequired,
    KafkaUnavailable,
}

impl ErrorAnswer for FanoutError {
    fn status(self) -> u16 {
        match self {
            FanoutError::InvalidTopics | FanoutError::InvalidNotification => 400,
            FanoutError::NotFound => 404,
            FanoutError::MethodNotAllowed => 405,
            FanoutError::BodyTooLarge => 413,
            FanoutError::UnsupportedMediaType => 415,
            FanoutError::UpgradeRequired => 426,
            FanoutError::KafkaUnavailable => 503,
        }
    }

    fn code(self) -> &'static str {
        match self {
            FanoutError::InvalidTopics => "invalid_topics",
            FanoutError::InvalidNotification => "invalid_notification",
            FanoutError::NotFound => "not_found",
            FanoutError::MethodNotAllowed => "method_not_allowed",
            FanoutError::BodyTooLarge => "body_too_large",
            FanoutError::UnsupportedMediaType => "unsupported_media_type",
            FanoutError::UpgradeRequired => "upgrade_required",
            FanoutError::KafkaUnavailable => "kafka_unavailable",
        }
    }

    fn message(self) -> &'static str {
        match self {
            FanoutError::InvalidTopics => {
                "topics must be 1-64 names of 1-64 bytes of A-Z a-z 0-9 . _ -"
            }
            FanoutError::InvalidNotification => {
                "notification must be a JSON object with a valid topic and a body"
            }
            FanoutError::NotFound => NO_SUCH_ROUTE,
            FanoutError::MethodNotAllowed => METHOD_NOT_ALLOWED,
            FanoutError::BodyTooLarge => "request body exceeds 16384 bytes",
            FanoutError::UnsupportedMediaType => "Content-Type must be application/json",
            FanoutError::UpgradeRequired => "this route needs a WebSocket upgrade",
            FanoutError::KafkaUnavailable => {
                "Kafka did not acknowledge the notification; retry later"
            }
        }
    }

    /// `Retry-After: 1` on `kafka_unavailable`.
    fn retry_after(self) -> Option<&'static str> {
        (self == FanoutError::KafkaUnavailable).then_some("1")
    }
}

/// `/v1/subscribe?topics=<topics>`, the query sent as is.
pub fn subscribe_path(topics: &str) -> String {
    format!("{SUBSCRIBE}?topics={topics}")
}

/// `GET path` as a complete WebSocket upgrade request, for answers that
/// come before the upgrade (never send a valid one: the suite's HTTP client
/// does not speak WebSocket after a 101).
pub fn upgrade_request(path: &str) -> Request {
    Request::get(path)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "13")
}

/// `POST /v1/notify` with `Content-Type: application/json` and `body`.
pub fn notify(body: impl Into<Vec<u8>>) -> Request {
    Request::post(NOTIFY)
        .content_type(crate::contract::JSON)
        .body(body)
}

/// `t0,t1,…` — `n` distinct valid topic names.
pub fn many_topics(n: usize) -> String {
    (0..n)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A JSON string literal escaped by the shared rules of
/// `docs/contract-ingest.md` (Go's `encoding/json` without HTML escaping).
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The subscription frame for this set of topics (sorted by bytes,
/// duplicates removed): `{"op":"subscribed","topics":[…]}`.
pub fn subscription_frame<'a>(topics: impl IntoIterator<Item = &'a str>) -> String {
    let set: BTreeSet<&str> = topics.into_iter().filter(|t| !t.is_empty()).collect();
    format!(r#"{{"op":"subscribed","topics":{}}}"#, string_array(set))
}

/// A client op: `{"op":"<op>","topics":[…]}`.
pub fn op<'a>(op: &str, topics: impl IntoIterator<Item = &'a str>) -> String {
    format!(r#"{{"op":"{op}","topics":{}}}"#, string_array(topics))
}

fn string_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(json_string).collect();
    format!("[{}]", items.join(","))
}

/// The notification frame: `{"id":…,"topic":…,"published_at_unix_us":…,"body":…}`,
/// the body verbatim.
pub fn frame(id: &str, topic: &str, published_at_unix_us: u64, body: &str) -> String {
    format!(
        r#"{{"id":{},"topic":{},"published_at_unix_us":{published_at_unix_us},"body":{body}}}"#,
        json_string(id),
        json_string(topic)
    )
}

/// The `202` body: `{"id":"…"}`.
pub fn accepted(id: &str) -> String {
    format!(r#"{{"id":{}}}"#, json_string(id))
}

/// A notification to send; [`Notification::frame`] is what subscribers must
/// receive for it.
#[derive(Clone, Debug)]
pub struct Notification {
    pub id: Option<String>,
    pub topic: String,
    pub published_at_unix_us: Option<u64>,
    /// The body's JSON text, sent as is and expected verbatim in the frame.
    pub body: String,
}

/// A notification on `topic` with this body (JSON text), without id or
/// publication time.
pub fn notification(topic: &str, body: &str) -> Notification {
    Notification {
        id: None,
        topic: topic.to_owned(),
        published_at_unix_us: None,
        body: body.to_owned(),
    }
}

impl Notification {
    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }

    pub fn published_at(mut self, unix_us: u64) -> Self {
        self.published_at_unix_us = Some(unix_us);
        self
    }

    /// The request body. Its fields are in another order than the frame's
    /// and spaced out, so a frame is never the request body passed on.
    pub fn json(&self) -> String {
        let mut fields = vec![
            format!(r#""body": {}"#, self.body),
            format!(r#""topic": {}"#, json_string(&self.topic)),
        ];
        if let Some(us) = self.published_at_unix_us {
            fields.push(format!(r#""published_at_unix_us": {us}"#));
        }
        if let Some(id) = &self.id {
            fields.push(format!(r#""id": {}"#, json_string(id)));
        }
        format!("{{{}}}", fields.join(", "))
    }

    /// `POST /v1/notify` with [`json`](Self::json).
    pub fn request(&self) -> Request {
        notify(self.json())
    }

    /// The frame subscribers must receive.
    ///
    /// # Panics
    /// Without an id or a publication time (the server picks those).
    pub fn frame(&self) -> String {
        frame(
            self.id.as_deref().expect("a notification with an id"),
            &self.topic,
            self.published_at_unix_us
                .expect("a notification with a publication time"),
            &self.body,
        )
    }
}

/// A valid notification on `topic` with id `id` whose request body is
/// exactly `bytes` long (the body is a string of `x`).
pub fn notification_of_size(topic: &str, id: &str, bytes: usize) -> Notification {
    let base = notification(topic, r#""""#).id(id).published_at(1);
    let padding = bytes
        .checked_sub(base.json().len())
        .expect("room for the notification's fields");
    let body = format!(r#""{}""#, "x".repeat(padding));
    let sized = Notification { body, ..base };
    debug_assert_eq!(sized.json().len(), bytes);
    sized
}

/// Sends `notification` to `service` and asserts `202` with `{"id":"…"}`
/// (its own id, when it has one); returns the id.
#[track_caller]
pub fn publish(service: &Service, notification: &Notification) -> String {
    let response = service.send(&notification.request());
    assert_eq!(
        response.status,
        202,
        "notify {}: {}",
        excerpt(notification.json().as_bytes()),
        response.text()
    );
    let text = response.text();
    let id = text
        .strip_prefix(r#"{"id":""#)
        .and_then(|rest| rest.strip_suffix(r#""}"#))
        .unwrap_or_else(|| panic!("202 body {text:?} is not {{\"id\":\"…\"}}"));
    if let Some(sent) = &notification.id {
        assert_eq!(text, accepted(sent), "202 body");
        return sent.clone();
    }
    id.to_owned()
}

/// Opens a subscriber of `topics` (the query value) on `service` and
/// asserts the subscription frame lists them sorted, without duplicates.
#[track_caller]
pub fn subscriber(service: &Service, topics: &str) -> Client {
    let mut client = Client::open(service.addr(), &subscribe_path(topics));
    assert_frame(
        &mut client,
        &subscription_frame(topics.split(',')),
        "subscription frame",
    );
    client
}

/// Asserts the next frame `client` receives is exactly `expected`.
#[track_caller]
pub fn assert_frame(client: &mut Client, expected: &str, what: &str) {
    let frame = client.text(FRAME_DEADLINE);
    assert_eq!(
        String::from_utf8_lossy(&frame),
        expected,
        "{what}: frame bytes"
    );
}

/// Asserts the next frames `client` receives are those of `notifications`,
/// in order.
#[track_caller]
pub fn assert_frames(client: &mut Client, notifications: &[Notification], what: &str) {
    for (i, n) in notifications.iter().enumerate() {
        assert_frame(client, &n.frame(), &format!("{what}, notification {i}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_by_the_shared_rules() {
        assert_eq!(
            json_string("a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{2028}\u{2029}<>&é\u{7f}"),
            "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\\u2028\\u2029<>&é\u{7f}\""
        );
    }

    #[test]
    fn subscription_frames_are_sorted_by_bytes_without_duplicates() {
        assert_eq!(
            subscription_frame(["b", "a", "B", "b", "a-b"]),
            r#"{"op":"subscribed","topics":["B","a","a-b","b"]}"#
        );
        assert_eq!(subscription_frame([]), r#"{"op":"subscribed","topics":[]}"#);
    }

    #[test]
    fn frames_keep_the_field_order_and_the_body_verbatim() {
        let n = notification("news", "{ \"k\" : [1, 2] }")
            .id("n\"1")
            .published_at(7);
        assert_eq!(
            n.frame(),
            r#"{"id":"n\"1","topic":"news","published_at_unix_us":7,"body":{ "k" : [1, 2] }}"#
        );
        assert_eq!(
            n.json(),
            r#"{"body": { "k" : [1, 2] }, "topic": "news", "published_at_unix_us": 7, "id": "n\"1"}"#
        );
    }
}

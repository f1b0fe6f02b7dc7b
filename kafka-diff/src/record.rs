//! One Kafka record as the differ sees it: owned, detached from the consumer
//! (librdkafka's borrowed messages must not outlive the poll), and tagged
//! with the side it came from.

use rdkafka::message::{BorrowedMessage, Headers, Message};
use serde::Serialize;

/// The header both ingest twins set to the event's id: the join key.
pub const EVENT_ID_HEADER: &str = "event-id";

/// Which twin's topic a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Primary,
    Shadow,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Primary, Side::Shadow];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Shadow => "shadow",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Primary => Side::Shadow,
            Side::Shadow => Side::Primary,
        }
    }
}

/// An owned copy of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch as Kafka stored it (create or log-append
    /// time); informational only, the window runs on the differ's clock.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    /// In record order; a header without a value has an empty one.
    pub headers: Vec<(String, Vec<u8>)>,
    pub value: Vec<u8>,
}

impl Record {
    /// Copies what the comparison needs out of a consumed message.
    pub fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Record {
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            headers,
            value: message.payload().unwrap_or_default().to_vec(),
        }
    }

    /// The first `event-id` header as text, if there is one.
    pub fn event_id(&self) -> Option<String> {
        self.header(EVENT_ID_HEADER)
    }

    /// The first header called `name` as text, if there is one.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The record's join key under `join`; `value_message` decodes the
    /// value for [`JoinKey::ValueField`].
    pub fn join_key(&self, join: &JoinKey, value_message: Option<&str>) -> Option<String> {
        match join {
            JoinKey::Header(name) => self.header(name),
            JoinKey::ValueField(pointer) => {
                let value = match value_message {
                    Some(m) => parallax_compare::protobuf::to_json(m, &self.value)?,
                    None => serde_json::from_slice(&self.value).ok()?,
                };
                match value.pointer(pointer)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                }
            }
        }
    }
}

/// What pairs a primary record with a shadow one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinKey {
    /// The first header of this name (the ingest twins set `event-id`).
    Header(String),
    /// A field of the value, by JSON pointer (`/eventId`) into the value
    /// decoded as the differ's `value_message` (proto3 JSON), or into the
    /// value as JSON when no message is given.
    ValueField(String),
}

impl Default for JoinKey {
    fn default() -> Self {
        JoinKey::Header(EVENT_ID_HEADER.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: &[(&str, &str)], value: &[u8]) -> Record {
        Record {
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn a_join_key_is_a_header_or_a_field_of_the_value() {
        let r = record(
            &[("trace", "t1"), ("order-id", "o-7"), ("order-id", "o-8")],
            br#"{"order": {"id": 42}, "name": "x"}"#,
        );
        let header = |h: &str| JoinKey::Header(h.into());
        let field = |p: &str| JoinKey::ValueField(p.into());
        assert_eq!(
            r.join_key(&header("order-id"), None).as_deref(),
            Some("o-7")
        );
        assert_eq!(r.join_key(&header("event-id"), None), None);
        assert_eq!(r.join_key(&field("/order/id"), None).as_deref(), Some("42"));
        assert_eq!(r.join_key(&field("/name"), None).as_deref(), Some("x"));
        assert_eq!(r.join_key(&field("/missing"), None), None);
        // A value that is not the message (or not JSON) has no key.
        let event = "parallax.ingest.v1.Event";
        assert_eq!(r.join_key(&field("/eventId"), Some(event)), None);
    }

    #[test]
    fn a_protobuf_value_is_decoded_before_the_pointer() {
        // Event { event_id: "e-1" } encoded by hand: field 1, length 3.
        let r = record(&[], b"\x0a\x03e-1");
        let key = r.join_key(
            &JoinKey::ValueField("/eventId".into()),
            Some("parallax.ingest.v1.Event"),
        );
        assert_eq!(key.as_deref(), Some("e-1"));
    }
}

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
        self.headers
            .iter()
            .find(|(name, _)| name == EVENT_ID_HEADER)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

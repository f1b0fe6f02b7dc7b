//! Builders for the messages the suite sends, so a test says only what
//! matters to it: `event("e-1").tenant("")` is an event valid in every way
//! except its tenant.

use bytes::Bytes;
use prost::Message;

use crate::pb::{Event, EventBatch, IngestResponse, Rejection};

/// Tenant of events that do not name one.
pub const DEFAULT_TENANT: &str = "tenant-a";
/// Type of events that do not name one.
pub const DEFAULT_TYPE: &str = "page_view";
/// Occurrence time of events that do not name one.
pub const DEFAULT_OCCURRED_AT_UNIX_MS: i64 = 1_700_000_000_000;

/// A valid event with id `event_id`, ready to be made invalid in one way.
pub fn event(event_id: &str) -> EventBuilder {
    EventBuilder(Event {
        event_id: event_id.to_owned(),
        tenant_id: DEFAULT_TENANT.to_owned(),
        r#type: DEFAULT_TYPE.to_owned(),
        occurred_at_unix_ms: DEFAULT_OCCURRED_AT_UNIX_MS,
        ..Event::default()
    })
}

/// `n` valid events with ids `<prefix>-0` … `<prefix>-<n-1>`.
pub fn valid_events(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| event(&format!("{prefix}-{i}")).build())
        .collect()
}

/// Builds an [`Event`]; see [`event`].
#[derive(Clone, Debug)]
pub struct EventBuilder(Event);

impl EventBuilder {
    pub fn event_id(mut self, event_id: &str) -> Self {
        self.0.event_id = event_id.to_owned();
        self
    }

    pub fn tenant(mut self, tenant_id: &str) -> Self {
        self.0.tenant_id = tenant_id.to_owned();
        self
    }

    /// The event's `type` field.
    pub fn kind(mut self, kind: &str) -> Self {
        self.0.r#type = kind.to_owned();
        self
    }

    pub fn occurred_at_unix_ms(mut self, ms: i64) -> Self {
        self.0.occurred_at_unix_ms = ms;
        self
    }

    pub fn attribute(mut self, key: &str, value: &str) -> Self {
        self.0.attributes.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn payload(mut self, payload: impl Into<Bytes>) -> Self {
        self.0.payload = payload.into();
        self
    }

    pub fn build(self) -> Event {
        self.0
    }
}

impl From<EventBuilder> for Event {
    fn from(builder: EventBuilder) -> Event {
        builder.0
    }
}

/// A batch of these events, in order.
pub fn batch<E: Into<Event>>(events: impl IntoIterator<Item = E>) -> EventBatch {
    EventBatch {
        events: events.into_iter().map(Into::into).collect(),
    }
}

/// The protobuf encoding (prost's, which is the contract's deterministic one:
/// field-number order, sorted map keys, defaults omitted).
pub fn encode(message: &impl Message) -> Vec<u8> {
    message.encode_to_vec()
}

/// An [`IngestResponse`] with these rejections.
pub fn ingest_response(
    accepted: u32,
    rejected: impl IntoIterator<Item = Rejection>,
) -> IngestResponse {
    IngestResponse {
        accepted,
        rejected: rejected.into_iter().collect(),
    }
}

/// The rejection of the event at `index`.
pub fn rejection(index: u32, event_id: &str, reason: &str) -> Rejection {
    Rejection {
        index,
        event_id: event_id.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A string of exactly `n` bytes.
pub fn bytes_long(n: usize) -> String {
    "x".repeat(n)
}

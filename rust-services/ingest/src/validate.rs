//! Per-event validation with stable reason codes.
//!
//! The rules and their order are part of the wire contract
//! (`docs/contract-ingest.md`): for each event the first failing rule names
//! the reason, so both twins reject the same events for the same reasons.

use std::collections::HashSet;

use crate::proto::Rejection;
use crate::wire::EventView;

pub const MAX_EVENT_ID_BYTES: usize = 128;
pub const MAX_TENANT_ID_BYTES: usize = 64;
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
pub const MAX_EVENTS_PER_BATCH: usize = 10_000;

/// Why an event was rejected; `as_str` is the code on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    InvalidEventId,
    DuplicateEventId,
    InvalidTenantId,
    MissingType,
    PayloadTooLarge,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidEventId => "invalid_event_id",
            Reason::DuplicateEventId => "duplicate_event_id",
            Reason::InvalidTenantId => "invalid_tenant_id",
            Reason::MissingType => "missing_type",
            Reason::PayloadTooLarge => "payload_too_large",
        }
    }
}

/// The outcome of validating a batch.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// Indices of the events to publish, in batch order.
    pub accepted: Vec<usize>,
    /// The rejected events, in batch order.
    pub rejected: Vec<Rejection>,
}

/// Validates every event of a batch.
pub fn validate(events: &[EventView<'_>]) -> Verdict {
    let mut seen: HashSet<&str> = HashSet::with_capacity(events.len());
    let mut verdict = Verdict {
        accepted: Vec::with_capacity(events.len()),
        rejected: Vec::new(),
    };
    for (index, event) in events.iter().enumerate() {
        // Every id counts as seen, valid event or not.
        let first_time = seen.insert(event.event_id);
        match check(event, first_time) {
            None => verdict.accepted.push(index),
            Some(reason) => verdict.rejected.push(Rejection {
                index: index as u32,
                event_id: event.event_id.to_owned(),
                reason: reason.as_str().to_owned(),
            }),
        }
    }
    verdict
}

fn check(event: &EventView<'_>, first_time: bool) -> Option<Reason> {
    if event.event_id.is_empty() || event.event_id.len() > MAX_EVENT_ID_BYTES {
        Some(Reason::InvalidEventId)
    } else if !first_time {
        Some(Reason::DuplicateEventId)
    } else if event.tenant_id.is_empty() || event.tenant_id.len() > MAX_TENANT_ID_BYTES {
        Some(Reason::InvalidTenantId)
    } else if event.r#type.is_empty() {
        Some(Reason::MissingType)
    } else if event.payload.len() > MAX_PAYLOAD_BYTES {
        Some(Reason::PayloadTooLarge)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Event;
    use crate::wire::BatchView;
    use bytes::Bytes;

    fn event(id: &str) -> Event {
        Event {
            event_id: id.into(),
            tenant_id: "tenant".into(),
            r#type: "click".into(),
            ..Default::default()
        }
    }

    fn validate_events(events: &[Event]) -> Verdict {
        validate(&BatchView::of(events).events)
    }

    fn reason_of(e: Event) -> Option<String> {
        validate_events(&[e])
            .rejected
            .first()
            .map(|r| r.reason.clone())
    }

    #[test]
    fn a_complete_event_is_accepted() {
        assert_eq!(reason_of(event("e")), None);
    }

    #[test]
    fn event_id_must_be_1_to_128_bytes() {
        assert_eq!(reason_of(event("")), Some("invalid_event_id".into()));
        assert_eq!(reason_of(event(&"x".repeat(128))), None);
        assert_eq!(
            reason_of(event(&"x".repeat(129))),
            Some("invalid_event_id".into())
        );
        // Bytes, not characters: 43 three-byte characters are 129 bytes.
        assert_eq!(
            reason_of(event(&"€".repeat(43))),
            Some("invalid_event_id".into())
        );
    }

    #[test]
    fn tenant_id_must_be_1_to_64_bytes() {
        let mut e = event("e");
        e.tenant_id = String::new();
        assert_eq!(reason_of(e.clone()), Some("invalid_tenant_id".into()));
        e.tenant_id = "t".repeat(64);
        assert_eq!(reason_of(e.clone()), None);
        e.tenant_id = "t".repeat(65);
        assert_eq!(reason_of(e), Some("invalid_tenant_id".into()));
    }

    #[test]
    fn type_must_not_be_empty() {
        let mut e = event("e");
        e.r#type = String::new();
        assert_eq!(reason_of(e), Some("missing_type".into()));
    }

    #[test]
    fn payload_may_be_at_most_64_kib() {
        let mut e = event("e");
        e.payload = Bytes::from(vec![0; MAX_PAYLOAD_BYTES]);
        assert_eq!(reason_of(e.clone()), None);
        e.payload = Bytes::from(vec![0; MAX_PAYLOAD_BYTES + 1]);
        assert_eq!(reason_of(e), Some("payload_too_large".into()));
    }

    #[test]
    fn the_first_failing_rule_names_the_reason() {
        let mut e = event("");
        e.tenant_id = String::new();
        e.r#type = String::new();
        assert_eq!(reason_of(e), Some("invalid_event_id".into()));
    }

    #[test]
    fn a_repeated_event_id_rejects_the_later_event_even_if_the_first_was_invalid() {
        let mut first = event("dup");
        first.r#type = String::new();
        let verdict = validate_events(&[first, event("dup"), event("other")]);
        assert_eq!(verdict.accepted, vec![2]);
        let reasons: Vec<_> = verdict
            .rejected
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![(0, "missing_type"), (1, "duplicate_event_id")]
        );
    }

    #[test]
    fn rejections_echo_the_event_id_as_sent() {
        let verdict = validate_events(&[event(&"x".repeat(200))]);
        assert_eq!(verdict.rejected[0].event_id.len(), 200);
    }
}

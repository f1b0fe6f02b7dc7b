//! Hand-made protobuf wire bytes, for encodings prost would never produce:
//! fields out of order, known fields with the wrong wire type, groups,
//! stray end-groups, reserved wire types, oversized varints.
//!
//! ```
//! use parallax_conformance::wire::{self, WireType};
//! // EventBatch { events: [<field 99 as a group around a varint>] }
//! let mut event = Vec::new();
//! wire::key(&mut event, 99, WireType::StartGroup);
//! wire::varint_field(&mut event, 1, 7);
//! wire::key(&mut event, 99, WireType::EndGroup);
//! let body = wire::batch_of([event]);
//! assert_eq!(body, [0x0a, 0x06, 0x9b, 0x06, 0x08, 0x07, 0x9c, 0x06]);
//! ```

use crate::events::event;
use crate::pb::Event;

/// The wire types, 6 and 7 included (reserved: always malformed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireType {
    Varint = 0,
    Fixed64 = 1,
    Len = 2,
    StartGroup = 3,
    EndGroup = 4,
    Fixed32 = 5,
    Reserved6 = 6,
    Reserved7 = 7,
}

impl WireType {
    pub const ALL: [WireType; 8] = [
        WireType::Varint,
        WireType::Fixed64,
        WireType::Len,
        WireType::StartGroup,
        WireType::EndGroup,
        WireType::Fixed32,
        WireType::Reserved6,
        WireType::Reserved7,
    ];
}

/// The largest field number outside groups: 2^29 − 1.
pub const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;
/// How deeply groups may nest (Go's recursion limit of 10,000, counted down
/// from the outermost group to zero).
pub const GROUP_NESTING_LIMIT: usize = 10_001;

/// Appends `value` as a minimal varint.
pub fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends `value` as a varint of exactly `len` bytes (padded with
/// continuation bytes; `len` at least the minimal length, at most 10 for a
/// valid one).
pub fn varint_padded(out: &mut Vec<u8>, mut value: u64, len: usize) {
    for _ in 1..len {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8 & 0x7f);
}

/// Appends a field key: `number << 3 | wire_type`.
pub fn key(out: &mut Vec<u8>, number: u64, wire_type: WireType) {
    varint(out, number << 3 | wire_type as u64);
}

/// A length-delimited field.
pub fn bytes_field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    key(out, number, WireType::Len);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub fn varint_field(out: &mut Vec<u8>, number: u64, value: u64) {
    key(out, number, WireType::Varint);
    varint(out, value);
}

/// A group of field `number` around `contents`, closed by `end_number`
/// (the same number for a well-formed group).
pub fn group(out: &mut Vec<u8>, number: u64, contents: &[u8], end_number: u64) {
    key(out, number, WireType::StartGroup);
    out.extend_from_slice(contents);
    key(out, end_number, WireType::EndGroup);
}

/// `levels` groups of field `number`, each inside the one before.
pub fn nested_groups(number: u64, levels: usize) -> Vec<u8> {
    let mut start = Vec::new();
    key(&mut start, number, WireType::StartGroup);
    let mut end = Vec::new();
    key(&mut end, number, WireType::EndGroup);
    let mut out = start.repeat(levels);
    out.extend(end.repeat(levels));
    out
}

/// An `attributes` map entry.
pub fn map_entry(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut entry = Vec::new();
    bytes_field(&mut entry, 1, key);
    bytes_field(&mut entry, 2, value);
    entry
}

/// An `EventBatch` of already encoded events.
pub fn batch_of(events: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        bytes_field(&mut out, 1, &event);
    }
    out
}

/// A valid event (`tenant-w`, type `click`) with id `event_id`, followed by
/// `extra` wire bytes.
pub fn event_then(event_id: &str, extra: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, event_id.as_bytes());
    bytes_field(&mut out, 2, b"tenant-w");
    bytes_field(&mut out, 3, b"click");
    out.extend_from_slice(extra);
    out
}

/// An Event with its fields in reverse order, map keys unsorted and the
/// default `occurred_at_unix_ms = 0` written out.
pub fn scrambled_event() -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 6, b"body");
    bytes_field(&mut out, 5, &map_entry(b"zeta", b"z"));
    bytes_field(&mut out, 5, &map_entry(b"alpha", b"a"));
    varint_field(&mut out, 4, 0);
    bytes_field(&mut out, 3, b"click");
    bytes_field(&mut out, 2, b"tenant-s");
    bytes_field(&mut out, 1, b"scrambled");
    out
}

/// The event [`scrambled_event`] encodes.
pub fn scrambled_event_canonical() -> Event {
    event("scrambled")
        .tenant("tenant-s")
        .kind("click")
        .occurred_at_unix_ms(0)
        .attribute("alpha", "a")
        .attribute("zeta", "z")
        .payload(&b"body"[..])
        .build()
}

/// A valid event followed by field 99, which the contract does not define.
pub fn event_with_unknown_field(event_id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, event_id.as_bytes());
    bytes_field(&mut out, 2, b"tenant-u");
    bytes_field(&mut out, 3, b"click");
    bytes_field(&mut out, 99, b"from the future");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_varints_decode_to_the_same_value() {
        for (value, len) in [(5u64, 1), (5, 3), (300, 2), (300, 10), (u64::MAX, 10)] {
            let mut out = Vec::new();
            varint_padded(&mut out, value, len);
            assert_eq!(out.len(), len);
            assert_eq!(
                prost::encoding::decode_varint(&mut &out[..]).unwrap(),
                value
            );
        }
    }

    #[test]
    fn nested_groups_open_then_close() {
        assert_eq!(nested_groups(1, 2), [0x0b, 0x0b, 0x0c, 0x0c]);
    }
}

//! The protobuf wire format of `EventBatch` and `Event`, read and written
//! exactly as Go's protobuf runtime (`google.golang.org/protobuf`, the
//! reference twin's) reads and writes it.
//!
//! prost's derived decoder is stricter than protobuf's rule: a known field
//! arriving with an unexpected wire type is an error there, where the
//! protobuf spec and every reference runtime treat it as an unknown field;
//! and it limits nesting to 100 where Go allows 10,000. The twins must accept
//! and reject the same bodies, so this module decodes by hand, with prost's
//! varint primitive, following Go's `impl.unmarshalPointer`, `consumeMap` and
//! `protowire.ConsumeFieldValue` rule for rule:
//!
//! - A field number and wire type the message defines is decoded; any other
//!   pair — an unknown number, or a known number with another wire type — is
//!   an unknown field: skipped, and discarded (the ingest service keeps no
//!   unknown fields, as Go with `DiscardUnknown`).
//! - A group (wire type 3) is skipped as a whole, up to the end-group
//!   (wire type 4) of the same field number; groups nest at most
//!   [`GROUP_NESTING_LIMIT`] deep. Inside a group a field number may be up to
//!   2^31 − 1 (Go's `ConsumeTag` bound); elsewhere up to 2^29 − 1.
//! - Errors, each making the whole body malformed: a truncated varint, length
//!   or fixed-width value; a varint longer than 10 bytes or over 64 bits;
//!   field number 0 or out of range; wire types 6 and 7; an end-group with no
//!   open group or for another field number; a group left open; invalid
//!   UTF-8 in a string field, a map key or a map value.
//! - Scalars and strings: the last occurrence wins. `int64` takes the low 64
//!   bits of the varint. `events` appends one event per occurrence. An
//!   `attributes` entry lacking its key or value takes the empty string; the
//!   last entry for a key wins.
//!
//! [`BatchView::decode`] reads a body in place: strings and payloads are
//! slices of it (strings checked as UTF-8), attributes one list per batch,
//! nothing allocated per event; [`decode_batch`] makes owned events of it.
//!
//! A record's value is the event as Go's deterministic `proto.Marshal`
//! writes it: fields in number order, defaults omitted, map entries sorted by
//! key and each carrying its key and value even when empty (prost would
//! leave empty ones out of the entry). An event whose bytes in the body are
//! already exactly that is published from the body as it stands;
//! [`BatchView::encode_into`] and [`encode_event`] write any other.

use std::collections::BTreeMap;
use std::fmt;

use bytes::{BufMut, Bytes};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use crate::proto::{Event, EventBatch};

/// Largest field number outside groups (2^29 − 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;
/// Largest field number Go accepts inside a group being skipped (2^31 − 1).
const MAX_GROUP_FIELD_NUMBER: u64 = i32::MAX as u64;
/// How deeply groups may nest: Go's `protowire.DefaultRecursionLimit`
/// (10,000) counts down from the outermost group and fails below zero, so
/// 10,001 levels pass and the next one does not.
pub const GROUP_NESTING_LIMIT: usize = 10_001;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Why a body is not a valid `EventBatch` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// A varint, length-delimited or fixed-width value runs past its end.
    Truncated,
    /// A varint cut short, or one of more than 10 bytes or over 64 bits.
    Varint,
    /// Field number 0, or above the allowed maximum.
    FieldNumber,
    /// Wire type 6 or 7.
    ReservedWireType,
    /// An end-group with no open group, or for another field number.
    EndGroup,
    /// A group left open at the end of its message.
    UnclosedGroup,
    /// Groups nested deeper than [`GROUP_NESTING_LIMIT`].
    RecursionDepth,
    /// A string field, map key or map value that is not UTF-8.
    InvalidUtf8,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated value",
            WireError::Varint => "varint truncated or over 64 bits",
            WireError::FieldNumber => "invalid field number",
            WireError::ReservedWireType => "reserved wire type 6 or 7",
            WireError::EndGroup => "end-group without its start-group",
            WireError::UnclosedGroup => "group without its end-group",
            WireError::RecursionDepth => "groups nested too deeply",
            WireError::InvalidUtf8 => "string field is not UTF-8",
        })
    }
}

impl std::error::Error for WireError {}

/// One event of a protobuf body, read in place: its strings and payload are
/// slices of the body, nothing is copied or allocated for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventView<'a> {
    pub event_id: &'a str,
    pub tenant_id: &'a str,
    pub r#type: &'a str,
    pub occurred_at_unix_ms: i64,
    pub payload: &'a [u8],
    /// Where this event's attribute entries sit in [`BatchView`]'s list.
    attributes: (u32, u32),
    /// The event's bytes when they are already its record value.
    canonical: Option<&'a [u8]>,
}

impl<'a> EventView<'a> {
    /// The event's bytes in the body when they are exactly what Go's
    /// deterministic `proto.Marshal` writes for it (see [`BatchView`]), so
    /// they are its Kafka record value as they stand.
    pub fn canonical(&self) -> Option<&'a [u8]> {
        self.canonical
    }
}

/// The events of a batch, read in place (protobuf, [`BatchView::decode`])
/// or borrowed from decoded events (JSON, [`BatchView::of`]).
///
/// A record's value is Go's deterministic encoding of its event. A
/// well-behaved client, one that encodes with any mainstream protobuf
/// library and sorted maps (as the load generator, prost with `BTreeMap`s
/// and Go's deterministic mode all do), already sends each event in exactly
/// those bytes: field numbers in order, defaults left out, minimal varints,
/// map entries sorted, each holding just its key and value. The decoder
/// notices it field by field, and such an event's record value is its slice
/// of the body: no map, no string and no encoding per event. Any other
/// event (unknown fields, repeated fields, unsorted or duplicate keys,
/// non-minimal varints, JSON) is encoded by [`BatchView::encode_into`].
/// Either way the bytes are the same (`a_canonical_event_is_its_own_encoding`
/// and the properties below check it).
#[derive(Debug, Default)]
pub struct BatchView<'a> {
    pub events: Vec<EventView<'a>>,
    /// Every event's attribute entries, one run per event. A canonical
    /// event's run is sorted with unique keys; any other event's is sorted
    /// stably by key, so of equal keys the last on the wire comes last (and
    /// wins).
    attributes: Vec<(&'a str, &'a str)>,
}

impl<'a> BatchView<'a> {
    /// Reads `body` as an `EventBatch` by the rules of the module
    /// documentation.
    pub fn decode(body: &'a [u8]) -> Result<Self, WireError> {
        let mut buf = body;
        let mut view = BatchView::default();
        while !buf.is_empty() {
            let (number, wire_type) = key(&mut buf, MAX_FIELD_NUMBER)?;
            match (number, wire_type) {
                (1, LEN) => {
                    let event = length_delimited(&mut buf)?;
                    let event = view.decode_event(event)?;
                    view.events.push(event);
                }
                _ => skip(number, wire_type, &mut buf)?,
            }
        }
        Ok(view)
    }

    /// Views of decoded events (the JSON path); each is encoded when
    /// published.
    pub fn of(events: &'a [Event]) -> Self {
        let mut view = BatchView {
            events: Vec::with_capacity(events.len()),
            attributes: Vec::new(),
        };
        for event in events {
            let first = view.attributes.len();
            view.attributes.extend(
                event
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            view.events.push(EventView {
                event_id: &event.event_id,
                tenant_id: &event.tenant_id,
                r#type: &event.r#type,
                occurred_at_unix_ms: event.occurred_at_unix_ms,
                payload: &event.payload,
                attributes: (first as u32, view.attributes.len() as u32),
                canonical: None,
            });
        }
        view
    }

    /// `event`'s attributes, sorted by key; of equal keys (only on the wire)
    /// the last one counts.
    fn attributes(&self, event: &EventView<'a>) -> &[(&'a str, &'a str)] {
        let (first, end) = event.attributes;
        &self.attributes[first as usize..end as usize]
    }

    /// Appends `event`'s Kafka record value to `out`: its bytes in the body
    /// when canonical, else Go's deterministic encoding written out.
    pub fn encode_into(&self, event: &EventView<'a>, out: &mut Vec<u8>) {
        if let Some(bytes) = event.canonical {
            out.extend_from_slice(bytes);
            return;
        }
        let attributes = self.attributes(event);
        // The last entry of each run of equal keys.
        let unique = || {
            attributes
                .iter()
                .enumerate()
                .filter(|&(i, (k, _))| attributes.get(i + 1).is_none_or(|(next, _)| next != k))
                .map(|(_, entry)| *entry)
        };
        out.reserve(encoded_len(event, unique()));
        for (number, value) in [(1, event.event_id), (2, event.tenant_id), (3, event.r#type)] {
            if !value.is_empty() {
                bytes_field(number, value.as_bytes(), out);
            }
        }
        if event.occurred_at_unix_ms != 0 {
            encode_key(4, WireType::Varint, out);
            encode_varint(event.occurred_at_unix_ms as u64, out);
        }
        for (k, v) in unique() {
            encode_key(5, WireType::LengthDelimited, out);
            encode_varint(entry_len(k, v) as u64, out);
            bytes_field(1, k.as_bytes(), out);
            bytes_field(2, v.as_bytes(), out);
        }
        if !event.payload.is_empty() {
            bytes_field(6, event.payload, out);
        }
    }

    /// The owned event; `body` is the body this view was decoded from.
    fn to_event(&self, event: &EventView<'a>, body: &Bytes) -> Event {
        let mut attributes = BTreeMap::new();
        for &(k, v) in self.attributes(event) {
            attributes.insert(k.to_owned(), v.to_owned());
        }
        Event {
            event_id: event.event_id.to_owned(),
            tenant_id: event.tenant_id.to_owned(),
            r#type: event.r#type.to_owned(),
            occurred_at_unix_ms: event.occurred_at_unix_ms,
            attributes,
            payload: body.slice_ref(event.payload),
        }
    }

    /// One event, from the bytes of its `events` field. Besides decoding,
    /// it follows whether the bytes are canonical: each field's key one byte
    /// (numbers 1–15), field numbers rising (attributes repeat with rising
    /// keys), no default values, minimal varints, canonical map entries, no
    /// other field.
    fn decode_event(&mut self, raw: &'a [u8]) -> Result<EventView<'a>, WireError> {
        let first = self.attributes.len();
        let mut event = EventView {
            event_id: "",
            tenant_id: "",
            r#type: "",
            occurred_at_unix_ms: 0,
            payload: &[],
            attributes: (first as u32, first as u32),
            canonical: None,
        };
        let mut canonical = true;
        let mut previous = 0;
        let mut buf = raw;
        while !buf.is_empty() {
            let start = buf.len();
            let (number, wire_type) = key(&mut buf, MAX_FIELD_NUMBER)?;
            canonical &=
                start - buf.len() == 1 && (number > previous || number == 5 && previous == 5);
            previous = number;
            match (number, wire_type) {
                (1, LEN) => event.event_id = string_field(&mut buf, &mut canonical)?,
                (2, LEN) => event.tenant_id = string_field(&mut buf, &mut canonical)?,
                (3, LEN) => event.r#type = string_field(&mut buf, &mut canonical)?,
                (4, VARINT) => {
                    let start = buf.len();
                    let value = varint(&mut buf)?;
                    canonical &= value != 0 && start - buf.len() == encoded_len_varint(value);
                    // The varint's low 64 bits, as two's complement.
                    event.occurred_at_unix_ms = value as i64;
                }
                (5, LEN) => {
                    let (entry, minimal) = length_delimited_minimal(&mut buf)?;
                    let (k, v, entry_canonical) = decode_attribute(entry)?;
                    // A second entry must follow the first in key order.
                    let rising = match self.attributes[first..].last() {
                        Some(&(last, _)) => last < k,
                        None => true,
                    };
                    canonical &= minimal && entry_canonical && rising;
                    self.attributes.push((k, v));
                }
                (6, LEN) => {
                    let (payload, minimal) = length_delimited_minimal(&mut buf)?;
                    canonical &= minimal && !payload.is_empty();
                    event.payload = payload;
                }
                _ => {
                    canonical = false;
                    skip(number, wire_type, &mut buf)?;
                }
            }
        }
        if canonical {
            event.canonical = Some(raw);
        } else {
            // Stable: of equal keys the last on the wire stays last.
            self.attributes[first..].sort_by(|a, b| a.0.cmp(b.0));
        }
        event.attributes.1 = self.attributes.len() as u32;
        Ok(event)
    }
}

/// Decodes `body` as an `EventBatch`; payloads are slices of `body`.
pub fn decode_batch(body: &Bytes) -> Result<EventBatch, WireError> {
    let view = BatchView::decode(body)?;
    let events = view
        .events
        .iter()
        .map(|event| view.to_event(event, body))
        .collect();
    Ok(EventBatch { events })
}

/// One `attributes` map entry: key 1, value 2, both strings; and whether
/// the entry is exactly its key field then its value field, as Go writes it.
fn decode_attribute(mut buf: &[u8]) -> Result<(&str, &str, bool), WireError> {
    let (mut k, mut v) = ("", "");
    let mut canonical = true;
    let mut fields = 0;
    while !buf.is_empty() {
        let start = buf.len();
        let (number, wire_type) = key(&mut buf, MAX_FIELD_NUMBER)?;
        fields += 1;
        canonical &= start - buf.len() == 1 && number == fields;
        match (number, wire_type) {
            (1, LEN) => k = str_value(&mut buf, &mut canonical)?,
            (2, LEN) => v = str_value(&mut buf, &mut canonical)?,
            _ => {
                canonical = false;
                skip(number, wire_type, &mut buf)?;
            }
        }
    }
    Ok((k, v, canonical && fields == 2))
}

/// A field's key: its number (1 to `max`) and wire type (not yet checked).
fn key(buf: &mut &[u8], max: u64) -> Result<(u64, u8), WireError> {
    let key = varint(buf)?;
    let number = key >> 3;
    if number == 0 || number > max {
        return Err(WireError::FieldNumber);
    }
    Ok((number, (key & 7) as u8))
}

/// prost's varint decoding is Go's `ConsumeVarint`: at most 10 bytes, the
/// tenth at most 1.
fn varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    prost::encoding::decode_varint(buf).map_err(|_| WireError::Varint)
}

fn length_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = varint(buf)?;
    if len > buf.len() as u64 {
        return Err(WireError::Truncated);
    }
    let (value, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(value)
}

/// A length-delimited value, and whether its length was written minimally.
fn length_delimited_minimal<'a>(buf: &mut &'a [u8]) -> Result<(&'a [u8], bool), WireError> {
    let start = buf.len();
    let value = length_delimited(buf)?;
    let minimal = start - buf.len() == encoded_len_varint(value.len() as u64) + value.len();
    Ok((value, minimal))
}

fn str_value<'a>(buf: &mut &'a [u8], canonical: &mut bool) -> Result<&'a str, WireError> {
    let (bytes, minimal) = length_delimited_minimal(buf)?;
    *canonical &= minimal;
    std::str::from_utf8(bytes).map_err(|_| WireError::InvalidUtf8)
}

/// A string field of an event: Go leaves an empty one out.
fn string_field<'a>(buf: &mut &'a [u8], canonical: &mut bool) -> Result<&'a str, WireError> {
    let value = str_value(buf, canonical)?;
    *canonical &= !value.is_empty();
    Ok(value)
}

fn fixed(buf: &mut &[u8], width: usize) -> Result<(), WireError> {
    if buf.len() < width {
        return Err(WireError::Truncated);
    }
    *buf = &buf[width..];
    Ok(())
}

/// Skips the value of an unknown field (`protowire.ConsumeFieldValue`).
fn skip(number: u64, wire_type: u8, buf: &mut &[u8]) -> Result<(), WireError> {
    match wire_type {
        START_GROUP => skip_group(number, buf),
        _ => skip_scalar(wire_type, buf),
    }
}

/// Skips a value that is not a group.
fn skip_scalar(wire_type: u8, buf: &mut &[u8]) -> Result<(), WireError> {
    match wire_type {
        VARINT => varint(buf).map(drop),
        FIXED64 => fixed(buf, 8),
        LEN => length_delimited(buf).map(drop),
        FIXED32 => fixed(buf, 4),
        END_GROUP => Err(WireError::EndGroup),
        _ => Err(WireError::ReservedWireType),
    }
}

/// Skips a group whose start-group (field `number`) was just read, up to
/// and including its end-group. Iterative, with the open groups on a
/// stack: 10,001 nested levels would overflow a task's stack if recursive.
fn skip_group(number: u64, buf: &mut &[u8]) -> Result<(), WireError> {
    let mut open = vec![number];
    while let Some(&innermost) = open.last() {
        if buf.is_empty() {
            return Err(WireError::UnclosedGroup);
        }
        let (inner, wire_type) = key(buf, MAX_GROUP_FIELD_NUMBER)?;
        match wire_type {
            END_GROUP if inner == innermost => {
                open.pop();
            }
            END_GROUP => return Err(WireError::EndGroup),
            START_GROUP if open.len() >= GROUP_NESTING_LIMIT => {
                return Err(WireError::RecursionDepth)
            }
            START_GROUP => open.push(inner),
            _ => skip_scalar(wire_type, buf)?,
        }
    }
    Ok(())
}

/// The Kafka record value of `event`: Go's deterministic encoding (see the
/// module documentation).
pub fn encode_event(event: &Event) -> Vec<u8> {
    let view = BatchView::of(std::slice::from_ref(event));
    let mut out = Vec::new();
    view.encode_into(&view.events[0], &mut out);
    out
}

fn bytes_field(number: u32, value: &[u8], buf: &mut impl BufMut) {
    encode_key(number, WireType::LengthDelimited, buf);
    encode_varint(value.len() as u64, buf);
    buf.put_slice(value);
}

/// Length of a field of numbers 1–15 holding `len` bytes.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn entry_len(k: &str, v: &str) -> usize {
    field_len(k.len()) + field_len(v.len())
}

fn encoded_len<'a>(
    event: &EventView<'a>,
    attributes: impl Iterator<Item = (&'a str, &'a str)>,
) -> usize {
    let strings = [event.event_id, event.tenant_id, event.r#type]
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| field_len(s.len()))
        .sum::<usize>();
    let time = match event.occurred_at_unix_ms {
        0 => 0,
        t => 1 + encoded_len_varint(t as u64),
    };
    let attributes = attributes
        .map(|(k, v)| field_len(entry_len(k, v)))
        .sum::<usize>();
    let payload = match event.payload.len() {
        0 => 0,
        n => field_len(n),
    };
    strings + time + attributes + payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::collections::BTreeMap;

    // --- building wire bytes by hand ---------------------------------------

    fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push(value as u8 | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn key(out: &mut Vec<u8>, number: u64, wire_type: u8) {
        varint(out, number << 3 | u64::from(wire_type));
    }

    fn len_field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        key(out, number, LEN);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    fn batch_of(events: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in events {
            len_field(&mut out, 1, event);
        }
        out
    }

    /// event_id "e", tenant "t", type "x", then `extra`.
    fn event_with(extra: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        len_field(&mut out, 1, b"e");
        len_field(&mut out, 2, b"t");
        len_field(&mut out, 3, b"x");
        out.extend_from_slice(extra);
        out
    }

    fn plain_event() -> Event {
        Event {
            event_id: "e".into(),
            tenant_id: "t".into(),
            r#type: "x".into(),
            ..Event::default()
        }
    }

    fn decode(body: Vec<u8>) -> Result<EventBatch, WireError> {
        decode_batch(&Bytes::from(body))
    }

    fn decode_one_event(extra: &[u8]) -> Result<Event, WireError> {
        let mut batch = decode(batch_of(&[event_with(extra)]))?;
        assert_eq!(batch.events.len(), 1);
        Ok(batch.events.remove(0))
    }

    /// A well-formed field `number` of wire type `wire_type` (a group holds
    /// one field).
    fn value_of_wire_type(number: u64, wire_type: u8) -> Vec<u8> {
        let mut out = Vec::new();
        if wire_type == LEN {
            len_field(&mut out, number, b"\xffnot UTF-8, not looked at");
            return out;
        }
        key(&mut out, number, wire_type);
        match wire_type {
            VARINT => varint(&mut out, 300),
            FIXED64 => out.extend_from_slice(&[1; 8]),
            START_GROUP => {
                len_field(&mut out, 1, b"inside");
                key(&mut out, number, END_GROUP);
            }
            FIXED32 => out.extend_from_slice(&[1; 4]),
            _ => unreachable!("wire type {wire_type}"),
        }
        out
    }

    // --- unknown fields and wrong wire types -------------------------------

    #[test]
    fn a_known_event_field_with_another_wire_type_is_skipped_as_unknown() {
        for number in 1..=6 {
            for wire_type in [VARINT, FIXED64, LEN, START_GROUP, FIXED32] {
                let expected = match (number, wire_type) {
                    (1..=3 | 5 | 6, LEN) | (4, VARINT) => continue,
                    _ => plain_event(),
                };
                let field = value_of_wire_type(number, wire_type);
                assert_eq!(
                    decode_one_event(&field),
                    Ok(expected),
                    "field {number} wire type {wire_type}"
                );
            }
        }
    }

    #[test]
    fn events_sent_with_another_wire_type_are_skipped_as_unknown() {
        for wire_type in [VARINT, FIXED64, START_GROUP, FIXED32] {
            let body = value_of_wire_type(1, wire_type);
            assert_eq!(decode(body), Ok(EventBatch::default()), "{wire_type}");
        }
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped_at_every_level() {
        for wire_type in [VARINT, FIXED64, LEN, START_GROUP, FIXED32] {
            let unknown = value_of_wire_type(99, wire_type);
            let mut entry = unknown.clone();
            len_field(&mut entry, 1, b"k");
            entry.extend_from_slice(&unknown);
            len_field(&mut entry, 2, b"v");
            let mut extra = unknown.clone();
            len_field(&mut extra, 5, &entry);
            let mut body = unknown.clone();
            body.extend(batch_of(&[event_with(&extra)]));

            let mut expected = plain_event();
            expected.attributes.insert("k".into(), "v".into());
            assert_eq!(
                decode(body),
                Ok(EventBatch {
                    events: vec![expected]
                }),
                "{wire_type}"
            );
        }
    }

    #[test]
    fn the_largest_field_number_is_an_unknown_field_and_one_more_is_malformed() {
        let mut body = Vec::new();
        key(&mut body, MAX_FIELD_NUMBER, VARINT);
        varint(&mut body, 1);
        assert_eq!(decode(body), Ok(EventBatch::default()));

        let mut body = Vec::new();
        key(&mut body, MAX_FIELD_NUMBER + 1, VARINT);
        varint(&mut body, 1);
        assert_eq!(decode(body), Err(WireError::FieldNumber));
    }

    #[test]
    fn field_number_zero_is_malformed() {
        assert_eq!(decode(vec![0x00, 0x01]), Err(WireError::FieldNumber));
        assert_eq!(decode_one_event(&[0x02, 0x00]), Err(WireError::FieldNumber));
    }

    #[test]
    fn wire_types_6_and_7_are_malformed_even_on_known_fields() {
        for number in [1, 4, 99] {
            for wire_type in [6, 7] {
                let mut body = Vec::new();
                key(&mut body, number, wire_type);
                body.push(0);
                assert_eq!(decode(body), Err(WireError::ReservedWireType));
            }
        }
    }

    // --- groups ------------------------------------------------------------

    #[test]
    fn a_group_is_skipped_whole_including_its_nested_groups() {
        let mut group = Vec::new();
        key(&mut group, 7, START_GROUP);
        key(&mut group, 8, START_GROUP);
        len_field(&mut group, 1, b"ignored");
        key(&mut group, 8, END_GROUP);
        varint(&mut group, 3 << 3); // field 3 varint inside the group
        varint(&mut group, 5);
        key(&mut group, 7, END_GROUP);
        let mut body = group.clone();
        body.extend(batch_of(&[event_with(&group)]));
        assert_eq!(
            decode(body),
            Ok(EventBatch {
                events: vec![plain_event()]
            })
        );
    }

    #[test]
    fn a_stray_end_group_is_malformed() {
        let mut body = Vec::new();
        key(&mut body, 7, END_GROUP);
        assert_eq!(decode(body.clone()), Err(WireError::EndGroup));
        assert_eq!(decode_one_event(&body), Err(WireError::EndGroup));
    }

    #[test]
    fn a_group_closed_with_another_field_number_is_malformed() {
        let mut body = Vec::new();
        key(&mut body, 7, START_GROUP);
        key(&mut body, 8, END_GROUP);
        assert_eq!(decode(body), Err(WireError::EndGroup));
    }

    #[test]
    fn a_group_left_open_is_malformed_even_if_its_end_follows_the_message() {
        let mut group = Vec::new();
        key(&mut group, 7, START_GROUP);
        assert_eq!(decode(group.clone()), Err(WireError::UnclosedGroup));
        // The end-group lies outside the event's bytes.
        let mut body = batch_of(&[event_with(&group)]);
        key(&mut body, 7, END_GROUP);
        assert_eq!(decode(body), Err(WireError::UnclosedGroup));
    }

    #[test]
    fn inside_a_group_field_numbers_may_reach_2_pow_31_minus_1() {
        let body = |number: u64| {
            let mut body = Vec::new();
            key(&mut body, 7, START_GROUP);
            key(&mut body, number, VARINT);
            varint(&mut body, 1);
            key(&mut body, 7, END_GROUP);
            body
        };
        assert_eq!(
            decode(body(MAX_FIELD_NUMBER + 1)),
            Ok(EventBatch::default())
        );
        assert_eq!(
            decode(body(MAX_GROUP_FIELD_NUMBER)),
            Ok(EventBatch::default())
        );
        assert_eq!(
            decode(body(MAX_GROUP_FIELD_NUMBER + 1)),
            Err(WireError::FieldNumber)
        );
        assert_eq!(decode(body(0)), Err(WireError::FieldNumber));
    }

    /// `levels` groups of field 1 (EventBatch.events as a group) nested.
    fn nested_groups(levels: usize) -> Vec<u8> {
        let mut body = vec![0x0b; levels];
        body.extend(std::iter::repeat_n(0x0c, levels));
        body
    }

    #[test]
    fn groups_nest_10001_deep_and_no_deeper() {
        assert_eq!(
            decode(nested_groups(GROUP_NESTING_LIMIT)),
            Ok(EventBatch::default())
        );
        assert_eq!(
            decode(nested_groups(GROUP_NESTING_LIMIT + 1)),
            Err(WireError::RecursionDepth)
        );
    }

    // --- values ------------------------------------------------------------

    #[test]
    fn invalid_utf8_is_malformed_in_strings_and_map_entries_only() {
        for number in 1..=3 {
            let mut field = Vec::new();
            len_field(&mut field, number, b"\xc3\x28");
            assert_eq!(decode_one_event(&field), Err(WireError::InvalidUtf8));
        }
        for number in 1..=2 {
            let mut entry = Vec::new();
            len_field(&mut entry, number, b"\xed\xa0\x80"); // a surrogate
            let mut field = Vec::new();
            len_field(&mut field, 5, &entry);
            assert_eq!(decode_one_event(&field), Err(WireError::InvalidUtf8));
        }
        let mut field = Vec::new();
        len_field(&mut field, 6, b"\xff");
        assert_eq!(&decode_one_event(&field).unwrap().payload[..], b"\xff");
    }

    #[test]
    fn the_last_occurrence_of_a_field_wins() {
        let mut extra = Vec::new();
        len_field(&mut extra, 1, b"second");
        len_field(&mut extra, 6, b"p1");
        len_field(&mut extra, 6, b"p2");
        key(&mut extra, 4, VARINT);
        varint(&mut extra, 1);
        key(&mut extra, 4, VARINT);
        varint(&mut extra, 2);
        let event = decode_one_event(&extra).unwrap();
        assert_eq!(event.event_id, "second");
        assert_eq!(&event.payload[..], b"p2");
        assert_eq!(event.occurred_at_unix_ms, 2);
    }

    #[test]
    fn int64_takes_the_low_64_bits_of_a_10_byte_varint() {
        let at = |bytes: &[u8]| {
            let mut extra = vec![4 << 3];
            extra.extend_from_slice(bytes);
            decode_one_event(&extra).map(|e| e.occurred_at_unix_ms)
        };
        let mut minus_one = [0xff; 10];
        minus_one[9] = 0x01;
        assert_eq!(at(&minus_one), Ok(-1));
        // Non-minimal encodings count too.
        assert_eq!(at(&[0x85, 0x80, 0x80, 0x00]), Ok(5));
        let mut over_64_bits = minus_one;
        over_64_bits[9] = 0x02;
        assert_eq!(at(&over_64_bits), Err(WireError::Varint));
        assert_eq!(at(&[0xff; 11]), Err(WireError::Varint));
        assert_eq!(at(&[0xff, 0xff]), Err(WireError::Varint));
    }

    #[test]
    fn map_entries_default_missing_parts_skip_unknown_ones_and_last_key_wins() {
        let entry = |fields: &[(u64, u8, &[u8])]| {
            let mut entry = Vec::new();
            for &(number, wire_type, bytes) in fields {
                if wire_type == LEN {
                    len_field(&mut entry, number, bytes);
                } else {
                    key(&mut entry, number, wire_type);
                    varint(&mut entry, 7);
                }
            }
            let mut field = Vec::new();
            len_field(&mut field, 5, &entry);
            field
        };
        let mut extra = Vec::new();
        extra.extend(entry(&[(2, LEN, b"no key")]));
        extra.extend(entry(&[(1, LEN, b"no value")]));
        extra.extend(entry(&[
            (1, VARINT, b""),
            (2, LEN, b"key sent as a varint"),
        ]));
        extra.extend(entry(&[(1, LEN, b"k"), (2, LEN, b"first")]));
        extra.extend(entry(&[
            (2, LEN, b"second"),
            (1, LEN, b"j"),
            (1, LEN, b"k"),
        ]));
        extra.extend(entry(&[]));
        let event = decode_one_event(&extra).unwrap();
        let expected = BTreeMap::from([
            (String::new(), String::new()),
            ("no value".to_owned(), String::new()),
            ("k".to_owned(), "second".to_owned()),
        ]);
        assert_eq!(event.attributes, expected);
    }

    #[test]
    fn truncated_values_are_malformed() {
        let full = batch_of(&[event_with(&[
            0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2d, 1, 2, 3, 4,
        ])]);
        for cut in 1..full.len() {
            assert!(decode(full[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        assert!(decode(full).is_ok());
    }

    #[test]
    fn payloads_are_slices_of_the_body() {
        let mut extra = Vec::new();
        len_field(&mut extra, 6, b"payload bytes");
        let body = Bytes::from(batch_of(&[event_with(&extra)]));
        let batch = decode_batch(&body).unwrap();
        let payload = &batch.events[0].payload;
        assert!(body.as_ptr_range().contains(&payload.as_ptr()));
    }

    // --- the record encoding -----------------------------------------------

    #[test]
    fn records_are_encoded_as_go_writes_them_empty_map_parts_included() {
        let event = Event {
            event_id: "e".into(),
            attributes: BTreeMap::from([
                ("k".to_owned(), String::new()),
                (String::new(), String::new()),
            ]),
            ..Event::default()
        };
        // Go: proto.MarshalOptions{Deterministic: true}.Marshal of this event.
        let go = b"\x0a\x01\x65\x2a\x04\x0a\x00\x12\x00\x2a\x05\x0a\x01\x6b\x12\x00";
        assert_eq!(encode_event(&event), go);
    }

    #[test]
    fn records_of_events_without_empty_map_parts_are_prost_encodings() {
        let event = Event {
            event_id: "e".repeat(200),
            tenant_id: "t".into(),
            r#type: "x".into(),
            occurred_at_unix_ms: -5,
            attributes: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
            payload: Bytes::from(vec![9; 300]),
        };
        assert_eq!(encode_event(&event), event.encode_to_vec());
        assert_eq!(encode_event(&Event::default()), b"");
    }

    // --- events already in their record encoding ----------------------------

    /// One event's bytes if the view took them for canonical, its record
    /// value from the view, and the owned event's encoding.
    type Values = (Option<Vec<u8>>, Vec<u8>, Vec<u8>);

    /// Each event's record value from the view (the body's own bytes where
    /// canonical) and from the owned event: they must be the same bytes.
    fn record_values(body: &[u8]) -> Vec<Values> {
        let owned = decode(body.to_vec()).expect("a valid body");
        let view = BatchView::decode(body).expect("a valid body");
        view.events
            .iter()
            .zip(&owned.events)
            .map(|(event, owned)| {
                let mut value = Vec::new();
                view.encode_into(event, &mut value);
                (
                    event.canonical().map(<[u8]>::to_vec),
                    value,
                    encode_event(owned),
                )
            })
            .collect()
    }

    #[test]
    fn an_event_in_go_s_encoding_is_published_from_the_body() {
        let event = Event {
            event_id: "e".into(),
            tenant_id: "t".into(),
            r#type: "x".into(),
            occurred_at_unix_ms: -5,
            attributes: BTreeMap::from([
                (String::new(), "z".into()),
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
            ]),
            payload: Bytes::from_static(b"p"),
        };
        let record = encode_event(&event);
        let body = batch_of(&[record.clone(), prost_encoded()]);
        for (canonical, value, owned) in record_values(&body) {
            assert_eq!(canonical.as_ref(), Some(&value));
            assert_eq!(value, owned);
        }
        let view = BatchView::decode(&body).unwrap();
        let inside = body.as_ptr_range();
        assert!(inside.contains(&view.events[0].canonical().unwrap().as_ptr()));
        assert_eq!(view.events[0].canonical(), Some(&record[..]));
    }

    /// What the load generator sends: prost's encoding of an event with
    /// non-empty attributes.
    fn prost_encoded() -> Vec<u8> {
        Event {
            event_id: "load-000000000001-00001".into(),
            tenant_id: "tenant-00042".into(),
            r#type: "click".into(),
            occurred_at_unix_ms: 1_700_000_000_000,
            attributes: BTreeMap::from([
                ("region".into(), "eu".into()),
                ("template".into(), "3".into()),
            ]),
            payload: Bytes::from(vec![b'x'; 64]),
        }
        .encode_to_vec()
    }

    #[test]
    fn an_event_in_any_other_encoding_is_encoded_as_go_writes_it() {
        let entry = |k: &[u8], v: &[u8]| {
            let mut out = Vec::new();
            len_field(&mut out, 1, k);
            len_field(&mut out, 2, v);
            out
        };
        let attribute = |k: &[u8], v: &[u8]| {
            let mut out = Vec::new();
            len_field(&mut out, 5, &entry(k, v));
            out
        };
        let cat = |parts: &[&[u8]]| parts.concat();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("an unknown field", event_with(&[0x38, 0x01])),
            (
                "fields out of order",
                cat(&[b"\x0a\x01e\x1a\x01x\x12\x01t"]),
            ),
            ("a field repeated", cat(&[b"\x0a\x01a", &event_with(&[])])),
            (
                "an empty string written",
                cat(&[b"\x0a\x01e\x12\x00\x1a\x01x"]),
            ),
            ("occurred_at 0 written", event_with(&[0x20, 0x00])),
            ("a varint not minimal", event_with(&[0x20, 0x85, 0x00])),
            (
                "a length not minimal",
                cat(&[b"\x0a\x81\x00e\x12\x01t\x1a\x01x"]),
            ),
            (
                "a key not minimal",
                cat(&[b"\x8a\x00\x01e\x12\x01t\x1a\x01x"]),
            ),
            ("an empty payload written", event_with(&[0x32, 0x00])),
            (
                "attributes out of order",
                event_with(&cat(&[&attribute(b"b", b"1"), &attribute(b"a", b"2")])),
            ),
            (
                "a key repeated: the last wins",
                event_with(&cat(&[
                    &attribute(b"a", b"1"),
                    &attribute(b"b", b"1"),
                    &attribute(b"a", b"2"),
                ])),
            ),
            (
                "an entry with its value first",
                event_with(&[0x2a, 0x06, 0x12, 0x01, b'1', 0x0a, 0x01, b'a']),
            ),
            (
                "an entry without its key",
                event_with(&[0x2a, 0x03, 0x12, 0x01, b'1']),
            ),
            (
                "an entry with an unknown field",
                event_with(&[0x2a, 0x08, 0x0a, 0x01, b'a', 0x12, 0x01, b'1', 0x18, 0x01]),
            ),
            (
                "an attribute after the payload",
                event_with(&cat(&[b"\x32\x01p", &attribute(b"a", b"1")])),
            ),
        ];
        for (name, event) in cases {
            let values = record_values(&batch_of(&[event]));
            let (canonical, value, owned) = &values[0];
            assert_eq!(canonical, &None, "{name}");
            assert_eq!(value, owned, "{name}");
        }
        let repeated = decode_one_event(&cat(&[
            &attribute(b"a", b"1"),
            &attribute(b"b", b"1"),
            &attribute(b"a", b"2"),
        ]))
        .unwrap();
        assert_eq!(repeated.attributes["a"], "2");
    }

    // --- properties ---------------------------------------------------------

    mod properties {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        /// A piece of protobuf wire data, mostly well-formed, sometimes not.
        #[derive(Debug, Clone)]
        enum Piece {
            /// A key and a value of its wire type (6 and 7 get one byte).
            Field {
                number: u64,
                wire_type: u8,
                value: u64,
                bytes: Vec<u8>,
            },
            /// A length-delimited field holding more pieces.
            Nested { number: u64, pieces: Vec<Piece> },
            /// A group, closed by `end` (its own number unless mismatched).
            Group {
                number: u64,
                end: Option<u64>,
                pieces: Vec<Piece>,
            },
            /// Bytes as they come.
            Raw(Vec<u8>),
        }

        fn number() -> impl Strategy<Value = u64> {
            prop_oneof![
                6 => 1u64..=6,
                2 => 7u64..=20,
                1 => Just(0u64),
                1 => Just(MAX_FIELD_NUMBER),
                1 => Just(MAX_FIELD_NUMBER + 1),
                1 => Just(MAX_GROUP_FIELD_NUMBER),
                1 => any::<u32>().prop_map(u64::from),
            ]
        }

        fn string_bytes() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                4 => "[a-z€😀]{0,6}".prop_map(String::into_bytes),
                1 => vec(any::<u8>(), 0..6),
            ]
        }

        fn piece() -> impl Strategy<Value = Piece> {
            let leaf = prop_oneof![
                8 => (number(), 0u8..8, any::<u64>(), string_bytes()).prop_map(
                    |(number, wire_type, value, bytes)| Piece::Field { number, wire_type, value, bytes }
                ),
                1 => vec(any::<u8>(), 0..4).prop_map(Piece::Raw),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    (number(), vec(inner.clone(), 0..6))
                        .prop_map(|(number, pieces)| Piece::Nested { number, pieces }),
                    (
                        number(),
                        proptest::option::weighted(0.1, number()),
                        vec(inner, 0..4)
                    )
                        .prop_map(|(number, end, pieces)| Piece::Group {
                            number,
                            end,
                            pieces
                        }),
                ]
            })
        }

        fn write(pieces: &[Piece], out: &mut Vec<u8>) {
            for piece in pieces {
                match piece {
                    Piece::Field {
                        number,
                        wire_type,
                        value,
                        bytes,
                    } => {
                        key(out, *number, *wire_type);
                        match *wire_type {
                            VARINT => varint(out, *value),
                            FIXED64 => out.extend_from_slice(&value.to_le_bytes()),
                            LEN => {
                                varint(out, bytes.len() as u64);
                                out.extend_from_slice(bytes);
                            }
                            FIXED32 => out.extend_from_slice(&value.to_le_bytes()[..4]),
                            _ => out.push(*value as u8),
                        }
                    }
                    Piece::Nested { number, pieces } => {
                        let mut inner = Vec::new();
                        write(pieces, &mut inner);
                        len_field(out, *number, &inner);
                    }
                    Piece::Group {
                        number,
                        end,
                        pieces,
                    } => {
                        key(out, *number, START_GROUP);
                        write(pieces, out);
                        key(out, end.unwrap_or(*number), END_GROUP);
                    }
                    Piece::Raw(bytes) => out.extend_from_slice(bytes),
                }
            }
        }

        /// Well-formed unknown fields: numbers the messages do not define,
        /// or known numbers with another wire type, groups included.
        fn unknown_field() -> impl Strategy<Value = Vec<u8>> {
            let number = prop_oneof![1u64..=6, 7u64..=MAX_FIELD_NUMBER];
            (
                number,
                0usize..5,
                any::<u64>(),
                vec(any::<u8>(), 0..8),
                0usize..3,
            )
                .prop_map(|(number, kind, value, bytes, depth)| {
                    let mut out = Vec::new();
                    // Wire types no defined field of any message uses with
                    // these numbers: numbers past 6 take any of them.
                    let wire_type = [VARINT, FIXED64, LEN, START_GROUP, FIXED32][kind];
                    let wire_type = match (number, wire_type) {
                        (1..=3 | 5 | 6, LEN) | (4, VARINT) => FIXED64,
                        _ => wire_type,
                    };
                    let piece = if wire_type == START_GROUP {
                        let mut group = Piece::Field {
                            number: 1,
                            wire_type: LEN,
                            value,
                            bytes,
                        };
                        for level in 0..=depth {
                            group = Piece::Group {
                                number: number + level as u64,
                                end: None,
                                pieces: vec![group],
                            };
                        }
                        group
                    } else {
                        Piece::Field {
                            number,
                            wire_type,
                            value,
                            bytes,
                        }
                    };
                    write(&[piece], &mut out);
                    out
                })
        }

        fn event() -> impl Strategy<Value = Event> {
            (
                "[a-z0-9-]{0,8}",
                "[a-z]{0,4}",
                "[a-zé]{0,4}",
                any::<i64>(),
                proptest::collection::btree_map("[a-z]{0,3}", "[a-z😀]{0,3}", 0..4),
                vec(any::<u8>(), 0..16),
            )
                .prop_map(|(id, tenant, kind, at, attributes, payload)| Event {
                    event_id: id,
                    tenant_id: tenant,
                    r#type: kind,
                    occurred_at_unix_ms: at,
                    attributes,
                    payload: Bytes::from(payload),
                })
        }

        /// Splices `unknown` fields in before each of the message's fields
        /// (`fields` are its encoded fields, boundaries known).
        fn splice(fields: Vec<Vec<u8>>, unknown: &[Vec<u8>]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut extra = unknown.iter().cycle();
            for field in fields {
                if let Some(u) = extra.next() {
                    out.extend_from_slice(u);
                }
                out.extend(field);
            }
            out.extend(unknown.first().cloned().unwrap_or_default());
            out
        }

        /// An event's fields, one encoded field each, with unknown ones
        /// spliced in at every level (map entries included).
        fn event_with_unknown(event: &Event, unknown: &[Vec<u8>]) -> Vec<u8> {
            let mut fields = Vec::new();
            for (number, value) in [
                (1, &event.event_id),
                (2, &event.tenant_id),
                (3, &event.r#type),
            ] {
                let mut f = Vec::new();
                len_field(&mut f, number, value.as_bytes());
                fields.push(f);
            }
            let mut f = Vec::new();
            key(&mut f, 4, VARINT);
            varint(&mut f, event.occurred_at_unix_ms as u64);
            fields.push(f);
            for (k, v) in &event.attributes {
                let (mut kf, mut vf) = (Vec::new(), Vec::new());
                len_field(&mut kf, 1, k.as_bytes());
                len_field(&mut vf, 2, v.as_bytes());
                let mut f = Vec::new();
                len_field(&mut f, 5, &splice(vec![kf, vf], unknown));
                fields.push(f);
            }
            let mut f = Vec::new();
            len_field(&mut f, 6, &event.payload);
            fields.push(f);
            splice(fields, unknown)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_bytes_never_panic(body in vec(any::<u8>(), 0..64)) {
                let _ = decode(body);
            }

            /// Hostile structure: random numbers and wire types, nested
            /// messages and groups, mismatched ends, cut at a random point.
            /// Wherever prost's stricter decoder accepts a body, the result
            /// is the same; nothing panics.
            #[test]
            fn hostile_structure_never_panics_and_agrees_with_prost_where_prost_accepts(
                pieces in vec(piece(), 0..6),
                cut in any::<prop::sample::Index>(),
                truncate in any::<bool>(),
            ) {
                let mut body = Vec::new();
                write(&pieces, &mut body);
                if truncate && !body.is_empty() {
                    body.truncate(cut.index(body.len()));
                }
                let ours = decode(body.clone());
                if ours.is_ok() {
                    for (_, value, owned) in record_values(&body) {
                        prop_assert_eq!(value, owned);
                    }
                }
                if let Ok(theirs) = EventBatch::decode(Bytes::from(body)) {
                    prop_assert_eq!(ours, Ok(theirs));
                }
            }

            /// Well-formed unknown fields, wrong wire types and groups at
            /// every level change nothing.
            #[test]
            fn unknown_fields_anywhere_change_nothing(
                events in vec(event(), 0..4),
                unknown in vec(unknown_field(), 0..4),
            ) {
                let body = splice(
                    events
                        .iter()
                        .map(|e| {
                            let mut f = Vec::new();
                            len_field(&mut f, 1, &event_with_unknown(e, &unknown));
                            f
                        })
                        .collect(),
                    &unknown,
                );
                for (canonical, value, owned) in record_values(&body) {
                    prop_assert!(unknown.is_empty() || canonical.is_none());
                    prop_assert_eq!(value, owned);
                }
                prop_assert_eq!(decode(body), Ok(EventBatch { events }));
            }

            /// Go's encoding of an event with one byte changed, inserted or
            /// removed: whenever the result still decodes, the value
            /// published for each event (its own bytes if the decoder took
            /// them for canonical) is what Go would write for it.
            #[test]
            fn a_canonical_event_changed_anywhere_is_still_published_as_go_writes_it(
                event in event(),
                at in any::<prop::sample::Index>(),
                byte in any::<u8>(),
                edit in 0u8..3,
            ) {
                let mut record = encode_event(&event);
                if !record.is_empty() || edit == 1 {
                    let at = at.index(record.len() + usize::from(edit == 1));
                    match edit {
                        0 => record[at] = byte,
                        1 => record.insert(at, byte),
                        _ => drop(record.remove(at)),
                    }
                }
                let body = batch_of(&[record]);
                if decode(body.clone()).is_ok() {
                    for (canonical, value, owned) in record_values(&body) {
                        prop_assert_eq!(&value, &owned);
                        if let Some(canonical) = canonical {
                            prop_assert_eq!(canonical, owned);
                        }
                    }
                }
            }

            /// prost's encoding and the record encoding both decode back to
            /// the batch; the record encoding decodes with prost too.
            #[test]
            fn valid_encodings_round_trip(events in vec(event(), 0..4)) {
                let batch = EventBatch { events };
                prop_assert_eq!(decode(batch.encode_to_vec()), Ok(batch.clone()));
                let mut body = Vec::new();
                for event in &batch.events {
                    let record = encode_event(event);
                    prop_assert_eq!(&Event::decode(&record[..]).unwrap(), event);
                    len_field(&mut body, 1, &record);
                }
                // Go's encoding is always canonical: published as it stands.
                for (canonical, value, owned) in record_values(&body) {
                    prop_assert_eq!(canonical.as_ref(), Some(&value));
                    prop_assert_eq!(value, owned);
                }
                prop_assert_eq!(decode(body), Ok(batch));
            }
        }
    }
}

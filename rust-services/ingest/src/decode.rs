//! Decoding request bodies into an [`EventBatch`].
//!
//! Protobuf goes through [`crate::wire`], which reads the wire format as Go's
//! protobuf runtime does (unknown fields and wrong wire types skipped, groups
//! skipped whole) in place: the request path ([`decode_view`]) copies
//! nothing out of the body. JSON follows the proto3 JSON mapping
//! exactly as Go's `protojson.Unmarshal` applies it (both field names,
//! unknown fields rejected, int64 as number or string, base64 in either
//! alphabet with or without padding) so both twins accept and reject the same
//! bodies.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{alphabet, Engine};
use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::media::Media;
use crate::proto::{Event, EventBatch};
use crate::wire::{self, BatchView, WireError};

/// The body is not a valid `EventBatch` in its declared encoding.
#[derive(Debug, thiserror::Error)]
pub enum MalformedBody {
    #[error("request body is not a valid protobuf EventBatch: {0}")]
    Protobuf(#[from] WireError),
    #[error("request body is not a valid JSON EventBatch: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes `body` as `media` into a view of its events: protobuf in place
/// (strings and payloads are slices of `body`), JSON into `json_events`
/// first, which the view then borrows.
pub fn decode_view<'a>(
    media: Media,
    body: &'a [u8],
    json_events: &'a mut Vec<Event>,
) -> Result<BatchView<'a>, MalformedBody> {
    match media {
        Media::Protobuf => Ok(BatchView::decode(body)?),
        Media::Json => {
            *json_events = decode_json(body)?.events;
            Ok(BatchView::of(json_events))
        }
    }
}

/// Decodes `body` as `media` into owned events (payloads still slices of
/// `body` for protobuf).
pub fn decode(media: Media, body: Bytes) -> Result<EventBatch, MalformedBody> {
    match media {
        Media::Protobuf => Ok(wire::decode_batch(&body)?),
        Media::Json => decode_json(&body),
    }
}

fn decode_json(body: &[u8]) -> Result<EventBatch, MalformedBody> {
    let batch: JsonBatch = serde_json::from_slice(body)?;
    Ok(EventBatch {
        events: batch.events,
    })
}

// The JSON types are deserialised by hand rather than derived: a derived
// struct also accepts a JSON array (`[]`) and silently keeps the last of two
// equal keys, where protojson rejects both.

struct JsonBatch {
    events: Vec<Event>,
}

impl<'de> Deserialize<'de> for JsonBatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor::<JsonBatch>::new("an EventBatch object"))
    }
}

impl FromFields for JsonBatch {
    const FIELDS: &'static [&'static str] = &["events"];

    fn empty() -> Self {
        JsonBatch { events: Vec::new() }
    }

    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
    ) -> Result<usize, A::Error> {
        match name {
            "events" => {
                let events: Option<Vec<JsonEvent>> = map.next_value()?;
                self.events = events
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| e.0)
                    .collect();
                Ok(0)
            }
            other => Err(de::Error::unknown_field(other, Self::FIELDS)),
        }
    }
}

struct JsonEvent(Event);

impl<'de> Deserialize<'de> for JsonEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor::<JsonEvent>::new("an Event object"))
    }
}

impl FromFields for JsonEvent {
    const FIELDS: &'static [&'static str] = &[
        "eventId",
        "tenantId",
        "type",
        "occurredAtUnixMs",
        "attributes",
        "payload",
    ];

    fn empty() -> Self {
        JsonEvent(Event::default())
    }

    /// Each field under its JSON name or its proto name; `null` = default.
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
    ) -> Result<usize, A::Error> {
        let e = &mut self.0;
        Ok(match name {
            "eventId" | "event_id" => {
                e.event_id = map.next_value::<Option<String>>()?.unwrap_or_default();
                0
            }
            "tenantId" | "tenant_id" => {
                e.tenant_id = map.next_value::<Option<String>>()?.unwrap_or_default();
                1
            }
            "type" => {
                e.r#type = map.next_value::<Option<String>>()?.unwrap_or_default();
                2
            }
            "occurredAtUnixMs" | "occurred_at_unix_ms" => {
                e.occurred_at_unix_ms = map.next_value::<Int64>()?.0.unwrap_or_default();
                3
            }
            "attributes" => {
                e.attributes = map
                    .next_value::<Option<Attributes>>()?
                    .map(|a| a.0)
                    .unwrap_or_default();
                4
            }
            "payload" => {
                e.payload = map.next_value::<Base64>()?.0.unwrap_or_default();
                5
            }
            other => return Err(de::Error::unknown_field(other, Self::FIELDS)),
        })
    }
}

/// A JSON object read field by field; `field` returns the field's index so
/// the same field given twice (under either name) is refused.
trait FromFields: Sized {
    const FIELDS: &'static [&'static str];
    fn empty() -> Self;
    fn field<'de, A: MapAccess<'de>>(&mut self, name: &str, map: &mut A)
        -> Result<usize, A::Error>;
}

struct ObjectVisitor<T> {
    expecting: &'static str,
    target: PhantomData<T>,
}

impl<T> ObjectVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            target: PhantomData,
        }
    }
}

impl<'de, T: FromFields> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut value = T::empty();
        let mut seen = 0u32;
        while let Some(name) = map.next_key::<String>()? {
            let index = value.field(&name, &mut map)?;
            if seen & (1 << index) != 0 {
                return Err(de::Error::custom(format!("duplicate field `{name}`")));
            }
            seen |= 1 << index;
        }
        Ok(value)
    }
}

/// `map<string, string>`: an object of strings, each key once.
struct Attributes(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AttributesVisitor;
        impl<'de> Visitor<'de> for AttributesVisitor {
            type Value = Attributes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attributes, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if out.contains_key(&k) {
                        return Err(de::Error::custom(format!("duplicate attribute `{k}`")));
                    }
                    out.insert(k, v);
                }
                Ok(Attributes(out))
            }
        }
        d.deserialize_map(AttributesVisitor)
    }
}

struct Int64(Option<i64>);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int64(d).map(Int64)
    }
}

struct Base64(Option<Bytes>);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        base64_bytes(d).map(Base64)
    }
}

/// int64 as a JSON number or a string holding a JSON number token; its
/// value must be an integer within int64, read exactly (not through a
/// float) as protojson reads it: `1.0`, `1e3`, `"1e3"` and
/// `9223372036854775807.0` are accepted, `1.5` and `-9223372036854775809`
/// are not.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let raw: &RawValue = Deserialize::deserialize(d)?;
    let raw = raw.get();
    let parsed = match raw.as_bytes()[0] {
        b'n' => return Ok(None),
        b'-' | b'0'..=b'9' => exact_integer(raw),
        b'"' => serde_json::from_str::<String>(raw)
            .ok()
            .filter(|s| is_json_number(s))
            .and_then(|s| exact_integer(&s)),
        _ => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| de::Error::custom("occurredAtUnixMs is not an int64"))
}

/// The int64 a JSON number token denotes, if it is an integer in range:
/// protojson's `parseNumberParts` + `normalizeToIntString` +
/// `strconv.ParseInt`, decimal digits shifted by the exponent, no float.
fn exact_integer(number: &str) -> Option<i64> {
    let (negative, unsigned) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // A leading 0 is the whole integer part; trailing zeros of the
    // fraction say nothing.
    let integer = integer.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    if integer.is_empty() && fraction.is_empty() {
        return Some(0);
    }
    // protojson parses the exponent as an int32 (a leading `+` allowed).
    let exponent = match exponent {
        Some(e) => i64::from(e.parse::<i32>().ok()?),
        None => 0,
    };
    let (int_len, frac_len) = (integer.len() as i64, fraction.len() as i64);
    let mut digits = String::with_capacity(20);
    if exponent >= 0 {
        // 20 digits: the most a uint64 has.
        if frac_len > exponent || int_len + exponent > 20 {
            return None;
        }
        digits.push_str(integer);
        digits.push_str(fraction);
        digits.extend(std::iter::repeat_n('0', (exponent - frac_len) as usize));
    } else {
        let point = int_len + exponent;
        if frac_len > 0 || point < 0 {
            return None;
        }
        let (kept, shifted) = integer.split_at(point as usize);
        if shifted.bytes().any(|b| b != b'0') {
            return None;
        }
        digits.push_str(kept);
    }
    if negative {
        digits.insert(0, '-');
    }
    digits.parse().ok()
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, the JSON number grammar.
fn is_json_number(s: &str) -> bool {
    fn digits(b: &[u8]) -> usize {
        b.iter().take_while(|c| c.is_ascii_digit()).count()
    }
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(&b[i..]),
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        let n = digits(&b[i + 1..]);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(&b[i..]);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == b.len()
}

/// bytes as base64: URL-safe alphabet when the text holds `-` or `_`,
/// standard otherwise; padded when its length (line breaks counted) is a
/// multiple of four; line breaks (`\r`, `\n`) ignored, as Go's decoder
/// ignores them.
fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
    let Some(mut text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let alphabet = if text.contains(['-', '_']) {
        &alphabet::URL_SAFE
    } else {
        &alphabet::STANDARD
    };
    let padding = if text.len() % 4 == 0 {
        DecodePaddingMode::RequireCanonical
    } else {
        DecodePaddingMode::RequireNone
    };
    text.retain(|c| c != '\r' && c != '\n');
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(padding)
        .with_decode_allow_trailing_bits(true);
    GeneralPurpose::new(alphabet, config)
        .decode(text.as_bytes())
        .map(|v| Some(Bytes::from(v)))
        .map_err(|e| de::Error::custom(format!("payload is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn json(body: &str) -> Result<EventBatch, MalformedBody> {
        decode(Media::Json, Bytes::copy_from_slice(body.as_bytes()))
    }

    #[test]
    fn json_accepts_json_names_and_proto_names() {
        let a =
            json(r#"{"events":[{"eventId":"e","tenantId":"t","type":"x","occurredAtUnixMs":5}]}"#)
                .unwrap();
        let b = json(
            r#"{"events":[{"event_id":"e","tenant_id":"t","type":"x","occurred_at_unix_ms":5}]}"#,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.events[0].occurred_at_unix_ms, 5);
    }

    #[test]
    fn json_field_given_under_both_names_is_malformed() {
        assert!(json(r#"{"events":[{"eventId":"a","event_id":"b"}]}"#).is_err());
    }

    #[test]
    fn json_must_be_objects_not_arrays() {
        assert!(json("[]").is_err());
        assert!(json(r#"{"events":[[]]}"#).is_err());
    }

    #[test]
    fn json_repeated_keys_are_malformed() {
        assert!(json(r#"{"events":[],"events":[]}"#).is_err());
        assert!(json(r#"{"events":[{"type":"a","type":"b"}]}"#).is_err());
        assert!(json(r#"{"events":[{"attributes":{"k":"1","k":"2"}}]}"#).is_err());
    }

    #[test]
    fn json_unknown_fields_are_malformed() {
        assert!(json(r#"{"events":[],"extra":1}"#).is_err());
        assert!(json(r#"{"events":[{"eventId":"a","color":"red"}]}"#).is_err());
    }

    #[test]
    fn json_int64_may_be_a_string_or_an_integral_number() {
        for v in [r#""-42""#, "-42", "-42.0", r#""-4.2e1""#] {
            let batch = json(&format!(r#"{{"events":[{{"occurredAtUnixMs":{v}}}]}}"#)).unwrap();
            assert_eq!(batch.events[0].occurred_at_unix_ms, -42, "{v}");
        }
        for bad in [
            "1.5", r#""1.5""#, r#"" 1""#, r#""+1""#, r#""012""#, r#""1e""#,
        ] {
            let body = format!(r#"{{"events":[{{"occurredAtUnixMs":{bad}}}]}}"#);
            assert!(json(&body).is_err(), "{bad} was accepted");
        }
        assert!(json(r#"{"events":[{"occurredAtUnixMs":"x"}]}"#).is_err());
        assert!(json(r#"{"events":[{"occurredAtUnixMs":true}]}"#).is_err());
    }

    #[test]
    fn json_int64_is_read_exactly_not_through_a_float() {
        let at = |v: &str| {
            json(&format!(r#"{{"events":[{{"occurredAtUnixMs":{v}}}]}}"#))
                .map(|b| b.events[0].occurred_at_unix_ms)
                .ok()
        };
        assert_eq!(at("9223372036854775807.0"), Some(i64::MAX));
        assert_eq!(at(r#""9223372036854775807.000""#), Some(i64::MAX));
        assert_eq!(at("92233720368547758.07e2"), Some(i64::MAX));
        assert_eq!(at("9007199254740993.0"), Some(9_007_199_254_740_993));
        assert_eq!(at("-9223372036854775808.0"), Some(i64::MIN));
        assert_eq!(at("-9223372036854775809"), None);
        assert_eq!(at("9223372036854775808.0"), None);
        assert_eq!(at("1e19"), None);
        assert_eq!(at("1000e-3"), Some(1));
        assert_eq!(at("0.05e2"), Some(5));
        assert_eq!(at("12e-1"), None);
        assert_eq!(at("1.25e1"), None);
        // Zero is zero whatever the exponent, even one past int32.
        assert_eq!(at("-0.0e99999999999"), Some(0));
        assert_eq!(at("1e99999999999"), None);
        assert_eq!(at(r#""1e""#), None);
        assert_eq!(at(r#""\u0035""#), Some(5));
    }

    #[test]
    fn json_payload_ignores_line_breaks_in_base64() {
        let payload = |p: &str| {
            json(&format!(r#"{{"events":[{{"payload":"{p}"}}]}}"#))
                .map(|b| b.events[0].payload.clone())
                .ok()
        };
        // Padded or not is judged on the length with the line breaks, as
        // Go does (each `\n` below is one character once parsed).
        assert_eq!(payload(r"aGVsbG8\r\n").as_deref(), Some(&b"hello"[..]));
        assert_eq!(payload(r"aGVsbG8=\n\n\n\n").as_deref(), Some(&b"hello"[..]));
        assert_eq!(payload(r"aGk=\n\n\n\n").as_deref(), Some(&b"hi"[..]));
        for bad in [r"aGk=\n", r"aGk=\n\n\n", r"\naGVsbG8", r"aG\nk=", "aGk ="] {
            assert_eq!(payload(bad), None, "{bad}");
        }
    }

    #[test]
    fn json_payload_accepts_both_base64_alphabets_padded_or_not() {
        // 0xfb 0xff encodes as "+/8=" (standard) or "-_8" (URL-safe, unpadded).
        for p in ["+/8=", "-_8=", "-_8", "+/8"] {
            let batch = json(&format!(r#"{{"events":[{{"payload":"{p}"}}]}}"#)).unwrap();
            assert_eq!(&batch.events[0].payload[..], &[0xfb, 0xff], "{p}");
        }
        assert!(json(r#"{"events":[{"payload":"!!"}]}"#).is_err());
        // Non-zero trailing bits are tolerated, as Go's decoder does.
        assert_eq!(
            &json(r#"{"events":[{"payload":"aGl="}]}"#).unwrap().events[0].payload[..],
            b"hi"
        );
    }

    #[test]
    fn json_nulls_mean_defaults() {
        let batch =
            json(r#"{"events":[{"eventId":null,"attributes":null,"payload":null}]}"#).unwrap();
        assert_eq!(batch.events[0], Event::default());
        assert!(json(r#"{"events":null}"#).unwrap().events.is_empty());
    }

    #[test]
    fn empty_json_body_is_malformed_but_empty_protobuf_is_an_empty_batch() {
        assert!(json("").is_err());
        assert!(decode(Media::Protobuf, Bytes::new())
            .unwrap()
            .events
            .is_empty());
    }

    #[test]
    fn protobuf_payloads_share_the_request_buffer() {
        let event = Event {
            event_id: "e".into(),
            payload: Bytes::from_static(b"payload bytes"),
            ..Default::default()
        };
        let body = Bytes::from(
            EventBatch {
                events: vec![event],
            }
            .encode_to_vec(),
        );
        let batch = decode(Media::Protobuf, body.clone()).unwrap();
        let payload = &batch.events[0].payload;
        let inside = body.as_ptr_range().contains(&payload.as_ptr());
        assert!(inside, "payload was copied out of the body");
    }

    #[test]
    fn garbage_protobuf_is_malformed() {
        assert!(decode(Media::Protobuf, Bytes::from_static(&[0x0a, 0xff, 0xff])).is_err());
    }
}

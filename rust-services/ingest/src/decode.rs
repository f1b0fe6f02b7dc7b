//! Decoding request bodies into an [`EventBatch`].
//!
//! Protobuf goes through prost with `bytes` fields, so payloads are slices of
//! the request body rather than copies. JSON follows the proto3 JSON mapping
//! exactly as Go's `protojson.Unmarshal` applies it (both field names,
//! unknown fields rejected, int64 as number or string, base64 in either
//! alphabet with or without padding) so both twins accept and reject the same
//! bodies.

use std::collections::BTreeMap;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{alphabet, Engine};
use bytes::Bytes;
use prost::Message;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::media::Media;
use crate::proto::{Event, EventBatch};

/// The body is not a valid `EventBatch` in its declared encoding.
#[derive(Debug, thiserror::Error)]
#[error("request body is not a valid EventBatch: {0}")]
pub struct MalformedBody(String);

/// Decodes `body` as `media`.
pub fn decode(media: Media, body: Bytes) -> Result<EventBatch, MalformedBody> {
    match media {
        Media::Protobuf => EventBatch::decode(body).map_err(|e| MalformedBody(e.to_string())),
        Media::Json => decode_json(&body),
    }
}

fn decode_json(body: &[u8]) -> Result<EventBatch, MalformedBody> {
    let batch: JsonBatch =
        serde_json::from_slice(body).map_err(|e| MalformedBody(e.to_string()))?;
    Ok(EventBatch {
        events: batch
            .events
            .unwrap_or_default()
            .into_iter()
            .map(JsonEvent::into_event)
            .collect(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBatch {
    #[serde(default)]
    events: Option<Vec<JsonEvent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEvent {
    #[serde(default, rename = "eventId", alias = "event_id")]
    event_id: Option<String>,
    #[serde(default, rename = "tenantId", alias = "tenant_id")]
    tenant_id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(
        default,
        rename = "occurredAtUnixMs",
        alias = "occurred_at_unix_ms",
        deserialize_with = "int64"
    )]
    occurred_at_unix_ms: Option<i64>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "base64_bytes")]
    payload: Option<Bytes>,
}

impl JsonEvent {
    fn into_event(self) -> Event {
        Event {
            event_id: self.event_id.unwrap_or_default(),
            tenant_id: self.tenant_id.unwrap_or_default(),
            r#type: self.kind.unwrap_or_default(),
            occurred_at_unix_ms: self.occurred_at_unix_ms.unwrap_or_default(),
            attributes: self.attributes.unwrap_or_default(),
            payload: self.payload.unwrap_or_default(),
        }
    }
}

/// int64 as a JSON number or a string holding one; integral values written
/// with a fraction or exponent (`1.0`, `1e3`) are accepted as protojson does.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let value: Option<serde_json::Value> = Option::deserialize(d)?;
    let parsed = match &value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().and_then(integral_f64))
        }
        Some(serde_json::Value::String(s)) => s.parse::<i64>().ok().or_else(|| {
            s.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(integral_f64)
        }),
        Some(_) => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| de::Error::custom("occurredAtUnixMs is not an int64"))
}

fn integral_f64(f: f64) -> Option<i64> {
    // i64::MAX as f64 rounds up to 2^63, which is out of range.
    (f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63)).then_some(f as i64)
}

/// bytes as base64: URL-safe alphabet when the text holds `-` or `_`,
/// standard otherwise; padded when its length is a multiple of four.
fn base64_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
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
        assert!(json(r#"{"events":[{"occurredAtUnixMs":1.5}]}"#).is_err());
        assert!(json(r#"{"events":[{"occurredAtUnixMs":"x"}]}"#).is_err());
        assert!(json(r#"{"events":[{"occurredAtUnixMs":true}]}"#).is_err());
    }

    #[test]
    fn json_payload_accepts_both_base64_alphabets_padded_or_not() {
        // 0xfb 0xff encodes as "+/8=" (standard) or "-_8" (URL-safe, unpadded).
        for p in ["+/8=", "-_8=", "-_8", "+/8"] {
            let batch = json(&format!(r#"{{"events":[{{"payload":"{p}"}}]}}"#)).unwrap();
            assert_eq!(&batch.events[0].payload[..], &[0xfb, 0xff], "{p}");
        }
        assert!(json(r#"{"events":[{"payload":"!!"}]}"#).is_err());
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

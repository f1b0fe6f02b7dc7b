//! Encoding the 200 body, byte-identical to the Go twin.

use bytes::Bytes;
use prost::Message;

use crate::media::Media;
use crate::proto::IngestResponse;
use parallax_common::json;

/// Encodes `response` in `media`.
///
/// JSON has a fixed field order and no whitespace, with every field present
/// (`{"accepted":0,"rejected":[]}`), which the proto3 JSON mapping allows and
/// which is easier for people to read than omitted defaults.
pub fn encode(response: &IngestResponse, media: Media) -> Bytes {
    match media {
        Media::Protobuf => Bytes::from(response.encode_to_vec()),
        Media::Json => {
            let mut out = String::with_capacity(32 + response.rejected.len() * 64);
            out.push_str("{\"accepted\":");
            out.push_str(&response.accepted.to_string());
            out.push_str(",\"rejected\":[");
            for (i, r) in response.rejected.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"index\":");
                out.push_str(&r.index.to_string());
                out.push_str(",\"eventId\":");
                json::write_string(&mut out, &r.event_id);
                out.push_str(",\"reason\":");
                json::write_string(&mut out, &r.reason);
                out.push('}');
            }
            out.push_str("]}");
            Bytes::from(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Rejection;

    #[test]
    fn empty_response_is_all_fields_in_json_and_empty_in_protobuf() {
        let r = IngestResponse::default();
        assert_eq!(
            &encode(&r, Media::Json)[..],
            br#"{"accepted":0,"rejected":[]}"#
        );
        assert!(encode(&r, Media::Protobuf).is_empty());
    }

    #[test]
    fn json_lists_rejections_in_order_with_escaped_ids() {
        let r = IngestResponse {
            accepted: 2,
            rejected: vec![
                Rejection {
                    index: 1,
                    event_id: "a\"<b>".into(),
                    reason: "missing_type".into(),
                },
                Rejection {
                    index: 3,
                    event_id: String::new(),
                    reason: "invalid_event_id".into(),
                },
            ],
        };
        assert_eq!(
            std::str::from_utf8(&encode(&r, Media::Json)).unwrap(),
            r#"{"accepted":2,"rejected":[{"index":1,"eventId":"a\"<b>","reason":"missing_type"},{"index":3,"eventId":"","reason":"invalid_event_id"}]}"#
        );
    }
}

//! Decoding `application/x-protobuf` bodies with the project's descriptors
//! (compiled from `proto/` at build time), so protobuf answers diff field by
//! field like JSON ones instead of as opaque bytes.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("descriptors built by build.rs decode")
    })
}

/// The message as proto3 JSON, or `None` when the name is unknown or the
/// bytes do not decode as that message.
pub fn to_json(message: &str, bytes: &[u8]) -> Option<Value> {
    let descriptor = pool().get_message_by_name(message)?;
    let decoded = DynamicMessage::decode(descriptor, bytes).ok()?;
    serde_json::to_value(&decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_an_ingest_response() {
        // IngestResponse { accepted: 2, rejected: [{ index: 1, event_id: "e", reason: "r" }] }
        let bytes = [
            0x08, 0x02, 0x12, 0x08, 0x08, 0x01, 0x12, 0x01, b'e', 0x1a, 0x01, b'r',
        ];
        let value = to_json("parallax.ingest.v1.IngestResponse", &bytes).unwrap();
        assert_eq!(value["accepted"], 2);
        assert_eq!(value["rejected"][0]["eventId"], "e");
    }

    #[test]
    fn unknown_messages_and_garbage_do_not_decode() {
        assert!(to_json("no.such.Message", &[]).is_none());
        assert!(to_json("parallax.ingest.v1.IngestResponse", &[0x0a, 0xff]).is_none());
    }
}

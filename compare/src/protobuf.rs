//! Decoding `application/x-protobuf` bodies so they diff field by field
//! like JSON ones instead of as opaque bytes.
//!
//! Messages come from the project's descriptors (compiled from `proto/` at
//! build time) or from a descriptor set file of the user's (`protoc
//! --descriptor_set_out` or `buf build -o`), named by the route's
//! `descriptor_set`.
//!
//! # Protobuf's own rules
//! The decoded tree is the message's proto3 JSON mapping, so what protobuf
//! calls equal compares equal: field order on the wire, packed against
//! unpacked repeated scalars, and a proto3 field set to its default against
//! the same field absent (implicit presence cannot tell them apart).
//! Unknown fields are *not* dropped: protobuf preserves and re-serialises
//! them, and `proto.Equal` compares them, so they appear in the tree as
//! `"#<field number>"` members holding their encoded bytes in hex, and
//! differ when their bytes do.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, Value};

use crate::value::Json;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// The project's own descriptors.
pub fn project() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("descriptors built by build.rs decode")
    })
}

/// A descriptor set file (`FileDescriptorSet`, binary).
pub fn load(path: &str) -> Result<DescriptorPool, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    DescriptorPool::decode(bytes.as_slice())
        .map_err(|e| format!("{path} is not a binary FileDescriptorSet (protoc --descriptor_set_out / buf build -o): {e}"))
}

/// The message as proto3 JSON (known fields only), or `None` when the name
/// is unknown or the bytes do not decode as that message.
pub fn to_json(message: &str, bytes: &[u8]) -> Option<serde_json::Value> {
    let descriptor = project().get_message_by_name(message)?;
    let decoded = DynamicMessage::decode(descriptor, bytes).ok()?;
    serde_json::to_value(&decoded).ok()
}

/// The message as the engine's tree, unknown fields included (see the
/// module docs); `None` when it does not decode.
pub fn to_tree(pool: &DescriptorPool, message: &str, bytes: &[u8]) -> Option<Json> {
    let descriptor = pool.get_message_by_name(message)?;
    let decoded = DynamicMessage::decode(descriptor, bytes).ok()?;
    let mut tree = Json::from_serde(&serde_json::to_value(&decoded).ok()?);
    add_unknown(&decoded, &mut tree);
    Some(tree)
}

fn add_unknown(message: &DynamicMessage, node: &mut Json) {
    let mut unknown: Vec<(String, Json)> = Vec::new();
    for field in message.unknown_fields() {
        let mut buf = Vec::new();
        field.encode(&mut buf);
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("#{}", field.number());
        match unknown.iter_mut().find(|(k, _)| *k == key) {
            Some((_, Json::Array(items))) => items.push(Json::String(hex)),
            _ => unknown.push((key, Json::Array(vec![Json::String(hex)]))),
        }
    }
    let Json::Object(members) = node else {
        return;
    };
    for (field, value) in message.fields() {
        let Ok(i) = members.binary_search_by(|(k, _)| k.as_str().cmp(field.json_name())) else {
            continue;
        };
        let child = &mut members[i].1;
        match (value, child) {
            (Value::Message(m), child) => add_unknown(m, child),
            (Value::List(items), Json::Array(nodes)) => {
                for (item, node) in items.iter().zip(nodes.iter_mut()) {
                    if let Value::Message(m) = item {
                        add_unknown(m, node);
                    }
                }
            }
            (Value::Map(entries), Json::Object(nodes)) => {
                for (key, item) in entries {
                    let Value::Message(m) = item else { continue };
                    let key = match key {
                        MapKey::String(s) => s.clone(),
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(n) => n.to_string(),
                        MapKey::I64(n) => n.to_string(),
                        MapKey::U32(n) => n.to_string(),
                        MapKey::U64(n) => n.to_string(),
                    };
                    if let Ok(j) = nodes.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
                        add_unknown(m, &mut nodes[j].1);
                    }
                }
            }
            _ => {}
        }
    }
    if !unknown.is_empty() {
        members.extend(unknown);
        members.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = "parallax.ingest.v1.IngestResponse";

    #[test]
    fn decodes_an_ingest_response() {
        // IngestResponse { accepted: 2, rejected: [{ index: 1, event_id: "e", reason: "r" }] }
        let bytes = [
            0x08, 0x02, 0x12, 0x08, 0x08, 0x01, 0x12, 0x01, b'e', 0x1a, 0x01, b'r',
        ];
        let value = to_json(RESPONSE, &bytes).unwrap();
        assert_eq!(value["accepted"], 2);
        assert_eq!(value["rejected"][0]["eventId"], "e");
    }

    #[test]
    fn unknown_messages_and_garbage_do_not_decode() {
        assert!(to_json("no.such.Message", &[]).is_none());
        assert!(to_json(RESPONSE, &[0x0a, 0xff]).is_none());
    }

    fn tree(bytes: &[u8]) -> Json {
        to_tree(project(), RESPONSE, bytes).unwrap()
    }

    #[test]
    fn field_order_and_explicit_defaults_do_not_matter() {
        // accepted = 0 written explicitly equals accepted absent (proto3).
        assert_eq!(tree(&[0x08, 0x00]), tree(&[]));
        // rejected[0] { index: 1, reason: "r" } with its fields in either order.
        let a = [0x12, 0x05, 0x08, 0x01, 0x1a, 0x01, b'r'];
        let b = [0x12, 0x05, 0x1a, 0x01, b'r', 0x08, 0x01];
        assert_eq!(tree(&a), tree(&b));
    }

    #[test]
    fn unknown_fields_are_kept_and_compared() {
        // Field 9 (varint 1) at the top and inside rejected[0].
        let top = tree(&[0x08, 0x01, 0x48, 0x01]);
        assert_eq!(
            top.get("#9"),
            Some(&Json::Array(vec![Json::String("4801".into())]))
        );
        assert_ne!(tree(&[0x48, 0x01]), tree(&[0x48, 0x02]));
        let nested = tree(&[0x12, 0x02, 0x48, 0x01]);
        assert!(
            nested.render(200).contains("\"#9\""),
            "{}",
            nested.render(200)
        );
    }
}

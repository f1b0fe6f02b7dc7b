//! Comparing a primary record with the shadow record of the same event.
//!
//! Everything a consumer of the topic could observe counts: the partition
//! (the twins must partition identically, murmur2 of the key), the key,
//! every header by name, and the value. The value is decoded with the
//! project's descriptors (`parallax-compare`) so a difference names its field,
//! `/attributes/region`; when it does not decode it is compared as bytes.
//! Equal fields in different bytes are still a difference: the ingest
//! contract fixes the encoding byte for byte.

use std::collections::BTreeMap;

use parallax_compare::{json, protobuf, Difference, Kind, Rules};

use crate::record::Record;

/// The message the ingest twins publish as the record value.
pub const INGEST_EVENT_MESSAGE: &str = "parallax.ingest.v1.Event";

/// Longest rendering of a key or header value kept in a difference.
const PREVIEW: usize = 128;

/// Which part of a record a difference is in (a bounded metric label).
pub fn part(path: &str) -> &'static str {
    match path {
        "partition" => "partition",
        "key" => "key",
        p if p.starts_with("header:") => "header",
        _ => "value",
    }
}

/// Every difference between `primary` and `shadow`; `message` is the
/// protobuf message of the value (`None`: compare values as bytes).
pub fn compare(primary: &Record, shadow: &Record, message: Option<&str>) -> Vec<Difference> {
    let mut out = Vec::new();
    if primary.partition != shadow.partition {
        out.push(Difference {
            path: "partition".into(),
            kind: Kind::Value,
            primary: Some(primary.partition.to_string()),
            shadow: Some(shadow.partition.to_string()),
        });
    }
    if primary.key != shadow.key {
        out.push(Difference {
            path: "key".into(),
            kind: Kind::Value,
            primary: primary.key.as_deref().map(render),
            shadow: shadow.key.as_deref().map(render),
        });
    }
    let (a, b) = (by_name(&primary.headers), by_name(&shadow.headers));
    for name in a.keys().chain(b.keys().filter(|n| !a.contains_key(*n))) {
        let (va, vb) = (a.get(name), b.get(name));
        if va != vb {
            out.push(Difference {
                path: format!("header:{name}"),
                kind: Kind::Header,
                primary: va.map(|v| render_values(v)),
                shadow: vb.map(|v| render_values(v)),
            });
        }
    }
    value(primary, shadow, message, &mut out);
    out
}

fn value(primary: &Record, shadow: &Record, message: Option<&str>, out: &mut Vec<Difference>) {
    if primary.value == shadow.value {
        return;
    }
    if let Some(message) = message {
        let a = protobuf::to_tree(protobuf::project(), message, &primary.value);
        let b = protobuf::to_tree(protobuf::project(), message, &shadow.value);
        if let (Some(a), Some(b)) = (a, b) {
            let before = out.len();
            json::diff(&a, &b, &Rules::default(), out);
            if out.len() > before {
                return;
            }
            // Same fields, different bytes: fall through to a bytes difference.
        }
    }
    out.push(Difference {
        path: "value".into(),
        kind: Kind::Bytes,
        primary: Some(format!("{} bytes", primary.value.len())),
        shadow: Some(format!("{} bytes", shadow.value.len())),
    });
}

/// Header values grouped by name, in record order within a name.
fn by_name(headers: &[(String, Vec<u8>)]) -> BTreeMap<&str, Vec<&[u8]>> {
    let mut out: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for (name, value) in headers {
        out.entry(name.as_str()).or_default().push(value);
    }
    out
}

fn render_values(values: &[&[u8]]) -> String {
    match values {
        [one] => render(one),
        many => {
            let all: Vec<String> = many.iter().map(|v| render(v)).collect();
            format!("[{}]", all.join(", "))
        }
    }
}

/// UTF-8 as text (cut at [`PREVIEW`] characters), anything else as hex.
pub fn render(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => match text.char_indices().nth(PREVIEW) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        },
        Err(_) => {
            let hex: String = bytes
                .iter()
                .take(PREVIEW / 2)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "0x{hex}{}",
                if bytes.len() > PREVIEW / 2 { "…" } else { "" }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Event { event_id: "e", tenant_id: "t", attributes: {region: eu} }`
    /// encoded by hand: field 1, field 2, then one map entry (field 5).
    fn event(region: Option<&str>) -> Vec<u8> {
        let mut v = vec![0x0a, 0x01, b'e', 0x12, 0x01, b't'];
        if let Some(region) = region {
            let mut entry = vec![0x0a, 0x06];
            entry.extend_from_slice(b"region");
            entry.push(0x12);
            entry.push(region.len() as u8);
            entry.extend_from_slice(region.as_bytes());
            v.push(0x2a);
            v.push(entry.len() as u8);
            v.extend(entry);
        }
        v
    }

    fn record(value: Vec<u8>) -> Record {
        Record {
            partition: 1,
            offset: 0,
            timestamp_ms: None,
            key: Some(b"t".to_vec()),
            headers: vec![("event-id".into(), b"e".to_vec())],
            value,
        }
    }

    fn paths(d: &[Difference]) -> Vec<&str> {
        d.iter().map(|d| d.path.as_str()).collect()
    }

    #[test]
    fn identical_records_have_no_differences() {
        let a = record(event(Some("eu")));
        assert!(compare(&a, &a.clone(), Some(INGEST_EVENT_MESSAGE)).is_empty());
    }

    #[test]
    fn a_dropped_attribute_is_named_by_its_field_path() {
        let d = compare(
            &record(event(Some("eu"))),
            &record(event(None)),
            Some(INGEST_EVENT_MESSAGE),
        );
        assert_eq!(paths(&d), ["/attributes"]);
        assert_eq!(d[0].kind, Kind::Missing);
        let d = compare(
            &record(event(Some("eu"))),
            &record(event(Some("us"))),
            Some(INGEST_EVENT_MESSAGE),
        );
        assert_eq!(paths(&d), ["/attributes/region"]);
    }

    #[test]
    fn undecodable_values_compare_as_bytes() {
        let d = compare(
            &record(vec![0xff, 0x01]),
            &record(vec![0xff, 0x02]),
            Some(INGEST_EVENT_MESSAGE),
        );
        assert_eq!(paths(&d), ["value"]);
        assert_eq!(d[0].kind, Kind::Bytes);
    }

    #[test]
    fn equal_fields_in_different_bytes_are_a_difference() {
        // Field 2 before field 1: same message, not the contract's encoding.
        let reordered = vec![0x12, 0x01, b't', 0x0a, 0x01, b'e'];
        let d = compare(
            &record(event(None)),
            &record(reordered),
            Some(INGEST_EVENT_MESSAGE),
        );
        assert_eq!(paths(&d), ["value"]);
    }

    #[test]
    fn partition_key_and_every_header_by_name_are_compared() {
        let a = record(event(None));
        let mut b = a.clone();
        b.partition = 2;
        b.key = Some(b"other".to_vec());
        b.headers.push(("trace".into(), b"1".to_vec()));
        let d = compare(&a, &b, Some(INGEST_EVENT_MESSAGE));
        assert_eq!(paths(&d), ["partition", "key", "header:trace"]);
        assert_eq!(d[2].primary, None);
        assert_eq!(d[2].shadow.as_deref(), Some("1"));
    }

    #[test]
    fn header_order_across_names_does_not_matter() {
        let mut a = record(event(None));
        a.headers.push(("x".into(), b"1".to_vec()));
        let mut b = a.clone();
        b.headers.reverse();
        assert!(compare(&a, &b, None).is_empty());
    }

    #[test]
    fn parts_are_a_bounded_label() {
        assert_eq!(part("partition"), "partition");
        assert_eq!(part("key"), "key");
        assert_eq!(part("header:event-id"), "header");
        assert_eq!(part("/attributes/region"), "value");
        assert_eq!(part("value"), "value");
    }
}

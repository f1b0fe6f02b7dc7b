//! Comparing gRPC answers (`content-type: application/grpc…`).
//!
//! A gRPC answer is a stream of length-prefixed messages (one byte
//! "compressed", four bytes length, the message) ending in trailers that
//! carry `grpc-status` and `grpc-message` (or, for an answer without
//! messages, those fields in the headers: "trailers-only"). The engine:
//!
//! - compares `grpc-status` and `grpc-message` always, wherever each side
//!   put them (paths `grpc-status`, `grpc-message`);
//! - splits both bodies into messages, undoing per-message compression
//!   (`grpc-encoding: gzip|deflate|zstd`) within the decoded-size bound;
//! - decodes every message with the route's `protobuf_message` (and
//!   `descriptor_set`) and diffs the *stream* as a JSON array with the same
//!   engine, rules and paths as JSON: `/0/total` is the first message's
//!   `total`; a message missing or extra in a server stream is one
//!   `missing`/`extra` difference (aligned like any array), and an array
//!   rule on path `""` pairs messages by a field instead of by position
//!   (`arrays = [{ path = "", key = "/id" }]`);
//! - without a message type, compares each message's bytes.
//!
//! A body that does not split into whole messages is an `encoding`
//! difference: a client could not read it either.

use crate::encoding;
use crate::json;
use crate::protobuf;
use crate::value::Json;
use crate::{Difference, Kind, Observed, Rules};

/// Whether a media type is gRPC (`application/grpc`, `+proto`, `+json`, …).
pub fn is_grpc(media: &str) -> bool {
    media == "application/grpc" || media.starts_with("application/grpc+")
}

/// [`is_grpc`] of `media` lower-cased, without lower-casing it.
pub fn is_grpc_ignoring_case(media: &str) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    let media = media.as_bytes();
    media.len() >= GRPC.len()
        && media[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && (media.len() == GRPC.len() || media[GRPC.len()] == b'+')
}

/// The messages of a gRPC body, decompressed with `encoding` when flagged.
pub fn messages(body: &[u8], encoding: Option<&str>, limit: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(format!(
                "{} bytes left after the last whole message",
                rest.len()
            ));
        }
        let compressed = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let Some(message) = rest.get(5..5 + len) else {
            return Err(format!(
                "a message declares {len} bytes, {} follow",
                rest.len() - 5
            ));
        };
        out.push(match compressed {
            0 => message.to_vec(),
            1 => encoding::decode(Some(encoding.unwrap_or("identity")), message, limit)
                .map_err(|e| e.to_string())?
                .into_owned(),
            flag => return Err(format!("compressed-flag byte {flag} is neither 0 nor 1")),
        });
        rest = &rest[5 + len..];
    }
    Ok(out)
}

/// Appends the differences between two gRPC answers.
pub fn compare(primary: &Observed, shadow: &Observed, rules: &Rules, out: &mut Vec<Difference>) {
    for name in ["grpc-status", "grpc-message"] {
        let (a, b) = (primary.field(name), shadow.field(name));
        // An absent grpc-status is the same as 0 only when the other side
        // sent no messages either... a missing status is a broken answer:
        // compare as given.
        if a != b {
            out.push(Difference {
                path: name.into(),
                kind: if name == "grpc-status" {
                    Kind::Status
                } else {
                    Kind::Header
                },
                primary: a.map(str::to_owned),
                shadow: b.map(str::to_owned),
            });
        }
    }
    if primary.body == shadow.body
        && primary.field("grpc-encoding") == shadow.field("grpc-encoding")
    {
        return;
    }
    let limit = rules.limits.max_decoded_bytes;
    let split = |o: &Observed| messages(&o.body, o.field("grpc-encoding"), limit);
    let (a, b) = match (split(primary), split(shadow)) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            out.push(Difference {
                path: "body".into(),
                kind: Kind::Encoding,
                primary: Some(a.map_or_else(|e| e, |m| format!("{} messages", m.len()))),
                shadow: Some(b.map_or_else(|e| e, |m| format!("{} messages", m.len()))),
            });
            return;
        }
    };
    let tree = |messages: &[Vec<u8>]| -> Json {
        Json::Array(
            messages
                .iter()
                .map(|m| {
                    rules
                        .protobuf_message
                        .as_deref()
                        .and_then(|name| {
                            let pool = rules
                                .descriptors
                                .as_ref()
                                .unwrap_or_else(|| protobuf::project());
                            protobuf::to_tree(pool, name, m)
                        })
                        // Undecodable or untyped: the bytes, so equal bytes
                        // stay equal and others differ.
                        .unwrap_or_else(|| Json::String(hex(m)))
                })
                .collect(),
        )
    };
    json::diff(&tree(&a), &tree(&b), rules, out);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(messages: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            out.push(0);
            out.extend_from_slice(&(m.len() as u32).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    fn answer(messages: &[&[u8]], status: &str) -> Observed {
        Observed::new(
            200,
            [("content-type", "application/grpc")],
            framed(messages),
        )
        .with_trailers([("grpc-status", status)])
    }

    fn rules() -> Rules {
        Rules::builder()
            .protobuf_message("parallax.ingest.v1.IngestResponse")
            .build()
            .unwrap()
    }

    fn paths(a: &Observed, b: &Observed, rules: &Rules) -> Vec<(String, Kind)> {
        crate::compare(a, b, rules)
            .into_iter()
            .map(|d| (d.path, d.kind))
            .collect()
    }

    #[test]
    fn messages_diff_field_by_field_at_their_position() {
        // IngestResponse { accepted: 2 } against { accepted: 3 }.
        let a = answer(&[&[0x08, 0x02]], "0");
        let b = answer(&[&[0x08, 0x03]], "0");
        assert_eq!(
            paths(&a, &b, &rules()),
            vec![("/0/accepted".into(), Kind::Value)]
        );
        assert!(paths(&a, &a.clone(), &rules()).is_empty());
    }

    #[test]
    fn status_and_message_compare_wherever_they_were_sent() {
        let ok = answer(&[], "0");
        let trailers_only = Observed::new(
            200,
            [("content-type", "application/grpc"), ("grpc-status", "0")],
            Vec::new(),
        );
        assert!(paths(&ok, &trailers_only, &rules()).is_empty());
        let failed = answer(&[], "14")
            .with_trailers([("grpc-status", "14"), ("grpc-message", "kafka down")]);
        assert_eq!(
            paths(&ok, &failed, &rules()),
            vec![
                ("grpc-status".into(), Kind::Status),
                ("grpc-message".into(), Kind::Header)
            ]
        );
    }

    #[test]
    fn a_message_missing_from_a_stream_is_one_difference() {
        let a = answer(&[&[0x08, 0x01], &[0x08, 0x02], &[0x08, 0x03]], "0");
        let b = answer(&[&[0x08, 0x01], &[0x08, 0x03]], "0");
        assert_eq!(paths(&a, &b, &rules()), vec![("/1".into(), Kind::Missing)]);
    }

    #[test]
    fn compressed_messages_are_decompressed() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[0x08, 0x02]).unwrap();
        let zipped = gz.finish().unwrap();
        let mut body = vec![1];
        body.extend_from_slice(&(zipped.len() as u32).to_be_bytes());
        body.extend_from_slice(&zipped);
        let a = Observed::new(
            200,
            [
                ("content-type", "application/grpc"),
                ("grpc-encoding", "gzip"),
            ],
            body,
        )
        .with_trailers([("grpc-status", "0")]);
        let b = answer(&[&[0x08, 0x02]], "0");
        assert!(paths(&a, &b, &rules()).is_empty());
    }

    #[test]
    fn a_torn_stream_is_an_encoding_difference() {
        let mut torn = answer(&[&[0x08, 0x02]], "0");
        torn.body = torn.body.slice(..4);
        let whole = answer(&[&[0x08, 0x02]], "0");
        assert_eq!(
            paths(&whole, &torn, &rules()),
            vec![("body".into(), Kind::Encoding)]
        );
    }

    #[test]
    fn untyped_messages_compare_as_bytes() {
        let a = answer(&[b"abc"], "0");
        let b = answer(&[b"abd"], "0");
        assert_eq!(
            paths(&a, &b, &Rules::default()),
            vec![("/0".into(), Kind::Value)]
        );
    }
}

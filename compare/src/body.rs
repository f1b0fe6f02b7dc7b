//! Choosing how to compare two bodies: gRPC as a stream of messages
//! ([`crate::grpc`]); otherwise first undo each side's `Content-Encoding`
//! ([`crate::encoding`]), then pick by the primary's content type: JSON
//! structurally, protobuf decoded (when the route names its message), text
//! after normalisation, anything else as bytes.

use crate::encoding::{self, DecodeError};
use crate::observed::media_type_of;
use crate::value::{self, Json, ParseError};
use crate::{grpc, json, protobuf, Difference, Kind, Observed, Rules};

/// Longest rendering of a text body kept in a difference.
const TEXT_PREVIEW: usize = 256;

pub fn compare(primary: &Observed, shadow: &Observed, rules: &Rules, out: &mut Vec<Difference>) {
    // Asked of every answer: without lower-casing a copy.
    let grpc_media = primary
        .header("content-type")
        .or_else(|| shadow.header("content-type"))
        .is_some_and(|v| grpc::is_grpc_ignoring_case(media_type_of(v)));
    if grpc_media {
        return grpc::compare(primary, shadow, rules, out);
    }
    let (ca, cb) = (
        primary.header("content-encoding"),
        shadow.header("content-encoding"),
    );
    let same_coding = encoding::codings(ca) == encoding::codings(cb);
    if primary.body == shadow.body && same_coding {
        return;
    }
    let limit = rules.limits.max_decoded_bytes;
    let (a, b) = match (
        encoding::decode(ca, &primary.body, limit),
        encoding::decode(cb, &shadow.body, limit),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(DecodeError::Unsupported(_)), Err(DecodeError::Unsupported(_))) if same_coding => {
            return bytes(&primary.body, &shadow.body, out);
        }
        (a, b) => return undecodable(a.err(), b.err(), out),
    };
    if a == b {
        return;
    }
    let media = primary
        .media_type()
        .or_else(|| shadow.media_type())
        .unwrap_or_default();
    if is_json(&media) {
        match (parse_json(&a, rules), parse_json(&b, rules)) {
            (Ok(a), Ok(b)) => return json::diff(&a, &b, rules, out),
            (Err(ParseError::TooDeep(n)), _) | (_, Err(ParseError::TooDeep(n))) => {
                return out.push(Difference {
                    path: "body".into(),
                    kind: Kind::Limit,
                    primary: Some(format!(
                        "JSON nested deeper than {n} levels (max_depth): not compared"
                    )),
                    shadow: None,
                });
            }
            // Not JSON on at least one side: compare as text below.
            _ => {}
        }
    } else if is_protobuf(&media) {
        if let Some(message) = &rules.protobuf_message {
            let pool = rules
                .descriptors
                .as_ref()
                .unwrap_or_else(|| protobuf::project());
            let a = protobuf::to_tree(pool, message, &a);
            let b = protobuf::to_tree(pool, message, &b);
            if let (Some(a), Some(b)) = (a, b) {
                return json::diff(&a, &b, rules, out);
            }
        }
        return bytes(&a, &b, out);
    }
    match (std::str::from_utf8(&a), std::str::from_utf8(&b)) {
        (Ok(a), Ok(b)) if media.starts_with("text/") || is_json(&media) => {
            let (a, b) = (rules.normalise(a), rules.normalise(b));
            if a != b {
                out.push(Difference {
                    path: "body".into(),
                    kind: Kind::Text,
                    primary: Some(preview(&a)),
                    shadow: Some(preview(&b)),
                });
            }
        }
        _ => bytes(&a, &b, out),
    }
}

/// A side whose body could not be decoded: too large is a `limit`, corrupt
/// or unsupported an `encoding` difference. Never a match: the client of
/// that side could not read its answer either.
fn undecodable(a: Option<DecodeError>, b: Option<DecodeError>, out: &mut Vec<Difference>) {
    let too_large = matches!(a, Some(DecodeError::TooLarge { .. }))
        || matches!(b, Some(DecodeError::TooLarge { .. }));
    let render =
        |e: Option<DecodeError>| Some(e.map_or_else(|| "decoded".to_owned(), |e| e.to_string()));
    out.push(Difference {
        path: "body".into(),
        kind: if too_large {
            Kind::Limit
        } else {
            Kind::Encoding
        },
        primary: render(a),
        shadow: render(b),
    });
}

fn bytes(a: &[u8], b: &[u8], out: &mut Vec<Difference>) {
    out.push(Difference {
        path: "body".into(),
        kind: Kind::Bytes,
        primary: Some(format!("{} bytes", a.len())),
        shadow: Some(format!("{} bytes", b.len())),
    });
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

fn is_protobuf(media: &str) -> bool {
    matches!(
        media,
        "application/x-protobuf" | "application/protobuf" | "application/vnd.google.protobuf"
    )
}

fn parse_json(body: &[u8], rules: &Rules) -> Result<Json, ParseError> {
    let depth = rules.limits.max_depth;
    if rules.replacements.is_empty() {
        return value::parse(body, depth);
    }
    let text = std::str::from_utf8(body).map_err(|e| ParseError::Syntax(e.to_string()))?;
    value::parse(rules.normalise(text).as_bytes(), depth)
}

fn preview(s: &str) -> String {
    match s.char_indices().nth(TEXT_PREVIEW) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(media: &str, body: &[u8]) -> Observed {
        Observed::new(200, [("content-type", media)], body.to_vec())
    }

    fn paths(a: &Observed, b: &Observed, rules: &Rules) -> Vec<(String, Kind)> {
        let mut out = Vec::new();
        compare(a, b, rules, &mut out);
        out.into_iter().map(|d| (d.path, d.kind)).collect()
    }

    #[test]
    fn json_bodies_diff_structurally_whatever_the_formatting() {
        let a = observed("application/json; charset=utf-8", br#"{"a":1,"b":[1]}"#);
        let b = observed("application/json", b"{ \"b\": [1], \"a\": 2 }");
        assert_eq!(
            paths(&a, &b, &Rules::default()),
            vec![("/a".into(), Kind::Value)]
        );
    }

    #[test]
    fn normalisers_run_before_json_parsing() {
        let rules = Rules::builder()
            .replace(r#""id":"[0-9a-f]+""#, r#""id":"<id>""#)
            .build()
            .unwrap();
        let a = observed("application/json", br#"{"id":"abc1"}"#);
        let b = observed("application/json", br#"{"id":"ffee"}"#);
        assert!(paths(&a, &b, &rules).is_empty());
    }

    #[test]
    fn unparseable_json_falls_back_to_text() {
        let a = observed("application/json", b"{oops");
        let b = observed("application/json", b"{oops!");
        assert_eq!(
            paths(&a, &b, &Rules::default()),
            vec![("body".into(), Kind::Text)]
        );
    }

    #[test]
    fn protobuf_with_a_known_message_diffs_by_field() {
        let rules = Rules::builder()
            .protobuf_message("parallax.ingest.v1.IngestResponse")
            .build()
            .unwrap();
        let a = observed("application/x-protobuf", &[0x08, 0x02]);
        let b = observed("application/x-protobuf", &[0x08, 0x03]);
        assert_eq!(
            paths(&a, &b, &rules),
            vec![("/accepted".into(), Kind::Value)]
        );
    }

    #[test]
    fn protobuf_without_a_message_compares_as_bytes() {
        let a = observed("application/x-protobuf", &[0x08, 0x02]);
        let b = observed("application/x-protobuf", &[0x08, 0x03]);
        assert_eq!(
            paths(&a, &b, &Rules::default()),
            vec![("body".into(), Kind::Bytes)]
        );
    }

    #[test]
    fn text_bodies_compare_after_normalisation() {
        let rules = Rules::builder().replace(r"\d+ms", "<t>").build().unwrap();
        let a = observed("text/plain", b"took 5ms");
        let b = observed("text/plain", b"took 7ms");
        assert!(paths(&a, &b, &rules).is_empty());
        let c = observed("text/plain", b"failed");
        assert_eq!(paths(&a, &c, &rules), vec![("body".into(), Kind::Text)]);
    }

    fn gzipped(media: &str, body: &[u8]) -> Observed {
        Observed::new(
            200,
            [("content-type", media), ("content-encoding", "gzip")],
            crate::encoding::tests::gzip(body),
        )
    }

    #[test]
    fn a_gzipped_answer_equals_the_same_answer_uncompressed() {
        let doc = br#"{"accepted":2,"rejected":[]}"#;
        let a = gzipped("application/json", doc);
        let b = observed("application/json", doc);
        assert!(paths(&a, &b, &Rules::default()).is_empty());
        // ... unless content-encoding is an allow-listed header.
        let rules = Rules::builder().header("content-encoding").build().unwrap();
        let out = crate::compare(&a, &b, &rules);
        assert_eq!(
            out.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(),
            ["header:content-encoding"]
        );
    }

    #[test]
    fn decoded_bodies_still_diff_field_by_field() {
        let a = gzipped("application/json", br#"{"id":9007199254740993}"#);
        let b = observed("application/json", br#"{"id":9007199254740992}"#);
        assert_eq!(
            paths(&a, &b, &Rules::default()),
            vec![("/id".into(), Kind::Value)]
        );
    }

    #[test]
    fn the_same_bytes_under_different_encodings_differ() {
        let gz = crate::encoding::tests::gzip(b"{}");
        let a = Observed::new(
            200,
            [
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            gz.clone(),
        );
        let b = Observed::new(200, [("content-type", "application/json")], gz);
        assert_eq!(
            paths(&a, &b, &Rules::default()),
            vec![("body".into(), Kind::Bytes)]
        );
    }

    #[test]
    fn a_decompression_bomb_is_a_limit_not_a_match() {
        let bomb = gzipped("application/json", &vec![b' '; 32 << 20]);
        let b = observed("application/json", b" ");
        assert_eq!(
            paths(&bomb, &b, &Rules::default()),
            vec![("body".into(), Kind::Limit)]
        );
    }

    #[test]
    fn a_corrupt_encoding_is_an_encoding_difference() {
        let a = Observed::new(
            200,
            [
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            b"{}".to_vec(),
        );
        let b = observed("application/json", b"{}");
        assert_eq!(
            paths(&a, &b, &Rules::default()),
            vec![("body".into(), Kind::Encoding)]
        );
    }

    #[test]
    fn deep_json_is_a_limit_without_overflowing_the_stack() {
        let deep = |x: &str| format!("{}{x}{}", "[".repeat(100_000), "]".repeat(100_000));
        let a = observed("application/json", deep("1").as_bytes());
        let b = observed("application/json", deep("2").as_bytes());
        assert_eq!(
            paths(&a, &b, &Rules::default()),
            vec![("body".into(), Kind::Limit)]
        );
    }

    #[test]
    fn other_media_types_compare_as_bytes() {
        let a = observed("application/octet-stream", &[1, 2]);
        let b = observed("application/octet-stream", &[1, 3]);
        assert_eq!(
            paths(&a, &b, &Rules::default()),
            vec![("body".into(), Kind::Bytes)]
        );
    }
}

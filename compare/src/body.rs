//! Choosing how to compare two bodies from the primary's content type:
//! JSON structurally, protobuf decoded (when the route names its message),
//! text after normalisation, anything else as bytes.

use serde_json::Value;

use crate::{json, protobuf, Difference, Kind, Observed, Rules};

/// Longest rendering of a text body kept in a difference.
const TEXT_PREVIEW: usize = 256;

pub fn compare(primary: &Observed, shadow: &Observed, rules: &Rules, out: &mut Vec<Difference>) {
    if primary.body == shadow.body {
        return;
    }
    let media = primary
        .media_type()
        .or_else(|| shadow.media_type())
        .unwrap_or_default();
    if is_json(&media) {
        if let (Some(a), Some(b)) = (parse_json(primary, rules), parse_json(shadow, rules)) {
            return json::diff("", &a, &b, out);
        }
    } else if is_protobuf(&media) {
        if let Some(message) = &rules.protobuf_message {
            let a = protobuf::to_json(message, &primary.body);
            let b = protobuf::to_json(message, &shadow.body);
            if let (Some(a), Some(b)) = (a, b) {
                return json::diff("", &a, &b, out);
            }
        }
        return bytes(primary, shadow, out);
    }
    match (
        std::str::from_utf8(&primary.body),
        std::str::from_utf8(&shadow.body),
    ) {
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
        _ => bytes(primary, shadow, out),
    }
}

fn bytes(primary: &Observed, shadow: &Observed, out: &mut Vec<Difference>) {
    out.push(Difference {
        path: "body".into(),
        kind: Kind::Bytes,
        primary: Some(format!("{} bytes", primary.body.len())),
        shadow: Some(format!("{} bytes", shadow.body.len())),
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

fn parse_json(o: &Observed, rules: &Rules) -> Option<Value> {
    let text = std::str::from_utf8(&o.body).ok()?;
    serde_json::from_str(&rules.normalise(text)).ok()
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

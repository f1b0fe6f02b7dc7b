//! What a request must say: the session id and the `X-Session-TTL` header.
//!
//! Both are checked on the bytes as sent — the id on the raw request path,
//! never percent-decoded — so the Go and Rust twins agree on every input
//! without depending on either framework's decoding.

use crate::config::MAX_TTL_SECS;

/// The longest session id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// The id in `raw` (the request path after `/v1/sessions/`, as sent), if it
/// is 1-256 bytes of RFC 3986 unreserved characters:
/// `A-Z a-z 0-9 - . _ ~`. `/`, `%` and every other byte make it invalid.
pub fn session_id(raw: &str) -> Option<&str> {
    let ok = (1..=MAX_ID_BYTES).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    ok.then_some(raw)
}

/// Parses an `X-Session-TTL` value: decimal seconds from 1 to 604800, digits
/// only — no sign, no spaces, nothing else. Leading zeros are digits too.
pub fn ttl_secs(value: &[u8]) -> Option<u32> {
    if value.is_empty() {
        return None;
    }
    let mut secs: u32 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        secs = secs * 10 + u32::from(b - b'0');
        if secs > MAX_TTL_SECS {
            // Further digits can only make it larger; stop before overflow.
            return None;
        }
    }
    (secs >= 1).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_table() {
        let long_ok = "a".repeat(256);
        let too_long = "a".repeat(257);
        let cases: &[(&str, bool)] = &[
            ("abc", true),
            ("A-Z_a.z~09", true),
            ("a", true),
            (".", true),
            ("..", true),
            (&long_ok, true),
            ("", false),
            (&too_long, false),
            ("a/b", false),
            ("a/", false),
            ("/a", false),
            ("bad%20id", false),
            ("%41", false),
            ("a b", false),
            ("a+b", false),
            ("a:b", false),
            ("a@b", false),
            ("é", false),
            ("a\"b", false),
        ];
        for &(raw, valid) in cases {
            assert_eq!(session_id(raw).is_some(), valid, "{raw:?}");
        }
    }

    #[test]
    fn ttl_table() {
        let cases: &[(&str, Option<u32>)] = &[
            ("1", Some(1)),
            ("2", Some(2)),
            ("3600", Some(3600)),
            ("604800", Some(604_800)),
            ("007", Some(7)),
            ("0000000000000000000000000000001", Some(1)),
            ("0", None),
            ("000", None),
            ("604801", None),
            ("99999999999999999999999", None),
            ("", None),
            ("+5", None),
            ("-5", None),
            (" 5", None),
            ("5 ", None),
            ("5s", None),
            ("1.5", None),
            ("1e3", None),
            ("0x10", None),
            ("٣", None),
        ];
        for &(value, want) in cases {
            assert_eq!(ttl_secs(value.as_bytes()), want, "{value:?}");
        }
    }
}

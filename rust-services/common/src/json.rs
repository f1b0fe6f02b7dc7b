//! JSON string escaping identical to Go's `encoding/json` with
//! `SetEscapeHTML(false)`.
//!
//! serde_json and Go disagree on U+2028/U+2029 (Go escapes them), so bodies the
//! twins must agree on byte for byte are written through this one function.

/// Appends `s` to `out` as a quoted JSON string.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, ch) in s.char_indices() {
        let escape: Option<&str> = match ch {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\u{2028}' => Some("\\u2028"),
            '\u{2029}' => Some("\\u2029"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = ch as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
        }
        start = i + ch.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Returns `s` as a quoted JSON string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn common_control_characters_use_short_escapes() {
        assert_eq!(quote("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
    }

    #[test]
    fn other_control_characters_use_lower_case_unicode_escapes() {
        assert_eq!(quote("\u{1}\u{1f}"), r#""\u0001\u001f""#);
    }

    #[test]
    fn line_and_paragraph_separators_are_escaped_like_go() {
        assert_eq!(quote("a\u{2028}b\u{2029}"), r#""a\u2028b\u2029""#);
    }

    #[test]
    fn html_characters_non_ascii_and_del_stay_verbatim() {
        assert_eq!(quote("<a>&\u{7f}é🦀"), "\"<a>&\u{7f}é🦀\"");
    }
}

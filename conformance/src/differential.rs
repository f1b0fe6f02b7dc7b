//! Random request bodies for the differential test: seeded, structured, and
//! biased to the edges where two decoders drift apart.
//!
//! The corpus ([`crate::corpus`]) lists the cases someone thought of; these
//! generators find the ones nobody did. Each body starts from a valid
//! `EventBatch` and is bent in the ways that matter to a decoder:
//!
//! - protobuf: known fields with the wrong wire type, unknown fields of
//!   every wire type, groups (nested, mismatched, unclosed, 10,001 deep),
//!   stray end-groups, wire types 6 and 7, field numbers 0 and 2^29,
//!   padded, oversized and truncated varints, invalid UTF-8, map entries
//!   missing a part or repeating a key, a body cut short;
//! - JSON: field names in both spellings, repeated keys, unknown fields,
//!   `null`s, escapes (surrogate pairs, lone surrogates), raw invalid bytes,
//!   `occurredAtUnixMs` as every kind of number and string (fractions,
//!   exponents, 2^63, `1e`), base64 in both alphabets, padded or not, with
//!   escaped newlines and stray characters, whitespace anywhere.
//!
//! The same seed gives the same requests, so a failure is replayed by its
//! seed: `PARALLAX_DIFF_SEED=<seed>`.

use crate::http::Request;
use crate::wire::{self, WireType, GROUP_NESTING_LIMIT, MAX_FIELD_NUMBER};

/// A small, fast, seedable generator (SplitMix64): the suite needs
/// reproducible streams, not cryptographic ones.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True once in `n` times on average.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// One generated request, with what it is for messages.
#[derive(Clone, Debug)]
pub struct Case {
    /// `protobuf #n` or `json #n`.
    pub name: String,
    pub request: Request,
}

/// `n` requests from `seed`: about 60 % protobuf, 40 % JSON, with assorted
/// `Content-Type` spellings and `Accept` headers.
pub fn cases(seed: u64, n: usize) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let (kind, content_type, body) = if rng.below(10) < 6 {
                let content_type = rng.pick(&[
                    "application/x-protobuf",
                    "application/x-protobuf",
                    "application/protobuf",
                    "application/vnd.google.protobuf",
                    "Application/X-Protobuf; charset=binary",
                ]);
                ("protobuf", content_type, protobuf_body(&mut rng, i))
            } else {
                let content_type = rng.pick(&[
                    "application/json",
                    "application/json",
                    "application/json; charset=utf-8",
                    "APPLICATION/JSON",
                ]);
                ("json", content_type, json_body(&mut rng, i))
            };
            let mut request = Request::post("/v1/events")
                .content_type(content_type)
                .body(body);
            let accept = rng.pick(&[
                None,
                None,
                Some("application/json"),
                Some("application/x-protobuf"),
                Some("*/*"),
                Some("text/html, application/json;q=0.1"),
            ]);
            if let Some(accept) = accept {
                request = request.accept(accept);
            }
            Case {
                name: format!("{kind} #{i}"),
                request,
            }
        })
        .collect()
}

// ----------------------------------------------------------------------------
// Protobuf

/// A near-valid protobuf `EventBatch`.
pub fn protobuf_body(rng: &mut Rng, case: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..rng.below(4) {
        noise(rng, &mut out);
        let event = event_fields(rng, &format!("p{case}-{i}"));
        if rng.one_in(12) {
            wrong_wire_type(rng, &mut out, 1, &event);
        } else {
            wire::bytes_field(&mut out, 1, &event);
        }
    }
    noise(rng, &mut out);
    if rng.one_in(40) {
        // Around Go's group nesting limit, as an unknown field of the batch.
        let levels = GROUP_NESTING_LIMIT - 1 + rng.below(3) as usize;
        out.extend(wire::nested_groups(rng.pick(&[1, 2, 99]), levels));
    }
    if !out.is_empty() && rng.one_in(20) {
        out.truncate(rng.below(out.len() as u64) as usize);
    } else if !out.is_empty() && rng.one_in(40) {
        let at = rng.below(out.len() as u64) as usize;
        out[at] = rng.next_u64() as u8;
    }
    out
}

/// The fields of one event, each usually present, sometimes repeated,
/// sometimes with the wrong wire type, in order or shuffled, with noise.
fn event_fields(rng: &mut Rng, id: &str) -> Vec<u8> {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for number in 1..=6u64 {
        let copies = if rng.one_in(10) {
            0
        } else if rng.one_in(12) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut field = Vec::new();
            noise(rng, &mut field);
            let value = match number {
                1 => proto_string(rng, &[id, id, id, "dup", ""]),
                2 => proto_string(rng, &["tenant-a", "tenant-a", "t", ""]),
                3 => proto_string(rng, &["click", "click", "page_view", ""]),
                4 => Vec::new(),
                5 => map_entry(rng),
                _ => payload(rng),
            };
            if rng.one_in(15) {
                wrong_wire_type(rng, &mut field, number, &value);
            } else if number == 4 {
                wire::key(&mut field, 4, WireType::Varint);
                int64_varint(rng, &mut field);
            } else {
                wire::bytes_field(&mut field, number, &value);
            }
            fields.push(field);
            if number == 5 && rng.one_in(2) {
                // More entries, the same key again now and then.
                let entry = map_entry(rng);
                let mut field = Vec::new();
                wire::bytes_field(&mut field, 5, &entry);
                fields.push(field);
            }
        }
    }
    if rng.one_in(4) {
        for i in (1..fields.len()).rev() {
            fields.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    let mut out = fields.concat();
    noise(rng, &mut out);
    out
}

/// A string field's bytes: mostly one of `pool`, sometimes at a length
/// limit, sometimes not UTF-8.
fn proto_string(rng: &mut Rng, pool: &[&str]) -> Vec<u8> {
    match rng.below(100) {
        0 => b"\xff".to_vec(),
        1 => b"\xed\xa0\x80".to_vec(), // a surrogate, invalid in UTF-8
        2 => b"\xc0\xaf".to_vec(),     // an overlong encoding
        3 => "é😀".as_bytes().to_vec(),
        4 => vec![b'x'; rng.pick(&[64, 65, 128, 129])],
        _ => rng.pick(pool).as_bytes().to_vec(),
    }
}

fn payload(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(40) {
        return vec![b'p'; rng.pick(&[65_536, 65_537])];
    }
    let len = rng.below(12) as usize;
    rng.bytes(len)
}

/// An `attributes` entry: key and value usually, either missing or
/// repeated sometimes, a wrong wire type or unknown field now and then,
/// the value first now and then.
fn map_entry(rng: &mut Rng) -> Vec<u8> {
    let mut fields = Vec::new();
    let repeated_key = rng.one_in(8);
    for (i, number) in [1, 2, 1].into_iter().enumerate() {
        let wanted = if i == 2 { repeated_key } else { !rng.one_in(8) };
        if !wanted {
            continue;
        }
        let value = proto_string(rng, &["k", "", "browser", "é"]);
        let mut field = Vec::new();
        noise(rng, &mut field);
        if rng.one_in(10) {
            wrong_wire_type(rng, &mut field, number, &value);
        } else {
            wire::bytes_field(&mut field, number, &value);
        }
        fields.push(field);
    }
    if rng.one_in(4) {
        fields.reverse();
    }
    fields.concat()
}

/// Field `number` sent with a wire type it is not declared with; `value`
/// is the field's proper contents, reused where the wire type carries
/// bytes.
fn wrong_wire_type(rng: &mut Rng, out: &mut Vec<u8>, number: u64, value: &[u8]) {
    let wire_type = rng.pick(&[
        WireType::Varint,
        WireType::Fixed64,
        WireType::Fixed32,
        WireType::StartGroup,
        WireType::Len,
    ]);
    match wire_type {
        // int64 is the one field that is not length-delimited.
        WireType::Len if number == 4 => wire::bytes_field(out, 4, value),
        WireType::Len | WireType::Varint => {
            wire::key(out, number, WireType::Varint);
            int64_varint(rng, out);
        }
        WireType::Fixed64 => {
            wire::key(out, number, WireType::Fixed64);
            out.extend(rng.bytes(8));
        }
        WireType::Fixed32 => {
            wire::key(out, number, WireType::Fixed32);
            out.extend(rng.bytes(4));
        }
        _ => {
            let mut contents = Vec::new();
            unknown_field(rng, &mut contents, 3);
            wire::group(out, number, &contents, number);
        }
    }
}

/// An `occurred_at_unix_ms` varint: minimal, padded, negative, or broken.
fn int64_varint(rng: &mut Rng, out: &mut Vec<u8>) {
    let value = match rng.below(4) {
        0 => rng.next_u64(),
        1 => (-(rng.below(1 << 40) as i64)) as u64,
        _ => 1_700_000_000_000 + rng.below(1000),
    };
    match rng.below(60) {
        0 => wire::varint_padded(out, value & 0x7f, 10),
        1 => wire::varint_padded(out, value & 0xffff, 5),
        // An 11-byte varint, and a 10-byte one over 64 bits.
        2 => out.extend([0xff; 10].iter().chain(&[0x01])),
        3 => out.extend([0xff; 9].iter().chain(&[0x02])),
        4 => out.extend([0xff; 9].iter().chain(&[0x01])),
        _ => wire::varint(out, value),
    }
}

/// Now and then, unknown fields (well-formed mostly).
fn noise(rng: &mut Rng, out: &mut Vec<u8>) {
    if rng.one_in(4) {
        for _ in 0..=rng.below(2) {
            unknown_field(rng, out, 3);
        }
    }
}

/// One unknown field; groups nest up to `depth` more levels.
fn unknown_field(rng: &mut Rng, out: &mut Vec<u8>, depth: u32) {
    let number = match rng.below(100) {
        0 => 0,                    // invalid
        1 => MAX_FIELD_NUMBER + 1, // invalid
        2 => MAX_FIELD_NUMBER,
        3..=5 => 1 + rng.below(MAX_FIELD_NUMBER),
        6..=40 => 1 + rng.below(6), // a known number, wire type at random
        _ => 7 + rng.below(100),
    };
    let wire_type = match rng.below(150) {
        0 => rng.pick(&[WireType::Reserved6, WireType::Reserved7, WireType::EndGroup]),
        1..=25 if depth > 0 => WireType::StartGroup,
        n => [
            WireType::Varint,
            WireType::Fixed64,
            WireType::Len,
            WireType::Fixed32,
        ][n as usize % 4],
    };
    match wire_type {
        WireType::Varint => {
            wire::key(out, number, wire_type);
            int64_varint(rng, out);
        }
        WireType::Fixed64 => {
            wire::key(out, number, wire_type);
            out.extend(rng.bytes(8));
        }
        WireType::Fixed32 => {
            wire::key(out, number, wire_type);
            out.extend(rng.bytes(4));
        }
        WireType::Len => {
            let len = rng.below(8) as usize;
            let bytes = rng.bytes(len);
            wire::bytes_field(out, number, &bytes);
        }
        WireType::StartGroup => {
            let mut contents = Vec::new();
            for _ in 0..rng.below(3) {
                if rng.one_in(20) {
                    // Inside a group Go allows numbers up to 2^31 − 1.
                    let inner = rng.pick(&[1 << 29, (1 << 31) - 1, 1 << 31]);
                    wire::varint_field(&mut contents, inner, 1);
                } else {
                    unknown_field(rng, &mut contents, depth - 1);
                }
            }
            let end = match rng.below(60) {
                0 => number + 1,
                1 => {
                    // Left open.
                    wire::key(out, number, wire_type);
                    out.extend(contents);
                    return;
                }
                _ => number,
            };
            wire::group(out, number, &contents, end);
        }
        _ => {
            wire::key(out, number, wire_type);
            out.push(0);
        }
    }
}

// ----------------------------------------------------------------------------
// JSON

/// A near-valid JSON `EventBatch`.
pub fn json_body(rng: &mut Rng, case: usize) -> Vec<u8> {
    let mut out = Vec::new();
    match rng.below(40) {
        0 => return b"[]".to_vec(),
        1 => return b"null".to_vec(),
        2 => return Vec::new(),
        3 => out.extend("\u{feff}".as_bytes()),
        _ => {}
    }
    ws(rng, &mut out);
    out.push(b'{');
    let mut first = true;
    let mut field = |rng: &mut Rng, out: &mut Vec<u8>, name: &str| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        ws(rng, out);
        json_string(out, name);
        ws(rng, out);
        out.push(b':');
        ws(rng, out);
    };
    if !rng.one_in(10) {
        field(rng, &mut out, "events");
        events(rng, &mut out, case);
    }
    if rng.one_in(30) {
        field(rng, &mut out, "events");
        out.extend(b"[]");
    }
    if rng.one_in(30) {
        field(rng, &mut out, "extra");
        out.push(b'1');
    }
    ws(rng, &mut out);
    out.push(b'}');
    ws(rng, &mut out);
    if rng.one_in(30) {
        out.extend(b" x");
    }
    if !out.is_empty() && rng.one_in(30) {
        out.truncate(rng.below(out.len() as u64) as usize);
    }
    out
}

/// Whitespace between tokens, usually none.
fn ws(rng: &mut Rng, out: &mut Vec<u8>) {
    if rng.one_in(6) {
        out.extend(rng.pick(&[" ", "\n", "\t ", "\r\n  "]).as_bytes());
    }
}

fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend(text.as_bytes());
    out.push(b'"');
}

fn events(rng: &mut Rng, out: &mut Vec<u8>, case: usize) {
    if rng.one_in(15) {
        out.extend(rng.pick(&["null", "{}", "\"x\""]).as_bytes());
        return;
    }
    out.push(b'[');
    for i in 0..rng.below(4) {
        if i > 0 {
            out.push(b',');
        }
        ws(rng, out);
        if rng.one_in(40) {
            out.extend(rng.pick(&["null", "[]", "1"]).as_bytes());
        } else {
            json_event(rng, out, &format!("j{case}-{i}"));
        }
        ws(rng, out);
    }
    out.push(b']');
}

fn json_event(rng: &mut Rng, out: &mut Vec<u8>, id: &str) {
    const NAMES: [(&str, &str); 6] = [
        ("eventId", "event_id"),
        ("tenantId", "tenant_id"),
        ("type", "type"),
        ("occurredAtUnixMs", "occurred_at_unix_ms"),
        ("attributes", "attributes"),
        ("payload", "payload"),
    ];
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for (index, (json_name, proto_name)) in NAMES.iter().enumerate() {
        let copies = if rng.one_in(10) {
            0
        } else if rng.one_in(80) {
            2 // the same field twice: malformed
        } else {
            1
        };
        for _ in 0..copies {
            let mut f = Vec::new();
            json_string(&mut f, if rng.one_in(4) { proto_name } else { json_name });
            ws(rng, &mut f);
            f.push(b':');
            ws(rng, &mut f);
            if rng.one_in(20) {
                f.extend(b"null");
            } else {
                match index {
                    0 => json_string_value(rng, &mut f, &[id, id, "dup", ""]),
                    1 => json_string_value(rng, &mut f, &["tenant-a", "tenant-a", "t", ""]),
                    2 => json_string_value(rng, &mut f, &["click", "click", ""]),
                    3 => f.extend(int64_text(rng).as_bytes()),
                    4 => attributes(rng, &mut f),
                    _ => f.extend(base64_text(rng).as_bytes()),
                }
            }
            fields.push(f);
        }
    }
    if rng.one_in(60) {
        fields.push(br#""colour":"red""#.to_vec());
    }
    if rng.one_in(4) {
        for i in (1..fields.len()).rev() {
            fields.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    out.push(b'{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        ws(rng, out);
        out.extend(f);
        ws(rng, out);
    }
    out.push(b'}');
}

/// A JSON string value: one of `pool` mostly, with escapes, Unicode, a
/// length limit, or something invalid now and then.
fn json_string_value(rng: &mut Rng, out: &mut Vec<u8>, pool: &[&str]) {
    let text: &[u8] = match rng.below(150) {
        0 => br#""\u00e9\ud83d\ude00""#,
        1 => br#""lone \ud800""#,
        2 => br#""lone \udc00""#,
        3 => br#""\ud800\u0041""#,
        4 => br#""esc\"aped\\ \/ \b\f\n\r\t""#,
        5 => "\"raw é😀\u{7f}\"".as_bytes(),
        6 => b"\"raw \xff\"",
        7 => b"\"ctl \x01\"",
        8 => br#""bad \x escape""#,
        9 => b"5",
        10 => b"true",
        11 => br#"["a"]"#,
        12 => {
            let long = format!("\"{}\"", "x".repeat(rng.pick(&[64, 65, 128, 129])));
            out.extend(long.as_bytes());
            return;
        }
        _ => {
            json_string(out, rng.pick(pool));
            return;
        }
    };
    out.extend(text);
}

/// `occurredAtUnixMs`: numbers and strings of every shape protojson reads
/// or refuses.
fn int64_text(rng: &mut Rng) -> String {
    const TEXTS: &[&str] = &[
        "0",
        "-0",
        "5",
        "-42",
        "1700000000000",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "1.0",
        "1.5",
        "-0.0",
        "1e3",
        "1E3",
        "1e+3",
        "1e-0",
        "10e-1",
        "1000e-3",
        "12e-1",
        "0.5e1",
        "0.05e2",
        "1.25e1",
        "9223372036854775807.0",
        "9223372036854775807.000",
        "9007199254740993.0",
        "92233720368547758.07e2",
        "-9223372036854775808.0",
        "1e19",
        "1e400",
        "0e999999999",
        "0e99999999999",
        "1e2147483647",
        "01",
        "+1",
        ".5",
        "1.",
        "1e",
        "1E",
        "-0e",
        "1.0e",
        "1e+",
        "true",
        "[]",
        "{}",
        "\"5\"",
        "\"-42\"",
        "\" 5\"",
        "\"5 \"",
        "\"+5\"",
        "\"1e\"",
        "\"1.0\"",
        "\"1e3\"",
        "\"9007199254740993.0\"",
        "\"9223372036854775807\"",
        "\"9223372036854775808\"",
        "\"0x10\"",
        "\"\\u0035\"",
        "\"\"",
        "\"null\"",
        "\"5\\n\"",
    ];
    match rng.below(5) {
        0 => (rng.next_u64() as i64).to_string(),
        1 => format!("\"{}\"", rng.next_u64() as i64),
        2 => (1_700_000_000_000 + rng.below(1000)).to_string(),
        _ => rng.pick(TEXTS).to_string(),
    }
}

/// `payload`: base64 of random bytes in either alphabet, padded or not,
/// sometimes with an escaped newline, a space, a stray character or
/// non-zero trailing bits.
fn base64_text(rng: &mut Rng) -> String {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let len = rng.below(10) as usize;
    let bytes = rng.bytes(len);
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            text.push(STANDARD[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        for _ in chunk.len()..3 {
            text.push('=');
        }
    }
    if rng.one_in(2) {
        text = text.replace('+', "-").replace('/', "_");
    }
    if rng.one_in(2) {
        text = text.trim_end_matches('=').to_owned();
    }
    let at = |rng: &mut Rng, text: &String| {
        let mut at = rng.below(text.len() as u64 + 1) as usize;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match rng.below(20) {
        0 => {
            let i = at(rng, &text);
            text.insert_str(i, rng.pick(&["\\n", "\\r\\n", "\\r"]));
        }
        1 => {
            let i = at(rng, &text);
            text.insert_str(i, rng.pick(&[" ", "$", "=", "-", "+", "\\u0041", "\\/"]));
        }
        2 => text.push_str(rng.pick(&["aGl=", "aR==", "=", "===="])),
        3 => {
            text = rng
                .pick(&["", "aGk", "aGk=", "+/8", "-_8=", "+_8=", "YQ"])
                .to_string()
        }
        _ => {}
    }
    match rng.below(80) {
        0 => "12".to_owned(),
        1 => "[]".to_owned(),
        _ => format!("\"{text}\""),
    }
}

fn attributes(rng: &mut Rng, out: &mut Vec<u8>) {
    if rng.one_in(60) {
        out.extend(rng.pick(&["[]", "\"x\"", "1"]).as_bytes());
        return;
    }
    out.push(b'{');
    for i in 0..rng.below(4) {
        if i > 0 {
            out.push(b',');
        }
        ws(rng, out);
        json_string_value(rng, out, &["k", "", "browser", "k"]);
        out.push(b':');
        ws(rng, out);
        match rng.below(80) {
            0 => out.extend(b"null"),
            1 => out.extend(b"1"),
            2 => out.extend(b"{}"),
            _ => json_string_value(rng, out, &["v", "", "firefox"]),
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_cases() {
        let bodies = |seed| {
            cases(seed, 50)
                .into_iter()
                .map(|c| c.request.body)
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(7), bodies(7));
        assert_ne!(bodies(7), bodies(8));
    }
}

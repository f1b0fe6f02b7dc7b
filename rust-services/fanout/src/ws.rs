//! The server side of RFC 6455 that this service needs, and nothing more.
//!
//! # Why not a WebSocket crate
//! Idle connections dominate a fan-out server's memory. tungstenite (under
//! axum's `WebSocketUpgrade`) allocates its read buffer up front (128 KiB by
//! default, still 4 KiB when configured down) plus a write buffer;
//! fastwebsockets keeps an 8 KiB read buffer. This service reads a handful
//! of small client messages per connection lifetime and writes frames that
//! are already serialised and shared by every subscriber, so it needs no
//! per-connection buffer at all while idle:
//! - [`Parser`] is an incremental frame parser that keeps only a few bytes of
//!   header state between reads; a message's payload is buffered only while
//!   that message is arriving (at most [`MAX_MESSAGE_BYTES`]).
//! - Outgoing frames are a [`header`] of 2–10 bytes written with the shared
//!   payload in one vectored write: no copy, no write buffer.
//!
//! The parser enforces what a server must: client frames are masked, RSV
//! bits are zero (no extension is ever negotiated), opcodes are known,
//! control frames are final and at most 125 bytes, continuation frames
//! follow a started message, close codes and reasons are valid. Violations
//! end the connection with 1002; text that is not UTF-8 with 1007; a message
//! over [`MAX_MESSAGE_BYTES`] with 1009, detected from the frame header
//! before its payload is read.

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The largest client message (all its fragments together), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The close codes this server sends.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Frame opcodes.
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 of 16 bytes.
pub fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
}

/// The header of an unmasked, final server frame: the bytes and how many
/// of them are used.
pub fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// A complete frame or message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text message, valid UTF-8.
    Text(String),
    /// A binary frame (its payload skipped, not stored). The caller closes
    /// the connection; the parser must not be fed after it.
    Binary,
    Ping(Vec<u8>),
    Pong,
    /// A close frame and its status code, if it had one.
    Close(Option<u16>),
}

/// Why the connection must be closed: the close code to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation(pub u16);

/// What one [`Parser::feed`] call produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// All input consumed; more is needed.
    NeedMore,
    /// An event, after `consumed` bytes of the input.
    Event { consumed: usize, event: Event },
}

/// Incremental frame parser. Between reads it holds up to 14 header bytes
/// and, only while a message is arriving, that message's payload.
#[derive(Debug, Default)]
pub struct Parser {
    header: [u8; 14],
    header_len: u8,
    /// The frame whose payload is being read.
    frame: Option<Frame>,
    /// The data message being assembled (opcode TEXT), across fragments.
    message: Option<Vec<u8>>,
    /// A control frame's payload being read.
    control: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    fin: bool,
    opcode: u8,
    remaining: usize,
    mask: [u8; 4],
    mask_at: usize,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `input` up to and including the next event.
    pub fn feed(&mut self, input: &[u8]) -> Result<Step, Violation> {
        let mut at = 0;
        loop {
            if self.frame.is_none() {
                at += self.read_header(&input[at..])?;
                if self.frame.is_none() {
                    return Ok(Step::NeedMore);
                }
            }
            let frame = self.frame.as_mut().expect("a frame is being read");
            if frame.remaining > 0 && frame.opcode == opcode::BINARY {
                // Refused whatever it holds: skip the payload unread.
                let take = frame.remaining.min(input.len() - at);
                frame.remaining -= take;
                at += take;
                if frame.remaining > 0 {
                    return Ok(Step::NeedMore);
                }
            } else if frame.remaining > 0 {
                let take = frame.remaining.min(input.len() - at);
                let target = if frame.opcode >= opcode::CLOSE {
                    &mut self.control
                } else {
                    self.message
                        .as_mut()
                        .expect("a text or continuation frame belongs to a message")
                };
                let start = target.len();
                target.extend_from_slice(&input[at..at + take]);
                for (i, b) in target[start..].iter_mut().enumerate() {
                    *b ^= frame.mask[(frame.mask_at + i) & 3];
                }
                frame.mask_at += take;
                frame.remaining -= take;
                at += take;
                if frame.remaining > 0 {
                    return Ok(Step::NeedMore);
                }
            }
            let frame = self.frame.take().expect("a frame is being read");
            if let Some(event) = self.finish(frame)? {
                return Ok(Step::Event {
                    consumed: at,
                    event,
                });
            }
            if at == input.len() {
                return Ok(Step::NeedMore);
            }
        }
    }

    /// Collects header bytes; once complete, checks the header and starts
    /// the frame. Returns how many bytes of `input` it used.
    fn read_header(&mut self, input: &[u8]) -> Result<usize, Violation> {
        let mut used = 0;
        let mut have = self.header_len as usize;
        let mut need = 2;
        loop {
            if have >= 2 {
                need =
                    2 + match self.header[1] & 0x7f {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    } + if self.header[1] & 0x80 != 0 { 4 } else { 0 };
            }
            if have >= need {
                break;
            }
            let take = (need - have).min(input.len() - used);
            if take == 0 {
                self.header_len = have as u8;
                return Ok(used);
            }
            self.header[have..have + take].copy_from_slice(&input[used..used + take]);
            have += take;
            used += take;
            // Check the first two bytes as soon as they are here, before
            // the extended length arrives.
            if have >= 2 && have - take < 2 {
                self.check_start()?;
            }
        }
        self.header_len = 0;
        self.start_frame(need)?;
        Ok(used)
    }

    fn check_start(&self) -> Result<(), Violation> {
        let (b0, b1) = (self.header[0], self.header[1]);
        let protocol = Err(Violation(close::PROTOCOL_ERROR));
        if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
            return protocol; // RSV bits set, or an unmasked client frame
        }
        let op = b0 & 0x0f;
        let fin = b0 & 0x80 != 0;
        match op {
            opcode::CLOSE | opcode::PING | opcode::PONG if !fin || b1 & 0x7f > 125 => protocol,
            opcode::CLOSE | opcode::PING | opcode::PONG => Ok(()),
            opcode::CONTINUATION if self.message.is_none() => protocol,
            opcode::TEXT | opcode::BINARY if self.message.is_some() => protocol,
            opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => Ok(()),
            _ => protocol,
        }
    }

    fn start_frame(&mut self, header_len: usize) -> Result<(), Violation> {
        let h = &self.header;
        let fin = h[0] & 0x80 != 0;
        let op = h[0] & 0x0f;
        let len = match h[1] & 0x7f {
            126 => u16::from_be_bytes([h[2], h[3]]) as u64,
            127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
            n => n as u64,
        };
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&h[header_len - 4..header_len]);
        if op < opcode::CLOSE {
            let so_far = self.message.as_ref().map_or(0, Vec::len) as u64;
            if so_far + len > MAX_MESSAGE_BYTES as u64 {
                return Err(Violation(close::MESSAGE_TOO_BIG));
            }
            if op == opcode::TEXT {
                self.message = Some(Vec::with_capacity(if fin { len as usize } else { 0 }));
            }
        } else {
            self.control.clear();
        }
        self.frame = Some(Frame {
            fin,
            opcode: op,
            remaining: len as usize,
            mask,
            mask_at: 0,
        });
        Ok(())
    }

    /// A frame's payload is complete.
    fn finish(&mut self, frame: Frame) -> Result<Option<Event>, Violation> {
        match frame.opcode {
            opcode::BINARY => Ok(Some(Event::Binary)),
            opcode::PING => Ok(Some(Event::Ping(std::mem::take(&mut self.control)))),
            opcode::PONG => {
                self.control = Vec::new();
                Ok(Some(Event::Pong))
            }
            opcode::CLOSE => {
                let payload = std::mem::take(&mut self.control);
                close_code(&payload).map(|code| Some(Event::Close(code)))
            }
            _ if !frame.fin => Ok(None),
            _ => {
                let bytes = self
                    .message
                    .take()
                    .expect("a data frame belongs to a message");
                String::from_utf8(bytes)
                    .map(|text| Some(Event::Text(text)))
                    .map_err(|_| Violation(close::INVALID_PAYLOAD))
            }
        }
    }
}

/// The status code of a close frame's payload, checked as RFC 6455 §7.4.
fn close_code(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(Violation(close::PROTOCOL_ERROR)),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(Violation(close::PROTOCOL_ERROR));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(Violation(close::INVALID_PAYLOAD));
            }
            Ok(Some(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Feeds `bytes` in chunks of `chunk` and collects the events.
    fn parse(bytes: &[u8], chunk: usize) -> Result<Vec<Event>, Violation> {
        let mut parser = Parser::new();
        let mut events = Vec::new();
        for piece in bytes.chunks(chunk) {
            let mut rest = piece;
            while let Step::Event { consumed, event } = parser.feed(rest)? {
                events.push(event);
                rest = &rest[consumed..];
            }
        }
        Ok(events)
    }

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZQ=="));
        assert!(!is_valid_key(b"not base64 at all!!!!!!!"));
    }

    #[test]
    fn server_headers_use_the_shortest_length_encoding() {
        assert_eq!(header(opcode::TEXT, 5).0[..2], [0x81, 5]);
        assert_eq!(header(opcode::TEXT, 125).1, 2);
        assert_eq!(header(opcode::TEXT, 126).0[..4], [0x81, 126, 0, 126]);
        assert_eq!(header(opcode::TEXT, 65535).1, 4);
        let (h, n) = header(opcode::TEXT, 65536);
        assert_eq!((n, &h[..2]), (10, &[0x81, 127][..]));
        assert_eq!(&h[2..10], &65536u64.to_be_bytes());
    }

    #[test]
    fn masked_text_parses_whole_and_byte_by_byte() {
        let mut bytes = client_frame(0x81, "héllo".as_bytes());
        bytes.extend(client_frame(0x89, b"p"));
        bytes.extend(client_frame(0x8A, b""));
        bytes.extend(client_frame(0x88, &[0x03, 0xe8, b'o', b'k']));
        let expected = vec![
            Event::Text("héllo".into()),
            Event::Ping(b"p".to_vec()),
            Event::Pong,
            Event::Close(Some(1000)),
        ];
        for chunk in [1, 2, 3, 7, bytes.len()] {
            assert_eq!(parse(&bytes, chunk), Ok(expected.clone()), "chunk {chunk}");
        }
    }

    #[test]
    fn fragments_are_joined_and_controls_may_interleave() {
        let mut bytes = client_frame(0x01, b"ab");
        bytes.extend(client_frame(0x89, b""));
        bytes.extend(client_frame(0x00, b"cd"));
        bytes.extend(client_frame(0x80, b"e"));
        assert_eq!(
            parse(&bytes, 3),
            Ok(vec![Event::Ping(vec![]), Event::Text("abcde".into())])
        );
    }

    #[test]
    fn sixteen_bit_lengths_parse() {
        let text = "x".repeat(4096);
        assert_eq!(
            parse(&client_frame(0x81, text.as_bytes()), 1000),
            Ok(vec![Event::Text(text)])
        );
    }

    #[test]
    fn messages_over_4096_bytes_are_refused_from_the_header() {
        // Only the header is needed to know.
        let big = client_frame(0x81, &[b'x'; 4097]);
        assert_eq!(parse(&big[..8], 8), Err(Violation(close::MESSAGE_TOO_BIG)));
        // Fragments count together.
        let mut bytes = client_frame(0x01, &[b'x'; 4000]);
        bytes.extend(client_frame(0x80, &[b'x'; 97]));
        assert_eq!(parse(&bytes, 4096), Err(Violation(close::MESSAGE_TOO_BIG)));
        // Binary too: the size limit is checked before the type.
        assert_eq!(
            parse(&client_frame(0x82, &[0; 5000]), 100),
            Err(Violation(close::MESSAGE_TOO_BIG))
        );
        let huge = [0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(parse(&huge, 14), Err(Violation(close::MESSAGE_TOO_BIG)));
    }

    #[test]
    fn binary_is_reported_at_its_first_frame() {
        assert_eq!(
            parse(&client_frame(0x82, b"\x00\x01"), 100),
            Ok(vec![Event::Binary])
        );
    }

    #[test]
    fn invalid_utf8_text_is_1007() {
        assert_eq!(
            parse(&client_frame(0x81, b"\xff"), 10),
            Err(Violation(close::INVALID_PAYLOAD))
        );
        // Split inside a character across fragments is fine.
        let mut bytes = client_frame(0x01, &"é".as_bytes()[..1]);
        bytes.extend(client_frame(0x80, &"é".as_bytes()[1..]));
        assert_eq!(parse(&bytes, 10), Ok(vec![Event::Text("é".into())]));
    }

    #[test]
    fn protocol_violations_are_1002() {
        let unmasked = vec![0x81, 0x01, b'a'];
        let rsv = client_frame(0xC1, b"a");
        let unknown_opcode = client_frame(0x83, b"");
        let fragmented_ping = client_frame(0x09, b"");
        let long_ping = client_frame(0x89, &[0; 126]);
        let lone_continuation = client_frame(0x80, b"a");
        let mut text_in_text = client_frame(0x01, b"a");
        text_in_text.extend(client_frame(0x81, b"b"));
        let one_byte_close = client_frame(0x88, &[3]);
        let bad_close_code = client_frame(0x88, &1005u16.to_be_bytes());
        for (name, bytes) in [
            ("unmasked", unmasked),
            ("rsv", rsv),
            ("unknown opcode", unknown_opcode),
            ("fragmented ping", fragmented_ping),
            ("long ping", long_ping),
            ("lone continuation", lone_continuation),
            ("text in text", text_in_text),
            ("one-byte close", one_byte_close),
            ("close 1005", bad_close_code),
        ] {
            assert_eq!(
                parse(&bytes, 1),
                Err(Violation(close::PROTOCOL_ERROR)),
                "{name}"
            );
        }
    }

    #[test]
    fn close_codes_are_checked() {
        for code in [1000u16, 1001, 1003, 1007, 1011, 1013, 3000, 4999] {
            assert_eq!(
                parse(&client_frame(0x88, &code.to_be_bytes()), 4),
                Ok(vec![Event::Close(Some(code))])
            );
        }
        assert_eq!(
            parse(&client_frame(0x88, b""), 4),
            Ok(vec![Event::Close(None)])
        );
        let bad_reason = client_frame(0x88, &[0x03, 0xe8, 0xff]);
        assert_eq!(
            parse(&bad_reason, 4),
            Err(Violation(close::INVALID_PAYLOAD))
        );
    }

    #[test]
    fn an_idle_parser_holds_no_buffer() {
        let mut parser = Parser::new();
        let bytes = client_frame(0x81, b"{}");
        assert!(matches!(parser.feed(&bytes), Ok(Step::Event { .. })));
        assert!(parser.message.is_none());
        assert_eq!(parser.control.capacity(), 0);
    }
}

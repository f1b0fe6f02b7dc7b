//! An incremental RFC 6455 frame reader for the streams the proxy watches.
//!
//! The proxy relays WebSocket bytes unchanged; it reads frames only to know
//! where they start and end (so a close frame can be written between two
//! frames at shutdown) and, on a compared connection, to collect whole data
//! messages. Between reads it keeps a few bytes of header state; a
//! message's payload is held only while that message is arriving and only
//! up to a limit — past it the message is skipped and reported as
//! [`Event::Oversize`], never buffered. It is lenient where a relay can be
//! (it does not enforce masking or UTF-8: the endpoints do) and gives up
//! only on headers it cannot frame ([`Unframeable`]).

/// Frame opcodes.
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// What [`Reader::feed`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole data message (fragments joined), when collecting.
    Message { opcode: u8, payload: Vec<u8> },
    /// A data message longer than the limit (when collecting): skipped.
    Oversize { opcode: u8 },
    /// A close frame and its code, if it had one.
    Close(Option<u16>),
}

/// A frame header that cannot be framed (reserved opcode, fragmented control
/// frame, continuation without a message): the stream is no longer
/// readable as frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stream is not valid WebSocket framing")]
pub struct Unframeable;

#[derive(Debug, Clone, Copy)]
struct Frame {
    fin: bool,
    opcode: u8,
    remaining: u64,
    mask: Option<[u8; 4]>,
    mask_at: usize,
}

/// The message being assembled.
#[derive(Debug)]
struct Message {
    opcode: u8,
    /// `None` once over the limit (or when not collecting).
    payload: Option<Vec<u8>>,
    /// Collecting, but over the limit.
    oversize: bool,
}

/// Incremental reader of one direction of a WebSocket connection.
#[derive(Debug)]
pub struct Reader {
    header: [u8; 14],
    header_len: u8,
    frame: Option<Frame>,
    message: Option<Message>,
    /// The first two bytes of a close frame's payload.
    close: [u8; 2],
    close_len: u8,
    /// Largest message collected; 0 = boundaries only.
    limit: usize,
}

impl Reader {
    /// A reader that collects data messages up to `limit` bytes (0: only
    /// tracks frame boundaries and close frames).
    pub fn new(limit: usize) -> Self {
        Self {
            header: [0; 14],
            header_len: 0,
            frame: None,
            message: None,
            close: [0; 2],
            close_len: 0,
            limit,
        }
    }

    /// Stops collecting messages (the comparison ended); a message being
    /// assembled is dropped.
    pub fn stop_collecting(&mut self) {
        self.limit = 0;
        if let Some(m) = &mut self.message {
            m.payload = None;
            m.oversize = false;
        }
    }

    /// Whether the stream is between frames (a frame may be written now).
    pub fn at_boundary(&self) -> bool {
        self.frame.is_none() && self.header_len == 0
    }

    /// Reads all of `input`, pushing events to `out` in order.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Event>) -> Result<(), Unframeable> {
        loop {
            if self.frame.is_none() {
                if input.is_empty() {
                    return Ok(());
                }
                let used = self.read_header(input)?;
                input = &input[used..];
                if self.frame.is_none() {
                    return Ok(());
                }
            }
            let frame = self.frame.as_mut().expect("a frame is being read");
            let take = (frame.remaining.min(input.len() as u64)) as usize;
            let chunk = &input[..take];
            input = &input[take..];
            match frame.opcode {
                opcode::CLOSE => {
                    for &b in chunk {
                        if (self.close_len as usize) < 2 {
                            let b = match frame.mask {
                                Some(m) => b ^ m[frame.mask_at & 3],
                                None => b,
                            };
                            self.close[self.close_len as usize] = b;
                            self.close_len += 1;
                        }
                        frame.mask_at += 1;
                    }
                }
                opcode::PING | opcode::PONG => {}
                _ => {
                    if let Some(payload) = self.message.as_mut().and_then(|m| m.payload.as_mut()) {
                        let start = payload.len();
                        payload.extend_from_slice(chunk);
                        if let Some(mask) = frame.mask {
                            for (i, b) in payload[start..].iter_mut().enumerate() {
                                *b ^= mask[(frame.mask_at + i) & 3];
                            }
                        }
                    }
                    frame.mask_at += take;
                }
            }
            frame.remaining -= take as u64;
            if frame.remaining == 0 {
                let frame = self.frame.take().expect("a frame is being read");
                self.finish(frame, out);
            } else {
                return Ok(());
            }
        }
    }

    /// Collects header bytes; once the header is whole, starts the frame.
    fn read_header(&mut self, input: &[u8]) -> Result<usize, Unframeable> {
        let mut used = 0;
        let mut have = self.header_len as usize;
        loop {
            let need = if have < 2 {
                2
            } else {
                2 + match self.header[1] & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                } + if self.header[1] & 0x80 != 0 { 4 } else { 0 }
            };
            if have >= need {
                self.header_len = 0;
                self.start_frame(need)?;
                return Ok(used);
            }
            let take = (need - have).min(input.len() - used);
            if take == 0 {
                self.header_len = have as u8;
                return Ok(used);
            }
            self.header[have..have + take].copy_from_slice(&input[used..used + take]);
            have += take;
            used += take;
        }
    }

    fn start_frame(&mut self, header_len: usize) -> Result<(), Unframeable> {
        let h = &self.header;
        let fin = h[0] & 0x80 != 0;
        let op = h[0] & 0x0f;
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
            n => u64::from(n),
        };
        let mask = (h[1] & 0x80 != 0).then(|| {
            let mut m = [0u8; 4];
            m.copy_from_slice(&h[header_len - 4..header_len]);
            m
        });
        match op {
            opcode::CLOSE | opcode::PING | opcode::PONG => {
                if !fin || len > 125 {
                    return Err(Unframeable);
                }
                self.close_len = 0;
            }
            opcode::TEXT | opcode::BINARY => {
                if self.message.is_some() {
                    return Err(Unframeable);
                }
                let collect = self.limit > 0 && len <= self.limit as u64;
                self.message = Some(Message {
                    opcode: op,
                    payload: collect
                        .then(|| Vec::with_capacity(if fin { len as usize } else { 0 })),
                    oversize: self.limit > 0 && !collect,
                });
            }
            opcode::CONTINUATION => {
                let limit = self.limit as u64;
                let Some(message) = &mut self.message else {
                    return Err(Unframeable);
                };
                if message
                    .payload
                    .as_ref()
                    .is_some_and(|p| p.len() as u64 + len > limit)
                {
                    message.payload = None;
                    message.oversize = true;
                }
            }
            _ => return Err(Unframeable),
        }
        self.frame = Some(Frame {
            fin,
            opcode: op,
            remaining: len,
            mask,
            mask_at: 0,
        });
        Ok(())
    }
}

impl Reader {
    /// A frame's payload is complete.
    fn finish(&mut self, frame: Frame, out: &mut Vec<Event>) {
        match frame.opcode {
            opcode::CLOSE => {
                let code = (self.close_len == 2).then(|| u16::from_be_bytes(self.close));
                out.push(Event::Close(code));
            }
            opcode::PING | opcode::PONG => {}
            _ if !frame.fin => {}
            _ => {
                let message = self
                    .message
                    .take()
                    .expect("a data frame belongs to a message");
                match message.payload {
                    Some(payload) => out.push(Event::Message {
                        opcode: message.opcode,
                        payload,
                    }),
                    None if message.oversize => out.push(Event::Oversize {
                        opcode: message.opcode,
                    }),
                    None => {}
                }
            }
        }
    }
}

/// A close frame with `code`, as a server writes it (unmasked).
pub fn server_close(code: u16) -> [u8; 4] {
    let c = code.to_be_bytes();
    [0x80 | opcode::CLOSE, 2, c[0], c[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let bit = if mask.is_some() { 0x80 } else { 0 };
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(bit | n as u8),
            n if n <= 65535 => {
                out.push(bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(m) => {
                out.extend_from_slice(&m);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    fn read(bytes: &[u8], chunk: usize, limit: usize) -> (Vec<Event>, Reader) {
        let mut reader = Reader::new(limit);
        let mut events = Vec::new();
        for piece in bytes.chunks(chunk) {
            reader.feed(piece, &mut events).unwrap();
        }
        (events, reader)
    }

    #[test]
    fn messages_are_collected_whole_and_byte_by_byte_masked_or_not() {
        for mask in [None, Some([1, 2, 3, 4])] {
            let mut bytes = frame(0x81, br#"{"id":"a"}"#, mask);
            bytes.extend(frame(0x89, b"ping", mask));
            bytes.extend(frame(0x02, b"bi", mask));
            bytes.extend(frame(0x8A, b"", mask));
            bytes.extend(frame(0x80, b"n", mask));
            bytes.extend(frame(0x81, b"", mask));
            bytes.extend(frame(0x88, &[0x03, 0xe9, b'x'], mask));
            for chunk in [1, 2, 5, bytes.len()] {
                let (events, reader) = read(&bytes, chunk, 1024);
                assert_eq!(
                    events,
                    vec![
                        Event::Message {
                            opcode: 1,
                            payload: br#"{"id":"a"}"#.to_vec()
                        },
                        Event::Message {
                            opcode: 2,
                            payload: b"bin".to_vec()
                        },
                        Event::Message {
                            opcode: 1,
                            payload: vec![]
                        },
                        Event::Close(Some(1001)),
                    ],
                    "chunk {chunk} mask {mask:?}"
                );
                assert!(reader.at_boundary());
            }
        }
    }

    #[test]
    fn long_lengths_parse() {
        let big = vec![b'x'; 70_000];
        let (events, _) = read(&frame(0x81, &big, None), 4096, 100_000);
        assert_eq!(
            events,
            vec![Event::Message {
                opcode: 1,
                payload: big
            }]
        );
    }

    #[test]
    fn messages_over_the_limit_are_skipped_and_reported() {
        let mut bytes = frame(0x81, &[b'x'; 300], None);
        bytes.extend(frame(0x01, &[b'y'; 60], None));
        bytes.extend(frame(0x80, &[b'y'; 60], None));
        bytes.extend(frame(0x81, b"ok", None));
        let (events, _) = read(&bytes, 7, 100);
        assert_eq!(
            events,
            vec![
                Event::Oversize { opcode: 1 },
                Event::Oversize { opcode: 1 },
                Event::Message {
                    opcode: 1,
                    payload: b"ok".to_vec()
                },
            ]
        );
    }

    #[test]
    fn without_a_limit_only_boundaries_and_closes_are_tracked() {
        let mut bytes = frame(0x81, b"abc", None);
        bytes.extend(frame(0x88, &[0x03, 0xe8], None));
        let mut reader = Reader::new(0);
        let mut events = Vec::new();
        reader.feed(&bytes[..3], &mut events).unwrap();
        assert!(!reader.at_boundary());
        reader.feed(&bytes[3..], &mut events).unwrap();
        assert!(reader.at_boundary());
        assert_eq!(events, vec![Event::Close(Some(1000))]);
    }

    #[test]
    fn unframeable_headers_are_refused() {
        let mut events = Vec::new();
        assert_eq!(
            Reader::new(10).feed(&[0x83, 0], &mut events),
            Err(Unframeable)
        );
        assert_eq!(
            Reader::new(10).feed(&[0x80, 0], &mut events),
            Err(Unframeable)
        );
        assert_eq!(
            Reader::new(10).feed(&[0x09, 0], &mut events),
            Err(Unframeable)
        );
    }
}

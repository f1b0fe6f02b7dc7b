//! A small synchronous WebSocket client (tungstenite over
//! `std::net::TcpStream`) for the fan-out contract.
//!
//! Every read takes a deadline, so a silent server fails a test instead of
//! hanging it. What the server sends comes back as an [`Event`]: a frame, a
//! close with its code, the TCP connection ending without a close frame, or
//! silence. The client can also misbehave on purpose: send binary frames,
//! text frames that are not UTF-8, oversized messages, or simply stop
//! reading (a slow consumer with a small, fixed receive buffer).

use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::{Message, WebSocket};

use crate::http::READ_TIMEOUT;

/// What [`Client::next`] saw.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    /// A text frame's payload, byte for byte.
    Text(Vec<u8>),
    Binary(Vec<u8>),
    /// A pong's payload.
    Pong(Vec<u8>),
    /// A close frame and its status code (`None`: a close without a code).
    Close(Option<u16>),
    /// The TCP connection ended (EOF, reset) without a close frame.
    Ended(String),
    /// Nothing arrived before the deadline.
    Silence,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Text(text) => write!(f, "Text({})", crate::parity::excerpt(text)),
            Event::Binary(data) => write!(f, "Binary({} bytes)", data.len()),
            Event::Pong(data) => write!(f, "Pong({})", crate::parity::excerpt(data)),
            Event::Close(code) => write!(f, "Close({code:?})"),
            Event::Ended(why) => write!(f, "Ended({why})"),
            Event::Silence => f.write_str("Silence"),
        }
    }
}

/// One WebSocket connection, client side.
pub struct Client {
    socket: WebSocket<TcpStream>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.socket.get_ref().peer_addr().ok())
            .finish()
    }
}

impl Client {
    /// Connects to `addr` and upgrades `GET path` (path and query).
    ///
    /// # Panics
    /// When the connection fails or the server does not answer 101; the
    /// message carries the status and body it answered instead.
    pub fn open(addr: SocketAddr, path: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Self::upgrade(stream, addr, path)
    }

    /// [`open`](Self::open) on a socket whose receive buffer is fixed at
    /// `bytes` (no autotuning), so a client that stops reading pushes back
    /// on the server after little data.
    pub fn open_with_receive_buffer(addr: SocketAddr, path: &str, bytes: usize) -> Client {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .expect("create a TCP socket");
        // Before connect, so the window offered in the handshake is small.
        socket.set_recv_buffer_size(bytes).expect("set SO_RCVBUF");
        socket
            .connect(&addr.into())
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Self::upgrade(socket.into(), addr, path)
    }

    fn upgrade(stream: TcpStream, addr: SocketAddr, path: &str) -> Client {
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        let url = format!("ws://{addr}{path}");
        match tungstenite::client(url.as_str(), stream) {
            Ok((socket, _response)) => Client { socket },
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let body = response.body().as_deref().unwrap_or_default();
                panic!(
                    "GET {path}: expected 101, got {} {}",
                    response.status(),
                    crate::parity::excerpt(body)
                )
            }
            Err(e) => panic!("WebSocket handshake for GET {path}: {e}"),
        }
    }

    /// The next thing the server sends, within `timeout`. Pings are
    /// answered (by tungstenite) and skipped; after a close frame the
    /// client's close reply is sent before returning.
    pub fn next(&mut self, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Event::Silence;
            }
            self.socket
                .get_ref()
                .set_read_timeout(Some(left))
                .expect("read timeout");
            match self.socket.read() {
                Ok(Message::Text(text)) => return Event::Text(text.as_bytes().to_vec()),
                Ok(Message::Binary(data)) => return Event::Binary(data.to_vec()),
                Ok(Message::Pong(data)) => return Event::Pong(data.to_vec()),
                Ok(Message::Close(frame)) => {
                    // Queued by tungstenite; a server already gone is fine.
                    let _ = self.socket.flush();
                    return Event::Close(frame.map(|f| u16::from(f.code)));
                }
                Ok(Message::Ping(_) | Message::Frame(_)) => {}
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                Err(e) => return Event::Ended(e.to_string()),
            }
        }
    }

    /// The next text frame, within `timeout`.
    ///
    /// # Panics
    /// On anything else.
    #[track_caller]
    pub fn text(&mut self, timeout: Duration) -> Vec<u8> {
        match self.next(timeout) {
            Event::Text(text) => text,
            other => panic!("expected a text frame within {timeout:?}, got {other:?}"),
        }
    }

    /// Reads until the connection closes, skipping text frames: the number
    /// of frames skipped and how it ended ([`Event::Close`],
    /// [`Event::Ended`], or [`Event::Silence`] at the deadline).
    pub fn until_closed(&mut self, timeout: Duration) -> (usize, Event) {
        let deadline = Instant::now() + timeout;
        let mut skipped = 0;
        loop {
            match self.next(deadline.saturating_duration_since(Instant::now())) {
                Event::Text(_) | Event::Pong(_) => skipped += 1,
                end => return (skipped, end),
            }
        }
    }

    /// Reads frames straight off the socket until a close frame, the end of
    /// the stream or `timeout`, answering nothing: tungstenite would answer
    /// pings, this is a peer that stays silent. Returns how many pings came
    /// first and how it ended.
    ///
    /// Only for a connection whose earlier frames were all read: bytes that
    /// tungstenite already buffered are not seen here.
    pub fn silently_until_closed(&mut self, timeout: Duration) -> (usize, Event) {
        let deadline = Instant::now() + timeout;
        let stream = self.socket.get_mut();
        let mut pings = 0;
        loop {
            let frame = read_raw_frame(stream, deadline);
            match frame {
                Ok((0x9, _)) => pings += 1,
                Ok((0x8, payload)) => {
                    let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    return (pings, Event::Close(code));
                }
                Ok((opcode, payload)) => {
                    let what = format!("opcode {opcode:#x}: {}", crate::parity::excerpt(&payload));
                    return (pings, Event::Ended(what));
                }
                Err(e) if is_timeout(&e) => return (pings, Event::Silence),
                Err(e) => return (pings, Event::Ended(e.to_string())),
            }
        }
    }

    /// Asserts the server closes the connection with `code` within
    /// `timeout`, with no text frame before the close.
    #[track_caller]
    pub fn assert_closed_with(&mut self, code: u16, timeout: Duration, what: impl fmt::Display) {
        let event = self.next(timeout);
        assert_eq!(
            event,
            Event::Close(Some(code)),
            "after {what}: expected a close with {code}"
        );
    }

    pub fn send_text(&mut self, text: &str) -> tungstenite::Result<()> {
        self.socket.send(Message::text(text))
    }

    pub fn send_binary(&mut self, data: &[u8]) -> tungstenite::Result<()> {
        self.socket.send(Message::binary(data.to_vec()))
    }

    /// A text frame with any payload, valid UTF-8 or not (tungstenite's
    /// `Message::Text` insists on UTF-8; a raw frame does not).
    pub fn send_raw_text(&mut self, payload: &[u8]) -> tungstenite::Result<()> {
        let frame = Frame::message(payload.to_vec(), OpCode::Data(Data::Text), true);
        self.socket.send(Message::Frame(frame))
    }

    /// One text message sent as a text frame and continuation frames, one
    /// per fragment.
    pub fn send_fragmented_text(&mut self, fragments: &[&[u8]]) -> tungstenite::Result<()> {
        for (i, fragment) in fragments.iter().enumerate() {
            let opcode = if i == 0 { Data::Text } else { Data::Continue };
            let last = i + 1 == fragments.len();
            let frame = Frame::message(fragment.to_vec(), OpCode::Data(opcode), last);
            self.socket.send(Message::Frame(frame))?;
        }
        Ok(())
    }

    /// Starts the closing handshake with `code`.
    pub fn close(&mut self, code: u16) -> tungstenite::Result<()> {
        self.socket.close(Some(CloseFrame {
            code: code.into(),
            reason: "".into(),
        }))
    }

    pub fn ping(&mut self, payload: &[u8]) -> tungstenite::Result<()> {
        self.socket.send(Message::Ping(payload.to_vec().into()))
    }
}

/// One unfragmented server frame (unmasked, as servers send them): its
/// opcode and payload.
fn read_raw_frame(stream: &mut TcpStream, deadline: Instant) -> io::Result<(u8, Vec<u8>)> {
    let mut read = |n: usize| -> io::Result<Vec<u8>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let mut buf = vec![0; n];
        stream.read_exact(&mut buf)?;
        Ok(buf)
    };
    let head = read(2)?;
    let len = match head[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes(read(2)?.try_into().expect("2 bytes"))),
        127 => u64::from_be_bytes(read(8)?.try_into().expect("8 bytes")),
        n => u64::from(n),
    };
    let len = usize::try_from(len).map_err(|_| io::Error::other("frame too long"))?;
    Ok((head[0] & 0x0f, read(len)?))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

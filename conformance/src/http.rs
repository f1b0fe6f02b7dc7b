//! A deliberately small HTTP/1.1 client over `std::net::TcpStream`.
//!
//! The suite needs byte-level control that general-purpose clients take away:
//! no implicit `Accept` or `User-Agent`, a missing `Content-Type` that really
//! is missing, a declared `Content-Length` that disagrees with what is sent,
//! chunked uploads, and connections left half-written across a SIGTERM. Every
//! request opens its own connection and says `Connection: close`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// How long any single read may block before a request is declared hung.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`send_then_drain`] waits for bytes after the response.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// An HTTP request exactly as the suite wants it on the wire.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Sent in this order after `Host`; nothing else is added except
    /// `Content-Length` (unless given here or the body is chunked) and
    /// `Connection: close`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body with `Transfer-Encoding: chunked` and no length.
    pub chunked: bool,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            chunked: false,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    pub fn put(path: &str) -> Self {
        Self::new("PUT", path)
    }

    pub fn head(path: &str) -> Self {
        Self::new("HEAD", path)
    }

    pub fn delete(path: &str) -> Self {
        Self::new("DELETE", path)
    }

    /// `POST /v1/events` with `Content-Type: application/x-protobuf`.
    pub fn protobuf(body: impl Into<Vec<u8>>) -> Self {
        Self::post("/v1/events")
            .content_type("application/x-protobuf")
            .body(body)
    }

    /// `POST /v1/events` with `Content-Type: application/json`.
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Self::post("/v1/events")
            .content_type("application/json")
            .body(body)
    }

    /// The same request on another path.
    pub fn at(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn content_type(self, value: &str) -> Self {
        self.header("Content-Type", value)
    }

    pub fn accept(self, value: &str) -> Self {
        self.header("Accept", value)
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    /// The first header with this name (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_header(&self, name: &str) -> bool {
        self.header_value(name).is_some()
    }

    /// The request head (request line and headers, through the blank line).
    pub fn head_bytes(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", self.method, self.path);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        } else if !self.has_header("Content-Length")
            && (!self.body.is_empty() || self.method == "POST" || self.method == "PUT")
        {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        head.into_bytes()
    }

    /// The body as it goes on the wire (chunk-framed when `chunked`).
    pub fn body_bytes(&self) -> Vec<u8> {
        if !self.chunked {
            return self.body.clone();
        }
        let mut out = Vec::with_capacity(self.body.len() + self.body.len() / 8 + 16);
        for chunk in self.body.chunks(64 * 1024) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }
}

/// A parsed HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// The body as text, for assertions and failure messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` on a fresh connection to `addr` and reads the final
/// (non-1xx) response.
///
/// The body is written on a second thread while this one reads, so a server
/// that answers early (413, 415) is heard even if it stops reading the body.
pub fn send(addr: SocketAddr, request: &Request) -> Response {
    try_send(addr, request)
        .unwrap_or_else(|e| panic!("{} {} to {addr}: {e}", request.method, request.path))
}

/// [`send`] that reports I/O failures instead of panicking.
pub fn try_send(addr: SocketAddr, request: &Request) -> io::Result<Response> {
    exchange(addr, request, false).map(|(response, _)| response)
}

/// [`send`], then reads on until the server closes the connection (or stays
/// silent for [`DRAIN_TIMEOUT`]): the response and the bytes that followed
/// it. Shows what a framed read hides, e.g. a body after a `HEAD` answer.
pub fn send_then_drain(addr: SocketAddr, request: &Request) -> (Response, Vec<u8>) {
    exchange(addr, request, true)
        .unwrap_or_else(|e| panic!("{} {} to {addr}: {e}", request.method, request.path))
}

fn exchange(addr: SocketAddr, request: &Request, drain: bool) -> io::Result<(Response, Vec<u8>)> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let head = request.head_bytes(addr);
    let body = request.body_bytes();
    let is_head = request.method == "HEAD";
    std::thread::scope(|scope| {
        // The write result is deliberately ignored: a server may answer and
        // close before it has read the whole body, which is what some tests
        // provoke. The response read below is what counts.
        scope.spawn(move || {
            let _ = writer
                .write_all(&head)
                .and_then(|()| writer.write_all(&body));
        });
        let mut reader = BufReader::new(&stream);
        let response = read_response(&mut reader, is_head);
        let mut rest = Vec::new();
        let drained = if drain && response.is_ok() {
            drain_until_close(&stream, &mut reader, &mut rest)
        } else {
            Ok(())
        };
        // Unblocks the writer if the server stopped reading.
        let _ = stream.shutdown(Shutdown::Both);
        let response = response?;
        drained.map(|()| (response, rest))
    })
}

/// Reads into `rest` until end of stream; silence for [`DRAIN_TIMEOUT`]
/// counts as the end.
fn drain_until_close(
    stream: &TcpStream,
    reader: &mut impl Read,
    rest: &mut Vec<u8>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(DRAIN_TIMEOUT))?;
    match reader.read_to_end(rest) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A request whose body is half sent: the service is provably reading it
/// (it sent `100 Continue`), so a signal finds it in flight.
pub struct InFlight {
    connection: TcpStream,
    reader: BufReader<TcpStream>,
    rest: Vec<u8>,
}

impl InFlight {
    /// Sends the head of `request` with `Expect: 100-continue`, waits for the
    /// interim answer and sends the first half of the body.
    pub fn begin(addr: SocketAddr, request: &Request) -> InFlight {
        let request = request.clone().header("Expect", "100-continue");
        let body = request.body_bytes();
        let mut connection = TcpStream::connect(addr).unwrap();
        connection.set_nodelay(true).unwrap();
        connection.write_all(&request.head_bytes(addr)).unwrap();
        let mut reader = BufReader::new(connection.try_clone().unwrap());
        // The interim answer proves the handler is reading the body. A server
        // may skip it (HTTP allows that); then a short wait must do.
        connection
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        match read_head(&mut reader) {
            Ok((100, _)) => {}
            Ok((status, _)) => panic!("expected 100 Continue, got {status}"),
            Err(e) => eprintln!("no 100 Continue ({e}); sending the body anyway"),
        }
        connection.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let half = body.len() / 2;
        connection.write_all(&body[..half]).unwrap();
        InFlight {
            connection,
            reader,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body and reads the answer.
    pub fn finish(mut self) -> Response {
        self.connection.write_all(&self.rest).unwrap();
        let response =
            read_response(&mut self.reader, false).expect("an answer to the in-flight request");
        let _ = self.connection.shutdown(Shutdown::Both);
        response
    }
}

/// Reads one final response from `reader`, skipping interim `1xx` responses.
/// `head_request` suppresses the body as HTTP requires for `HEAD`.
pub fn read_response(reader: &mut impl BufRead, head_request: bool) -> io::Result<Response> {
    loop {
        let (status, headers) = read_head(reader)?;
        if (100..200).contains(&status) {
            continue;
        }
        return read_body(reader, status, headers, head_request);
    }
}

/// Reads the body that follows a response head already read with
/// [`read_head`].
pub fn read_body(
    reader: &mut impl BufRead,
    status: u16,
    headers: Vec<(String, String)>,
    head_request: bool,
) -> io::Result<Response> {
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 204 || status == 304 {
        return Ok(response);
    }
    let chunked = response
        .header("Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        response.body = read_chunked(reader)?;
    } else if let Some(len) = response.header("Content-Length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        response.body = vec![0; len];
        reader.read_exact(&mut response.body)?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

/// Reads a status line and headers. Returns the status and the headers.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let status_line = read_line(reader)?;
    if status_line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("bad status line {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader)?;
    }
}

/// One line without its `\r\n`; empty at end of stream or for a blank line.
fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| bad("non-UTF-8 response head".to_owned()))
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_content_length_response() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nAllow: GET\r\n\r\nhello";
        let response = read_response(&mut &raw[..], false).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("allow"), Some("GET"));
        assert_eq!(response.body, b"hello");
    }

    #[test]
    fn skips_interim_responses_and_decodes_chunks() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let response = read_response(&mut &raw[..], false).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"abcde");
    }

    #[test]
    fn a_head_response_has_no_body() {
        let raw = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 10\r\n\r\n";
        let response = read_response(&mut &raw[..], true).unwrap();
        assert_eq!(response.status, 405);
        assert!(response.body.is_empty());
    }

    #[test]
    fn draining_shows_a_body_sent_after_a_head_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                io::Read::read_exact(&mut connection, &mut byte).unwrap();
                head.push(byte[0]);
            }
            connection
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc")
                .unwrap();
        });

        let (response, rest) = send_then_drain(addr, &Request::head("/x"));

        server.join().unwrap();
        assert_eq!((response.status, response.body.as_slice()), (404, &b""[..]));
        assert_eq!(rest, b"abc");
    }

    #[test]
    fn chunked_requests_are_framed() {
        let request = Request::post("/x").body("hello").chunked();
        assert_eq!(request.body_bytes(), b"5\r\nhello\r\n0\r\n\r\n");
    }
}

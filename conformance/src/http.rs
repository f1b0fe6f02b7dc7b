//! A deliberately small HTTP/1.1 client over `std::net::TcpStream`.
//!
//! The suite needs byte-level control that general-purpose clients take away:
//! no implicit `Accept` or `User-Agent`, a missing `Content-Type` that really
//! is missing, a declared `Content-Length` that disagrees with what is sent,
//! chunked uploads, and connections left half-written across a SIGTERM. Every
//! request opens its own connection and says `Connection: close`.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// How long any single read may block before a request is declared hung.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

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
        // Unblocks the writer if the server stopped reading.
        let _ = stream.shutdown(Shutdown::Both);
        response
    })
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
    fn chunked_requests_are_framed() {
        let request = Request::post("/x").body("hello").chunked();
        assert_eq!(request.body_bytes(), b"5\r\nhello\r\n0\r\n\r\n");
    }
}

//! Following a chunked body's framing without changing it: pure logic.
//!
//! The raw path forwards a chunked answer byte for byte (chunk sizes,
//! extensions, trailers); it only needs to know where the body ends, so
//! that the upstream connection can be reused and nothing past the end is
//! sent to the client. [`Chunked::feed`] walks the framing (RFC 9112 §7.1)
//! and says how many of the bytes given belong to the body.

/// A framing error: the answer is broken, and so is its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the primary's chunked body is malformed")]
pub struct BadChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size (`digits` read so far).
    Size {
        digits: u8,
    },
    /// After the size: extensions, up to CR.
    Extension,
    /// The LF after a size line.
    SizeLf,
    /// Chunk data still to come.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Where a chunked body's framing stands.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    /// The chunk size being read, then the data bytes left of it.
    size: u64,
    /// A trailer field was seen.
    trailers: bool,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            trailers: false,
        }
    }
}

impl Chunked {
    /// Whether the last chunk and the trailers have been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body ended with trailer fields.
    pub fn has_trailers(&self) -> bool {
        self.trailers
    }

    /// Walks `bytes`; returns how many of them belong to the body (all of
    /// them, unless the body ended inside them).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, BadChunk> {
        self.feed_data(bytes, |_| {})
    }

    /// [`Chunked::feed`], handing `data` each run of chunk data on the way:
    /// the body decoded (the mirrored raw path's capture for the
    /// comparison, which compares bodies, not their framing).
    pub fn feed_data(&mut self, bytes: &[u8], data: impl FnMut(&[u8])) -> Result<usize, BadChunk> {
        self.feed_parts(bytes, data, |_| {})
    }

    /// [`Chunked::feed_data`], handing `trailer` each byte of the trailer
    /// section too (its field lines with their CRLFs, without the final
    /// CRLF): the shadow's answer keeps its trailers for the comparison,
    /// as hyper's client gives them.
    pub fn feed_parts(
        &mut self,
        bytes: &[u8],
        mut data: impl FnMut(&[u8]),
        mut trailer: impl FnMut(u8),
    ) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < bytes.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = (bytes.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                data(&bytes[i..i + take]);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            if matches!(self.state, State::Trailer | State::TrailerLf)
                || (self.state == State::TrailerStart && b != b'\r')
            {
                trailer(b);
            }
            self.state = match (self.state, b) {
                (State::Size { digits }, b) if b.is_ascii_hexdigit() => {
                    if digits == 16 {
                        return Err(BadChunk);
                    }
                    let d = (b as char).to_digit(16).expect("a hex digit");
                    self.size = self.size << 4 | u64::from(d);
                    State::Size { digits: digits + 1 }
                }
                (State::Size { digits }, b';' | b' ' | b'\t') if digits > 0 => State::Extension,
                (State::Size { digits }, b'\r') if digits > 0 => State::SizeLf,
                (State::Extension, b'\r') => State::SizeLf,
                (State::Extension, b'\n') => return Err(BadChunk),
                (State::Extension, _) => State::Extension,
                (State::SizeLf, b'\n') if self.size == 0 => State::TrailerStart,
                (State::SizeLf, b'\n') => State::Data,
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => State::Size { digits: 0 },
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::TrailerStart | State::Trailer, b'\n') => return Err(BadChunk),
                (State::Trailer, b'\r') => State::TrailerLf,
                (State::TrailerStart | State::Trailer, _) => {
                    self.trailers = true;
                    State::Trailer
                }
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::EndLf, b'\n') => State::Done,
                _ => return Err(BadChunk),
            };
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(body: &[u8]) -> Result<usize, BadChunk> {
        let mut c = Chunked::default();
        let n = c.feed(body)?;
        assert!(c.is_done(), "not done after {n} bytes");
        Ok(n)
    }

    #[test]
    fn the_data_is_handed_out_decoded_across_splits() {
        let body = b"5;ext=1\r\nhello\r\n3\r\n, w\r\n0\r\nx-sum: 1\r\n\r\n";
        for split in 0..body.len() {
            let mut c = Chunked::default();
            let mut out = Vec::new();
            let (a, b) = body.split_at(split);
            c.feed_data(a, |d| out.extend_from_slice(d)).unwrap();
            c.feed_data(b, |d| out.extend_from_slice(d)).unwrap();
            assert!(c.is_done() && c.has_trailers());
            assert_eq!(out, b"hello, w", "split at {split}");
        }
    }

    #[test]
    fn the_trailer_section_is_handed_out_across_splits() {
        let body = b"3\r\nabc\r\n0\r\nx-sum: 1\r\nx-b: 2\r\n\r\n";
        for split in 0..body.len() {
            let mut c = Chunked::default();
            let mut trailers = Vec::new();
            let (a, b) = body.split_at(split);
            for part in [a, b] {
                c.feed_parts(part, |_| {}, |t| trailers.push(t)).unwrap();
            }
            assert!(c.is_done());
            assert_eq!(trailers, b"x-sum: 1\r\nx-b: 2\r\n", "split at {split}");
        }
        let mut c = Chunked::default();
        let mut trailers = Vec::new();
        c.feed_parts(b"0\r\n\r\n", |_| {}, |t| trailers.push(t))
            .unwrap();
        assert!(c.is_done() && trailers.is_empty());
    }

    #[test]
    fn the_end_is_found_with_extensions_and_trailers() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nx-sum: 1\r\n\r\n";
        assert_eq!(whole(body), Ok(body.len()));
        let mut more = body.to_vec();
        more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(whole(&more), Ok(body.len()));
    }

    #[test]
    fn any_split_gives_the_same_end() {
        let body = b"3\r\nabc\r\n0\r\n\r\n";
        for split in 0..body.len() {
            let mut c = Chunked::default();
            let first = c.feed(&body[..split]).unwrap();
            assert_eq!(first, split);
            assert_eq!(c.feed(&body[split..]).unwrap(), body.len() - split);
            assert!(c.is_done());
        }
    }

    #[test]
    fn malformed_framing_is_an_error() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\nabc\r\n",
            b"3\r\nabcX\r\n",
            b"11111111111111111\r\n",
            b"0\r\nx-sum: 1\n\r\n",
        ] {
            let mut c = Chunked::default();
            assert_eq!(
                c.feed(bad),
                Err(BadChunk),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! Reading captures as a stream: one record at a time, memory bounded by
//! the largest record (plus zstd's window), whatever the file's size.
//!
//! A file that ends inside a frame or a record (a writer killed mid-way, a
//! disk that filled up) is not an error: every complete record before the
//! damage is returned, and [`CaptureReader::tail`] then says where and why
//! the file ended early.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use bytes::{Bytes, BytesMut};

use crate::format::{self, Meta, Record};
use crate::Error;

/// How a capture's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Not read to the end yet.
    Reading,
    /// Every frame and record was complete.
    Complete,
    /// The stream stops early; everything before it was returned.
    Truncated {
        /// Records returned before the damage.
        records: u64,
        /// What was wrong (unfinished zstd frame, partial record, ...).
        reason: String,
    },
}

/// A streaming reader of one capture file (or stream).
pub struct CaptureReader<R: Read> {
    decoder: zstd::stream::read::Decoder<'static, BufReader<R>>,
    meta: Meta,
    tail: Tail,
    records: u64,
}

impl CaptureReader<File> {
    /// Opens a capture file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Self::new(file).map_err(|e| e.at(path))
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the preamble and the meta record.
    pub fn new(inner: R) -> Result<Self, Error> {
        let decoder = zstd::stream::read::Decoder::new(inner)
            .map_err(|e| Error::Format(format!("not a zstd stream: {e}")))?;
        let mut reader = Self {
            decoder,
            meta: Meta::new("", 0),
            tail: Tail::Reading,
            records: 0,
        };
        let mut preamble = [0u8; 8];
        reader
            .decoder
            .read_exact(&mut preamble)
            .map_err(|e| Error::Format(format!("no capture preamble: {e}")))?;
        if &preamble[..7] != format::MAGIC {
            return Err(Error::Format(
                "not a Parallax capture (no PLXCAP preamble)".into(),
            ));
        }
        if !(format::OLDEST_VERSION..=format::VERSION).contains(&preamble[7]) {
            return Err(Error::Format(format!(
                "capture format version {} is not supported (this build reads {} to {}): a newer Parallax wrote it",
                preamble[7],
                format::OLDEST_VERSION,
                format::VERSION
            )));
        }
        match reader.next_record() {
            Some(Record::Meta(meta)) => reader.meta = meta,
            _ => {
                return Err(Error::Format(
                    "the first record is not a meta record".into(),
                ))
            }
        }
        reader.records = 0;
        Ok(reader)
    }

    /// The capture's meta record.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// How the stream ended (once `next` returned `None`).
    pub fn tail(&self) -> &Tail {
        &self.tail
    }

    fn truncated(&mut self, reason: String) -> Option<Record> {
        self.tail = Tail::Truncated {
            records: self.records,
            reason,
        };
        None
    }

    /// The next record, skipping kinds this version does not know; `None`
    /// at the end or at damage (see [`tail`](Self::tail)).
    pub fn next_record(&mut self) -> Option<Record> {
        loop {
            if self.tail != Tail::Reading {
                return None;
            }
            let mut len = [0u8; 4];
            match read_full(&mut self.decoder, &mut len) {
                Ok(0) => {
                    self.tail = Tail::Complete;
                    return None;
                }
                Ok(4) => {}
                Ok(_) => return self.truncated("the stream ends inside a record's length".into()),
                Err(e) => {
                    return self.truncated(format!(
                        "the stream ends inside a zstd frame ({e}); every complete record before it was read"
                    ))
                }
            }
            let len = u32::from_le_bytes(len);
            if len == 0 || len > format::MAX_RECORD_BYTES {
                return self.truncated(format!("a record length of {len} bytes is corrupt"));
            }
            let mut buf = BytesMut::zeroed(len as usize);
            match read_full(&mut self.decoder, &mut buf) {
                Ok(n) if n == len as usize => {}
                Ok(_) => return self.truncated("the stream ends inside a record".into()),
                Err(e) => return self.truncated(format!("the stream ends inside a record ({e})")),
            }
            match format::decode(Bytes::from(buf)) {
                Ok(Some(record)) => {
                    self.records += 1;
                    return Some(record);
                }
                Ok(None) => continue,
                Err(e) => return self.truncated(e.to_string()),
            }
        }
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Record;
    fn next(&mut self) -> Option<Record> {
        self.next_record()
    }
}

/// Reads until `buf` is full or the stream ends cleanly; an error only when
/// the stream fails (an unfinished frame is an error from zstd).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

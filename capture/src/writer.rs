//! Writing captures: [`CaptureWriter`] appends records to one zstd stream,
//! [`Segments`] rotates files by size.
//!
//! Crash safety comes from zstd's flush: [`CaptureWriter::flush`] ends the
//! current zstd block, so every record appended before it can be decoded
//! from the file even if the process dies before the frame is finished. A
//! frame is finished (checksum written) every [`FRAME_BYTES`] of records,
//! which bounds what a reader must decode past a damaged spot and lets a
//! frame's checksum vouch for it. Nothing calls `fsync`: a killed process
//! loses nothing the kernel already has; a power cut may lose the last
//! seconds.
//!
//! Frames that do not pay for their compression: with a `min_ratio` set
//! ([`CaptureWriter::set_min_ratio`], [`Rotation::min_ratio`]), a frame
//! that compressed less than that is followed by [`STORED_RUN`] frames
//! stored as zstd raw blocks ([`crate::stored`]: a copy, no match
//! finder), then one compressed frame probes the traffic again. Records
//! of random or already-compressed bodies thus cost a copy instead of
//! zstd's ~1 µs each; JSON (4-7× smaller) keeps being compressed.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::format::{self, Meta, Record};
use crate::stored::StoredFrame;

/// Records (decompressed bytes) per zstd frame before the frame is finished.
pub const FRAME_BYTES: u64 = 4 << 20;
/// The default zstd level: 1, the fastest regular level — a capture is
/// written once and read a few times. The proxy's recorder defaults to
/// [`FAST_LEVEL`] instead ([`CaptureWriter::with_level`]).
pub const LEVEL: i32 = 1;
/// zstd's first fast (negative) level, the recorder's default: it shares
/// the proxy's cores. Measured with `zstd -b` on recorded traffic: 1.7×
/// level 1's speed on JSON bodies (ratio 4.4 instead of 7.0) and on random
/// bodies (the same ratio); the format is the same zstd stream.
pub const FAST_LEVEL: i32 = -1;
/// Stored frames written after a compressed frame fell short of
/// `min_ratio`, before the next compressed one probes again: 15 × 4 MiB,
/// so about 1/16 of incompressible traffic still goes through zstd.
pub const STORED_RUN: u32 = 15;

/// Counts what reaches the inner writer.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The frame being written: compressed by zstd, or stored.
enum Frame<W: Write> {
    Compressed(zstd::stream::write::Encoder<'static, Counting<W>>),
    Stored(StoredFrame<Counting<W>>),
}

impl<W: Write> Frame<W> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Frame::Compressed(e) => e.write_all(bytes),
            Frame::Stored(f) => f.write_all(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Frame::Compressed(e) => e.flush(),
            Frame::Stored(f) => f.flush(),
        }
    }

    fn finish(self) -> io::Result<Counting<W>> {
        match self {
            Frame::Compressed(e) => e.finish(),
            Frame::Stored(f) => f.finish(),
        }
    }

    fn counting(&self) -> &Counting<W> {
        match self {
            Frame::Compressed(e) => e.get_ref(),
            Frame::Stored(f) => f.get_ref(),
        }
    }
}

/// One capture stream (one file).
pub struct CaptureWriter<W: Write> {
    frame: Option<Frame<W>>,
    /// Decompressed bytes in the current frame.
    in_frame: u64,
    /// Bytes written to the inner writer before the current frame.
    frame_start: u64,
    level: i32,
    /// A compressed frame smaller than this ratio is followed by stored
    /// frames; 0 compresses every frame.
    min_ratio: f64,
    /// Stored frames still to write before the next compressed probe.
    stored_left: u32,
    /// Reused for encoding records.
    buf: Vec<u8>,
    records: u64,
}

impl<W: Write> CaptureWriter<W> {
    /// Starts a capture on `inner`: the preamble and `meta`, flushed.
    pub fn new(inner: W, meta: &Meta) -> io::Result<Self> {
        Self::with_level(inner, meta, LEVEL)
    }

    /// [`CaptureWriter::new`] at zstd level `level` (negative levels are
    /// zstd's fast modes; the stream reads back the same).
    pub fn with_level(inner: W, meta: &Meta, level: i32) -> io::Result<Self> {
        let mut w = Self {
            frame: Some(Frame::Compressed(encoder(
                Counting { inner, bytes: 0 },
                level,
            )?)),
            in_frame: 0,
            frame_start: 0,
            level,
            min_ratio: 0.0,
            stored_left: 0,
            buf: Vec::with_capacity(4096),
            records: 0,
        };
        w.write_raw(&format::preamble())?;
        w.append(&Record::Meta(meta.clone()))?;
        w.flush()?;
        Ok(w)
    }

    /// Frames (after the first) that compress less than `ratio` (input
    /// bytes over output bytes) are followed by [`STORED_RUN`] stored
    /// frames; 0 (the default) compresses everything.
    pub fn set_min_ratio(&mut self, ratio: f64) {
        self.min_ratio = ratio;
    }

    fn frame(&mut self) -> &mut Frame<W> {
        self.frame.as_mut().expect("present until finish")
    }

    fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.in_frame += bytes.len() as u64;
        self.frame().write_all(bytes)
    }

    /// Appends `record`; it is durable (readable after a crash) once
    /// [`flush`](Self::flush) returns.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        format::encode(record, &mut buf);
        let result = self.write_raw(&buf);
        self.buf = buf;
        self.records += 1;
        result
    }

    /// Appends `records` records already encoded into `bytes` (length
    /// prefixes included, as [`format::encode`] writes them), e.g. a
    /// recorder's batch encoded on the client path.
    pub fn append_encoded(&mut self, bytes: &[u8], records: u64) -> io::Result<()> {
        self.records += records;
        self.write_raw(bytes)
    }

    /// Makes every appended record readable from the file; finishes the
    /// frame when it holds [`FRAME_BYTES`] or more.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.in_frame >= FRAME_BYTES {
            let frame = self.frame.take().expect("present until finish");
            let was_stored = matches!(frame, Frame::Stored(_));
            let mut inner = frame.finish()?;
            inner.flush()?;
            let out = inner.bytes - self.frame_start;
            let store = if was_stored {
                self.stored_left > 0
            } else {
                (self.in_frame as f64) < self.min_ratio * out as f64
            };
            self.stored_left = match (store, was_stored) {
                (true, true) => self.stored_left - 1,
                (true, false) => STORED_RUN - 1,
                (false, _) => 0,
            };
            self.frame_start = inner.bytes;
            self.frame = Some(if store {
                Frame::Stored(StoredFrame::new(inner)?)
            } else {
                Frame::Compressed(encoder(inner, self.level)?)
            });
            self.in_frame = 0;
            return Ok(());
        }
        self.frame().flush()
    }

    /// Whether the current frame is stored rather than compressed.
    pub fn storing(&self) -> bool {
        matches!(self.frame, Some(Frame::Stored(_)))
    }

    /// Bytes handed to the inner writer so far (compressed or stored).
    pub fn bytes_written(&self) -> u64 {
        self.frame.as_ref().map_or(0, |f| f.counting().bytes)
    }

    /// Records appended so far (the meta record included).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Finishes the last frame and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let frame = self.frame.take().expect("present until finish");
        let mut inner = frame.finish()?;
        inner.flush()?;
        Ok(inner.inner)
    }
}

fn encoder<W: Write>(inner: W, level: i32) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut e = zstd::stream::write::Encoder::new(inner, level)?;
    e.include_checksum(true)?;
    Ok(e)
}

/// The file of segment `n` of a capture configured as `path`:
/// `traffic.plxcap` → `traffic.000003.plxcap`.
pub fn segment_path(path: &Path, n: u32) -> PathBuf {
    let (stem, ext) = stem_ext(path);
    path.with_file_name(format!("{stem}.{n:06}.{ext}"))
}

fn stem_ext(path: &Path) -> (String, String) {
    let stem = path
        .file_stem()
        .map_or_else(|| "capture".into(), |s| s.to_string_lossy().into_owned());
    let ext = path.extension().map_or_else(
        || format::EXTENSION.into(),
        |s| s.to_string_lossy().into_owned(),
    );
    (stem, ext)
}

/// The segment numbers already on disk for `path`, in order.
pub fn existing_segments(path: &Path) -> Vec<(u32, PathBuf)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let (stem, ext) = stem_ext(path);
    let prefix = format!("{stem}.");
    let suffix = format!(".{ext}");
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(mid) = file
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(&suffix))
            else {
                continue;
            };
            if mid.len() == 6 && mid.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(n) = mid.parse() {
                    found.push((n, entry.path()));
                }
            }
        }
    }
    found.sort();
    found
}

/// Rotation settings.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Start a new segment once the current one holds this many compressed
    /// bytes.
    pub max_file_bytes: u64,
    /// Keep at most this many segments (the oldest are deleted); 0 keeps all.
    pub max_files: u32,
    /// The zstd level of new segments (see [`FAST_LEVEL`], [`LEVEL`]).
    pub level: i32,
    /// Store frames that compress less than this (see
    /// [`CaptureWriter::set_min_ratio`]); 0 compresses everything.
    pub min_ratio: f64,
}

/// A capture written as numbered segments (`stem.NNNNNN.ext`), rotated by
/// size. Segments continue after the highest number already on disk, so a
/// restarted recorder never overwrites an earlier capture.
pub struct Segments {
    path: PathBuf,
    rotation: Rotation,
    meta: Meta,
    next: u32,
    current: Option<CaptureWriter<File>>,
    /// Compressed bytes of segments already closed.
    closed_bytes: u64,
}

impl Segments {
    /// Prepares a capture at `path`; the first segment is opened on the
    /// first record (or by [`Segments::open`]).
    pub fn new(path: &Path, meta: Meta, rotation: Rotation) -> Self {
        let next = existing_segments(path).last().map_or(0, |(n, _)| n + 1);
        Self {
            path: path.to_owned(),
            rotation,
            meta,
            next,
            current: None,
            closed_bytes: 0,
        }
    }

    /// Opens the next segment if none is open.
    pub fn open(&mut self) -> io::Result<()> {
        if self.current.is_some() {
            return Ok(());
        }
        let n = self.next;
        let path = segment_path(&self.path, n);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        let mut meta = self.meta.clone();
        meta.segment = n;
        match CaptureWriter::with_level(file, &meta, self.rotation.level) {
            Ok(mut w) => {
                w.set_min_ratio(self.rotation.min_ratio);
                self.current = Some(w)
            }
            Err(e) => {
                // Not even the preamble fits (a full disk): leave no empty
                // segment behind, and try the same number next time.
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        }
        self.next += 1;
        self.prune();
        Ok(())
    }

    fn prune(&self) {
        let max = self.rotation.max_files as usize;
        if max == 0 {
            return;
        }
        let existing = existing_segments(&self.path);
        if existing.len() > max {
            for (_, p) in &existing[..existing.len() - max] {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    /// Appends a record to the current segment (opening one if needed).
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        self.open()?;
        self.current.as_mut().expect("just opened").append(record)
    }

    /// Appends records already encoded (see
    /// [`CaptureWriter::append_encoded`]).
    pub fn append_encoded(&mut self, bytes: &[u8], records: u64) -> io::Result<()> {
        self.open()?;
        self.current
            .as_mut()
            .expect("just opened")
            .append_encoded(bytes, records)
    }

    /// Flushes the current segment, then rotates if it is full.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(w) = &mut self.current else {
            return Ok(());
        };
        w.flush()?;
        if w.bytes_written() >= self.rotation.max_file_bytes {
            self.close()?;
        }
        Ok(())
    }

    /// Finishes the current segment (the next record opens a new one).
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(w) = self.current.take() {
            self.closed_bytes += w.bytes_written();
            w.finish()?;
        }
        Ok(())
    }

    /// Drops the current segment without finishing it (after a write
    /// error: its tail may be damaged; readers stop there). The next
    /// record opens a new segment.
    pub fn abandon(&mut self) {
        if let Some(w) = self.current.take() {
            self.closed_bytes += w.bytes_written();
        }
    }

    /// Compressed bytes written over all segments.
    pub fn bytes_written(&self) -> u64 {
        self.closed_bytes + self.current.as_ref().map_or(0, |w| w.bytes_written())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_number_the_stem() {
        assert_eq!(
            segment_path(Path::new("/tmp/x/traffic.plxcap"), 3),
            Path::new("/tmp/x/traffic.000003.plxcap")
        );
        assert_eq!(
            segment_path(Path::new("cap"), 0),
            Path::new("cap.000000.plxcap")
        );
    }
}

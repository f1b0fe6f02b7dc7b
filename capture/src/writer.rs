//! Writing captures: [`CaptureWriter`] appends records to one zstd stream,
//! [`Segments`] rotates files by size.
//!
//! Every flush writes what was appended since the last one as one whole
//! zstd frame (content checksum included) with one `write` (a stored
//! frame: one `writev`): crash safety
//! is a file of whole frames. A writer killed at any moment leaves every
//! flushed record readable; a kill in the middle of a frame's `write`
//! leaves a damaged tail that readers report and stop at. Nothing calls
//! `fsync`: a killed process loses nothing the kernel already has; a power
//! cut may lose the last seconds.
//!
//! Why a frame per flush rather than one long zstd stream flushed now and
//! then (as before 2026-12-05): the proxy's recorder pays for every byte
//! it compresses on the proxy's own CPUs, and compressing a gathered batch
//! at once costs about a quarter less than streaming it — no copy of the
//! input into zstd's window, match tables sized for the batch (they stay
//! in cache), and one `write` per frame instead of one per 32 KiB of
//! output (`capture/examples/writer_cost.rs`, `docs/benchmarks.md`,
//! "Recording overhead, fourth round"). A frame holds at most
//! [`FRAME_BYTES`]; the recorder gathers that much (1 MiB) per frame,
//! which compresses as well as the 4 MiB frames did.
//!
//! Frames that do not pay for their compression: with a `min_ratio` set
//! ([`CaptureWriter::set_min_ratio`], [`Rotation::min_ratio`]), the first
//! [`PROBE_BYTES`] of records are compressed as a frame of their own and
//! judged, and then each [`JUDGE_BYTES`] of compressed records; if they
//! compressed less than `min_ratio`, the next [`STORED_BYTES`] are written
//! as stored frames ([`crate::stored`]: zstd raw blocks written from the
//! records themselves, no match finder, no copy), then a probe judges the
//! traffic again. Records of random or already-compressed bodies thus cost
//! the `write` instead of zstd's ~1 µs each; JSON (3-7× smaller) keeps
//! being compressed.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::format::{self, Meta, Record};

/// The most records (decompressed bytes) in one frame: appends past it
/// write a frame without waiting for a flush, and a larger batch handed
/// to [`CaptureWriter::write_frames`] is cut into frames this large (a
/// record may span two frames: readers see one stream).
pub const FRAME_BYTES: usize = 1 << 20;
/// The default zstd level: 1, the fastest regular level — a capture is
/// written once and read a few times. The proxy's recorder defaults to
/// [`FAST_LEVEL`] instead ([`CaptureWriter::with_level`]).
pub const LEVEL: i32 = 1;
/// The recorder's default level: zstd's fast mode -2. It shares the
/// proxy's cores. Measured on recorded JSON traffic (613-byte records) in
/// 256 KiB frames with cold caches, A B B A (`writer_cost`, load 3.9):
/// level 1 5.6× smaller at 1.33-1.43 µs a record, -1 4.0× at 1.14-1.16,
/// **-2 3.9× at 0.99-1.02**, -3 3.6× at 0.96-1.0, -5 3.4× and -7 3.1× at
/// 0.90-0.97: past -2 the files grow faster than the writer speeds up
/// (`docs/benchmarks.md`, "Recording overhead, fourth round"). The format
/// is the same zstd stream at every level.
pub const FAST_LEVEL: i32 = -2;
/// The match table of the fast (negative) levels: 2^12 entries (16 KiB)
/// instead of the 2^13-2^14 zstd picks for 256 KiB-1 MiB frames. The
/// recorder's writer wakes to caches the proxy's worker has filled; the
/// smaller table costs fewer misses: in 256 KiB frames 6 % less writer
/// CPU at level -2 for the same ratio (3.93×) on recorded JSON, A B B A
/// (2^10: 10 % less, 3.82×).
pub const FAST_HASH_LOG: u32 = 12;
/// Compressed records judged at a time against `min_ratio` while they
/// keep compressing well.
pub const JUDGE_BYTES: u64 = 4 << 20;
/// The probe: at a segment's start and after each stored run, this many
/// records are compressed as a frame of their own and judged before the
/// next frame is written. Small, because on incompressible traffic every
/// probe is zstd's match finder run for nothing: with a 4 MiB probe per
/// 60 MiB stored, the probes were three quarters of the writer's
/// user-space instructions on random bodies (`scripts/capture-bench.sh`
/// `INSTRUCTIONS=1`); 256 KiB (~400 requests) still judges the traffic.
pub const PROBE_BYTES: u64 = 256 << 10;
/// Records stored after a judgement fell short of `min_ratio`, before the
/// next probe: 60 MiB, so about 0.4 % of incompressible traffic still goes
/// through zstd.
pub const STORED_BYTES: u64 = 60 << 20;

/// One capture stream (one file).
pub struct CaptureWriter<W: Write> {
    inner: W,
    compressor: zstd::bulk::Compressor<'static>,
    /// Records appended since the last frame was written.
    pending: Vec<u8>,
    /// The frame being built, reused.
    out: Vec<u8>,
    /// Bytes handed to `inner`.
    bytes: u64,
    /// Compressed records below this ratio are followed by stored ones;
    /// 0 compresses everything.
    min_ratio: f64,
    /// Records in, bytes out of the compressed frames not yet judged.
    probe_in: u64,
    probe_out: u64,
    /// Records still to store before compressing again.
    store_left: u64,
    /// The next compressed records are a probe ([`PROBE_BYTES`]).
    probing: bool,
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
        let mut compressor = zstd::bulk::Compressor::new(level)?;
        compressor.include_checksum(true)?;
        if level < 0 {
            compressor.set_parameter(zstd::zstd_safe::CParameter::HashLog(FAST_HASH_LOG))?;
        }
        let mut w = Self {
            inner,
            compressor,
            pending: Vec::with_capacity(4096),
            out: Vec::new(),
            bytes: 0,
            min_ratio: 0.0,
            probe_in: 0,
            probe_out: 0,
            store_left: 0,
            probing: true,
            records: 0,
        };
        w.pending.extend_from_slice(&format::preamble());
        w.append(&Record::Meta(meta.clone()))?;
        w.flush()?;
        Ok(w)
    }

    /// Compressed records that compressed less than `ratio` (input bytes
    /// over output bytes; judged per [`JUDGE_BYTES`], and per
    /// [`PROBE_BYTES`] at the start and after a stored run) are followed
    /// by [`STORED_BYTES`] stored; 0 (the default) compresses everything.
    pub fn set_min_ratio(&mut self, ratio: f64) {
        self.min_ratio = ratio;
    }

    /// zstd's compressor, for parameters beyond the level (e.g.
    /// `CParameter::HashLog`); they apply to the frames written after.
    pub fn compressor(&mut self) -> &mut zstd::bulk::Compressor<'static> {
        &mut self.compressor
    }

    /// Appends `record`; it is durable (readable after a crash) once
    /// [`flush`](Self::flush) returns.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        format::encode(record, &mut self.pending);
        self.records += 1;
        self.write_if_full()
    }

    /// Appends `records` records already encoded into `bytes` (length
    /// prefixes included, as [`format::encode`] writes them).
    pub fn append_encoded(&mut self, bytes: &[u8], records: u64) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        self.records += records;
        self.write_if_full()
    }

    /// Appends `records` encoded records and flushes, without copying
    /// them first: `bytes` is compressed straight into frames (what the
    /// recorder does with each batch it gathered).
    pub fn write_frames(&mut self, bytes: &[u8], records: u64) -> io::Result<()> {
        self.flush()?;
        self.records += records;
        self.frames(bytes)?;
        self.inner.flush()
    }

    fn write_if_full(&mut self) -> io::Result<()> {
        if self.pending.len() >= FRAME_BYTES {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let result = self.frames(&pending);
        self.pending = pending;
        self.pending.clear();
        result
    }

    /// Writes `content` as frames of at most [`FRAME_BYTES`], compressed or
    /// stored; a probe ends a compressed frame early, so that what follows
    /// it is written as its judgement says.
    fn frames(&mut self, mut content: &[u8]) -> io::Result<()> {
        while !content.is_empty() {
            let judging = self.min_ratio > 0.0 && self.store_left == 0;
            let mut n = content.len().min(FRAME_BYTES);
            if judging && self.probing {
                n = n.min(PROBE_BYTES.saturating_sub(self.probe_in).max(1) as usize);
            }
            let (frame, rest) = content.split_at(n);
            self.frame(frame)?;
            content = rest;
        }
        Ok(())
    }

    /// Writes `content` as one frame, compressed or stored.
    fn frame(&mut self, content: &[u8]) -> io::Result<()> {
        let len = content.len() as u64;
        if self.store_left > 0 {
            self.bytes += crate::stored::write_frame(&mut self.inner, content)?;
            self.store_left = self.store_left.saturating_sub(len);
            if self.store_left == 0 {
                self.probing = true;
            }
            return Ok(());
        }
        self.out.clear();
        self.out
            .reserve(zstd::zstd_safe::compress_bound(content.len()));
        self.compressor.compress_to_buffer(content, &mut self.out)?;
        self.probe_in += len;
        self.probe_out += self.out.len() as u64;
        let judge_at = if self.probing {
            PROBE_BYTES
        } else {
            JUDGE_BYTES
        };
        if self.probe_in >= judge_at {
            if (self.probe_in as f64) < self.min_ratio * self.probe_out as f64 {
                self.store_left = STORED_BYTES;
            }
            self.probing = false;
            self.probe_in = 0;
            self.probe_out = 0;
        }
        self.inner.write_all(&self.out)?;
        self.bytes += self.out.len() as u64;
        // A burst's buffer is given back rather than kept for good.
        if self.out.capacity() > 2 * FRAME_BYTES {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Makes every appended record readable from the file: writes them as
    /// a frame.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.write_pending()?;
        }
        self.inner.flush()
    }

    /// Whether the next frame will be stored rather than compressed.
    pub fn storing(&self) -> bool {
        self.store_left > 0
    }

    /// Bytes handed to the inner writer so far (compressed or stored).
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Records appended so far (the meta record included).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes what is pending and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.inner)
    }
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

    /// Appends encoded records and flushes them, compressed straight from
    /// `bytes` (see [`CaptureWriter::write_frames`]); then rotates if the
    /// segment is full.
    pub fn write_frames(&mut self, bytes: &[u8], records: u64) -> io::Result<()> {
        self.open()?;
        self.current
            .as_mut()
            .expect("just opened")
            .write_frames(bytes, records)?;
        self.rotate_if_full()
    }

    /// Flushes the current segment, then rotates if it is full.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(w) = &mut self.current else {
            return Ok(());
        };
        w.flush()?;
        self.rotate_if_full()
    }

    fn rotate_if_full(&mut self) -> io::Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|w| w.bytes_written() >= self.rotation.max_file_bytes)
        {
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

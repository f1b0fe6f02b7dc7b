//! Stored zstd frames: records that do not compress written as zstd *raw
//! blocks*, so a capture stays one valid zstd stream (`zstd -dc` and every
//! reader decode it unchanged) without paying for a compressor that
//! cannot win.
//!
//! Why: zstd itself falls back to a raw block when a block does not
//! shrink, but only after running its match finder over every byte. On
//! incompressible bodies (random ids, encrypted or already-compressed
//! payloads) that costs the proxy's recorder ~1 µs a 512-byte request even
//! at the fastest levels (measured in `docs/benchmarks.md`, "Recording
//! overhead"), while copying the bytes into a raw block costs a tenth of
//! it. [`crate::writer::CaptureWriter`] decides per frame which kind to
//! write (`min_ratio`).
//!
//! A stored frame (RFC 8878): the magic, a header with a 128 KiB window and
//! the content-checksum flag, raw blocks of at most 128 KiB, an empty last
//! raw block (as zstd itself ends an empty frame), and the low 32 bits of
//! the XXH64 of the content. The writer writes a frame with one vectored
//! write (the blocks straight from the records, their headers between
//! them), as it writes a compressed one at once, so a file cut anywhere
//! decodes up to its last whole frame.

use std::io::{self, IoSlice, Write};

/// zstd's frame magic number, little-endian on disk.
const MAGIC: u32 = 0xFD2F_B528;
/// Frame header descriptor: content checksum present; no content size,
/// not single-segment (so a window descriptor follows), no dictionary.
const DESCRIPTOR: u8 = 0b0000_0100;
/// Window descriptor: 2^(10 + 7) = 128 KiB (exponent 7, mantissa 0).
const WINDOW: u8 = 7 << 3;
/// The largest block: the window, and zstd's 128 KiB block maximum.
pub const MAX_BLOCK: usize = 128 << 10;

/// Appends to `out` one stored frame holding `content`.
pub fn frame(content: &[u8], out: &mut Vec<u8>) {
    out.reserve(content.len() + 16 + 3 * (content.len() / MAX_BLOCK));
    write_frame(out, content).expect("writing to a Vec does not fail");
}

/// Writes one stored frame holding `content` to `w` with vectored writes
/// (one `writev` for a file): the blocks are written from `content` itself
/// with their headers between them, never copied into a frame buffer
/// first (that copy was a sixth of the recorder's writer CPU on stored
/// traffic). Returns the frame's size. A partial write is continued, so
/// the frame is whole on success.
pub fn write_frame<W: Write + ?Sized>(w: &mut W, content: &[u8]) -> io::Result<u64> {
    let mut head = [0u8; 6];
    head[..4].copy_from_slice(&MAGIC.to_le_bytes());
    head[4] = DESCRIPTOR;
    head[5] = WINDOW;
    let blocks = content.chunks(MAX_BLOCK);
    let headers: Vec<[u8; 3]> = blocks
        .clone()
        .map(|b| block_header(b.len(), false))
        .collect();
    let mut hash = Xxh64::new();
    hash.update(content);
    let mut tail = [0u8; 7];
    tail[..3].copy_from_slice(&block_header(0, true));
    tail[3..].copy_from_slice(&(hash.digest() as u32).to_le_bytes());
    let mut slices = Vec::with_capacity(2 * headers.len() + 2);
    slices.push(IoSlice::new(&head));
    for (header, block) in headers.iter().zip(blocks) {
        slices.push(IoSlice::new(header));
        slices.push(IoSlice::new(block));
    }
    slices.push(IoSlice::new(&tail));
    let size = slices.iter().map(|s| s.len() as u64).sum();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match w.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(size)
}

/// A block header, 3 bytes little-endian: bit 0 last, bits 1-2 type
/// (0 = raw), bits 3-23 size.
fn block_header(len: usize, last: bool) -> [u8; 3] {
    let header = ((len as u32) << 3) | u32::from(last);
    let b = header.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// XXH64 with seed 0, streaming: zstd's content checksum (the low 32 bits
/// of the digest). zstd's own is not exported by `zstd-sys`.
struct Xxh64 {
    acc: [u64; 4],
    /// Bytes not yet consumed as a whole 32-byte stripe.
    tail: [u8; 32],
    tail_len: usize,
    total: u64,
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(h: u64, acc: u64) -> u64 {
    (h ^ round(0, acc)).wrapping_mul(P1).wrapping_add(P4)
}

fn lane(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

impl Xxh64 {
    fn new() -> Self {
        Self {
            acc: [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)],
            tail: [0; 32],
            tail_len: 0,
            total: 0,
        }
    }

    fn stripe(acc: &mut [u64; 4], s: &[u8]) {
        for (i, a) in acc.iter_mut().enumerate() {
            *a = round(*a, lane(&s[i * 8..]));
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.tail_len > 0 {
            let take = (32 - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 32 {
                return;
            }
            let tail = self.tail;
            Self::stripe(&mut self.acc, &tail);
            self.tail_len = 0;
        }
        let mut stripes = bytes.chunks_exact(32);
        for s in &mut stripes {
            Self::stripe(&mut self.acc, s);
        }
        let rest = stripes.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    fn digest(&self) -> u64 {
        let [a1, a2, a3, a4] = self.acc;
        let mut h = if self.total >= 32 {
            let h = a1
                .rotate_left(1)
                .wrapping_add(a2.rotate_left(7))
                .wrapping_add(a3.rotate_left(12))
                .wrapping_add(a4.rotate_left(18));
            merge(merge(merge(merge(h, a1), a2), a3), a4)
        } else {
            a3.wrapping_add(P5)
        };
        h = h.wrapping_add(self.total);
        let mut rest = &self.tail[..self.tail_len];
        while rest.len() >= 8 {
            h ^= round(0, lane(rest));
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            rest = &rest[8..];
        }
        if rest.len() >= 4 {
            let v = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
            h ^= u64::from(v).wrapping_mul(P1);
            h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            rest = &rest[4..];
        }
        for &b in rest {
            h ^= u64::from(b).wrapping_mul(P5);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xxh64(parts: &[&[u8]]) -> u64 {
        let mut h = Xxh64::new();
        for p in parts {
            h.update(p);
        }
        h.digest()
    }

    #[test]
    fn xxh64_matches_the_reference_values() {
        assert_eq!(xxh64(&[b""]), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(&[b"a"]), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(&[b"abc"]), 0x44BC_2CF5_AD77_0999);
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        // Split anywhere, the same digest.
        let whole = xxh64(&[&long]);
        for cut in [1, 5, 31, 32, 33, 64, 999] {
            assert_eq!(xxh64(&[&long[..cut], &long[cut..]]), whole, "cut {cut}");
        }
    }

    #[test]
    fn a_stored_frame_is_read_back_by_zstd_with_its_checksum_checked() {
        let content: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        // Two frames back to back, one of several blocks: one stream.
        let mut file = Vec::new();
        frame(&content[..1000], &mut file);
        frame(&content[1000..], &mut file);
        assert_eq!(zstd::stream::decode_all(&file[..]).unwrap(), content);
        // A wrong checksum is refused: zstd really checks it.
        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(zstd::stream::decode_all(&bad[..]).is_err());
        // An empty frame is valid too.
        let mut empty = Vec::new();
        frame(&[], &mut empty);
        assert!(zstd::stream::decode_all(&empty[..]).unwrap().is_empty());
    }
}

//! Undoing `Content-Encoding` before comparing.
//!
//! A Go service behind gzip middleware and its Rust rewrite answering
//! plain JSON send the same document; the client sees the same thing once
//! its HTTP library decodes. So bodies are decoded (`gzip`, `x-gzip`,
//! `deflate`, `br`, `zstd`, in the reverse order of a list such as
//! `gzip, br`) and the *decoded* bodies are compared. The encoding itself
//! is compared only when `content-encoding` is in the route's header
//! allow-list.
//!
//! Decoding never expands without limit: past `max_decoded_bytes` it stops
//! and says so ([`DecodeError::TooLarge`]); a decompression bomb costs at
//! most that much memory and is reported as a `limit` difference.

use std::borrow::Cow;
use std::io::Read;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{encoding} body decodes to more than {limit} bytes")]
    TooLarge { encoding: String, limit: usize },
    #[error("{encoding} body does not decode: {reason}")]
    Corrupt { encoding: String, reason: String },
    #[error("unsupported content-encoding {0:?}")]
    Unsupported(String),
}

/// The codings of a `Content-Encoding` value in the order they were
/// applied, lower-cased, `identity` left out.
pub fn codings(header: Option<&str>) -> Vec<String> {
    header
        .unwrap_or("")
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// `body` with every coding of `header` undone, at most `limit` bytes.
pub fn decode<'a>(
    header: Option<&str>,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    let mut out = Cow::Borrowed(body);
    for coding in codings(header).iter().rev() {
        out = Cow::Owned(decode_one(coding, &out, limit)?);
    }
    Ok(out)
}

fn decode_one(coding: &str, body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let reader: Box<dyn Read + '_> = match coding {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(body)),
        // RFC 9110's `deflate` is zlib; some servers send raw deflate.
        "deflate" if looks_like_zlib(body) => Box::new(flate2::read::ZlibDecoder::new(body)),
        "deflate" => Box::new(flate2::read::DeflateDecoder::new(body)),
        "br" => Box::new(brotli_decompressor::Decompressor::new(body, 4096)),
        "zstd" => Box::new(
            zstd::stream::read::Decoder::with_buffer(body).map_err(|e| corrupt(coding, e))?,
        ),
        other => return Err(DecodeError::Unsupported(other.to_owned())),
    };
    let mut out = Vec::new();
    // One byte past the limit tells "exactly the limit" from "more".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(coding, e))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge {
            encoding: coding.to_owned(),
            limit,
        });
    }
    Ok(out)
}

fn looks_like_zlib(body: &[u8]) -> bool {
    matches!(body, [cmf, flg, ..] if cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0)
}

fn corrupt(coding: &str, e: std::io::Error) -> DecodeError {
    DecodeError::Corrupt {
        encoding: coding.to_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_supported_coding_round_trips() {
        let doc = br#"{"accepted":3,"rejected":[]}"#;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("gzip", gzip(doc)),
            ("x-gzip", gzip(doc)),
            ("deflate", zlib(doc)),
            ("deflate", raw_deflate(doc)),
            ("zstd", zstd::encode_all(&doc[..], 3).unwrap()),
            ("br", brotli_of(doc)),
            ("identity", doc.to_vec()),
        ];
        for (coding, body) in cases {
            assert_eq!(
                decode(Some(coding), &body, 1 << 20).unwrap(),
                &doc[..],
                "{coding}"
            );
        }
    }

    fn brotli_of(doc: &[u8]) -> Vec<u8> {
        // A brotli stream of one uncompressed meta-block, written by hand
        // (the decoder crate has no encoder): WBITS=16, ISLAST=0,
        // MNIBBLES=4, MLEN-1, ISUNCOMPRESSED=1, then the bytes, then an
        // empty last meta-block.
        let mut bits = BitWriter::default();
        bits.put(0, 1); // WBITS = 16
        bits.put(0, 1); // ISLAST = 0
        bits.put(0, 2); // MNIBBLES = 4
        bits.put((doc.len() - 1) as u64, 16);
        bits.put(1, 1); // ISUNCOMPRESSED
        let mut out = bits.finish();
        out.extend_from_slice(doc);
        out.push(0b11); // ISLAST = 1, ISLASTEMPTY = 1
        out
    }

    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        used: u32,
    }

    impl BitWriter {
        fn put(&mut self, value: u64, n: u32) {
            for i in 0..n {
                if self.used.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                *self.bytes.last_mut().unwrap() |= bit << (self.used % 8);
                self.used += 1;
            }
        }

        fn finish(self) -> Vec<u8> {
            self.bytes
        }
    }

    #[test]
    fn a_list_of_codings_is_undone_in_reverse() {
        let doc = b"hello";
        let twice = zstd::encode_all(&gzip(doc)[..], 1).unwrap();
        assert_eq!(decode(Some("gzip, zstd"), &twice, 100).unwrap(), &doc[..]);
    }

    #[test]
    fn a_bomb_is_cut_at_the_limit() {
        let bomb = gzip(&vec![0u8; 50 << 20]);
        assert!(bomb.len() < 100 << 10);
        assert_eq!(
            decode(Some("gzip"), &bomb, 1 << 20),
            Err(DecodeError::TooLarge {
                encoding: "gzip".into(),
                limit: 1 << 20
            })
        );
    }

    #[test]
    fn corrupt_and_unknown_codings_are_errors() {
        assert!(matches!(
            decode(Some("gzip"), b"not gzip", 100),
            Err(DecodeError::Corrupt { .. })
        ));
        assert!(matches!(
            decode(Some("compress"), b"x", 100),
            Err(DecodeError::Unsupported(_))
        ));
        assert_eq!(decode(None, b"x", 100).unwrap(), &b"x"[..]);
    }
}

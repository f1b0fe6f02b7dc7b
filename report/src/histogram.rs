//! Histograms in the results file: HDR V2 + DEFLATE, then base64.
//!
//! The serialised form is lossless (every bucket count), so the gate can
//! resample a run's latencies and a later reader can ask for any percentile.
//! V2 + DEFLATE is the format the Java and Go HdrHistogram ports read too.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::Error;

/// Serialises a histogram (V2 + DEFLATE) and encodes it as standard base64.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serialising into a Vec does not fail");
    STANDARD.encode(bytes)
}

/// Reverses [`encode`]. Also accepts plain V2 (the deserialiser tells the
/// formats apart by their cookie).
pub fn decode(text: &str) -> Result<Histogram<u64>, Error> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| Error::Histogram(format!("base64: {e}")))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| Error::Histogram(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_bucket() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in [1u64, 7, 150, 150, 999, 12_345, 1_000_000, 59_000_000] {
            h.record(v).unwrap();
        }
        h.record_n(420, 1_000).unwrap();
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 1_008);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode("not base64!").is_err());
        assert!(decode(&STANDARD.encode(b"HISTFAAAjunk")).is_err());
    }
}

//! Decode + validate + records of a 500-event batch: the CPU cost of the
//! request path without the network or Kafka. Twin of Go's
//! `BenchmarkDecodeValidateEncode` (go-reference/internal/ingest); the
//! `_reencoded` variant sends events the service must encode itself (see
//! `wire::BatchView`).
//!
//! `cargo bench -p parallax-ingest --bench batch`

use std::collections::BTreeMap;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

use parallax_ingest::media::Media;
use parallax_ingest::proto::{Event, EventBatch, IngestResponse};
use parallax_ingest::{decode, publish, response, validate};

const EVENTS: usize = 500;

/// 16-byte ids, three attributes, a 200-byte payload: the same batch the Go
/// benchmark builds.
fn batch() -> Bytes {
    let events = (0..EVENTS)
        .map(|i| Event {
            event_id: format!("evt-{i:012}"),
            tenant_id: format!("tenant-{}", i % 50),
            r#type: "page_view".into(),
            occurred_at_unix_ms: 1_764_000_000_000 + i as i64,
            attributes: BTreeMap::from([
                ("country".to_owned(), "NL".to_owned()),
                ("device".to_owned(), "mobile".to_owned()),
                ("plan".to_owned(), "pro".to_owned()),
            ]),
            payload: Bytes::from(vec![b'x'; 200]),
        })
        .collect();
    Bytes::from(EventBatch { events }.encode_to_vec())
}

/// The request path: decode in place, validate, the Kafka records, the
/// answer. Returns the record bytes and the answer, so nothing is optimised
/// away.
fn request_path(body: &Bytes) -> (usize, Bytes) {
    let mut json = Vec::new();
    let batch = decode::decode_view(Media::Protobuf, body, &mut json).expect("valid batch");
    let verdict = validate::validate(&batch.events);
    let mut scratch = Vec::new();
    let records = publish::records(&batch, &verdict.accepted, &mut scratch);
    let value_bytes = records.iter().map(|r| r.value.len()).sum();
    let answer = IngestResponse {
        accepted: records.len() as u32,
        rejected: verdict.rejected,
    };
    (value_bytes, response::encode(&answer, Media::Protobuf))
}

fn decode_validate_encode(c: &mut Criterion) {
    let body = batch();
    // The same events, each with an unknown field at its end: no event is
    // in its record encoding any more, so every one is encoded.
    let mut reencoded = Vec::new();
    for event in EventBatch::decode(body.clone())
        .expect("valid batch")
        .events
    {
        let mut bytes = event.encode_to_vec();
        bytes.extend_from_slice(&[0x38, 0x01]); // field 7, varint 1
        prost::encoding::encode_key(
            1,
            prost::encoding::WireType::LengthDelimited,
            &mut reencoded,
        );
        prost::encoding::encode_varint(bytes.len() as u64, &mut reencoded);
        reencoded.extend_from_slice(&bytes);
    }
    let reencoded = Bytes::from(reencoded);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("decode_validate_encode_500", |b| {
        b.iter(|| request_path(&body))
    });
    group.bench_function("decode_validate_encode_500_reencoded", |b| {
        b.iter(|| request_path(&reencoded))
    });
    group.finish();
}

criterion_group!(benches, decode_validate_encode);
criterion_main!(benches);

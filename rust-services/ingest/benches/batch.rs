//! Decode + validate + encode of a 500-event batch: the CPU cost of the
//! request path without the network or Kafka. Twin of Go's
//! `BenchmarkDecodeValidateEncode` (go-reference/internal/ingest).
//!
//! `cargo bench -p parallax-ingest --bench batch`

use std::collections::BTreeMap;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

use parallax_ingest::media::Media;
use parallax_ingest::proto::{Event, EventBatch, IngestResponse};
use parallax_ingest::publish::Record;
use parallax_ingest::{decode, response, validate};

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

fn decode_validate_encode(c: &mut Criterion) {
    let body = batch();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("decode_validate_encode_500", |b| {
        b.iter(|| {
            let batch = decode::decode(Media::Protobuf, body.clone()).expect("valid batch");
            let verdict = validate::validate(&batch.events);
            let records: Vec<Record<'_>> = verdict
                .accepted
                .iter()
                .map(|&i| Record::for_event(&batch.events[i]))
                .collect();
            let answer = IngestResponse {
                accepted: records.len() as u32,
                rejected: verdict.rejected,
            };
            let value_bytes: usize = records.iter().map(|r| r.value.len()).sum();
            (value_bytes, response::encode(&answer, Media::Protobuf))
        })
    });
    group.finish();
}

criterion_group!(benches, decode_validate_encode);
criterion_main!(benches);

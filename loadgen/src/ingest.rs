//! The event-ingestion workload: protobuf batches to `POST /v1/events`.
//!
//! At 500K events/s a generator that encodes every batch spends its core on
//! protobuf instead of on sending. Batches are therefore encoded once, as a
//! few templates, and each request copies one and stamps its slot number
//! into every event id in place: ids have a fixed width, so the stamped
//! bytes are still a valid `EventBatch` of the same length. Every event id
//! in a run is unique (`<run>-<slot>-<index>`), so the twins' Kafka records
//! can be joined on it, and tenants follow a Zipf law, as real tenants do
//! (a few are hot, most are quiet), which also skews Kafka partitions.

use bytes::Bytes;
use goose::prelude::GooseMethod;
use prost::Message;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};

use parallax_ingest::proto::{Event, EventBatch, IngestResponse};

use crate::open::{Request, Verdict, Workload};
use crate::Error;

/// Width of the slot number in an event id, in hex digits.
const SLOT_DIGITS: usize = 12;
/// Distinct templates (tenant mixes) cycled through.
const TEMPLATES: usize = 16;

/// How batches look.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Events per batch (the contract allows 1–10,000).
    pub batch_size: usize,
    /// Distinct tenants.
    pub tenants: u64,
    /// Zipf exponent of tenant popularity (0 is uniform).
    pub tenant_skew: f64,
    /// Bytes of opaque payload per event.
    pub payload_bytes: usize,
    /// Prefix of every event id, unique per run (e.g. a timestamp).
    pub run_id: String,
    pub seed: u64,
}

/// Batches from templates; see the module docs.
pub struct IngestWorkload {
    batch_size: usize,
    templates: Vec<Template>,
}

struct Template {
    bytes: Vec<u8>,
    /// Where each event id's slot digits start.
    slot_offsets: Vec<usize>,
}

impl IngestWorkload {
    pub fn new(config: &IngestConfig) -> Result<Self, Error> {
        if !(1..=10_000).contains(&config.batch_size) {
            return Err(Error::Config(format!(
                "batch size {} is outside the contract's 1-10000",
                config.batch_size
            )));
        }
        if config.tenants == 0 || config.tenant_skew.is_nan() || config.tenant_skew < 0.0 {
            return Err(Error::Config(
                "tenants must be at least 1 and the skew 0 or more".into(),
            ));
        }
        if config.run_id.is_empty() || !config.run_id.is_ascii() {
            return Err(Error::Config("the run id must be non-empty ASCII".into()));
        }
        let zipf = Zipf::new(config.tenants as f64, config.tenant_skew)
            .map_err(|e| Error::Config(format!("tenant distribution: {e}")))?;
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let templates = (0..TEMPLATES)
            .map(|t| template(config, t, &zipf, &mut rng))
            .collect();
        Ok(Self {
            batch_size: config.batch_size,
            templates,
        })
    }

    /// The encoded batch for slot `n`.
    pub fn batch(&self, n: u64) -> Vec<u8> {
        let template = &self.templates[(n % self.templates.len() as u64) as usize];
        let mut bytes = template.bytes.clone();
        let digits = format!("{n:0width$x}", width = SLOT_DIGITS);
        for &at in &template.slot_offsets {
            bytes[at..at + SLOT_DIGITS].copy_from_slice(digits.as_bytes());
        }
        bytes
    }
}

fn template(config: &IngestConfig, index: usize, zipf: &Zipf<f64>, rng: &mut SmallRng) -> Template {
    let placeholder = "0".repeat(SLOT_DIGITS);
    let payload = vec![b'x'; config.payload_bytes];
    let events: Vec<Event> = (0..config.batch_size)
        .map(|i| {
            let tenant = zipf.sample(rng) as u64;
            Event {
                event_id: format!("{}-{placeholder}-{i:05}", config.run_id),
                tenant_id: format!("tenant-{tenant:05}"),
                r#type: ["page_view", "click", "purchase"][(i + index) % 3].to_owned(),
                occurred_at_unix_ms: 1_700_000_000_000 + (index * 10_000 + i) as i64,
                attributes: [
                    ("region".to_owned(), ["eu", "us", "ap"][i % 3].to_owned()),
                    ("template".to_owned(), index.to_string()),
                ]
                .into_iter()
                .collect(),
                payload: payload.clone().into(),
            }
        })
        .collect();
    let bytes = EventBatch { events }.encode_to_vec();
    let prefix = format!("{}-{placeholder}-", config.run_id);
    let slot_offsets = find_all(&bytes, prefix.as_bytes())
        .map(|at| at + config.run_id.len() + 1)
        .collect::<Vec<_>>();
    assert_eq!(
        slot_offsets.len(),
        config.batch_size,
        "every event id appears once in its encoded batch"
    );
    Template {
        bytes,
        slot_offsets,
    }
}

fn find_all<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(at, _)| at)
}

impl Workload for IngestWorkload {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn request(&self, n: u64) -> Request {
        Request {
            method: GooseMethod::Post,
            path: "/v1/events".to_owned(),
            body: Some(Bytes::from(self.batch(n))),
            content_type: Some("application/x-protobuf"),
            units: self.batch_size as u64,
            headers: Vec::new(),
        }
    }

    /// 200 with every event accepted; anything else is an error (a batch
    /// the service partly rejected lost events).
    fn judge(&self, _n: u64, status: u16, body: &[u8]) -> Verdict {
        let accepted_all = || {
            if body.first() == Some(&b'{') {
                return accepted_json(body) == Some(self.batch_size);
            }
            IngestResponse::decode(body)
                .is_ok_and(|r| r.accepted as usize == self.batch_size && r.rejected.is_empty())
        };
        if status == 200 && accepted_all() {
            Verdict::Ok
        } else {
            Verdict::Error
        }
    }
}

/// `accepted` from a JSON `IngestResponse` (the answer when the client did
/// not ask for protobuf).
fn accepted_json(body: &[u8]) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let rejected = v
        .get("rejected")
        .and_then(|r| r.as_array())
        .map_or(0, Vec::len);
    (rejected == 0)
        .then(|| v.get("accepted")?.as_u64())
        .flatten()
        .map(|a| a as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn workload(batch_size: usize) -> IngestWorkload {
        IngestWorkload::new(&IngestConfig {
            batch_size,
            tenants: 100,
            tenant_skew: 1.1,
            payload_bytes: 32,
            run_id: "run42".into(),
            seed: 7,
        })
        .unwrap()
    }

    #[test]
    fn every_event_id_in_a_run_is_unique_and_stamped_with_its_slot() {
        let w = workload(50);
        let mut ids = HashSet::new();
        for n in [0u64, 1, 15, 16, 17, 0xabcdef] {
            let batch = EventBatch::decode(w.batch(n).as_slice()).unwrap();
            assert_eq!(batch.events.len(), 50);
            for (i, e) in batch.events.iter().enumerate() {
                assert_eq!(e.event_id, format!("run42-{n:012x}-{i:05}"));
                assert!(ids.insert(e.event_id.clone()));
            }
        }
    }

    #[test]
    fn tenants_are_skewed_towards_a_few_hot_ones() {
        let w = workload(1000);
        let batch = EventBatch::decode(w.batch(3).as_slice()).unwrap();
        let hottest = batch
            .events
            .iter()
            .filter(|e| e.tenant_id == "tenant-00001")
            .count();
        // Zipf(100, 1.1): the top tenant draws about 1/5 of the events.
        assert!(hottest > 100, "top tenant had {hottest} of 1000 events");
    }

    #[test]
    fn only_a_fully_accepted_batch_is_a_success() {
        let w = workload(2);
        let ok = IngestResponse {
            accepted: 2,
            rejected: vec![],
        }
        .encode_to_vec();
        assert_eq!(w.judge(0, 200, &ok), Verdict::Ok);
        assert_eq!(
            w.judge(0, 200, br#"{"accepted":2,"rejected":[]}"#),
            Verdict::Ok
        );
        assert_eq!(
            w.judge(0, 200, br#"{"accepted":1,"rejected":[{"index":1}]}"#),
            Verdict::Error
        );
        assert_eq!(
            w.judge(0, 503, br#"{"code":"kafka_unavailable"}"#),
            Verdict::Error
        );
    }

    #[test]
    fn batch_sizes_outside_the_contract_are_refused() {
        let mut config = IngestConfig {
            batch_size: 0,
            tenants: 1,
            tenant_skew: 0.0,
            payload_bytes: 0,
            run_id: "r".into(),
            seed: 1,
        };
        assert!(IngestWorkload::new(&config).is_err());
        config.batch_size = 10_001;
        assert!(IngestWorkload::new(&config).is_err());
    }
}

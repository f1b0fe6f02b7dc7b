//! `parallax run`: the side-by-side job.
//!
//! Today it covers the ingest twins: it brings up Kafka, builds and starts
//! the Go reference and the Rust twin (each publishing to a topic of its
//! own), sends the same batches to both — alternating which goes first, to
//! cancel drift — checks that the answers are byte-identical, reads both
//! topics back and joins them on `event-id`, and prints one table with
//! latency, CPU-seconds, peak RSS and every difference found. It exits
//! non-zero when anything differs.
//!
//! Requests are sent one at a time (closed loop), so the latencies describe
//! an unloaded service; the open-model load generator is `parallax load`'s
//! job.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use prost::Message;

use parallax_ingest::proto::{Event, EventBatch};

use crate::procstat::Usage;
use crate::twin::{self, Twin};
use crate::{kafka, records};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Event ingestion: protobuf batches over HTTP, published to Kafka.
    Ingest,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which twin pair to compare.
    #[arg(long, value_enum, default_value = "ingest")]
    pub scenario: Scenario,
    /// Batches sent to each twin.
    #[arg(long, default_value_t = 200)]
    pub batches: usize,
    /// Events per batch.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Use this Kafka instead of starting the local one.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// Where the twins' logs go.
    #[arg(long, default_value = "target/parallax-run")]
    pub out: std::path::PathBuf,
}

/// What one twin did during the run.
struct Side {
    latency: Histogram<u64>,
    accepted: u64,
    before: Usage,
    after: Usage,
}

pub fn run(root: &Path, args: &RunArgs) -> anyhow::Result<()> {
    let Scenario::Ingest = args.scenario;
    if args.batch_size == 0 || args.batch_size > 10_000 {
        bail!("--batch-size must be 1-10000 (the contract's batch limit)");
    }
    let brokers = match &args.kafka_brokers {
        Some(b) => b.clone(),
        None => kafka::up(root)?,
    };
    let binaries = twin::build(root, "ingest")?;
    let out = root.join(&args.out);
    std::fs::create_dir_all(&out)?;

    let run_id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let topic = |name: &str| format!("parallax-run-{run_id}-{name}");
    let flags = |name: &str| {
        vec![
            "--kafka-brokers".to_owned(),
            brokers.clone(),
            "--topic".to_owned(),
            topic(name),
        ]
    };
    let go = Twin::spawn("go", &binaries.go, &flags("go"), &out.join("ingest-go.log"))?;
    let rust = Twin::spawn(
        "rust",
        &binaries.rust,
        &flags("rust"),
        &out.join("ingest-rust.log"),
    )?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    go.wait_ready(&client, Duration::from_secs(60))?;
    rust.wait_ready(&client, Duration::from_secs(60))?;
    eprintln!(
        "go twin on {}, rust twin on {}; sending {} batches of {} events to each",
        go.addr, rust.addr, args.batches, args.batch_size
    );

    let twins = [&go, &rust];
    let mut sides: Vec<Side> = twins
        .iter()
        .map(|t| -> anyhow::Result<Side> {
            Ok(Side {
                latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
                accepted: 0,
                before: t.usage()?,
                after: Usage::default(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut response_mismatches = 0usize;
    let mut failures = 0usize;
    for b in 0..args.batches {
        let body = batch(run_id, b, args.batch_size);
        let mut answers: [Option<(u16, Bytes)>; 2] = [None, None];
        // Alternate who goes first so warm caches and drift favour neither.
        let order = if b % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let started = Instant::now();
            let response = client
                .post(twins[i].url("/v1/events"))
                .header("content-type", "application/x-protobuf")
                .body(body.clone())
                .send()
                .with_context(|| format!("POST to the {} twin", twins[i].name))?;
            let status = response.status().as_u16();
            let bytes = response.bytes()?;
            sides[i]
                .latency
                .record(started.elapsed().as_micros().max(1) as u64)?;
            if status == 200 {
                sides[i].accepted += args.batch_size as u64;
            } else {
                failures += 1;
            }
            answers[i] = Some((status, bytes));
        }
        if answers[0] != answers[1] {
            response_mismatches += 1;
        }
    }
    for (side, t) in sides.iter_mut().zip(twins) {
        side.after = t.usage()?;
    }

    eprintln!("reading both topics back from Kafka");
    let deadline = Duration::from_secs(60);
    let go_topic = records::read(&brokers, &topic("go"), sides[0].accepted as usize, deadline)?;
    let rust_topic = records::read(
        &brokers,
        &topic("rust"),
        sides[1].accepted as usize,
        deadline,
    )?;
    let kafka_diff = records::diff(&go_topic, &rust_topic);

    let go_exit = go.stop(Duration::from_secs(30))?;
    let rust_exit = rust.stop(Duration::from_secs(30))?;

    print_table(
        args,
        &sides,
        response_mismatches,
        &go_topic,
        &rust_topic,
        &kafka_diff,
    );
    let clean = failures == 0
        && response_mismatches == 0
        && kafka_diff
            == records::Diff {
                matched: kafka_diff.matched,
                ..Default::default()
            }
        && kafka_diff.matched as u64 == sides[0].accepted
        && go_exit.success()
        && rust_exit.success();
    if !clean {
        bail!(
            "the twins differ or failed (non-200 answers: {failures}, go exit: {go_exit}, rust exit: {rust_exit}); logs in {}",
            out.display()
        );
    }
    eprintln!("no differences; logs in {}", out.display());
    Ok(())
}

/// A protobuf batch with run-unique event ids, skewed tenants, three
/// attributes and a 200-byte payload.
fn batch(run_id: u128, b: usize, size: usize) -> Bytes {
    let events = (0..size)
        .map(|i| Event {
            event_id: format!("{run_id}-{b}-{i}"),
            // Skewed: half the events come from tenant 0.
            tenant_id: format!("tenant-{}", if i % 2 == 0 { 0 } else { i % 97 }),
            r#type: ["page_view", "click", "purchase"][i % 3].to_owned(),
            occurred_at_unix_ms: 1_764_000_000_000 + (b * size + i) as i64,
            attributes: BTreeMap::from([
                ("country".to_owned(), ["NL", "DE", "US"][i % 3].to_owned()),
                ("device".to_owned(), "mobile".to_owned()),
                ("plan".to_owned(), "pro".to_owned()),
            ]),
            payload: Bytes::from(vec![b'x'; 200]),
        })
        .collect();
    Bytes::from(EventBatch { events }.encode_to_vec())
}

fn print_table(
    args: &RunArgs,
    sides: &[Side],
    response_mismatches: usize,
    go_topic: &records::Topic,
    rust_topic: &records::Topic,
    diff: &records::Diff,
) {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let cpu = |s: &Side| s.after.cpu_seconds - s.before.cpu_seconds;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let ratio = |go: f64, rust: f64| {
        if go > 0.0 {
            format!("{:.2}", rust / go)
        } else {
            "-".into()
        }
    };
    let (g, r) = (&sides[0], &sides[1]);

    println!();
    println!(
        "ingest: {} batches x {} events, sequential requests (not a load test)",
        args.batches, args.batch_size
    );
    println!("{:<28} {:>12} {:>12} {:>10}", "", "go", "rust", "rust/go");
    for (label, q) in [
        ("p50 latency (ms)", 0.5),
        ("p99 latency (ms)", 0.99),
        ("max latency (ms)", 1.0),
    ] {
        let (a, b) = (ms(&g.latency, q), ms(&r.latency, q));
        println!("{label:<28} {a:>12.2} {b:>12.2} {:>10}", ratio(a, b));
    }
    let (a, b) = (cpu(g), cpu(r));
    println!(
        "{:<28} {a:>12.2} {b:>12.2} {:>10}",
        "CPU-seconds",
        ratio(a, b)
    );
    let (a, b) = (mib(g.after.peak_rss_bytes), mib(r.after.peak_rss_bytes));
    println!(
        "{:<28} {a:>12.1} {b:>12.1} {:>10}",
        "peak RSS (MiB)",
        ratio(a, b)
    );
    let (a, b) = (mib(g.after.rss_bytes), mib(r.after.rss_bytes));
    println!(
        "{:<28} {a:>12.1} {b:>12.1} {:>10}",
        "RSS at end (MiB)",
        ratio(a, b)
    );
    println!(
        "{:<28} {:>12} {:>12}",
        "events accepted", g.accepted, r.accepted
    );
    println!(
        "{:<28} {:>12} {:>12}",
        "kafka records read",
        go_topic.by_event_id.len(),
        rust_topic.by_event_id.len()
    );
    println!(
        "{:<28} {:>25}",
        "response bodies differing", response_mismatches
    );
    println!(
        "{:<28} {:>25}",
        "kafka records",
        format!(
            "{} matched, {} missing, {} extra, {} different",
            diff.matched, diff.missing_in_rust, diff.extra_in_rust, diff.different
        )
    );
}

//! Renders a synthetic run (seeded, no services needed) to look at the
//! report: `cargo run -p parallax-report --example sample_report [DIR]`
//! writes `results.json` and `report.html` to DIR (default
//! `target/report-sample`) and prints the table and the gate's verdict.

use parallax_report::gate::{self, Budgets};
use parallax_report::synthetic::{self, LogNormal};
use parallax_report::{html, table, Comparison, KafkaComparison, Mode, Role};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/report-sample".into());
    std::fs::create_dir_all(&dir)?;
    let go = LogNormal {
        median_us: 900.0,
        sigma: 0.55,
    };
    let mut ingest = synthetic::pair("ingest", go, go.scaled(0.6), 1, 60_000, 30);
    ingest.unit = "events".into();
    ingest.backends[1].peak_rss_bytes = Some(21 << 20);
    ingest.backends[1].cpu_seconds = ingest.backends[1].cpu_seconds.map(|c| c * 0.55);
    ingest.comparison = Some(Comparison {
        compared: 60_000,
        matched: 59_940,
        mismatched: 12,
        noise: 48,
        dropped: 0,
        classes: [("value".to_owned(), 9), ("missing".to_owned(), 3)].into(),
        kafka: Some(KafkaComparison {
            matched: 60_000,
            ..Default::default()
        }),
        ..Default::default()
    });
    // A cache candidate with a slower tail: p99 regresses, the median not.
    let mut cache = synthetic::pair(
        "cache",
        go.scaled(0.4),
        LogNormal {
            median_us: 300.0,
            sigma: 0.9,
        },
        2,
        60_000,
        30,
    );
    cache.backends[1].peak_rss_bytes = Some(80 << 20);
    cache
        .notes
        .push("312 slots sent late by the generator".into());
    let fanout = synthetic::scenario(
        "fanout",
        "notifications",
        vec![
            synthetic::backend("go", Role::Baseline, go.scaled(3.0), 3, 20_000, 30),
            synthetic::backend("rust", Role::Candidate, go.scaled(2.5), 4, 20_000, 30),
        ],
    );
    let mut run = synthetic::run(Mode::Shadow, vec![ingest, cache, fanout]);
    run.command = "cargo run -p parallax-report --example sample_report".into();
    let json = format!("{dir}/results.json");
    run.save(&json)?;
    std::fs::write(format!("{dir}/report.html"), html::render(&run))?;
    print!("{}", table::render(&run));
    println!();
    print!(
        "{}",
        gate::evaluate(&run, None, &Budgets::default())?.table()
    );
    eprintln!("wrote {json} and {dir}/report.html");
    Ok(())
}

//! What one comparison costs, on the inputs the bounds exist for.
//!
//! `cargo run --release -p parallax-compare --example cost`
//!
//! Each case runs `ROUNDS` times (parse both bodies, decode, diff, as the
//! proxy does per mirrored request); the table shows the median and the
//! slowest round and the differences reported.

use std::io::Write;
use std::time::{Duration, Instant};

use parallax_compare::{compare, Observed, Rules};

const ROUNDS: usize = 9;

fn json(body: impl Into<Vec<u8>>) -> Observed {
    Observed::new(200, [("content-type", "application/json")], body.into())
}

fn numbers(range: impl Iterator<Item = u64>) -> String {
    format!(
        "[{}]",
        range.map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    )
}

fn order(i: u64, status: &str) -> String {
    format!(
        r#"{{"id":{i},"customer":{{"id":"c{i}","name":"Ada","tier":"gold"}},"lines":[{{"sku":"a-{i}","qty":2,"cents":1999}},{{"sku":"b","qty":1,"cents":250}}],"status":"{status}","total":4248}}"#
    )
}

/// [`order`] as another encoder writes it: other key order, `4248.0`.
fn order_reordered(i: u64) -> String {
    format!(
        r#"{{"total":4248.0,"status":"paid","lines":[{{"cents":1999,"qty":2,"sku":"a-{i}"}},{{"cents":250,"qty":1,"sku":"b"}}],"customer":{{"tier":"gold","name":"Ada","id":"c{i}"}},"id":{i}}}"#
    )
}

fn main() {
    let n = 200_000;
    let deep = |leaf: &str| format!("{}{leaf}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&vec![b' '; 256 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    let orders = |status: &str| {
        format!(
            "[{}]",
            (0..10)
                .map(|i| order(i, status))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let orders_reordered = format!(
        "[{}]",
        (0..10).map(order_reordered).collect::<Vec<_>>().join(",")
    );
    let cases: Vec<(&str, Observed, Observed)> = vec![
        (
            "10 orders (2.4 KB), equal, keys reordered, 4248 vs 4248.0",
            json(orders("paid")),
            json(orders_reordered),
        ),
        (
            "10 orders, one status differs",
            json(orders("paid")),
            json(orders("paid").replacen("paid", "void", 1)),
        ),
        (
            "1.3 MiB array, every number differs",
            json(numbers(0..n)),
            json(numbers(1..n + 1)),
        ),
        (
            "1.3 MiB array, one element inserted at 0",
            json(numbers(0..n)),
            json(numbers(std::iter::once(u64::MAX).chain(0..n))),
        ),
        ("100,000-deep nesting", json(deep("1")), json(deep("2"))),
        (
            "gzip bomb: 256 MiB of spaces in 255 KB",
            Observed::new(
                200,
                [
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                ],
                bomb,
            ),
            json(" "),
        ),
    ];
    let rules = Rules::default();
    println!("| case | median | slowest | differences (kinds) |");
    println!("|---|---|---|---|");
    for (name, a, b) in &cases {
        let mut times = Vec::new();
        let mut found = Vec::new();
        for _ in 0..ROUNDS {
            let started = Instant::now();
            found = compare(a, b, &rules);
            times.push(started.elapsed());
        }
        times.sort();
        let mut kinds: Vec<&str> = found.iter().map(|d| d.kind.as_str()).collect();
        kinds.dedup();
        println!(
            "| {name} | {} | {} | {} ({}) |",
            show(times[ROUNDS / 2]),
            show(times[ROUNDS - 1]),
            found.len(),
            kinds.join(", ")
        );
    }
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

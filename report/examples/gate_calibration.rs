//! How often the gate's p99 interval is wrong on equal distributions, and how
//! often it catches a real shift: `cargo run --release -p parallax-report
//! --example gate_calibration`. For each sample size and tail shape, runs
//! many seeded pairs and prints the share of intervals that lie wholly above
//! 1.0 for equal pairs (false alarms at a budget of 1.0; a 95 % two-sided
//! interval should give about 2.5 %) and wholly above 1.0 when the candidate
//! is 1.2x slower (power).

use parallax_report::stats::{self, Empirical, Settings};
use parallax_report::synthetic::LogNormal;

fn main() {
    let pairs = 200;
    println!("sigma      n  false-alarm  power(1.2x)  mean CI width  ms/interval");
    for sigma in [0.5, 1.0] {
        for n in [200u64, 2_000, 20_000, 200_000] {
            let base = LogNormal {
                median_us: 1_000.0,
                sigma,
            };
            let (mut false_alarm, mut caught, mut width) = (0, 0, 0.0);
            let started = std::time::Instant::now();
            for seed in 0..pairs {
                let s = Settings {
                    seed,
                    ..Settings::default()
                };
                let a = Empirical::new(&base.histogram(seed * 3, n));
                let b = Empirical::new(&base.histogram(seed * 3 + 1, n));
                let c = Empirical::new(&base.scaled(1.2).histogram(seed * 3 + 2, n));
                let equal = stats::quantile_ratio(&a, &b, 0.99, &s).unwrap();
                let slower = stats::quantile_ratio(&a, &c, 0.99, &s).unwrap();
                false_alarm += u32::from(equal.low > 1.0);
                caught += u32::from(slower.low > 1.0);
                width += equal.high - equal.low;
            }
            let per = started.elapsed().as_secs_f64() * 1e3 / (2 * pairs) as f64;
            println!(
                "{sigma:5.1} {n:>7}  {:>10.1}%  {:>10.1}%  {:>13.3}  {per:>11.2}",
                f64::from(false_alarm) * 100.0 / pairs as f64,
                f64::from(caught) * 100.0 / pairs as f64,
                width / pairs as f64,
            );
        }
    }
}

//! The goose-driven open model against purpose-built upstreams: it keeps
//! its schedule while the server stalls, so the stall shows in the tail
//! (coordinated omission corrected), it counts wrong answers, and its
//! requests arrive spaced as their slots are, not in millisecond batches.

mod arrivals;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Instant;

use parallax_loadgen::open::{self, OpenConfig, Verdict, Workload};
use parallax_loadgen::pacing::Schedule;

/// How the test upstream misbehaves.
#[derive(Clone, Copy)]
enum Upstream {
    /// Every request waits out the first 100 ms of each second.
    StallsOncePerSecond,
    /// Answers 500 to every fifth request.
    FailsOneInFive,
}

async fn serve(kind: Upstream) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let start = Instant::now();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let count = count.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let count = count.clone();
                    async move {
                        let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let mut status = 200;
                        match kind {
                            Upstream::StallsOncePerSecond => {
                                let into_second = start.elapsed().as_millis() % 1000;
                                if into_second < 100 {
                                    let wait = 100 - into_second as u64;
                                    tokio::time::sleep(Duration::from_millis(wait)).await;
                                }
                            }
                            Upstream::FailsOneInFive if n % 5 == 4 => status = 500,
                            Upstream::FailsOneInFive => {}
                        }
                        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

struct Ping;

impl Workload for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn request(&self, n: u64) -> open::Request {
        open::Request {
            method: goose::prelude::GooseMethod::Get,
            path: format!("/ping?n={n}"),
            body: None,
            content_type: None,
            units: 1,
            headers: Vec::new(),
        }
    }
    fn judge(&self, _n: u64, status: u16, _body: &[u8]) -> Verdict {
        if status == 200 {
            Verdict::Ok
        } else {
            Verdict::Error
        }
    }
}

/// goose's stop switch is process-wide: runs in one process take turns.
static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(addr: SocketAddr, rate: f64, secs: u64) -> OpenConfig {
    let mut config = OpenConfig::new(
        format!("http://{addr}"),
        Schedule {
            rate_per_sec: rate,
            ramp: Duration::ZERO,
            duration: Duration::from_secs(secs),
            max_requests: u64::MAX,
        },
    );
    config.users = 200;
    config.late_after = Duration::from_millis(50);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_of_100_ms_once_a_second_shows_in_the_p99() {
    let _turn = ONE_RUN_AT_A_TIME.lock().await;
    let addr = serve(Upstream::StallsOncePerSecond).await;
    let report = open::run(Ping, config(addr, 250.0, 4)).await.unwrap();

    // 10 % of the arrivals land in a stall and wait up to 100 ms, so the
    // p99 sits near the stall's length, while the median is unaffected.
    let p50 = report.latency_us.value_at_quantile(0.5);
    let p99 = report.latency_us.value_at_quantile(0.99);
    assert!(p99 >= 60_000, "p99 {p99} µs hides the 100 ms stalls");
    assert!(p50 < 50_000, "p50 {p50} µs");
    assert_eq!(report.errors, 0);
    assert_eq!(
        report.not_sent, 0,
        "the schedule kept going through the stalls"
    );
    assert!(report.requests >= 950, "{} requests", report.requests);
    assert_eq!(report.windows.len(), 4, "one window per measured second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_answers_are_counted_as_errors() {
    let _turn = ONE_RUN_AT_A_TIME.lock().await;
    let addr = serve(Upstream::FailsOneInFive).await;
    let report = open::run(Ping, config(addr, 200.0, 2)).await.unwrap();

    assert_eq!(report.requests, 400);
    assert_eq!(report.errors, 80, "every fifth answer was a 500");
    assert_eq!(report.error_samples[0], "HTTP 500");
    let window_errors: u64 = report.windows.iter().map(|w| w.errors).sum();
    assert_eq!(window_errors, 80);
}

#[tokio::test]
async fn a_run_with_nothing_to_measure_is_refused() {
    let mut config = config("127.0.0.1:9".parse().unwrap(), 100.0, 1);
    config.warmup = Duration::from_secs(1);
    assert!(open::run(Ping, config).await.is_err());
}

/// At 1,500 requests/s rather than the 5,000 of the issue: tests build
/// without optimisation, and unoptimised goose and reqwest cannot send
/// 5,000 a second on a busy 2-CPU machine (the release build's figures are in
/// docs/benchmarks.md); scenarios.rs holds the pacing itself to 5,000.
/// On a multi-thread runtime the metronome is a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_arrive_spaced_as_their_slots_not_in_millisecond_batches() {
    arrive_spaced_at_1500_per_second().await;
}

/// The runtime `parallax load` runs goose on: one thread, the metronome a
/// timerfd on its reactor.
#[tokio::test(flavor = "current_thread")]
async fn requests_arrive_spaced_as_their_slots_on_a_current_thread_runtime() {
    arrive_spaced_at_1500_per_second().await;
}

async fn arrive_spaced_at_1500_per_second() {
    let _turn = ONE_RUN_AT_A_TIME.lock().await;
    let (addr, log) = arrivals::serve();
    let mut config = config(addr, 1500.0, 2);
    config.users = 64;
    let report = open::run(Ping, config).await.unwrap();
    assert_eq!(report.errors, 0);

    // Slots are 667 µs apart. A millisecond timer sends them on whole
    // milliseconds: two of every three together, the median gap near
    // zero, gaps 0 or 1,000 µs where the schedule says 667.
    let s = arrivals::spacing(&log, 1500.0);
    assert!(s.arrivals >= 3000, "{s:?}");
    let gap = s.median_gap.as_micros();
    assert!((550..=780).contains(&gap), "median gap {gap} µs: {s:?}");
    assert!(
        s.together <= 0.1,
        "{:.1} % arrived together: {s:?}",
        s.together * 100.0
    );
    assert!(s.median_jitter <= Duration::from_micros(100), "{s:?}");
}

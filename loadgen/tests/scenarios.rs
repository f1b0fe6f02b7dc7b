//! The scenarios end to end against small in-process servers on
//! `127.0.0.1:0`: a fake session cache, a failing one, one that closes every
//! connection; and the pacing itself against a server that notes when each
//! request arrived.

mod arrivals;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parallax_loadgen::cache::{self, CacheConfig};
use parallax_loadgen::http::Connection;
use parallax_loadgen::pacing::{self, Plan, Schedule};

/// How the fake server behaves.
#[derive(Clone, Copy)]
enum Fake {
    /// A session cache: PUT stores (204), GET answers 200 or 404.
    Cache,
    /// Answers every request 503.
    Unavailable,
    /// Answers 200 and closes the connection each time.
    CloseEveryTime,
}

async fn serve(fake: Fake) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The fake's store: a std mutex, never held across an await.
    let store: Arc<Mutex<HashMap<String, Bytes>>> = Arc::default();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let store = store.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let store = store.clone();
                    async move { Ok::<_, Infallible>(answer(fake, &store, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(!matches!(fake, Fake::CloseEveryTime))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn answer(
    fake: Fake,
    store: &Mutex<HashMap<String, Bytes>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let status = |s: StatusCode| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = s;
        r
    };
    match fake {
        Fake::Unavailable => status(StatusCode::SERVICE_UNAVAILABLE),
        Fake::CloseEveryTime => status(StatusCode::OK),
        Fake::Cache => {
            let id = req
                .uri()
                .path()
                .trim_start_matches("/v1/sessions/")
                .to_owned();
            if req.method() == Method::PUT {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                store.lock().unwrap().insert(id, body);
                status(StatusCode::NO_CONTENT)
            } else {
                match store.lock().unwrap().get(&id) {
                    Some(value) => Response::new(Full::new(value.clone())),
                    None => status(StatusCode::NOT_FOUND),
                }
            }
        }
    }
}

fn short_run() -> CacheConfig {
    CacheConfig {
        rate_per_sec: 500.0,
        duration_secs: 0.4,
        warmup_secs: 0.1,
        keys: 50,
        connections: 8,
        // Debug builds on a shared test machine: timing is not the point.
        late_after_ms: 1000.0,
        ..CacheConfig::default()
    }
}

#[tokio::test]
async fn after_the_preload_every_read_hits_and_nothing_errs() {
    let addr = serve(Fake::Cache).await;
    let config = short_run();
    let preloaded = cache::preload(addr, &config).await.unwrap();
    let result = cache::run(addr, &config, preloaded).await.unwrap();

    assert_eq!(result.preload_puts, 50);
    assert!(result.errors.is_empty(), "{:?}", result.errors);
    assert_eq!(result.misses, 0);
    assert!(result.hits > 0 && result.stored > 0);
    assert_eq!(result.hits + result.stored, result.load.requests);
    // 0.4 s at 500/s.
    assert!((190..=210).contains(&result.load.requests));
}

#[tokio::test]
async fn reads_of_keys_never_written_are_misses_not_errors() {
    let addr = serve(Fake::Cache).await;
    let config = CacheConfig {
        read_ratio: 1.0,
        ..short_run()
    };
    // No preload: the cache is empty.
    let result = cache::run(addr, &config, cache::Preloaded::default())
        .await
        .unwrap();

    assert!(result.errors.is_empty(), "{:?}", result.errors);
    assert_eq!(result.hits, 0);
    assert_eq!(result.misses, result.load.requests);
}

#[tokio::test]
async fn a_failing_server_shows_up_as_http_errors_by_method_and_status() {
    let addr = serve(Fake::Unavailable).await;
    let config = short_run();
    let preloaded = cache::preload(addr, &config).await.unwrap();
    let result = cache::run(addr, &config, preloaded).await.unwrap();

    assert_eq!(result.preload_puts, 0);
    let gets = result.errors.status.get("GET 503").copied().unwrap_or(0);
    let puts = result.errors.status.get("PUT 503").copied().unwrap_or(0);
    // Preload, warm-up and measured requests all failed.
    let sent = 50 + result.load.warmup_requests + result.load.requests;
    assert_eq!(gets + puts, sent);
    assert_eq!(result.errors.transport_total(), 0);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced_transparently() {
    let addr = serve(Fake::CloseEveryTime).await;
    let mut connection = Connection::new(addr, Duration::from_secs(5));
    for _ in 0..5 {
        let answer = connection
            .send(Method::GET, "/healthz", Bytes::new())
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
    }
}

/// GETs `/?n=SLOT` on its own keep-alive connection.
struct Get(Connection);

impl pacing::Sender for Get {
    type Outcome = bool;

    async fn send(&mut self, n: u64) -> bool {
        let path = format!("/?n={n}");
        let answer = self.0.send(Method::GET, &path, Bytes::new()).await;
        matches!(answer, Ok(a) if a.status == StatusCode::OK)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_requests_arrive_spaced_as_their_slots_at_5000_per_second() {
    let (addr, log) = arrivals::serve();
    let plan = Plan {
        schedule: Schedule {
            rate_per_sec: 5000.0,
            ramp: Duration::ZERO,
            duration: Duration::from_secs(1),
            max_requests: u64::MAX,
        },
        warmup: Duration::ZERO,
        late_after: Duration::from_millis(10),
        early_by: pacing::EARLY_BY,
        overrun: Duration::from_secs(1),
    };
    let senders = (0..32)
        .map(|_| Get(Connection::new(addr, Duration::from_secs(5))))
        .collect();
    let (report, _) = pacing::run(plan, senders).await;
    assert_eq!(
        report.outcomes.get(&true),
        Some(&5000),
        "{:?}",
        report.outcomes
    );

    // 200 µs apart, not five at once each millisecond (then four of five
    // gaps are under 20 µs, each 0 or 800 µs from the schedule's 200).
    let s = arrivals::spacing(&log, 5000.0);
    assert_eq!(s.arrivals, 5000);
    let gap = s.median_gap.as_micros();
    assert!((150..=250).contains(&gap), "median gap {gap} µs: {s:?}");
    assert!(
        s.together <= 0.1,
        "{:.1} % arrived together: {s:?}",
        s.together * 100.0
    );
    assert!(s.median_jitter <= Duration::from_micros(100), "{s:?}");
}

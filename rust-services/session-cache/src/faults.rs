//! Fault injection for the harness's own tests: a deliberately regressed
//! build, made from the normal one by a hidden flag, for `parallax gate` to
//! catch. Both faults are off (0) everywhere else, and both flags are
//! hidden from `--help`; the Go twin has the same `--debug-extra-cpu-us`.
//!
//! - `--debug-delay-us N`: every answer waits N µs first (tokio's timer:
//!   1 ms resolution). Costs no CPU; it makes a candidate slow to answer.
//! - `--debug-extra-cpu-us N`: every request first burns N µs of the CPU
//!   time of the thread serving it ([`burn`]).
//!
//! # Why CPU time, not a sleep
//! The gate's CPU budget (`--max-cpu-ratio`) compares CPU-seconds per
//! request from each backend's cgroup. A candidate "30 % slower per
//! request" must cost 30 % more of *that*. A sleep costs no CPU, and a
//! fixed wall-clock delay is a smaller share of what a loaded machine
//! measures (docs/benchmarks.md, issue 18: a 0.63 ms sleep was 5–34 % of the
//! median at load 10–14). Spinning until the thread's own CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`) has advanced N µs adds N µs of CPU per
//! request whatever the load: the time the thread is descheduled does not
//! count, as it would not for real work. The spin blocks the tokio worker
//! for those N µs, as real work in a handler would.
//!
//! # Why a hash chain
//! The loop is arithmetic the optimiser cannot remove: each round of an
//! FNV-1a-style chain depends on the one before, and the result goes
//! through `black_box`. The thread's clock is read every
//! [`ROUNDS_PER_CHECK`] rounds (well under a microsecond of work); the
//! reading is a system call, and counts towards N like the rest.

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::Router;

use crate::Config;

/// Rounds of the hash chain between two readings of the thread's clock.
pub const ROUNDS_PER_CHECK: u64 = 256;

/// `router` with the faults `config` asks for (none by default).
pub fn apply(mut router: Router, config: &Config) -> Router {
    if config.debug_extra_cpu_us > 0 {
        let cpu = Duration::from_micros(config.debug_extra_cpu_us);
        tracing::warn!(?cpu, "fault injection: every request burns this much CPU");
        router = router.layer(middleware::from_fn(
            move |request: Request, next: Next| async move {
                burn(cpu);
                next.run(request).await
            },
        ));
    }
    if config.debug_delay_us > 0 {
        let delay = Duration::from_micros(config.debug_delay_us);
        tracing::warn!(?delay, "fault injection: every answer is delayed");
        router = router.layer(middleware::from_fn(
            move |request: Request, next: Next| async move {
                tokio::time::sleep(delay).await;
                next.run(request).await
            },
        ));
    }
    router
}

/// Spins until the calling thread has used `cpu` more CPU time, and
/// returns the hash chain's value (so that the work has a result).
pub fn burn(cpu: Duration) -> u64 {
    let start = thread_cpu();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    loop {
        for i in 0..ROUNDS_PER_CHECK {
            hash = (hash ^ i).wrapping_mul(0x0100_0000_01b3);
        }
        hash = std::hint::black_box(hash);
        if thread_cpu().saturating_sub(start) >= cpu {
            return hash;
        }
    }
}

/// The calling thread's CPU time (user + system) so far.
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[test]
    fn burn_uses_the_asked_cpu_time_and_not_much_more() {
        let before = thread_cpu();
        burn(Duration::from_millis(20));
        let used = thread_cpu() - before;
        assert!(used >= Duration::from_millis(20), "used {used:?}");
        // One clock reading and 256 rounds past the mark, plus scheduling
        // noise charged to this thread: far below another 20 ms.
        assert!(used < Duration::from_millis(40), "used {used:?}");
    }

    /// The request's CPU as the serving thread sees it (a current-thread
    /// runtime: the handler runs on this thread).
    async fn cpu_of_one_request(config: &Config) -> Duration {
        let router = apply(Router::new().route("/", get(|| async { "ok" })), config);
        let before = thread_cpu();
        let response = router
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(response.status().is_success());
        thread_cpu() - before
    }

    #[tokio::test(flavor = "current_thread")]
    async fn extra_cpu_flag_costs_each_request_that_much_cpu() {
        let plain = cpu_of_one_request(&Config::default()).await;
        let slowed = cpu_of_one_request(&Config {
            debug_extra_cpu_us: 15_000,
            ..Config::default()
        })
        .await;
        assert!(plain < Duration::from_millis(5), "plain request {plain:?}");
        assert!(slowed >= Duration::from_millis(15), "slowed {slowed:?}");
        assert!(slowed < Duration::from_millis(35), "slowed {slowed:?}");
    }
}

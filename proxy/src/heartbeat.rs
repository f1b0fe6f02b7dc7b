//! A timer that is always pending, so that arming a timer on the request
//! path does not cost a system call.
//!
//! # Why
//! tokio's timer driver wakes the thread parked on it (a `write` to its
//! `eventfd`) whenever a timer is armed that expires before the park's
//! deadline — and a park with no timer at all has no deadline, so *any*
//! new timer wakes it. hyper arms one per keep-alive request: the
//! header-read timeout (the slowloris guard) starts when the connection
//! goes back to reading, right after the answer was written. On one
//! keep-alive connection the proxy parks with no timer while it waits for
//! the upstream, so every request paid one `write(eventfd)` and an extra
//! `epoll_wait` event: 1 of the proxy's 7 system calls per pass-through
//! request, the one nginx (which computes its `epoll_wait` timeout from
//! its own timer tree) does not make (`strace`, docs/benchmarks.md).
//!
//! A timer that expires every [`PERIOD`] keeps the driver's deadline at
//! most that far away, so a timer armed for later than that — the 30 s
//! header-read timeout, the default 1 s shadow timeout — no longer wakes
//! it. The cost is one wake-up per period while idle.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// How often the heartbeat fires: below the shortest timer the request path
/// arms in normal operation (the 1 s default `shadow_timeout_ms`).
pub const PERIOD: Duration = Duration::from_millis(500);

/// The heartbeat: poll [`Interval::tick`] wherever the owner already waits
/// (the accept loop's `select!`), so it lives exactly as long as its owner.
pub fn heartbeat() -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + PERIOD, PERIOD);
    // A late tick (a busy runtime) is not made up for: only the next
    // deadline matters.
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Write system calls made by the calling thread so far (`syscw` in
    /// `/proc/thread-self/io`).
    fn writes_by_this_thread() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("syscw: "))
            .unwrap()
            .parse()
            .unwrap()
    }

    /// `rounds` times: park the runtime on I/O until another thread writes a
    /// byte, then arm a 30 s timer (as hyper's header-read timeout is armed
    /// after each answer) and drop it. Returns this thread's write calls.
    fn writes_arming_timers(with_heartbeat: bool, rounds: u64) -> u64 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        // The other side writes only after we ask (a byte back), so the
        // runtime is parked when each byte arrives.
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            while asked.recv().is_ok() {
                std::thread::sleep(Duration::from_millis(2));
                theirs.write_all(b"x").unwrap();
            }
            let mut rest = Vec::new();
            let _ = theirs.read_to_end(&mut rest);
        });
        let writes = runtime.block_on(async move {
            let ours = tokio::net::UnixStream::from_std(ours).unwrap();
            let mut beat = heartbeat();
            let work = async {
                let before = writes_by_this_thread();
                for _ in 0..rounds {
                    ask.send(()).unwrap();
                    let mut byte = [0u8; 1];
                    loop {
                        ours.readable().await.unwrap();
                        if ours.try_read(&mut byte).is_ok() {
                            break;
                        }
                    }
                    let sleep = tokio::time::sleep(Duration::from_secs(30));
                    let mut sleep = std::pin::pin!(sleep);
                    // Polled once: that registers it with the driver.
                    assert!(futures::poll!(sleep.as_mut()).is_pending());
                }
                writes_by_this_thread() - before
            };
            if with_heartbeat {
                let mut work = std::pin::pin!(work);
                loop {
                    tokio::select! {
                        writes = &mut work => break writes,
                        _ = beat.tick() => {}
                    }
                }
            } else {
                work.await
            }
        });
        writer.join().unwrap();
        writes
    }

    #[test]
    fn without_a_heartbeat_every_timer_armed_after_a_park_wakes_the_driver() {
        // The cost the heartbeat removes: at least one write per round.
        let writes = writes_arming_timers(false, 50);
        assert!(writes >= 50, "{writes} writes in 50 rounds");
    }

    #[test]
    fn with_a_heartbeat_arming_a_later_timer_makes_no_system_call() {
        let writes = writes_arming_timers(true, 50);
        assert!(writes <= 5, "{writes} writes in 50 rounds");
    }
}

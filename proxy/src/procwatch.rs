//! CPU and resident memory of the upstream processes, read from
//! `/proc/<pid>` at scrape time: `parallax_backend_cpu_seconds_total` and
//! `parallax_backend_resident_memory_bytes`.
//!
//! The pid comes from the configuration, or is found from the upstream's
//! port: the inode of the listening socket in `/proc/net/tcp{,6}`, then the
//! process holding `socket:[inode]` among `/proc/*/fd`. Discovery only runs
//! for loopback upstreams (`127.0.0.0/8`, `::1`, `localhost`), at most once
//! per [`RETRY`] while the process is unknown, and again when it exits (a
//! restarted upstream is found again). A CPU counter never goes down: after
//! a restart it grows by the new process's CPU time.
//!
//! The reading and the discovery are `parallax_process::procstat`'s, the
//! one `/proc` reader the harness measures backends with, so the proxy's
//! figures and a harness run's are the same numbers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parallax_process::procstat::{self, pid_listening_on};

use parking_lot::Mutex;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{CounterVec, GaugeVec, Opts};

use crate::config::UpstreamAddr;
use crate::metrics::Backend;

/// How long an unknown pid stays unknown before discovery runs again.
pub const RETRY: Duration = Duration::from_secs(10);

/// One upstream process to watch.
#[derive(Debug, Clone)]
pub struct Target {
    pub service: String,
    pub backend: Backend,
    /// Configured pid, if any.
    pub pid: Option<u32>,
    /// Port to discover the pid from (loopback upstreams only).
    pub port: Option<u16>,
}

impl Target {
    pub fn new(service: &str, backend: Backend, addr: &UpstreamAddr, pid: Option<u32>) -> Self {
        let host = addr
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let local = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        Self {
            service: service.to_owned(),
            backend,
            pid,
            port: if local {
                addr.authority.port_u16()
            } else {
                None
            },
        }
    }
}

#[derive(Debug, Default)]
struct Known {
    pid: Option<u32>,
    /// CPU seconds of `pid` already added to the counter.
    counted_cpu: f64,
    looked_up: Option<Instant>,
}

/// A collector sampling every target when scraped.
pub struct BackendUsage {
    targets: Vec<Target>,
    // A blocking mutex: held only while reading /proc for one scrape; no
    // `.await` under it, and scrapes are rare.
    known: Mutex<HashMap<usize, Known>>,
    cpu: CounterVec,
    rss: GaugeVec,
}

impl BackendUsage {
    pub fn new(targets: Vec<Target>) -> Self {
        let cpu = CounterVec::new(
            Opts::new(
                "parallax_backend_cpu_seconds_total",
                "User and system CPU time of the upstream process, from /proc.",
            ),
            &["service", "backend"],
        )
        .expect("valid metric");
        let rss = GaugeVec::new(
            Opts::new(
                "parallax_backend_resident_memory_bytes",
                "Resident set size of the upstream process, from /proc.",
            ),
            &["service", "backend"],
        )
        .expect("valid metric");
        Self {
            targets,
            known: Mutex::new(HashMap::new()),
            cpu,
            rss,
        }
    }

    fn sample(&self) {
        let mut known = self.known.lock();
        for (i, target) in self.targets.iter().enumerate() {
            let k = known.entry(i).or_default();
            let read = |pid| procstat::read(pid).ok();
            let usage = k.pid.and_then(read);
            let usage = match usage {
                Some(u) => Some(u),
                None => {
                    // Unknown or gone: (re)discover, rate-limited.
                    let due = k.looked_up.is_none_or(|t| t.elapsed() >= RETRY);
                    let previous = k.pid;
                    if due {
                        k.looked_up = Some(Instant::now());
                        k.pid = target
                            .pid
                            .or_else(|| target.port.and_then(pid_listening_on));
                    }
                    if k.pid != previous {
                        k.counted_cpu = 0.0;
                    }
                    k.pid.and_then(read)
                }
            };
            let labels = [target.service.as_str(), target.backend.as_str()];
            match usage {
                Some(u) => {
                    let delta = u.cpu_seconds - k.counted_cpu;
                    if delta > 0.0 {
                        self.cpu.with_label_values(&labels).inc_by(delta);
                        k.counted_cpu = u.cpu_seconds;
                    } else if delta < 0.0 {
                        // A new process under a reused pid.
                        self.cpu.with_label_values(&labels).inc_by(u.cpu_seconds);
                        k.counted_cpu = u.cpu_seconds;
                    }
                    self.rss.with_label_values(&labels).set(u.rss_bytes as f64);
                }
                None => {
                    // No reading: no RSS series rather than a stale one.
                    let _ = self.rss.remove_label_values(&labels);
                }
            }
        }
    }
}

impl Collector for BackendUsage {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.cpu.desc();
        d.extend(self.rss.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.sample();
        let mut families = self.cpu.collect();
        families.extend(self.rss.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_usage_of_a_configured_pid() {
        let addr = UpstreamAddr {
            scheme: http::uri::Scheme::HTTP,
            authority: "10.9.9.9:1".parse().unwrap(),
        };
        let usage = BackendUsage::new(vec![Target::new(
            "svc",
            Backend::Primary,
            &addr,
            Some(std::process::id()),
        )]);
        let families = usage.collect();
        let names: Vec<_> = families.iter().map(|f| f.name().to_owned()).collect();
        assert!(names.contains(&"parallax_backend_resident_memory_bytes".to_owned()));
        assert!(names.contains(&"parallax_backend_cpu_seconds_total".to_owned()));
    }

    #[test]
    fn finds_a_loopback_upstream_by_its_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = UpstreamAddr {
            scheme: http::uri::Scheme::HTTP,
            authority: listener.local_addr().unwrap().to_string().parse().unwrap(),
        };
        let usage = BackendUsage::new(vec![Target::new("svc", Backend::Shadow, &addr, None)]);
        usage.sample();
        assert_eq!(
            usage.known.lock()[&0].pid,
            Some(std::process::id()),
            "the process listening on the upstream's port"
        );
        let rss = usage.rss.with_label_values(&["svc", "shadow"]).get();
        assert!(rss > 0.0, "{rss}");
    }
}

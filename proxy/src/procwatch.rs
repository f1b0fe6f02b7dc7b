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

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// CPU time and RSS of `pid`, or `None` when it is gone.
pub fn read(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `fields[0]` is field 3.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let cpu_seconds = (ticks(11)? + ticks(12)?) as f64 / clock_ticks_per_second();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    Some(Usage {
        cpu_seconds,
        rss_bytes: rss_kib * 1024,
    })
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The process with a socket listening on TCP `port`, if one can be seen.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Inodes of sockets in LISTEN state on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols.get(1)?.rsplit_once(':')?.1;
            let listening = *cols.get(3)? == "0A";
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| cols.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let u = read(std::process::id()).unwrap();
        assert!(u.rss_bytes > 0);
    }

    #[test]
    fn a_gone_process_reads_as_none() {
        assert!(read(u32::MAX - 1).is_none());
    }

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(pid_listening_on(port), None);
    }

    #[test]
    fn parses_listening_sockets_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 20 4 30 10 -1\n";
        assert_eq!(listening_inodes(table, 8080), vec![4242]);
        assert!(listening_inodes(table, 8081).is_empty());
    }

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
}

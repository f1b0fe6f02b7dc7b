//! CPU-seconds and resident memory of a process, or of a whole process
//! group, read from `/proc`: the same numbers the services export as
//! `process_cpu_seconds_total` and `process_resident_memory_bytes`, but
//! measured from outside so both backends are measured the same way. Also
//! the machine's busy time since boot (how much other work competed with a
//! measurement) and which process listens on a TCP port (the proxy finds an
//! upstream's pid that way when it is not configured).

use std::process::Command;
use std::sync::OnceLock;

/// Why a reading could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// `/proc/<pid>` is not there (or vanished while being read).
    #[error("process {pid} is gone")]
    Gone { pid: u32 },
    /// No live process has this process group.
    #[error("process group {group} has no live process")]
    EmptyGroup { group: u32 },
    #[error("cannot read {path}: {source}")]
    Read {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU time so far.
    pub cpu_seconds: f64,
    /// Resident set size now.
    pub rss_bytes: u64,
    /// The highest resident set size so far (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// One process's reading; an error when it is gone.
pub fn read(pid: u32) -> Result<Usage, ProcError> {
    let gone = |_| ProcError::Gone { pid };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(gone)?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5); `fields[0]` is field 3.
    let cpu_seconds = (ticks(11) + ticks(12)) as f64 / clock_ticks_per_second();

    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(gone)?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(Usage {
        cpu_seconds,
        rss_bytes: kib("VmRSS:"),
        peak_rss_bytes: kib("VmHWM:"),
    })
}

/// The state letter and process group of `pid` from `/proc/<pid>/stat`.
fn state_and_group(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, group))
}

/// True when `pid` has exited (gone, or a zombie not yet reaped): what a
/// watcher thread can ask without owning the `Child`.
pub fn exited(pid: u32) -> bool {
    !matches!(state_and_group(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// Every live process whose process group is `group`.
pub fn group_members(group: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| matches!(state_and_group(*pid), Some((s, g)) if g == group && s != 'Z'))
        .collect()
}

/// The sum over a process group (a backend started by a shell or `go run`
/// is several processes): CPU and RSS added up; the peak is the largest
/// single `VmHWM` or the summed RSS now, whichever is larger (a sampler
/// keeps the maximum over its readings).
pub fn read_group(group: u32) -> Result<Usage, ProcError> {
    let members = group_members(group);
    if members.is_empty() {
        return Err(ProcError::EmptyGroup { group });
    }
    let mut total = Usage::default();
    let mut peak = 0;
    for pid in members {
        if let Ok(u) = read(pid) {
            total.cpu_seconds += u.cpu_seconds;
            total.rss_bytes += u.rss_bytes;
            peak = peak.max(u.peak_rss_bytes);
        }
    }
    total.peak_rss_bytes = peak.max(total.rss_bytes);
    Ok(total)
}

/// CPU time the whole machine has spent busy (all CPUs, every process and
/// the kernel) since boot, from the first line of `/proc/stat`. Minus what
/// the processes under test used, it says how much other work competed.
pub fn machine_busy_seconds() -> Result<f64, ProcError> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|source| ProcError::Read {
        path: "/proc/stat",
        source,
    })?;
    let line = stat.lines().next().unwrap_or_default();
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user).
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Ok(busy as f64 / clock_ticks_per_second())
}

/// Waits until the machine, this process aside, is nearly idle (under 0.2
/// of a core busy elsewhere) for a second, or `patience` has passed; then
/// says so on stderr and goes on. Benches call it before each measured
/// phase so that another process's burst lands between phases, not in one.
pub fn wait_for_quiet(patience: std::time::Duration) -> Result<(), ProcError> {
    const QUIET_CORES: f64 = 0.2;
    let started = std::time::Instant::now();
    let mut busiest: f64 = 0.0;
    while started.elapsed() < patience {
        let (machine, me) = (
            machine_busy_seconds()?,
            read(std::process::id())?.cpu_seconds,
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
        let others =
            (machine_busy_seconds()? - machine) - (read(std::process::id())?.cpu_seconds - me);
        if others < QUIET_CORES {
            return Ok(());
        }
        if busiest == 0.0 {
            eprintln!("  waiting for the machine to go quiet ({others:.2} cores busy elsewhere)");
        }
        busiest = busiest.max(others);
    }
    if !patience.is_zero() {
        eprintln!(
            "  warning: the machine stayed busy ({busiest:.2} cores elsewhere) for {patience:?}; running anyway"
        );
    }
    Ok(())
}

/// `/proc/loadavg` as it reads (`"0.52 0.61 0.70 2/312 4242"`), for the
/// notes of a measurement; empty where it cannot be read.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The CPU's model name from `/proc/cpuinfo`; empty where there is none.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default()
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

/// The process with a socket listening on TCP `port`, if one can be seen:
/// the inode of the listening socket in `/proc/net/tcp{,6}`, then the
/// process holding `socket:[inode]` among `/proc/*/fd` (only processes
/// whose descriptors this user may read).
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
        let usage = read(std::process::id()).unwrap();
        assert!(usage.rss_bytes > 0);
        assert!(usage.peak_rss_bytes >= usage.rss_bytes);
    }

    #[test]
    fn this_process_is_alive_and_in_its_group() {
        let me = std::process::id();
        assert!(!exited(me));
        let (_, group) = state_and_group(me).unwrap();
        assert!(group_members(group).contains(&me));
        assert!(read_group(group).unwrap().rss_bytes > 0);
        assert!(exited(u32::MAX - 1));
    }

    #[test]
    fn a_gone_process_is_named() {
        let e = read(u32::MAX - 1).unwrap_err().to_string();
        assert_eq!(e, format!("process {} is gone", u32::MAX - 1));
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
    fn the_machine_has_been_busy_since_boot() {
        assert!(machine_busy_seconds().unwrap() > 0.0);
    }
}

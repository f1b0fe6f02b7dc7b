//! Per-backend accounting by cgroup: each backend's whole process tree in
//! a cgroup of its own, its CPU time and peak memory read from the
//! kernel's counters.
//!
//! Sampling `/proc` every 200 ms misses a child that lives between two
//! samples, and its peak (`VmHWM` per process, summed RSS per sample) is
//! the largest value it happened to see; the kernel counts every
//! nanosecond and every page charged to the group, children included,
//! whenever they ran. So where cgroups are writable (root, or a delegated
//! v2 subtree) each backend gets one:
//!
//! - **v2** (when `/sys/fs/cgroup/cgroup.controllers` exists):
//!   `cpu.stat` `usage_usec`, `memory.peak` (else the largest
//!   `memory.current` sampled);
//! - **v1**: `cpuacct/…/cpuacct.usage` (ns) and
//!   `memory/…/memory.max_usage_in_bytes`.
//!
//! Memory is *not* the cgroup's charge: the kernel charges page cache to
//! the group that first read a file, so of two copies of one binary the
//! first started is charged its executable's pages and the second is not
//! (an A/A pair's `memory.max_usage_in_bytes` differed 2.5×). The peak is
//! the resident set of the group's processes instead ([`Cgroup::resident`]:
//! `VmHWM` and `VmRSS` of each member, summed), which counts a shared
//! file page in every process that maps it, alike for both backends.
//! Where cgroups are not writable the runner falls back to `/proc`
//! sampling of the process group and says so.
//!
//! A backend joins its cgroup before it runs any code of its own: the
//! runner starts it through `sh -c 'echo $$ > …/cgroup.procs; exec …'`,
//! so every process it forks is born inside. The groups are named
//! `parallax-<harness pid>-<label>` and removed when dropped (on success,
//! error or Ctrl-C, as the runner unwinds); groups left by a harness that
//! was killed are removed by [`sweep_stale`] on the next run.
//!
//! Pinning each backend to its own cores (`taskset`) is offered when the
//! machine has at least 4 CPUs ([`core_sets`]); with fewer, the backends
//! and the load generator share every core, and the results say so.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the cgroup hierarchies are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// Why no cgroup could be made.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no writable cgroup hierarchy: {0}")]
    Unavailable(String),
    #[error("cannot create cgroup {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Which cgroup version a group lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The hierarchies this machine offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The unified hierarchy at `root`.
    V2 { root: PathBuf },
    /// v1 controllers, each its own mount.
    V1 { cpuacct: PathBuf, memory: PathBuf },
}

impl Layout {
    /// The layout under `root` (normally [`ROOT`]), or why there is none.
    pub fn detect(root: &Path) -> Result<Self, CgroupError> {
        if root.join("cgroup.controllers").exists() {
            let controllers =
                std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
            if !controllers.split_whitespace().any(|c| c == "memory") {
                return Err(CgroupError::Unavailable(format!(
                    "cgroup v2 at {} does not delegate the memory controller to its children (cgroup.subtree_control: {:?})",
                    root.display(),
                    controllers.trim()
                )));
            }
            return Ok(Layout::V2 {
                root: root.to_owned(),
            });
        }
        let find = |names: &[&str]| names.iter().map(|n| root.join(n)).find(|p| p.is_dir());
        match (
            find(&["cpuacct", "cpu,cpuacct"]),
            find(&["memory"]),
        ) {
            (Some(cpuacct), Some(memory)) if cpuacct.join("cpuacct.usage").exists() => {
                Ok(Layout::V1 { cpuacct, memory })
            }
            _ => Err(CgroupError::Unavailable(format!(
                "neither cgroup v2 ({}/cgroup.controllers) nor the v1 cpuacct and memory controllers under {}",
                root.display(),
                root.display()
            ))),
        }
    }

    fn dirs(&self) -> Vec<PathBuf> {
        match self {
            Layout::V2 { root } => vec![root.clone()],
            Layout::V1 { cpuacct, memory } => vec![cpuacct.clone(), memory.clone()],
        }
    }
}

/// One backend's cgroup (one directory per v1 controller, one in v2);
/// removed when dropped.
#[derive(Debug)]
pub struct Cgroup {
    version: Version,
    /// v2: `[group]`; v1: `[cpuacct group, memory group]`.
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    /// Makes `parallax-<this pid>-<label>` in every hierarchy of `layout`.
    pub fn create(layout: &Layout, label: &str) -> Result<Self, CgroupError> {
        let name = format!("parallax-{}-{}", std::process::id(), sanitize(label));
        let mut group = Cgroup {
            version: match layout {
                Layout::V2 { .. } => Version::V2,
                Layout::V1 { .. } => Version::V1,
            },
            dirs: Vec::new(),
        };
        for parent in layout.dirs() {
            let dir = parent.join(&name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    // `group` drops and removes what was made so far.
                    return Err(CgroupError::Create { path: dir, source });
                }
            }
            group.dirs.push(dir);
        }
        Ok(group)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// A shell prefix that moves the shell into the group: the command
    /// `exec`ed after it (and everything it forks) runs inside.
    pub fn join_script(&self) -> String {
        self.procs_files()
            .iter()
            .map(|f| format!("echo $$ > '{}' && ", f.display()))
            .collect()
    }

    /// Processes in the group now.
    pub fn members(&self) -> Vec<u32> {
        let Some(dir) = self.dirs.first() else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn read(&self, i: usize, file: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.dirs[i.min(self.dirs.len() - 1)].join(file))
    }

    /// CPU time (user + system) of every process that ran in the group.
    pub fn cpu_seconds(&self) -> std::io::Result<f64> {
        match self.version {
            Version::V1 => Ok(parse_u64(&self.read(0, "cpuacct.usage")?)? as f64 / 1e9),
            Version::V2 => {
                let stat = self.read(0, "cpu.stat")?;
                let usec = stat
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .ok_or_else(|| invalid("cpu.stat has no usage_usec"))?;
                Ok(parse_u64(usec)? as f64 / 1e6)
            }
        }
    }

    /// Memory charged to the group now.
    pub fn memory_bytes(&self) -> std::io::Result<u64> {
        match self.version {
            Version::V1 => parse_u64(&self.read(1, "memory.usage_in_bytes")?),
            Version::V2 => parse_u64(&self.read(0, "memory.current")?),
        }
    }

    /// The most memory charged to the group at once since it was made
    /// (v2 kernels before 5.19 have no `memory.peak`: then `None`, and the
    /// caller keeps the largest [`Cgroup::memory_bytes`] it sampled).
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        let text = match self.version {
            Version::V1 => self.read(1, "memory.max_usage_in_bytes"),
            Version::V2 => self.read(0, "memory.peak"),
        };
        text.ok().and_then(|t| parse_u64(&t).ok())
    }

    /// The resident memory of the group's processes: `(now, peak)`, the
    /// sums of their `VmRSS` and `VmHWM` (`None` when none could be read).
    pub fn resident(&self) -> Option<(u64, u64)> {
        let mut seen = false;
        let (mut now, mut peak) = (0, 0);
        for pid in self.members() {
            if let Ok(u) = crate::procstat::read(pid) {
                seen = true;
                now += u.rss_bytes;
                peak += u.peak_rss_bytes.max(u.rss_bytes);
            }
        }
        seen.then_some((now, peak))
    }

    /// Where the figures come from, for the results.
    pub fn describe(&self) -> String {
        match self.version {
            Version::V1 => format!(
                "cgroup v1 {} (CPU: cpuacct.usage; memory: peak RSS, VmHWM of its processes, not the cgroup's charge, which includes page cache)",
                self.dirs[0].file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            ),
            Version::V2 => format!(
                "cgroup v2 {} (CPU: cpu.stat usage_usec; memory: peak RSS, VmHWM of its processes, not memory.peak, which includes page cache)",
                self.dirs[0].display()
            ),
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // A process still inside (a backend that ignored SIGKILL's reaping
        // so far) keeps the group busy: move it to the parent first.
        for dir in &self.dirs {
            remove(dir);
        }
    }
}

fn remove(dir: &Path) {
    if std::fs::remove_dir(dir).is_ok() {
        return;
    }
    if let (Some(parent), Ok(procs)) = (
        dir.parent(),
        std::fs::read_to_string(dir.join("cgroup.procs")),
    ) {
        for pid in procs.lines() {
            let _ = std::fs::write(parent.join("cgroup.procs"), pid);
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// What [`sweep_stale`] cleaned up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Group directories removed (one per hierarchy).
    pub groups: usize,
    /// Processes killed: backends a killed harness left running, which
    /// would otherwise hold their ports, CPU and memory for ever.
    pub processes: usize,
}

/// How long a swept group's killed processes get to be reaped.
const SWEEP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Cleans up after harnesses that are no longer running (killed before
/// they could stop their backends): every `parallax-<pid>-*` group whose
/// harness pid is gone has its remaining processes killed (SIGKILL: they
/// belong to no one now) and is removed.
pub fn sweep_stale(layout: &Layout) -> Swept {
    let mut swept = Swept::default();
    // A process is in one group per hierarchy: count it once.
    let mut killed = HashSet::new();
    for parent in layout.dirs() {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("parallax-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let dir = e.path();
            let left = pids_in(&dir);
            if !left.is_empty() {
                // `kill` the program: the workspace forbids `unsafe`.
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .args(left.iter().map(u32::to_string))
                    .stderr(std::process::Stdio::null())
                    .status();
                killed.extend(left);
                let deadline = std::time::Instant::now() + SWEEP_WAIT;
                while !pids_in(&dir).is_empty() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            if std::fs::remove_dir(&dir).is_ok() {
                swept.groups += 1;
            }
        }
    }
    swept.processes = killed.len();
    swept
}

/// The processes in the group at `dir`.
fn pids_in(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Disjoint CPU lists for `backends` backends, leaving the first CPUs to
/// the load generator (and the proxy); `None` with fewer than 4 CPUs, where
/// pinning would starve someone: then everything shares every core.
pub fn core_sets(cpus: usize, backends: usize) -> Option<Vec<String>> {
    if cpus < 4 || backends == 0 {
        return None;
    }
    // Half the CPUs to the generator side, the rest split evenly.
    let for_backends = cpus / 2;
    let each = for_backends / backends;
    if each == 0 {
        return None;
    }
    let first = cpus - each * backends;
    Some(
        (0..backends)
            .map(|b| {
                let lo = first + b * each;
                let hi = lo + each - 1;
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect(),
    )
}

fn parse_u64(text: &str) -> std::io::Result<u64> {
    text.trim()
        .parse()
        .map_err(|_| invalid(&format!("not a number: {:?}", text.trim())))
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn core_sets_leave_the_generator_half_and_need_four_cpus() {
        assert_eq!(core_sets(2, 2), None);
        assert_eq!(core_sets(3, 2), None);
        assert_eq!(core_sets(4, 2), Some(vec!["2".into(), "3".into()]));
        assert_eq!(core_sets(16, 2), Some(vec!["8-11".into(), "12-15".into()]));
    }

    #[test]
    fn a_missing_hierarchy_says_what_it_looked_for() {
        let e = Layout::detect(Path::new("/nonexistent-cgroup-root")).unwrap_err();
        assert!(e.to_string().contains("cpuacct"), "{e}");
    }

    /// Runs only where cgroups are writable (root on this project's
    /// machines); elsewhere it says why it skipped.
    #[test]
    fn a_process_tree_is_accounted_in_its_own_cgroup_and_the_group_is_removed() {
        let layout = match Layout::detect(Path::new(ROOT)) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let group = match Cgroup::create(&layout, "test") {
            Ok(g) => g,
            Err(e) => {
                eprintln!("skipped: cgroups are not writable here: {e}");
                return;
            }
        };
        let dirs = group.dirs.clone();
        // The shell joins, then a child it forks burns CPU and memory: the
        // group counts the child's work although the parent did nothing.
        let script = format!(
            "{}python3 -c 'b = bytearray(64 << 20); [i for i in range(3_000_000)]'",
            group.join_script()
        );
        let status = Command::new("sh").arg("-c").arg(&script).status().unwrap();
        assert!(status.success());
        let cpu = group.cpu_seconds().unwrap();
        assert!(cpu > 0.05, "{cpu} CPU-seconds");
        let peak = group.memory_peak_bytes().expect("a peak on this kernel");
        assert!(peak >= 64 << 20, "{peak} bytes");
        assert!(group.members().is_empty(), "the tree has exited");
        assert!(group.describe().starts_with("cgroup v"));
        drop(group);
        for d in dirs {
            assert!(!d.exists(), "{} removed", d.display());
        }
    }

    /// A harness killed with SIGKILL leaves its backends running in their
    /// groups; the next run kills them and removes the groups.
    #[test]
    fn a_killed_harnesss_groups_and_the_backends_left_in_them_are_swept() {
        let Ok(layout) = Layout::detect(Path::new(ROOT)) else {
            eprintln!("skipped: no cgroup hierarchy here");
            return;
        };
        // A pid no process has now: a child that has exited and been reaped.
        let dead = Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        let _ = { dead }.wait();
        let name = format!("parallax-{dead_pid}-sweep-test");
        let dirs: Vec<PathBuf> = layout.dirs().iter().map(|d| d.join(&name)).collect();
        for d in &dirs {
            if let Err(e) = std::fs::create_dir(d) {
                eprintln!("skipped: cgroups are not writable here: {e}");
                return;
            }
        }
        // A "backend" orphaned as a killed harness's would be.
        let out = Command::new("sh")
            .arg("-c")
            .arg("sleep 60 >/dev/null 2>&1 & echo $!")
            .output()
            .unwrap();
        let orphan: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        for d in &dirs {
            std::fs::write(d.join("cgroup.procs"), orphan.to_string()).unwrap();
        }
        let swept = sweep_stale(&layout);
        assert!(swept.processes >= 1, "{swept:?}");
        assert!(swept.groups >= dirs.len(), "{swept:?}");
        for d in &dirs {
            assert!(!d.exists(), "{} removed", d.display());
        }
        let deadline = std::time::Instant::now() + SWEEP_WAIT;
        while Path::new(&format!("/proc/{orphan}")).exists() && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            !Path::new(&format!("/proc/{orphan}")).exists(),
            "the orphan was killed"
        );
    }

    /// The memory figure is the members' resident set, so two copies of
    /// one program measure alike: the cgroup's own charge would give the
    /// page cache of the shared executable to the first copy only.
    #[test]
    fn two_copies_of_one_program_have_the_same_resident_peak() {
        let Ok(layout) = Layout::detect(Path::new(ROOT)) else {
            eprintln!("skipped: no cgroup hierarchy here");
            return;
        };
        let mut groups = Vec::new();
        let mut children = Vec::new();
        for name in ["test-rss-a", "test-rss-b"] {
            let group = match Cgroup::create(&layout, name) {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("skipped: cgroups are not writable here: {e}");
                    return;
                }
            };
            // 48 MiB touched, then it waits until killed.
            let script = format!(
                "{}exec python3 -c 'import sys, time; b = bytearray(48 << 20); sys.stdout.write(\"up\\n\"); sys.stdout.flush(); time.sleep(30)'",
                group.join_script()
            );
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.take().unwrap()),
                &mut line,
            )
            .unwrap();
            assert_eq!(line, "up\n");
            groups.push(group);
            children.push(child);
        }
        let peaks: Vec<u64> = groups
            .iter()
            .map(|g| g.resident().expect("members readable").1)
            .collect();
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(peaks.iter().all(|&p| p >= 48 << 20), "{peaks:?}");
        let ratio = peaks[1] as f64 / peaks[0] as f64;
        assert!((0.9..1.1).contains(&ratio), "{peaks:?}");
    }
}

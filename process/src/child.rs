//! One child-process type for everything we start: a backend from an
//! experiment file, a twin (in a run, a benchmark or the conformance
//! suite), the proxy.
//!
//! A [`ChildProcess`] is spawned in its own process group by default (so a
//! service started through a shell or `go run` is stopped whole), its
//! stdout and stderr go line by line to a log file — and, for a test, to
//! the caller's stderr too ([`ChildSpec::echo`]), so the lines show up with
//! the test that failed — and [`ChildProcess::spawn`] returns only once it
//! is ready: by an HTTP path answering 2xx, a log line matching a regex, a
//! TCP connect, or a `listening on HOST:PORT` line whose address it reads.
//! If it exits or is not ready in time, the error carries the tail of its
//! log. [`ChildProcess::stop`] sends SIGTERM to the group and SIGKILL after
//! the grace period; dropping one kills the group.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::procstat::{self, ProcError, Usage};

/// Lines of the log shown with an error.
pub const TAIL_LINES: usize = 20;

/// How often readiness is checked (an HTTP or TCP probe; how long a wait
/// for a log line lasts before the exit status is checked again).
const POLL: Duration = Duration::from_millis(20);

/// Why a child could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the log of {name} to {}: {source}", log.display())]
    Log {
        name: String,
        log: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) before it was ready; the last lines of {}:\n{tail}", log.display())]
    Exited {
        name: String,
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} was not ready within {timeout:?} ({what}); the last lines of {}:\n{tail}", log.display())]
    NotReady {
        name: String,
        timeout: Duration,
        what: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{name}: interrupted while waiting for it to be ready")]
    Interrupted { name: String },
}

/// When a child counts as ready.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// `GET path` on this address answers 2xx.
    Http { addr: String, path: String },
    /// A line of its output matches.
    Log(Regex),
    /// The address accepts a TCP connection.
    Tcp(String),
    /// It logs `listening on HOST:PORT` (the twins' convention; Go's slog
    /// quotes the address); the address is kept as [`ChildProcess::addr`].
    ListeningLine,
    /// Started is ready.
    Started,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// For messages (`the candidate`, `the proxy`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Variables of this process's environment not to pass on.
    pub env_remove: Vec<String>,
    pub dir: Option<PathBuf>,
    /// Where stdout and stderr go (ANSI colour codes removed).
    pub log: PathBuf,
    /// Also copy every line to this process's stderr as `[echo] line`: in
    /// a test the lines are then captured with the test that started it.
    pub echo: Option<String>,
    /// A process group of its own (the default): stopped whole, and a
    /// Ctrl-C at the terminal reaches only us, which then stop it in order.
    /// Without one (a test's twin), it shares our group, so a Ctrl-C of
    /// `cargo test` stops it too.
    pub own_group: bool,
    pub ready: Readiness,
    pub ready_timeout: Duration,
}

impl ChildSpec {
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            dir: None,
            log: log.into(),
            echo: None,
            own_group: true,
            ready: Readiness::Started,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// Set by [`interrupt`]: readiness waits give up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes every readiness wait in progress or to come give up (a Ctrl-C
/// handler calls it); children are then stopped as their owners unwind.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A running child; dropping it kills its process group.
#[derive(Debug)]
pub struct ChildProcess {
    pub name: String,
    child: Child,
    own_group: bool,
    log: PathBuf,
    /// Ends (disconnects) when both output-copying threads have finished.
    /// In a mutex only so that a `ChildProcess` can be shared by threads.
    output_done: Mutex<mpsc::Receiver<()>>,
    /// The address from a `listening on` line, with [`Readiness::ListeningLine`].
    pub addr: Option<SocketAddr>,
}

impl ChildProcess {
    /// Starts `spec` and waits until it is ready.
    pub fn spawn(spec: &ChildSpec) -> Result<Self, ChildError> {
        let log_file = File::create(&spec.log).map_err(|source| ChildError::Log {
            name: spec.name.clone(),
            log: spec.log.clone(),
            source,
        })?;
        let mut command = Command::new(&spec.program);
        command.args(&spec.args);
        for var in &spec.env_remove {
            command.env_remove(var);
        }
        command
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if spec.own_group {
            command.process_group(0);
        }
        if let Some(dir) = &spec.dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|source| ChildError::Spawn {
            name: spec.name.clone(),
            program: spec.program.display().to_string(),
            source,
        })?;
        // Both streams are copied line by line into one log; the first line
        // matching the readiness pattern is announced on the channel. A
        // blocking mutex: held for one line's write, by two threads.
        let log = Arc::new(Mutex::new(log_file));
        let (tx, rx) = mpsc::channel::<Option<SocketAddr>>();
        // Each thread holds a sender it drops at the end of its stream.
        let (done_tx, output_done) = mpsc::channel::<()>();
        let pattern = match &spec.ready {
            Readiness::Log(r) => Some(r.clone()),
            _ => None,
        };
        let listening = matches!(spec.ready, Readiness::ListeningLine);
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let (log, tx, pattern) = (Arc::clone(&log), tx.clone(), pattern.clone());
            let (echo, done) = (spec.echo.clone(), done_tx.clone());
            // Threads spawned from a test inherit its output capture, so
            // echoed lines show up with the test that started the child.
            std::thread::spawn(move || {
                let _done = done;
                let mut tx = Some(tx);
                let mut reader = BufReader::new(stream);
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    match reader.read_until(b'\n', &mut raw) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let line = strip_ansi(&String::from_utf8_lossy(&raw));
                    let line = line.trim_end();
                    if let Ok(mut f) = log.lock() {
                        let _ = writeln!(f, "{line}");
                    }
                    if let Some(prefix) = &echo {
                        eprintln!("[{prefix}] {line}");
                    }
                    let hit = if listening {
                        listening_addr(line).map(Some)
                    } else {
                        pattern.as_ref().filter(|p| p.is_match(line)).map(|_| None)
                    };
                    if let Some(addr) = hit {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                }
            });
        }
        drop((tx, done_tx));
        let mut me = Self {
            name: spec.name.clone(),
            child,
            own_group: spec.own_group,
            log: spec.log.clone(),
            output_done: Mutex::new(output_done),
            addr: None,
        };
        me.await_ready(spec, &rx)?;
        Ok(me)
    }

    fn await_ready(
        &mut self,
        spec: &ChildSpec,
        rx: &mpsc::Receiver<Option<SocketAddr>>,
    ) -> Result<(), ChildError> {
        let started = Instant::now();
        let what = match &spec.ready {
            Readiness::Http { addr, path } => format!("GET http://{addr}{path} never answered 2xx"),
            Readiness::Log(r) => format!("no output line matched {:?}", r.as_str()),
            Readiness::Tcp(addr) => format!("{addr} never accepted a connection"),
            Readiness::ListeningLine => "it never logged `listening on HOST:PORT`".into(),
            Readiness::Started => return Ok(()),
        };
        loop {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                self.await_output(Duration::from_secs(2));
                return Err(ChildError::Exited {
                    name: self.name.clone(),
                    status,
                    log: self.log.clone(),
                    tail: self.log_tail(TAIL_LINES),
                });
            }
            if interrupted() {
                return Err(ChildError::Interrupted {
                    name: self.name.clone(),
                });
            }
            let ready = match &spec.ready {
                Readiness::Http { addr, path } => {
                    matches!(
                        http_get(addr, path, Duration::from_secs(2)),
                        Ok((200..=299, _))
                    )
                }
                Readiness::Tcp(addr) => tcp_open(addr),
                // Waiting on the channel, not sleeping: ready the moment
                // the line is read (a conformance run starts hundreds of
                // twins, and a fixed poll added up to 50 ms to each).
                Readiness::Log(_) | Readiness::ListeningLine => match rx.recv_timeout(POLL) {
                    Ok(addr) => {
                        self.addr = addr;
                        true
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => false,
                    // Both streams closed: it is exiting; the next round
                    // sees its status.
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(POLL);
                        false
                    }
                },
                Readiness::Started => true,
            };
            if ready {
                return Ok(());
            }
            if started.elapsed() > spec.ready_timeout {
                return Err(ChildError::NotReady {
                    name: self.name.clone(),
                    timeout: spec.ready_timeout,
                    what,
                    log: self.log.clone(),
                    tail: self.log_tail(TAIL_LINES),
                });
            }
            if matches!(spec.ready, Readiness::Http { .. } | Readiness::Tcp(_)) {
                std::thread::sleep(POLL);
            }
        }
    }

    /// Waits up to `patience` for its output to be in the log (both
    /// streams closed: it exited, and nothing it started holds them).
    fn await_output(&self, patience: Duration) {
        if let Ok(done) = self.output_done.lock() {
            let _ = done.recv_timeout(patience);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address after `marker` in the first line of its log holding it
    /// (e.g. `serving gRPC on`, logged before the line readiness waited
    /// for, so already in the log).
    pub fn logged_addr(&self, marker: &str) -> Option<SocketAddr> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        text.lines().find_map(|line| addr_after(line, marker))
    }

    /// Sends `SIG<signal>` (`"TERM"`, `"INT"`, …) to it — to its whole
    /// group when it has its own.
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let target = if self.own_group {
            format!("-{}", self.child.id())
        } else {
            self.child.id().to_string()
        };
        // `kill` the program: the workspace forbids `unsafe`, and so direct
        // `libc::kill`.
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg("--")
            .arg(&target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -{signal} {target}: {status}"
            )))
        }
    }

    /// Its exit status once it exits within `timeout`; `None` if it is
    /// still running then.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log, indented.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// CPU and RSS of its whole process group (of it alone, without a
    /// group of its own).
    pub fn usage(&self) -> Result<Usage, ProcError> {
        if self.own_group {
            procstat::read_group(self.child.id())
        } else {
            procstat::read(self.child.id())
        }
    }

    /// SIGTERM to the group, then waits up to `grace` for the child to
    /// exit; SIGKILL to the group after that. Returns how it exited (`None`:
    /// it had to be killed).
    pub fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        self.kill_group("TERM");
        let status = self.wait_timeout(grace);
        // Whatever else of the group is left (a shell's children).
        self.kill_group("KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        status
    }

    /// [`signal`](Self::signal), quietly, where there is still someone to
    /// receive it.
    fn kill_group(&self, signal: &str) {
        let alive = if self.own_group {
            !procstat::group_members(self.child.id()).is_empty()
        } else {
            !procstat::exited(self.child.id())
        };
        if alive {
            let _ = self.signal(signal);
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.own_group {
            self.kill_group("KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port to start a child on (bound and released: another
/// process could take it in between, which on a quiet machine does not
/// happen in practice; prefer `--listen 127.0.0.1:0` and
/// [`Readiness::ListeningLine`] where the child supports it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `lines` lines of a file, each indented by four spaces.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.is_empty() {
        return "    (nothing logged)".into();
    }
    tail.iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The address in a log line containing `listening on HOST:PORT`, whatever
/// the log format around it (plain, logfmt, JSON; Go's slog quotes it).
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    addr_after(line, "listening on")
}

/// The address among the few tokens after `marker` in a log line
/// (`marker HOST:PORT`, `msg="marker" addr=HOST:PORT`, JSON).
pub fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '{' | '}' | '='))
        .filter(|token| !token.is_empty())
        .take(4)
        .find_map(|token| token.parse().ok())
}

/// `text` without ANSI escape sequences (CSI: ESC `[` parameters, a final
/// letter): a service that colours its log despite `NO_COLOR`.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn tcp_open(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

/// A minimal `GET` (HTTP/1.0, so the answer is never chunked) on
/// `host:port`: the status and the body. For readiness checks and scraping
/// `/metrics`, not for load.
pub fn http_get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, Vec<u8>)> {
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr} resolves to nothing")))?;
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: parallax\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete HTTP head"))?;
    let status_line = String::from_utf8_lossy(&answer[..head_end]);
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status in the answer"))?;
    Ok((status, answer[head_end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, script: &str, dir: &Path) -> ChildSpec {
        let mut s = ChildSpec::new(name, "sh", dir.join(format!("{name}.log")));
        s.args = vec!["-c".into(), script.into()];
        s.ready_timeout = Duration::from_secs(5);
        s
    }

    fn temp(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("parallax-child-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn finds_the_address_in_common_log_formats() {
        let expected: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        for line in [
            "listening on 127.0.0.1:41234",
            "2025-01-01T00:00:00Z  INFO parallax_ingest: listening on 127.0.0.1:41234",
            r#"time=2026-11-26T23:36:08Z level=INFO msg="listening on 127.0.0.1:41234""#,
            r#"{"time":"…","level":"INFO","msg":"listening on 127.0.0.1:41234"}"#,
            r#"time=… level=INFO msg="listening on" addr=127.0.0.1:41234"#,
            "\u{1b}[2mINFO\u{1b}[0m listening on \u{1b}[3maddr\u{1b}[0m=127.0.0.1:41234",
        ] {
            assert_eq!(listening_addr(&strip_ansi(line)), Some(expected), "{line}");
        }
        assert_eq!(listening_addr("starting"), None);
        assert_eq!(
            addr_after("serving gRPC on 127.0.0.1:9", "serving gRPC on"),
            "127.0.0.1:9".parse().ok()
        );
    }

    #[test]
    fn without_a_group_of_its_own_it_is_signalled_and_waited_for() {
        let dir = temp("nogroup");
        let mut s = spec(
            "svc",
            "trap 'echo got TERM; exit 7' TERM; echo listening on 127.0.0.1:9 serving gRPC on 127.0.0.1:8; while :; do sleep 0.05; done",
            &dir,
        );
        s.own_group = false;
        s.echo = Some("svc".into());
        s.ready = Readiness::ListeningLine;
        let mut child = ChildProcess::spawn(&s).unwrap();
        assert_eq!(child.addr.unwrap().port(), 9);
        assert_eq!(child.logged_addr("serving gRPC on").unwrap().port(), 8);
        assert!(child.wait_timeout(Duration::from_millis(100)).is_none());
        child.signal("TERM").unwrap();
        let status = child.wait_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(status.code(), Some(7));
    }

    #[test]
    fn all_of_an_early_exit_s_output_is_in_the_log() {
        let dir = temp("all");
        let mut s = spec("loud", "seq 1 500; echo 'bad flag --x' >&2; exit 2", &dir);
        s.ready = Readiness::ListeningLine;
        let e = ChildProcess::spawn(&s).err().unwrap();
        let ChildError::Exited { status, log, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(status.code(), Some(2));
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.contains("\n500\n") && text.contains("bad flag --x"),
            "{text}"
        );
    }

    #[test]
    fn ready_by_log_line_then_stopped_with_its_whole_group() {
        let dir = temp("log");
        let mut s = spec(
            "svc",
            "sleep 30 & echo booting; echo 'ready now' >&2; wait",
            &dir,
        );
        s.ready = Readiness::Log(Regex::new("^ready").unwrap());
        let child = ChildProcess::spawn(&s).unwrap();
        let group = child.pid();
        assert!(
            procstat::group_members(group).len() >= 2,
            "the shell and its sleep"
        );
        assert!(child.usage().unwrap().rss_bytes > 0);
        child.stop(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            procstat::group_members(group).is_empty(),
            "the sleep was stopped too"
        );
        let log = std::fs::read_to_string(dir.join("svc.log")).unwrap();
        assert!(
            log.contains("booting") && log.contains("ready now"),
            "{log}"
        );
    }

    #[test]
    fn a_child_that_exits_early_shows_its_log_tail() {
        let dir = temp("exit");
        let mut s = spec("bad", "echo 'config: no such file' >&2; exit 3", &dir);
        s.ready = Readiness::Tcp("127.0.0.1:1".into());
        let e = ChildProcess::spawn(&s).err().unwrap().to_string();
        assert!(e.contains("bad exited"), "{e}");
        assert!(e.contains("config: no such file"), "{e}");
    }

    #[test]
    fn a_child_never_ready_is_killed_and_named() {
        let dir = temp("slow");
        let mut s = spec("slow", "echo waiting; sleep 30", &dir);
        s.ready = Readiness::Log(Regex::new("never").unwrap());
        s.ready_timeout = Duration::from_millis(300);
        let e = ChildProcess::spawn(&s).err().unwrap().to_string();
        assert!(
            e.contains("not ready within") && e.contains("waiting"),
            "{e}"
        );
    }

    #[test]
    fn http_get_reads_status_and_body() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // Read the whole head before answering and closing, or the
            // close could reset the connection under the client's write.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.0 204 No Content\r\nX: y\r\n\r\nhi")
                .unwrap();
        });
        let (status, body) = http_get(&addr, "/healthz", Duration::from_secs(2)).unwrap();
        assert_eq!((status, body.as_slice()), (204, &b"hi"[..]));
    }
}

//! One glibc malloc arena for the whole process, set before the first
//! allocation by re-executing the binary with `MALLOC_ARENA_MAX=1`.
//!
//! # Why
//! glibc gives each thread that allocates its own arena (up to 8 per core).
//! Under PUT churn of uniform 64 B–64 KiB values with constant eviction
//! (`scripts/cache-churn-ab.sh`, docs/benchmarks.md "Session cache: an hour
//! of churn"), the two tokio workers' arenas fragmented without bound: RSS
//! grew 66 % in four minutes at 1 GiB and 80 % in 17 minutes at 4 GiB, and
//! `_int_malloc` took 70 % of the twin's CPU (CPU per PUT tripled, p99 went
//! to seconds). With one arena: 1.9 % growth and two thirds of the CPU per
//! PUT, same run, side by side. The allocator swaps measured earlier
//! (jemalloc, mimalloc) hold 1.28–1.37 × the accounted bytes (see
//! `main.rs`); one glibc arena holds ~1.04 ×.
//!
//! # Why a re-exec
//! glibc reads `MALLOC_ARENA_MAX` once, at its first allocation, which
//! happens before `main`. The in-process alternative, `mallopt(M_ARENA_MAX)`,
//! is an FFI call the workspace's `unsafe_code = "forbid"` rules out. So the
//! binary replaces itself (`exec` of `/proc/self/exe`: same pid, arguments,
//! stdio and environment plus the variable) as its first action. It does
//! nothing when `MALLOC_ARENA_MAX` is already set — an operator's value,
//! or the re-executed process itself — and carries on with glibc's default
//! when the exec fails (a warning on stderr).

/// The glibc variable, and the value this binary sets.
pub const ARENA_MAX_VAR: &str = "MALLOC_ARENA_MAX";
pub const ARENA_MAX: &str = "1";

/// Re-executes the running binary with `MALLOC_ARENA_MAX=1` unless the
/// variable is set. Returns only when it did not re-execute. Call it first
/// in `main`, before any thread starts.
pub fn limit_arenas() {
    if std::env::var_os(ARENA_MAX_VAR).is_some() {
        return;
    }
    reexec();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reexec() {
    use std::ffi::OsString;
    use std::os::unix::process::CommandExt;

    let mut args = std::env::args_os();
    let arg0 = args
        .next()
        .unwrap_or_else(|| OsString::from("parallax-session-cache"));
    // /proc/self/exe is the running image even if its file was replaced.
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env(ARENA_MAX_VAR, ARENA_MAX)
        .exec();
    eprintln!(
        "warning: could not re-execute with {ARENA_MAX_VAR}={ARENA_MAX} ({error}); \
         running with glibc's default arenas (RSS may grow under churn)"
    );
}

/// Other allocators (musl, macOS) have no glibc arenas: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn reexec() {}

//! Finding the Parallax repository: the CLI needs `scripts/kafka.sh` and the
//! Go sources to build the reference twins.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// `$PARALLAX_ROOT`, else the nearest ancestor of the current directory that
/// holds `scripts/kafka.sh`, else the checkout this binary was built from.
pub fn root() -> anyhow::Result<PathBuf> {
    if let Some(root) = std::env::var_os("PARALLAX_ROOT") {
        let root = PathBuf::from(root);
        if is_root(&root) {
            return Ok(root);
        }
        bail!(
            "PARALLAX_ROOT={} does not hold scripts/kafka.sh",
            root.display()
        );
    }
    let cwd = std::env::current_dir()?;
    if let Some(found) = cwd.ancestors().find(|dir| is_root(dir)) {
        return Ok(found.to_path_buf());
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if is_root(&built_from) {
        return Ok(built_from.canonicalize()?);
    }
    bail!("cannot find the Parallax repository: run from inside it or set PARALLAX_ROOT")
}

fn is_root(dir: &Path) -> bool {
    dir.join("scripts/kafka.sh").is_file() && dir.join("go-reference/go.mod").is_file()
}

/// This program's path, for starting helpers (the proxy, fan-out workers)
/// as child processes. When the binary was rebuilt while running, Linux
/// reports the old file as `… (deleted)`; the rebuilt one at the same path
/// is then used.
pub fn self_exe() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.exists() {
        return Ok(exe);
    }
    let text = exe.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(path) => Ok(std::path::PathBuf::from(path)),
        None => Ok(exe),
    }
}

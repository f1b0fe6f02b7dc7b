//! What is left of the CLI's own stack helpers: a free loopback port for
//! `parallax bench proxy`. Runs start their proxies and backends through
//! `parallax_harness` (its `child`, `proxyconf` and `runner` modules).

use std::net::{SocketAddr, TcpListener};

use anyhow::Context;

/// A free loopback port (bound and released: another process could take it
/// in between, which on a quiet machine does not happen in practice).
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?)
}

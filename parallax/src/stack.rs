//! What is left of the CLI's own stack helpers: a free loopback port for
//! `parallax bench proxy`. Runs start their proxies and backends through
//! `parallax_harness` (its `child`, `proxyconf` and `runner` modules).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use parallax_harness::child;

/// A free loopback port ([`child::free_port`]) as an address.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let port = child::free_port().context("cannot bind a loopback port")?;
    Ok((Ipv4Addr::LOCALHOST, port).into())
}

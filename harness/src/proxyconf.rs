//! The configuration of a `parallax proxy` the harness starts: the proxy's
//! own typed builder ([`parallax_proxy::config_builder`]), which lives in
//! the proxy crate so that the proxy's own benchmarks write their files
//! with it too (the proxy cannot depend on the harness).

pub use parallax_proxy::config_builder::ProxyService;

/// The whole file for `services` with the admin listener on `admin`,
/// validated by the proxy: [`parallax_proxy::config_builder::render`].
pub fn render(admin: &str, services: &[ProxyService]) -> anyhow::Result<String> {
    Ok(parallax_proxy::config_builder::render(admin, services)?)
}

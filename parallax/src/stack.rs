//! The local stack of one scenario in shadow mode: the primary and shadow
//! twins as child processes and `parallax proxy` in front of them, also a
//! child process, so its CPU is not the load generator's.
//!
//! The proxy is configured for the run (mirror everything, a latency window
//! longer than the run; `parallax_harness::proxyconf` builds the file) and read back over its admin listener: serialised
//! HDR histograms per backend (`/admin/latency/histograms`), comparison and
//! mirror counters (`/metrics`), mismatch samples. Two snapshots taken
//! around the measured phase are subtracted, so warm-up traffic is left out.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use parallax_harness::child::{ChildProcess, ChildSpec, Readiness};
use parallax_harness::proxyconf::{self, ProxyService};
use parallax_proxy::config::RouteConfig;

use crate::procstat;

/// The proxy as a child process (the harness's child-process type).
pub struct ProxyProcess {
    child: ChildProcess,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    http: reqwest::blocking::Client,
}

/// Counters read from the proxy's `/metrics`, summed over routes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// `parallax_comparisons_total` by result.
    pub comparisons: BTreeMap<String, f64>,
    /// `parallax_mirror_total` by outcome.
    pub mirrors: BTreeMap<String, f64>,
    /// `parallax_ws_frames_total` by result.
    pub ws_frames: BTreeMap<String, f64>,
}

impl Counters {
    pub fn since(&self, earlier: &Counters) -> Counters {
        let delta = |now: &BTreeMap<String, f64>, then: &BTreeMap<String, f64>| {
            now.iter()
                .map(|(k, v)| (k.clone(), v - then.get(k).copied().unwrap_or(0.0)))
                .collect()
        };
        Counters {
            comparisons: delta(&self.comparisons, &earlier.comparisons),
            mirrors: delta(&self.mirrors, &earlier.mirrors),
            ws_frames: delta(&self.ws_frames, &earlier.ws_frames),
        }
    }

    pub fn comparison(&self, result: &str) -> u64 {
        self.comparisons.get(result).copied().unwrap_or(0.0) as u64
    }

    pub fn mirror(&self, outcome: &str) -> u64 {
        self.mirrors.get(outcome).copied().unwrap_or(0.0) as u64
    }

    pub fn ws_frames(&self, result: &str) -> u64 {
        self.ws_frames.get(result).copied().unwrap_or(0.0) as u64
    }
}

/// A free loopback port (bound and released: another process could take it
/// in between, which on a quiet machine does not happen in practice).
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?)
}

/// The proxy configuration of one service, mirroring everything, from the
/// harness's typed builder (checked against `parallax_proxy::Config`).
pub fn proxy_config(
    service: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    primary: SocketAddr,
    shadow: SocketAddr,
    routes: &[RouteConfig],
) -> anyhow::Result<String> {
    let mut s = ProxyService::new(
        service,
        &listen.to_string(),
        &primary.to_string(),
        &shadow.to_string(),
    );
    s.routes = routes.to_vec();
    proxyconf::render(&admin.to_string(), &[s])
}

impl ProxyProcess {
    /// Starts `parallax proxy --config <out>/proxy-<service>.toml` and waits
    /// until its admin listener answers.
    pub fn start(
        service: &str,
        primary: SocketAddr,
        shadow: SocketAddr,
        routes: &[RouteConfig],
        out: &Path,
    ) -> anyhow::Result<Self> {
        let (listen, admin) = (free_port()?, free_port()?);
        let config_path = out.join(format!("proxy-{service}.toml"));
        std::fs::write(
            &config_path,
            proxy_config(service, listen, admin, primary, shadow, routes)?,
        )?;
        let mut spec = ChildSpec::new(
            "parallax proxy",
            crate::workspace::self_exe()?,
            out.join(format!("proxy-{service}.log")),
        );
        spec.args = vec![
            "proxy".into(),
            "--config".into(),
            config_path.display().to_string(),
        ];
        spec.ready = Readiness::Http {
            addr: admin.to_string(),
            path: "/healthz".into(),
        };
        spec.ready_timeout = Duration::from_secs(20);
        Ok(Self {
            child: ChildProcess::spawn(&spec)?,
            listen,
            admin,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    pub fn usage(&self) -> anyhow::Result<procstat::Usage> {
        procstat::read(self.child.pid())
    }

    fn get(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("http://{}{path}", self.admin))
            .send()?;
        if !response.status().is_success() {
            bail!("proxy admin {path} answered {}", response.status());
        }
        Ok(response.text()?)
    }

    /// Each backend's latency histogram (µs) since the proxy started.
    pub fn histograms(&self, service: &str) -> anyhow::Result<BTreeMap<String, Histogram<u64>>> {
        let body: serde_json::Value =
            serde_json::from_str(&self.get("/admin/latency/histograms")?)?;
        let backends = body["services"][service]
            .as_object()
            .with_context(|| format!("the proxy reports no service {service}"))?;
        backends
            .iter()
            .map(|(backend, encoded)| {
                let text = encoded.as_str().context("histogram is not a string")?;
                let h = parallax_report::histogram::decode(text)
                    .map_err(|e| anyhow::anyhow!("{backend}: {e}"))?;
                Ok((backend.clone(), h))
            })
            .collect()
    }

    /// Comparison and mirror counters.
    pub fn counters(&self) -> anyhow::Result<Counters> {
        Ok(parse_counters(&self.get("/metrics")?))
    }

    /// Difference kinds in the mismatch samples the proxy kept, counted.
    pub fn sampled_difference_kinds(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let body: serde_json::Value = serde_json::from_str(&self.get("/admin/mismatches")?)?;
        let mut kinds = BTreeMap::new();
        count_kinds(&body, &mut kinds);
        Ok(kinds)
    }

    /// SIGTERM, then wait (bounded) for a clean exit; killed after 15 s.
    pub fn stop(self) {
        self.child.stop(Duration::from_secs(15));
    }
}

/// Sums `parallax_comparisons_total` by `result`, `parallax_mirror_total`
/// by `outcome` (over every route) and `parallax_ws_frames_total` by
/// `result` (the harness's Prometheus text parser).
pub fn parse_counters(exposition: &str) -> Counters {
    use parallax_harness::prom;
    let mut counters = Counters::default();
    for sample in prom::parse(exposition) {
        let (label, map) = match sample.name.as_str() {
            "parallax_comparisons_total" => ("result", &mut counters.comparisons),
            "parallax_mirror_total" => ("outcome", &mut counters.mirrors),
            "parallax_ws_frames_total" => ("result", &mut counters.ws_frames),
            _ => continue,
        };
        if let Some(name) = sample.label(label) {
            *map.entry(name.to_owned()).or_default() += sample.value;
        }
    }
    counters
}

/// Counts every `"kind"` string found in the samples document.
fn count_kinds(value: &serde_json::Value, kinds: &mut BTreeMap<String, u64>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "kind" {
                    if let Some(kind) = v.as_str() {
                        *kinds.entry(kind.to_owned()).or_default() += 1;
                        continue;
                    }
                }
                count_kinds(v, kinds);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| count_kinds(v, kinds)),
        _ => {}
    }
}

/// Where a scenario's files go.
pub fn scenario_dir(out: &Path, scenario: &str) -> anyhow::Result<PathBuf> {
    let dir = out.join(scenario);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_routes_by_result_and_outcome() {
        let text = r#"# TYPE parallax_comparisons_total counter
parallax_comparisons_total{result="match",route="/a",service="s"} 3
parallax_comparisons_total{result="match",route="/b",service="s"} 4
parallax_comparisons_total{result="mismatch",route="/b",service="s"} 1
parallax_mirror_total{outcome="compared",route="/a",service="s"} 8
parallax_mirror_total{outcome="dropped_queue_full",route="/a",service="s"} 2
parallax_upstream_request_duration_seconds_count{backend="primary"} 9
parallax_ws_frames_total{result="matched",service="fanout"} 5
"#;
        let c = parse_counters(text);
        assert_eq!(c.comparison("match"), 7);
        assert_eq!(c.comparison("mismatch"), 1);
        assert_eq!(c.mirror("compared"), 8);
        assert_eq!(c.mirror("dropped_queue_full"), 2);
        assert_eq!(c.ws_frames("matched"), 5);
        let later = parse_counters(&text.replace("} 4", "} 10"));
        assert_eq!(later.since(&c).comparison("match"), 6);
    }

    #[test]
    fn the_proxy_config_mirrors_everything_and_parses() {
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let text = proxy_config("cache", addr(1), addr(2), addr(3), addr(4), &[]).unwrap();
        let config = parallax_proxy::Config::parse(&text, "test").unwrap();
        assert_eq!(config.services[0].mirror_percent, 100.0);
    }
}

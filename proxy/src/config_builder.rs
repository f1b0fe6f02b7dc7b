//! A proxy configuration file built from typed values, for whoever starts
//! a `parallax proxy` from code (the harness's runs, the proxy's own
//! benchmarks) instead of writing TOML by hand. The compare rules and
//! routes are the proxy's own [`CompareConfig`] and [`RouteConfig`], and
//! the text is parsed and validated as a [`Config`] before it is returned,
//! so a setting the proxy would refuse fails here, naming the field.
//!
//! It writes a table rather than serialising [`Config`] itself: `Config`
//! holds parsed and defaulted values (and has no `Serialize`), while a
//! file should say only what its writer chose and leave every other
//! setting to the proxy's defaults.

use std::path::PathBuf;

use parallax_compare::config::CompareConfig;
use toml::{Table, Value};

use crate::config::{Config, ConfigError, MirrorOrder, RouteConfig};

/// One proxied service.
#[derive(Debug, Clone)]
pub struct ProxyService {
    pub name: String,
    /// `host:port` clients connect to.
    pub listen: String,
    /// `host:port` of the primary (it answers the client).
    pub primary: String,
    /// `host:port` of the shadow (it gets a copy; its answer is compared).
    pub shadow: String,
    /// `host:port` of a second primary, for noise cancellation.
    pub secondary: Option<String>,
    /// Process ids of primary, shadow, secondary (for `parallax_backend_*`).
    pub pids: [Option<u32>; 3],
    /// How long the shadow may take.
    pub shadow_timeout_ms: u64,
    /// Every mismatch appended here as a JSON line.
    pub mismatch_log: Option<PathBuf>,
    /// Rules of routes without their own, and of `other`.
    pub compare: CompareConfig,
    pub routes: Vec<RouteConfig>,
    /// How WebSocket frames pair (`ws_match`). Default: the proxy's.
    pub ws_match: Option<String>,
    /// Speak HTTP/2 with prior knowledge (h2c) to every upstream (gRPC).
    pub http2: bool,
    /// Which copy leaves first. Default `alternate`: a harness run is a
    /// benchmark, and with no order the shadow's copy left first nearly
    /// every time, which moved A/A medians by ~10 %.
    pub mirror_order: MirrorOrder,
    /// The share of requests (and WebSocket sessions) mirrored. Default
    /// 100: a harness run compares everything.
    pub mirror_percent: f64,
    /// How long a WebSocket frame waits for its partner
    /// (`ws_match_window_ms`). Default: the proxy's.
    pub ws_match_window_ms: Option<u64>,
    /// Mirrored requests in flight at once (`shadow_max_in_flight`).
    /// Default 1024: a harness run mirrors everything, and a small bound
    /// would drop copies under load and hide them from the comparison.
    pub shadow_max_in_flight: usize,
}

impl ProxyService {
    /// A service mirroring everything from `primary` to `shadow`, default
    /// rules, no routes.
    pub fn new(name: &str, listen: &str, primary: &str, shadow: &str) -> Self {
        Self {
            name: name.into(),
            listen: listen.into(),
            primary: primary.into(),
            shadow: shadow.into(),
            secondary: None,
            pids: [None; 3],
            shadow_timeout_ms: 5000,
            mismatch_log: None,
            compare: CompareConfig::default(),
            routes: Vec::new(),
            ws_match: None,
            http2: false,
            mirror_order: MirrorOrder::Alternate,
            mirror_percent: 100.0,
            ws_match_window_ms: None,
            shadow_max_in_flight: 1024,
        }
    }

    fn table(&self) -> Result<Table, toml::ser::Error> {
        let mut s = Table::new();
        s.insert("name".into(), self.name.clone().into());
        s.insert("listen".into(), self.listen.clone().into());
        let upstreams = [
            ("primary", Some(&self.primary)),
            ("shadow", Some(&self.shadow)),
            ("secondary", self.secondary.as_ref()),
        ];
        for ((key, addr), pid) in upstreams.into_iter().zip(self.pids) {
            let Some(addr) = addr else { continue };
            s.insert(key.into(), format!("http://{addr}").into());
            if self.http2 {
                s.insert(format!("{key}_http2"), Value::Boolean(true));
            }
            if let Some(pid) = pid {
                s.insert(format!("{key}_pid"), Value::Integer(pid.into()));
            }
        }
        s.insert("mirror_percent".into(), Value::Float(self.mirror_percent));
        s.insert("mirror_order".into(), Value::try_from(self.mirror_order)?);
        s.insert(
            "shadow_timeout_ms".into(),
            Value::Integer(self.shadow_timeout_ms as i64),
        );
        s.insert(
            "shadow_max_in_flight".into(),
            Value::Integer(self.shadow_max_in_flight as i64),
        );
        if let Some(log) = &self.mismatch_log {
            s.insert("mismatch_log".into(), log.display().to_string().into());
        }
        if let Some(m) = &self.ws_match {
            s.insert("ws_match".into(), m.clone().into());
        }
        if let Some(ms) = self.ws_match_window_ms {
            s.insert("ws_match_window_ms".into(), Value::Integer(ms as i64));
        }
        s.insert("compare".into(), Value::try_from(&self.compare)?);
        let mut routes = Vec::new();
        for r in &self.routes {
            let mut t = Table::new();
            t.insert("template".into(), r.template.clone().into());
            if let Some(c) = &r.compare {
                t.insert("compare".into(), Value::try_from(c)?);
            }
            routes.push(Value::Table(t));
        }
        s.insert("routes".into(), Value::Array(routes));
        Ok(s)
    }
}

/// The whole file for `services` with the admin listener on `admin`; the
/// latency window is an hour, longer than any run, so the histograms read
/// before and after a measured part only grow and can be subtracted.
pub fn render(admin: &str, services: &[ProxyService]) -> Result<String, ConfigError> {
    const ORIGIN: &str = "the generated proxy config";
    let unwritable = |e: toml::ser::Error| ConfigError::Parse {
        path: ORIGIN.into(),
        message: e.to_string(),
    };
    let mut top = Table::new();
    top.insert("admin_listen".into(), admin.into());
    top.insert("latency_window_secs".into(), Value::Integer(3600));
    let services = services
        .iter()
        .map(|s| s.table().map(Value::Table))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unwritable)?;
    top.insert("services".into(), Value::Array(services));
    let text = toml::to_string(&top).map_err(unwritable)?;
    Config::parse(&text, ORIGIN)?.validate()?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_parses_as_the_proxys_config_with_every_setting() {
        let mut s = ProxyService::new("orders", "127.0.0.1:1", "127.0.0.1:3", "127.0.0.1:4");
        s.pids = [Some(7), None, None];
        s.secondary = Some("127.0.0.1:5".into());
        s.mismatch_log = Some("/tmp/m.jsonl".into());
        s.compare.ignore = vec!["/meta/**".into()];
        s.ws_match = Some("/seq".into());
        s.ws_match_window_ms = Some(10_000);
        s.mirror_percent = 25.0;
        s.routes = vec![RouteConfig {
            template: "/v1/orders/{id}".into(),
            compare: Some(CompareConfig {
                headers: vec![],
                ..CompareConfig::default()
            }),
        }];
        let text = render("127.0.0.1:2", &[s]).unwrap();
        let config = Config::parse(&text, "t").unwrap();
        let s = &config.services[0];
        assert_eq!(s.primary, "http://127.0.0.1:3");
        assert_eq!(s.secondary.as_deref(), Some("http://127.0.0.1:5"));
        assert_eq!((s.primary_pid, s.shadow_pid), (Some(7), None));
        assert_eq!(s.mirror_percent, 25.0);
        assert_eq!(s.ws_match_window_ms, 10_000);
        assert_eq!(s.mirror_order, MirrorOrder::Alternate);
        assert_eq!(s.compare.ignore, ["/meta/**"]);
        assert_eq!(s.ws_match, "/seq");
        assert_eq!(s.routes[0].template, "/v1/orders/{id}");
        assert!(s.routes[0].compare.as_ref().unwrap().headers.is_empty());
        assert_eq!(config.latency_window_secs, 3600);
    }

    #[test]
    fn a_setting_the_proxy_refuses_is_caught_here() {
        let mut s = ProxyService::new("bad name", "127.0.0.1:1", "127.0.0.1:3", "127.0.0.1:4");
        s.shadow_timeout_ms = 0;
        let e = render("127.0.0.1:2", &[s]).unwrap_err().to_string();
        assert!(e.contains("services[0]."), "{e}");
    }
}

//! The proxy's configuration: a TOML file (`parallax proxy --config
//! parallax.toml`), every field documented here with its default, and its
//! validation.
//!
//! Parsing is strict (`deny_unknown_fields`: a misspelt key is an error, not
//! a silently ignored setting). [`Config::validate`] checks what the types
//! cannot and turns the text into [`Settings`] the proxy runs on; every error
//! names the field (`services[0].mirror_percent`) and says why.
//! `proxy/parallax.example.toml` shows every field.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::uri::{Authority, Scheme};
use parallax_compare::pointer::PointerGlob;
use parallax_compare::Rules;
use serde::Deserialize;

use crate::canary::CanarySettings;
pub use crate::departure::MirrorOrder;
pub use crate::record::{RecordConfig, RecordSettings};
use crate::route::RouteTable;
use crate::sampling::{MirrorMethods, Sampler, StickyKey};
use crate::ws::matcher::MatchBy;

/// A configuration that cannot be used, naming the field and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, a misspelt key, or a value of the wrong type; the message
    /// from the TOML parser shows the line and the key.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// A value that parses but cannot be used.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl fmt::Display, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the admin listener serving `/metrics`, `/admin/latency` and
    /// `/admin/mismatches`. Loopback by default: it exposes mismatch samples.
    /// Any other address requires `admin_token_file`.
    /// Default `"127.0.0.1:9901"`.
    pub admin_listen: String,
    /// A file holding a bearer token (at least 16 characters; surrounding
    /// whitespace ignored). When set, every admin route — metrics, JSON,
    /// the `/ui` explorer, POSTs — requires `Authorization: Bearer <token>`
    /// (the UI takes it once as `/ui?token=…` and keeps it in a
    /// `SameSite=Strict` cookie). Required when `admin_listen` is not a
    /// loopback address. Default: none.
    pub admin_token_file: Option<String>,
    /// Optional: the admin listener of a running `parallax kafka-diff`
    /// (`--admin-listen`), e.g. `"127.0.0.1:9903"`: the explorer (`/ui`)
    /// shows its Kafka join beside the HTTP comparisons. Default: none.
    pub kafka_diff_admin: Option<String>,
    /// Width of the sliding window behind `/admin/latency`, in seconds (it
    /// rotates in six equal slots). 6–3600. Default `60`.
    pub latency_window_secs: u64,
    /// How long in-flight client requests may run after SIGTERM/SIGINT before
    /// they are abandoned. Default `10000`.
    pub shutdown_grace_ms: u64,
    /// The proxied services, one listener each. At least one.
    pub services: Vec<ServiceConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            admin_listen: "127.0.0.1:9901".into(),
            admin_token_file: None,
            kafka_diff_admin: None,
            latency_window_secs: 60,
            shutdown_grace_ms: 10_000,
            services: Vec::new(),
        }
    }
}

/// One proxied service: a listener in front of a primary, a shadow and
/// optionally a secondary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Name used in metric labels and admin output; unique, `[A-Za-z0-9_.-]+`.
    /// Required.
    pub name: String,
    /// Address clients connect to, `HOST:PORT` (port 0 picks a free one).
    /// Required.
    pub listen: String,
    /// Bind `listen` with `SO_REUSEPORT`, so several proxy processes share
    /// one address and the kernel spreads connections over them (each
    /// process may hold 20,000 descriptors here, and a proxied WebSocket
    /// costs three). Default `false`.
    pub reuse_port: bool,
    /// The primary upstream, `http://HOST:PORT` or `HOST:PORT`: its answer
    /// goes to the client. Required.
    pub primary: String,
    /// The shadow upstream (the candidate under test): it gets a copy of
    /// sampled requests; its answer is only compared. Required.
    pub shadow: String,
    /// A second instance of the primary for noise cancellation: it gets the
    /// same copies as the shadow, and a field that differs between primary
    /// and secondary about as often as between primary and shadow counts as
    /// `noise`, not `mismatch`. Default: none.
    pub secondary: Option<String>,
    /// Process id of the primary for `parallax_backend_*` metrics. Default:
    /// found from the process listening on the primary's port, if local.
    pub primary_pid: Option<u32>,
    /// Process id of the shadow. Default: found from its listening port.
    pub shadow_pid: Option<u32>,
    /// Process id of the secondary. Default: found from its listening port.
    pub secondary_pid: Option<u32>,
    /// Route templates, matched in order against the request path; the
    /// first match is the `route` label and picks the compare rules. A path
    /// matching none is labelled `other`. Default: none.
    pub routes: Vec<RouteConfig>,
    /// Share of eligible requests mirrored, 0–100 (fractions allowed).
    /// Default `100`.
    pub mirror_percent: f64,
    /// Sticky sampling: `"header:<name>"` or `"path"`. Requests with the
    /// same key are always all mirrored or all not (hash of the key against
    /// `mirror_percent`). A request without the header is sampled like
    /// without a key. Default: none (requests sampled independently).
    pub sticky_key: Option<String>,
    /// `"all"`, or `"safe"` (only GET, HEAD, OPTIONS and TRACE are
    /// mirrored; others count as `sampled_out`). Default `"all"`.
    pub mirror_methods: MirrorMethods,
    /// Which copy leaves first: `"unordered"` (neither waits; the client
    /// path never waits for the mirror), `"primary-first"` (the shadow's
    /// copy waits until the primary's is sent) or `"alternate"` (by turns,
    /// for benchmarks: with no order one side was second nearly every time
    /// and that biased A/A medians by ~10 %). Default `"unordered"`.
    pub mirror_order: MirrorOrder,
    /// The largest request body buffered to be sent twice. A larger one goes
    /// to the primary only, streamed, and counts as `body_too_large`.
    /// Default `1048576`.
    pub max_mirror_body_bytes: u64,
    /// The most of each response body kept for the comparison. A longer
    /// answer still streams whole to the client, but the comparison is
    /// skipped and counted as `body_too_large`. Default `1048576`.
    pub max_compare_body_bytes: u64,
    /// How long the shadow (and the secondary) may take to answer,
    /// body included, before the copy counts as `shadow_timeout`.
    /// Default `1000`.
    pub shadow_timeout_ms: u64,
    /// The most mirror copies in flight at once (from sending to the shadow
    /// until the comparison is done). When all are taken, a new copy is
    /// dropped and counted as `dropped_queue_full`. Default `256`.
    pub shadow_max_in_flight: usize,
    /// A header set to `1` on the copies sent to the shadow and the
    /// secondary, so they can tell mirrored traffic apart. Default: none.
    pub shadow_marker_header: Option<String>,
    /// Compare rules of routes that have none of their own, and of `other`.
    pub compare: CompareConfig,
    /// Mismatch samples kept in memory per route for `/admin/mismatches`.
    /// Default `20`.
    pub mismatch_samples: usize,
    /// Append-only JSON-lines file receiving every mismatch sample (relative
    /// paths are relative to the working directory). Default: none.
    pub mismatch_log: Option<PathBuf>,
    /// What to redact in mismatch samples besides the `Authorization`,
    /// `Cookie` and `Set-Cookie` headers, which always are:
    /// `"header:<name>"`, `"query:<name>"` (a query parameter of the
    /// request target, besides the credential names always redacted:
    /// `api_key`, `access_token`, `token`, `password`, `secret`,
    /// `signature`, …) or a JSON-pointer glob into request and response
    /// bodies (`"/user/email"`, `"/**/token"`). Default: none.
    pub redact: Vec<String>,
    /// Comparisons after which the noise model's counts halve. Default `1000`.
    pub noise_window: usize,
    /// How WebSocket messages of the primary and the shadow are paired: a
    /// JSON pointer whose value identifies a message (messages without it
    /// are paired by their order among such messages), or `"sequence"` to
    /// pair every message by its position. Default `"/id"`.
    pub ws_match: String,
    /// How long a WebSocket message waits for its counterpart before it
    /// counts as `missing` (primary) or `extra` (shadow), in ms.
    /// Default `2000`.
    pub ws_match_window_ms: u64,
    /// The most messages of one side waiting for their counterpart, per
    /// connection; more count as `overflow`. Default `64`.
    pub ws_max_pending_frames: usize,
    /// The most payload bytes waiting for a counterpart per connection (both
    /// sides together); a message that does not fit, or is larger, is not
    /// compared and counts as `overflow`. Default `65536`.
    pub ws_max_pending_bytes: usize,
    /// The most client bytes queued for a shadow that is still connecting
    /// or not reading; past it the shadow connection is dropped (`stalled`)
    /// and the client's connection goes on. Default `65536`.
    pub ws_shadow_max_queued_bytes: usize,
    /// How close the primary-vs-secondary disagreement rate of a field must
    /// come to its primary-vs-shadow rate for a difference to be noise:
    /// noise when `noise_rate ≥ (1 − tolerance) × raw_rate`. 0–1.
    /// Default `0.2`.
    pub noise_relative_tolerance: f64,
    /// A canary release: a share of requests served by the shadow instead
    /// of mirrored to it, stepped up while it does as well as the primary
    /// and rolled back when it does not (see [`crate::canary`]). Default:
    /// none (the shadow only ever gets copies).
    pub canary: Option<CanaryConfig>,
    /// Serve this service over TLS: `{ cert_file = "…", key_file = "…" }`
    /// (PEM), offering `h2` and `http/1.1` by ALPN. Without it the listener
    /// speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c). Default: none.
    pub tls: Option<crate::tls::ServerTlsConfig>,
    /// How `https://` backends are trusted (CA bundle, client certificate,
    /// or, for staging only, `dangerously_skip_certificate_verification`).
    /// Default: the system's roots, no client certificate.
    pub upstream_tls: Option<crate::tls::UpstreamTlsConfig>,
    /// Speak HTTP/2 to the primary: prior knowledge (h2c) on `http://`,
    /// offered by ALPN on `https://`. Default `false` (HTTP/1.1).
    pub primary_http2: bool,
    /// The same for the shadow. Default `false`.
    pub shadow_http2: bool,
    /// The same for the secondary. Default `false`.
    pub secondary_http2: bool,
    /// `[services.record]`: record this service's traffic (requests with
    /// the primary's status and latency, WebSocket messages) to a capture
    /// that `parallax replay` sends again (see [`crate::record`]).
    /// Default: none.
    pub record: Option<RecordConfig>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            listen: String::new(),
            reuse_port: false,
            primary: String::new(),
            shadow: String::new(),
            secondary: None,
            primary_pid: None,
            shadow_pid: None,
            secondary_pid: None,
            routes: Vec::new(),
            mirror_percent: 100.0,
            sticky_key: None,
            mirror_methods: MirrorMethods::All,
            mirror_order: MirrorOrder::Unordered,
            max_mirror_body_bytes: 1 << 20,
            max_compare_body_bytes: 1 << 20,
            shadow_timeout_ms: 1000,
            shadow_max_in_flight: 256,
            shadow_marker_header: None,
            compare: CompareConfig::default(),
            mismatch_samples: 20,
            mismatch_log: None,
            redact: Vec::new(),
            noise_window: 1000,
            noise_relative_tolerance: 0.2,
            ws_match: "/id".into(),
            ws_match_window_ms: 2000,
            ws_max_pending_frames: 64,
            ws_max_pending_bytes: 65536,
            ws_shadow_max_queued_bytes: 65536,
            canary: None,
            tls: None,
            upstream_tls: None,
            primary_http2: false,
            shadow_http2: false,
            secondary_http2: false,
            record: None,
        }
    }
}

/// `[services.canary]`: the shadow serves clients, step by step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryConfig {
    /// The shares of requests the shadow serves, one step after another,
    /// each within 0–100 (fractions allowed) and larger than the one
    /// before. The last is kept once reached. Default `[1, 5, 25, 50]`.
    pub weights_percent: Vec<f64>,
    /// The least time at each step, in seconds; the canary steps up when it
    /// is over and every window judged at the step was healthy.
    /// Default `300`.
    pub step_secs: f64,
    /// The length of a judged window, in seconds (0.1 or more, at most
    /// `step_secs`). A window is judged once it is this old and the shadow
    /// served `min_requests` in it. Default `30`.
    pub window_secs: f64,
    /// The fewest shadow-served requests (and, for the mismatch rule,
    /// comparisons) a window needs to be judged. Default `200`.
    pub min_requests: u64,
    /// Roll back when the shadow's failure share (5xx and no answer)
    /// exceeds the primary's by more than this, 0–1. Default `0.01`.
    pub max_error_rate_delta: f64,
    /// Roll back when the shadow's p99 exceeds this multiple of the
    /// primary's and also exceeds it by `p99_slack_ms`. 1 or more.
    /// Default `1.5`.
    pub max_p99_ratio: f64,
    /// See `max_p99_ratio`. Default `5`.
    pub p99_slack_ms: f64,
    /// Roll back when more than this share (0–1) of the window's
    /// comparisons of mirrored requests were mismatches. Default: none
    /// (mismatches are reported, not judged).
    pub max_mismatch_rate: Option<f64>,
    /// `"all"`, or `"safe"` (only GET, HEAD, OPTIONS and TRACE go to the
    /// shadow; writes stay with the primary). Default `"all"`.
    pub methods: MirrorMethods,
    /// Put this canary under a fleet controller (`parallax canary
    /// controller`): the replica stops judging, starts at weight 0, takes
    /// the weight the controller pushes, and falls back to 0 when no push
    /// came for this long, in seconds (1–3600). The thresholds above are
    /// then the controller's to apply. Default: none (judged here).
    pub controller_lease_secs: Option<f64>,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            weights_percent: vec![1.0, 5.0, 25.0, 50.0],
            step_secs: 300.0,
            window_secs: 30.0,
            min_requests: 200,
            max_error_rate_delta: 0.01,
            max_p99_ratio: 1.5,
            p99_slack_ms: 5.0,
            max_mismatch_rate: None,
            methods: MirrorMethods::All,
            controller_lease_secs: None,
        }
    }
}

impl CanaryConfig {
    /// The settings, or an error naming `field.<setting>`.
    pub fn validate(&self, field: &str) -> Result<CanarySettings, ConfigError> {
        if let Some(lease) = self.controller_lease_secs {
            if !(lease.is_finite() && (1.0..=3600.0).contains(&lease)) {
                return Err(invalid(
                    format_args!("{field}.controller_lease_secs"),
                    format_args!("{lease} is not within 1-3600 seconds (a few controller intervals, e.g. 30)"),
                ));
            }
        }
        if self.weights_percent.is_empty() {
            return Err(invalid(
                format_args!("{field}.weights_percent"),
                "empty; list at least one share, e.g. [1, 5, 25, 50]",
            ));
        }
        let mut weights_bps = Vec::with_capacity(self.weights_percent.len());
        for (i, w) in self.weights_percent.iter().enumerate() {
            if !(w.is_finite() && *w > 0.0 && *w <= 100.0) {
                return Err(invalid(
                    format_args!("{field}.weights_percent[{i}]"),
                    format_args!("{w} is not within 0 (exclusive) and 100"),
                ));
            }
            let bps = (w * 100.0).round() as u32;
            if weights_bps.last().is_some_and(|last| *last >= bps) {
                return Err(invalid(
                    format_args!("{field}.weights_percent[{i}]"),
                    format_args!("{w} is not larger than the step before it"),
                ));
            }
            weights_bps.push(bps);
        }
        if !(self.window_secs.is_finite() && self.window_secs >= 0.1) {
            return Err(invalid(
                format_args!("{field}.window_secs"),
                format_args!("{} is less than 0.1", self.window_secs),
            ));
        }
        if !(self.step_secs.is_finite() && self.step_secs >= self.window_secs) {
            return Err(invalid(
                format_args!("{field}.step_secs"),
                format_args!(
                    "{} is shorter than window_secs ({}): a step must hold a judged window",
                    self.step_secs, self.window_secs
                ),
            ));
        }
        if self.min_requests == 0 {
            return Err(invalid(
                format_args!("{field}.min_requests"),
                "0 would judge windows without evidence; e.g. 200",
            ));
        }
        if !(0.0..=1.0).contains(&self.max_error_rate_delta) {
            return Err(invalid(
                format_args!("{field}.max_error_rate_delta"),
                format_args!("{} is not within 0-1", self.max_error_rate_delta),
            ));
        }
        if !(self.max_p99_ratio.is_finite() && self.max_p99_ratio >= 1.0) {
            return Err(invalid(
                format_args!("{field}.max_p99_ratio"),
                format_args!("{} is less than 1", self.max_p99_ratio),
            ));
        }
        if !(self.p99_slack_ms.is_finite() && self.p99_slack_ms >= 0.0) {
            return Err(invalid(
                format_args!("{field}.p99_slack_ms"),
                format_args!("{} is negative", self.p99_slack_ms),
            ));
        }
        if let Some(rate) = self.max_mismatch_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(invalid(
                    format_args!("{field}.max_mismatch_rate"),
                    format_args!("{rate} is not within 0-1"),
                ));
            }
        }
        Ok(CanarySettings {
            weights_bps,
            step: Duration::from_secs_f64(self.step_secs),
            window: Duration::from_secs_f64(self.window_secs),
            min_requests: self.min_requests,
            max_error_rate_delta: self.max_error_rate_delta,
            max_p99_ratio: self.max_p99_ratio,
            p99_slack: Duration::from_secs_f64(self.p99_slack_ms / 1000.0),
            max_mismatch_rate: self.max_mismatch_rate,
            methods: self.methods,
            controller_lease: self.controller_lease_secs.map(Duration::from_secs_f64),
        })
    }
}

/// One route template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// `/v1/sessions/{id}`: literal segments and `{name}` placeholders that
    /// match exactly one non-empty segment. Used verbatim as the `route`
    /// label. Required.
    pub template: String,
    /// This route's compare rules, replacing the service's `compare`
    /// entirely. Default: the service's.
    pub compare: Option<CompareConfig>,
}

pub use parallax_compare::config::{CompareConfig, Replace};

/// A validated configuration, ready to run.
#[derive(Debug)]
pub struct Settings {
    pub admin_listen: SocketAddr,
    /// The admin API's bearer token, when configured.
    pub admin_token: Option<String>,
    /// A `parallax kafka-diff` admin listener whose join the explorer shows.
    pub kafka_diff_admin: Option<SocketAddr>,
    pub latency_window: Duration,
    pub shutdown_grace: Duration,
    pub services: Vec<ServiceSettings>,
}

/// An upstream address: `http://` plus an authority.
#[derive(Debug, Clone)]
pub struct UpstreamAddr {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// One validated service.
#[derive(Debug)]
pub struct ServiceSettings {
    pub name: String,
    pub listen: SocketAddr,
    pub reuse_port: bool,
    /// The listener's TLS, when `[services.tls]` is set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The client TLS of `https://` backends (none when no backend is https).
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// HTTP/2 to primary, shadow, secondary.
    pub http2: [bool; 3],
    pub primary: UpstreamAddr,
    pub shadow: UpstreamAddr,
    pub secondary: Option<UpstreamAddr>,
    pub primary_pid: Option<u32>,
    pub shadow_pid: Option<u32>,
    pub secondary_pid: Option<u32>,
    pub routes: RouteTable,
    /// Compare rules by route index; the last entry is `other`'s.
    pub rules: Vec<Rules>,
    pub sampler: Sampler,
    /// The sticky key of both the mirror sampling and the canary.
    pub sticky: Option<StickyKey>,
    pub methods: MirrorMethods,
    pub mirror_order: MirrorOrder,
    pub max_mirror_body_bytes: u64,
    pub max_compare_body_bytes: usize,
    pub shadow_timeout: Duration,
    pub shadow_max_in_flight: usize,
    pub shadow_marker_header: Option<HeaderName>,
    pub mismatch_samples: usize,
    pub mismatch_log: Option<PathBuf>,
    pub redact_headers: Vec<String>,
    pub redact_pointers: Vec<PointerGlob>,
    /// Query parameters redacted besides the credential names.
    pub redact_queries: Vec<String>,
    pub noise_window: usize,
    pub noise_relative_tolerance: f64,
    pub ws: WsSettings,
    pub canary: Option<CanarySettings>,
    pub record: Option<RecordSettings>,
}

/// A service's validated WebSocket settings.
#[derive(Debug, Clone)]
pub struct WsSettings {
    pub match_by: MatchBy,
    pub window: Duration,
    pub max_pending_frames: usize,
    pub max_pending_bytes: usize,
    pub shadow_max_queued_bytes: usize,
    /// The client configuration for `https://` upstreams spoken to as
    /// `wss://`: the service's `upstream_tls`, ALPN `http/1.1` only (an
    /// upgrade is an HTTP/1.1 request).
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text, &path.display().to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (not yet validated); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })
    }

    /// Checks every field and builds the settings the proxy runs on.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let admin_listen = socket_addr("admin_listen", &self.admin_listen)?;
        let admin_token = match &self.admin_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        "admin_token_file",
                        format_args!("cannot read {path:?}: {e}"),
                    )
                })?;
                let token = text.trim().to_owned();
                if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(invalid(
                        "admin_token_file",
                        format_args!(
                            "{path:?} must hold one token of at least 16 printable characters without spaces (e.g. `openssl rand -hex 32 > {path}`)"
                        ),
                    ));
                }
                Some(token)
            }
            None => None,
        };
        if admin_token.is_none() && !admin_listen.ip().is_loopback() {
            return Err(invalid(
                "admin_listen",
                format_args!(
                    "{admin_listen} is not a loopback address and the admin API serves mismatch samples and canary controls: set admin_token_file (e.g. `openssl rand -hex 32 > admin.token`) or listen on 127.0.0.1"
                ),
            ));
        }
        if !(6..=3600).contains(&self.latency_window_secs) {
            return Err(invalid(
                "latency_window_secs",
                format_args!("{} is not within 6-3600", self.latency_window_secs),
            ));
        }
        if self.services.is_empty() {
            return Err(invalid(
                "services",
                "no service configured; add at least one [[services]] table",
            ));
        }
        let mut names = HashSet::new();
        let mut listens = HashSet::new();
        let mut services = Vec::with_capacity(self.services.len());
        for (i, service) in self.services.iter().enumerate() {
            let field = format!("services[{i}]");
            let settings = service.validate(&field)?;
            if !names.insert(settings.name.clone()) {
                return Err(invalid(
                    format_args!("{field}.name"),
                    format_args!("{:?} is used by an earlier service", settings.name),
                ));
            }
            if settings.listen.port() != 0 && !listens.insert(settings.listen) {
                return Err(invalid(
                    format_args!("{field}.listen"),
                    format_args!("{} is used by an earlier service", settings.listen),
                ));
            }
            if admin_listen.port() != 0 && settings.listen == admin_listen {
                return Err(invalid(
                    format_args!("{field}.listen"),
                    format_args!("{} is the admin_listen address", settings.listen),
                ));
            }
            services.push(settings);
        }
        let kafka_diff_admin = self
            .kafka_diff_admin
            .as_deref()
            .map(|a| socket_addr("kafka_diff_admin", a))
            .transpose()?;
        Ok(Settings {
            admin_listen,
            admin_token,
            kafka_diff_admin,
            latency_window: Duration::from_secs(self.latency_window_secs),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            services,
        })
    }
}

impl ServiceConfig {
    fn validate(&self, field: &str) -> Result<ServiceSettings, ConfigError> {
        let name = &self.name;
        if name.is_empty() {
            return Err(invalid(
                format_args!("{field}.name"),
                "missing; every service needs a name for its metric labels",
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(invalid(
                format_args!("{field}.name"),
                format_args!("{name:?} may hold only A-Z a-z 0-9 _ - ."),
            ));
        }
        let listen = socket_addr(&format!("{field}.listen"), &self.listen)?;
        let primary = upstream(&format!("{field}.primary"), &self.primary)?;
        let shadow = upstream(&format!("{field}.shadow"), &self.shadow)?;
        let secondary = match &self.secondary {
            Some(s) => Some(upstream(&format!("{field}.secondary"), s)?),
            None => None,
        };
        let tls = self
            .tls
            .as_ref()
            .map(|t| crate::tls::server_config(&format!("{field}.tls"), t))
            .transpose()
            .map_err(|e| tls_error(&e))?;
        let any_https = [Some(&primary), Some(&shadow), secondary.as_ref()]
            .into_iter()
            .flatten()
            .any(|a| a.scheme == Scheme::HTTPS);
        let upstream_tls = match (&self.upstream_tls, any_https) {
            (Some(t), _) => Some(t.clone()),
            (None, true) => Some(crate::tls::UpstreamTlsConfig::default()),
            (None, false) => None,
        }
        .map(|t| crate::tls::client_config(&format!("{field}.upstream_tls"), &t))
        .transpose()
        .map_err(|e| tls_error(&e))?
        .map(Arc::new);
        if self.secondary_pid.is_some() && secondary.is_none() {
            return Err(invalid(
                format_args!("{field}.secondary_pid"),
                "set without a secondary",
            ));
        }
        if !(0.0..=100.0).contains(&self.mirror_percent) {
            return Err(invalid(
                format_args!("{field}.mirror_percent"),
                format_args!("{} is not within 0-100", self.mirror_percent),
            ));
        }
        let sticky = match &self.sticky_key {
            None => None,
            Some(key) => Some(StickyKey::parse(key).ok_or_else(|| {
                invalid(
                    format_args!("{field}.sticky_key"),
                    format_args!(
                        "{key:?} is neither \"path\" nor \"header:<name>\" with a valid header name"
                    ),
                )
            })?),
        };
        if self.shadow_timeout_ms == 0 {
            return Err(invalid(
                format_args!("{field}.shadow_timeout_ms"),
                "0 would time out every copy; use mirror_percent = 0 to stop mirroring",
            ));
        }
        if self.shadow_max_in_flight == 0 {
            return Err(invalid(
                format_args!("{field}.shadow_max_in_flight"),
                "0 would drop every copy; use mirror_percent = 0 to stop mirroring",
            ));
        }
        if self.max_compare_body_bytes > (1 << 30) {
            return Err(invalid(
                format_args!("{field}.max_compare_body_bytes"),
                format_args!(
                    "{} is more than 1073741824 (1 GiB)",
                    self.max_compare_body_bytes
                ),
            ));
        }
        let shadow_marker_header = match &self.shadow_marker_header {
            None => None,
            Some(h) => Some(HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                invalid(
                    format_args!("{field}.shadow_marker_header"),
                    format_args!("{h:?} is not a valid header name"),
                )
            })?),
        };
        if !(0.0..=1.0).contains(&self.noise_relative_tolerance) {
            return Err(invalid(
                format_args!("{field}.noise_relative_tolerance"),
                format_args!("{} is not within 0-1", self.noise_relative_tolerance),
            ));
        }
        if self.noise_window == 0 {
            return Err(invalid(
                format_args!("{field}.noise_window"),
                "must be at least 1",
            ));
        }

        let match_by = MatchBy::parse(&self.ws_match).ok_or_else(|| {
            invalid(
                format_args!("{field}.ws_match"),
                format_args!(
                    "{:?} is neither \"sequence\" nor a JSON pointer without globs (e.g. \"/id\")",
                    self.ws_match
                ),
            )
        })?;
        if self.ws_match_window_ms == 0 {
            return Err(invalid(
                format_args!("{field}.ws_match_window_ms"),
                "0 would count every message missing; give the shadow some time, e.g. 2000",
            ));
        }
        if self.ws_max_pending_frames == 0 {
            return Err(invalid(
                format_args!("{field}.ws_max_pending_frames"),
                "0 would leave nothing to compare; use mirror_percent = 0 to stop shadowing",
            ));
        }

        let record = match &self.record {
            Some(r) => Some(r.validate(&format!("{field}.record"))?),
            None => None,
        };
        let canary = match &self.canary {
            Some(c) => Some(c.validate(&format!("{field}.canary"))?),
            None => None,
        };

        let (routes, rules) = route_rules(&self.compare, &self.routes, &format!("{field}."))?;

        let mut redact_headers = Vec::new();
        let mut redact_pointers = Vec::new();
        let mut redact_queries = Vec::new();
        for (j, entry) in self.redact.iter().enumerate() {
            if let Some(h) = entry.strip_prefix("header:") {
                if HeaderName::from_bytes(h.as_bytes()).is_err() {
                    return Err(invalid(
                        format_args!("{field}.redact[{j}]"),
                        format_args!("{h:?} is not a valid header name"),
                    ));
                }
                redact_headers.push(h.to_ascii_lowercase());
            } else if let Some(q) = entry.strip_prefix("query:") {
                if q.is_empty() {
                    return Err(invalid(
                        format_args!("{field}.redact[{j}]"),
                        "\"query:\" needs a parameter name, e.g. \"query:tenant_key\"",
                    ));
                }
                redact_queries.push(q.to_ascii_lowercase());
            } else if entry.starts_with('/') {
                redact_pointers.push(PointerGlob::new(entry));
            } else {
                return Err(invalid(
                    format_args!("{field}.redact[{j}]"),
                    format_args!(
                        "{entry:?} is not \"header:<name>\", \"query:<name>\" or a JSON pointer starting with /"
                    ),
                ));
            }
        }

        Ok(ServiceSettings {
            name: name.clone(),
            listen,
            reuse_port: self.reuse_port,
            tls,
            upstream_tls: upstream_tls.clone(),
            http2: [self.primary_http2, self.shadow_http2, self.secondary_http2],
            primary,
            shadow,
            secondary,
            primary_pid: self.primary_pid,
            shadow_pid: self.shadow_pid,
            secondary_pid: self.secondary_pid,
            routes,
            rules,
            sampler: Sampler::new(self.mirror_percent, sticky.clone()),
            sticky,
            methods: self.mirror_methods,
            mirror_order: self.mirror_order,
            max_mirror_body_bytes: self.max_mirror_body_bytes,
            max_compare_body_bytes: self.max_compare_body_bytes as usize,
            shadow_timeout: Duration::from_millis(self.shadow_timeout_ms),
            shadow_max_in_flight: self.shadow_max_in_flight,
            shadow_marker_header,
            mismatch_samples: self.mismatch_samples,
            mismatch_log: self.mismatch_log.clone(),
            redact_headers,
            redact_pointers,
            redact_queries,
            noise_window: self.noise_window,
            noise_relative_tolerance: self.noise_relative_tolerance,
            ws: WsSettings {
                match_by,
                window: Duration::from_millis(self.ws_match_window_ms),
                max_pending_frames: self.ws_max_pending_frames,
                max_pending_bytes: self.ws_max_pending_bytes,
                shadow_max_queued_bytes: self.ws_shadow_max_queued_bytes,
                upstream_tls: upstream_tls.as_ref().map(|c| {
                    let mut c = (**c).clone();
                    c.alpn_protocols = vec![b"http/1.1".to_vec()];
                    Arc::new(c)
                }),
            },
            canary,
            record,
        })
    }
}

/// The route table and each route's rules (the last entry is `other`'s,
/// the `compare` table's), checked: templates present, not repeated, valid;
/// every `compare` table valid. Fields are named under `prefix`
/// (`"services[0]."`, or `""` for an experiment file).
pub fn route_rules(
    compare: &CompareConfig,
    routes: &[RouteConfig],
    prefix: &str,
) -> Result<(RouteTable, Vec<Rules>), ConfigError> {
    let default_rules = compare_rules(compare, &format!("{prefix}compare"))?;
    let mut templates = Vec::with_capacity(routes.len());
    let mut rules = Vec::with_capacity(routes.len() + 1);
    for (j, route) in routes.iter().enumerate() {
        let route_field = format!("{prefix}routes[{j}]");
        if route.template.is_empty() {
            return Err(invalid(
                format_args!("{route_field}.template"),
                "missing; e.g. \"/v1/orders/{id}\"",
            ));
        }
        if templates.contains(&route.template.as_str()) {
            return Err(invalid(
                format_args!("{route_field}.template"),
                format_args!("{:?} is listed twice", route.template),
            ));
        }
        templates.push(route.template.as_str());
        rules.push(match &route.compare {
            Some(c) => compare_rules(c, &format!("{route_field}.compare"))?,
            None => default_rules.clone(),
        });
    }
    rules.push(default_rules);
    let table = RouteTable::new(&templates)
        .map_err(|(j, reason)| invalid(format_args!("{prefix}routes[{j}].template"), reason))?;
    Ok((table, rules))
}

/// A TLS error (`"<field>: <reason>"`) as a configuration error.
fn tls_error(e: &str) -> ConfigError {
    match e.split_once(": ") {
        Some((field, reason)) => invalid(field, reason),
        None => invalid("tls", e),
    }
}

/// The rules of one `compare` table, with its error in the proxy's terms.
fn compare_rules(compare: &CompareConfig, field: &str) -> Result<Rules, ConfigError> {
    compare.rules(field).map_err(|e| invalid(e.field, e.reason))
}

fn socket_addr(field: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    if value.is_empty() {
        return Err(invalid(field, "missing; e.g. \"127.0.0.1:8080\""));
    }
    value.parse().map_err(|_| {
        invalid(
            field,
            format_args!("{value:?} is not an IP address and port (e.g. \"127.0.0.1:8080\")"),
        )
    })
}

fn upstream(field: &str, value: &str) -> Result<UpstreamAddr, ConfigError> {
    if value.is_empty() {
        return Err(invalid(field, "missing; e.g. \"http://127.0.0.1:8080\""));
    }
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let uri: http::Uri = with_scheme.parse().map_err(|_| {
        invalid(
            field,
            format_args!("{value:?} is not an upstream address (e.g. \"http://127.0.0.1:8080\")"),
        )
    })?;
    let scheme = match uri.scheme() {
        Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => s.clone(),
        _ => {
            return Err(invalid(
                field,
                format_args!("{value:?}: upstreams are http:// or https://"),
            ))
        }
    };
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(invalid(
            field,
            format_args!("{value:?} has a path; give only the scheme, host and port"),
        ));
    }
    let authority = uri
        .authority()
        .filter(|a| a.port_u16().is_some())
        .cloned()
        .ok_or_else(|| invalid(field, format_args!("{value:?} has no port")))?;
    Ok(UpstreamAddr { scheme, authority })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[services]]
        name = "cache"
        listen = "127.0.0.1:0"
        primary = "http://127.0.0.1:8081"
        shadow = "127.0.0.1:8082"
    "#;

    fn error(text: &str) -> String {
        match Config::parse(text, "parallax.toml").and_then(|c| c.validate().map(drop)) {
            Ok(()) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    fn with(extra: &str) -> String {
        format!("{MINIMAL}\n{extra}")
    }

    #[test]
    fn a_non_loopback_admin_listener_needs_a_token_file() {
        let open = |extra: &str| format!("admin_listen = \"0.0.0.0:9901\"\n{extra}\n{MINIMAL}");
        let e = error(&open(""));
        assert!(
            e.starts_with("admin_listen: 0.0.0.0:9901 is not a loopback address"),
            "{e}"
        );
        assert!(e.contains("admin_token_file"), "{e}");
        let e = error(&open("admin_token_file = \"/nonexistent/token\""));
        assert!(e.starts_with("admin_token_file: cannot read"), "{e}");
        let path = std::env::temp_dir().join(format!("parallax-token-{}", std::process::id()));
        std::fs::write(&path, "short\n").unwrap();
        let e = error(&open(&format!(
            "admin_token_file = {:?}",
            path.display().to_string()
        )));
        assert!(e.contains("at least 16"), "{e}");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        let text = open(&format!(
            "admin_token_file = {:?}",
            path.display().to_string()
        ));
        let settings = Config::parse(&text, "t").unwrap().validate().unwrap();
        assert_eq!(
            settings.admin_token.as_deref(),
            Some("0123456789abcdef0123")
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn query_redactions_need_a_name() {
        let e = error(&with("redact = [\"query:\"]"));
        assert!(e.starts_with("services[0].redact[0]: "), "{e}");
        let config = Config::parse(&with("redact = [\"query:Tenant_Key\"]"), "t").unwrap();
        assert_eq!(
            config.validate().unwrap().services[0].redact_queries,
            ["tenant_key"]
        );
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let config = Config::parse(MINIMAL, "t").unwrap();
        assert_eq!(config.admin_listen, "127.0.0.1:9901");
        let s = &config.services[0];
        assert_eq!(s.mirror_percent, 100.0);
        assert_eq!(s.mirror_methods, MirrorMethods::All);
        assert_eq!(s.max_mirror_body_bytes, 1048576);
        assert_eq!(s.shadow_timeout_ms, 1000);
        assert_eq!(s.shadow_max_in_flight, 256);
        assert_eq!(s.mismatch_samples, 20);
        assert_eq!(s.compare.headers, ["content-type"]);
        let settings = config.validate().unwrap();
        assert_eq!(
            settings.services[0].shadow.to_string(),
            "http://127.0.0.1:8082"
        );
        assert_eq!(settings.services[0].rules.len(), 1, "only `other`");
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../parallax.example.toml");
        let config = Config::parse(text, "parallax.example.toml").unwrap();
        let settings = config.validate().unwrap();
        assert_eq!(settings.services.len(), 3);
        assert!(settings.services[2].reuse_port);
        assert_eq!(settings.services[0].routes.label(0), "/v1/events");
        assert!(settings.services[1].canary.is_some());
    }

    #[test]
    fn a_record_table_gets_the_documented_defaults_and_errors_name_its_fields() {
        let settings = Config::parse(&with("[services.record]\npath = \"cap/x.plxcap\""), "t")
            .unwrap()
            .validate()
            .unwrap();
        let r = settings.services[0].record.clone().unwrap();
        assert_eq!(r.sample_percent, 100.0);
        assert_eq!(r.rotation.max_file_bytes, 256 << 20);
        assert_eq!(r.max_body_bytes, 1 << 20);
        assert_eq!(r.flush_interval, Duration::from_secs(1));
        let e = error(&with("[services.record]"));
        assert!(e.starts_with("services[0].record.path: missing"), "{e}");
        let e = error(&with(
            "[services.record]\npath = \"x\"\nmax_file_bytes = 10",
        ));
        assert!(e.starts_with("services[0].record.max_file_bytes: "), "{e}");
        let e = error(&with("[services.record]\npath = \"x\"\nsample = 5"));
        assert!(e.contains("unknown field `sample`"), "{e}");
    }

    #[test]
    fn an_out_of_range_percent_names_the_field() {
        assert_eq!(
            error(&with("mirror_percent = 150")),
            "services[0].mirror_percent: 150 is not within 0-100"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = error(&with("mirror_precent = 5"));
        assert!(e.contains("mirror_precent"), "{e}");
        assert!(e.starts_with("parallax.toml: "), "{e}");
    }

    #[test]
    fn missing_required_fields_are_named() {
        let e = error(
            "[[services]]\nname = \"x\"\nlisten = \"127.0.0.1:0\"\nprimary = \"127.0.0.1:1\"",
        );
        assert!(e.starts_with("services[0].shadow: missing"), "{e}");
        assert!(error("admin_listen = \"127.0.0.1:1\"").starts_with("services: "));
    }

    #[test]
    fn a_canary_table_gets_the_documented_defaults() {
        let settings = Config::parse(&with("[services.canary]"), "t")
            .unwrap()
            .validate()
            .unwrap();
        let c = settings.services[0].canary.clone().unwrap();
        assert_eq!(c.weights_bps, [100, 500, 2500, 5000]);
        assert_eq!(c.step, Duration::from_secs(300));
        assert_eq!(c.window, Duration::from_secs(30));
        assert_eq!(c.min_requests, 200);
        assert_eq!(c.max_error_rate_delta, 0.01);
        assert_eq!(c.max_p99_ratio, 1.5);
        assert_eq!(c.p99_slack, Duration::from_millis(5));
        assert_eq!(c.max_mismatch_rate, None);
        assert_eq!(c.methods, MirrorMethods::All);
        let none = Config::parse(MINIMAL, "t").unwrap().validate().unwrap();
        assert!(none.services[0].canary.is_none());
    }

    #[test]
    fn canary_errors_name_the_field() {
        let canary = |body: &str| error(&with(&format!("[services.canary]\n{body}")));
        let e = canary("weights_percent = []");
        assert!(
            e.starts_with("services[0].canary.weights_percent: empty"),
            "{e}"
        );
        let e = canary("weights_percent = [5, 5]");
        assert!(
            e.starts_with("services[0].canary.weights_percent[1]: "),
            "{e}"
        );
        assert!(e.contains("not larger"), "{e}");
        let e = canary("weights_percent = [150]");
        assert!(
            e.starts_with("services[0].canary.weights_percent[0]: "),
            "{e}"
        );
        let e = canary("window_secs = 60\nstep_secs = 30");
        assert!(e.starts_with("services[0].canary.step_secs: "), "{e}");
        let e = canary("min_requests = 0");
        assert!(e.starts_with("services[0].canary.min_requests: "), "{e}");
        let e = canary("max_p99_ratio = 0.5");
        assert!(e.starts_with("services[0].canary.max_p99_ratio: "), "{e}");
        let e = canary("max_mismatch_rate = 2");
        assert!(
            e.starts_with("services[0].canary.max_mismatch_rate: "),
            "{e}"
        );
        let e = canary("weight = 5");
        assert!(e.contains("unknown field `weight`"), "{e}");
    }

    #[test]
    fn bad_addresses_are_named() {
        let e = error(&MINIMAL.replace("127.0.0.1:8082", "ftp://x:1"));
        assert!(e.starts_with("services[0].shadow: "), "{e}");
        assert!(e.contains("http:// or https://"), "{e}");
        let e = error(&MINIMAL.replace("127.0.0.1:0", "localhost"));
        assert!(e.starts_with("services[0].listen: "), "{e}");
        let e = error(&MINIMAL.replace("http://127.0.0.1:8081", "http://h:1/api"));
        assert!(e.contains("has a path"), "{e}");
    }

    #[test]
    fn compare_rule_errors_name_the_route_and_entry() {
        let e = error(&with(
            r#"
            [[services.routes]]
            template = "/v1/events"
            [[services.routes]]
            template = "/v1/x/{id}"
            compare = { replace = [{ pattern = "(", with = "" }] }
            "#,
        ));
        assert!(
            e.starts_with("services[0].routes[1].compare.replace[0].pattern: "),
            "{e}"
        );
        let e = error(&with(
            "[[services.routes]]\ntemplate = \"/a\"\ncompare = { protobuf_message = \"no.Such\" }",
        ));
        assert!(
            e.starts_with("services[0].routes[0].compare.protobuf_message: "),
            "{e}"
        );
    }

    #[test]
    fn bad_templates_and_duplicates_are_named() {
        let e = error(&with("[[services.routes]]\ntemplate = \"v1/x\""));
        assert!(e.starts_with("services[0].routes[0].template: "), "{e}");
        let e = error(&with(
            "[[services.routes]]\ntemplate = \"/a\"\n[[services.routes]]\ntemplate = \"/a\"",
        ));
        assert!(e.starts_with("services[0].routes[1].template: "), "{e}");
    }

    #[test]
    fn sticky_keys_and_redactions_are_checked() {
        let e = error(&with("sticky_key = \"cookie\""));
        assert!(e.starts_with("services[0].sticky_key: "), "{e}");
        let e = error(&with("redact = [\"/ok\", \"email\"]"));
        assert!(e.starts_with("services[0].redact[1]: "), "{e}");
    }

    #[test]
    fn duplicate_service_names_are_refused() {
        let e = error(&format!("{MINIMAL}\n{}", MINIMAL.replace("8081", "9")));
        assert!(e.starts_with("services[1].name: "), "{e}");
    }

    #[test]
    fn a_wrong_method_policy_shows_the_choices() {
        let e = error(&with("mirror_methods = \"some\""));
        assert!(e.contains("mirror_methods"), "{e}");
        assert!(e.contains("`all`") && e.contains("`safe`"), "{e}");
    }

    #[test]
    fn the_mirror_order_defaults_to_unordered_and_shows_the_choices() {
        let config = Config::parse(MINIMAL, "t").unwrap();
        assert_eq!(config.services[0].mirror_order, MirrorOrder::Unordered);
        let config = Config::parse(&with("mirror_order = \"alternate\""), "t").unwrap();
        assert_eq!(config.services[0].mirror_order, MirrorOrder::Alternate);
        let e = error(&with("mirror_order = \"together\""));
        assert!(e.contains("mirror_order"), "{e}");
        assert!(
            e.contains("`unordered`") && e.contains("`alternate`"),
            "{e}"
        );
    }

    #[test]
    fn websocket_settings_default_and_are_checked() {
        let config = Config::parse(MINIMAL, "t").unwrap();
        let s = &config.services[0];
        assert_eq!(s.ws_match, "/id");
        assert_eq!(s.ws_match_window_ms, 2000);
        assert_eq!(s.ws_max_pending_frames, 64);
        assert_eq!(s.ws_max_pending_bytes, 65536);
        assert_eq!(s.ws_shadow_max_queued_bytes, 65536);
        assert!(!s.reuse_port);
        let e = error(&with("ws_match = \"id\""));
        assert!(e.starts_with("services[0].ws_match: "), "{e}");
        let e = error(&with("ws_match = \"/**/id\""));
        assert!(e.starts_with("services[0].ws_match: "), "{e}");
        let e = error(&with("ws_match_window_ms = 0"));
        assert!(e.starts_with("services[0].ws_match_window_ms: "), "{e}");
        let settings = Config::parse(&with("ws_match = \"sequence\""), "t")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(settings.services[0].ws.match_by, MatchBy::Sequence);
    }

    #[test]
    fn zero_limits_explain_the_alternative() {
        let e = error(&with("shadow_max_in_flight = 0"));
        assert!(e.contains("mirror_percent = 0"), "{e}");
    }
}

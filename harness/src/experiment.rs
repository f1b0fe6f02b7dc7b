//! The experiment file: two (or three) backends of your own, the traffic to
//! send them, how to load them, how to compare their answers and the gate's
//! budgets, as TOML. `docs/experiments.md` is its user guide and lists every
//! field with its default; this module is the one place that parses and
//! checks it.
//!
//! Parsing is strict (`deny_unknown_fields`: a misspelt key is an error
//! naming it). [`Experiment::load`] then checks what the types cannot, and
//! every error names the field (`candidate.command[2]`,
//! `traffic.requests[1].path`) and says how to fix it, as the proxy's
//! configuration does.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use parallax_compare::config::CompareConfig;
use parallax_proxy::config::RouteConfig;
use parallax_report::BudgetSpec;
use serde::Deserialize;

use crate::traffic::{self, Template, ValueSpec};

/// An experiment file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, a misspelt key or a value of the wrong type: the parser's
    /// message shows the line and the key.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// A value that parses but cannot be used.
    #[error("{origin}: {field}: {reason}")]
    Invalid {
        origin: String,
        field: String,
        reason: String,
    },
}

/// A field and what is wrong with it, before the file's name is attached.
#[derive(Debug)]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

pub(crate) fn invalid(field: impl fmt::Display, reason: impl fmt::Display) -> Invalid {
    Invalid {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// The scenario's name in results and tables, `[A-Za-z0-9_.-]+`.
    /// Default: the file's name without `.toml`.
    #[serde(default)]
    pub name: Option<String>,
    /// What one counted request is called in tables. Default `"requests"`.
    #[serde(default = "default_unit")]
    pub unit: String,
    /// What the candidate is measured against (the Go service).
    pub baseline: Backend,
    /// What is being judged (the Rust rewrite).
    pub candidate: Backend,
    /// A second instance of the baseline, for noise cancellation in shadow
    /// mode: a field that differs between baseline and secondary as often as
    /// between baseline and candidate is noise, not a mismatch. Default: none.
    #[serde(default)]
    pub secondary: Option<Backend>,
    /// What to send.
    #[serde(default)]
    pub traffic: Traffic,
    /// How fast, how long, and through what.
    #[serde(default)]
    pub load: Load,
    /// How answers are compared: the proxy's `[services.compare]` table,
    /// the same type. Default: status, `content-type` and the body.
    #[serde(default)]
    pub compare: CompareConfig,
    /// Route templates: the proxy's `[[services.routes]]`, the same type.
    /// Latency and mismatches are reported per route. Default: none (all
    /// traffic is the route `other`).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The gate's budgets (`parallax gate` flags override them).
    #[serde(default)]
    pub budgets: BudgetSpec,
    /// Side effects compared besides the answers. Default: none.
    #[serde(default)]
    pub side_effects: SideEffects,
    /// Where the file was read from (relative `dir`, `body_file` resolve
    /// against its directory).
    #[serde(skip)]
    pub origin: PathBuf,
}

fn default_unit() -> String {
    "requests".into()
}

/// `[side_effects]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideEffects {
    /// The records each side writes to Kafka, joined after the run.
    #[serde(default)]
    pub kafka: Option<KafkaSideEffects>,
}

/// `[side_effects.kafka]`: each side writes its own topic; after the run
/// both are read from the beginning and joined record by record
/// (`parallax-kafka-diff`): matched, missing in the candidate's, extra in
/// the candidate's, different.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSideEffects {
    /// Bootstrap brokers. Default: `$PARALLAX_KAFKA_BROKERS`, else
    /// `127.0.0.1:9092`. Commands may use it as `{brokers}`.
    #[serde(default)]
    pub brokers: Option<String>,
    /// The baseline's topic; `{run}` (unique per run) keeps runs apart.
    pub baseline_topic: String,
    /// The candidate's topic.
    pub candidate_topic: String,
    /// How records pair: `"header:NAME"` (the first header of that name)
    /// or `"value:/json/pointer"` (a field of the value decoded as
    /// `value_message`, e.g. `"value:/eventId"`; without a message the
    /// value is read as JSON). Default `"header:event-id"`.
    #[serde(default = "event_id_join")]
    pub join: String,
    /// Fully qualified protobuf message of the values (of this project's
    /// `.proto` files), compared field by field; without it values compare
    /// as bytes. Default: none.
    #[serde(default)]
    pub value_message: Option<String>,
}

fn event_id_join() -> String {
    "header:event-id".into()
}

impl KafkaSideEffects {
    /// `join` as the differ's join key.
    pub fn join_key(&self) -> Result<parallax_kafka_diff::JoinKey, Invalid> {
        let field = "side_effects.kafka.join";
        let fix = "give \"header:NAME\" (e.g. \"header:event-id\") or \"value:/json/pointer\" (e.g. \"value:/eventId\")";
        match self.join.split_once(':') {
            Some(("header", name)) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                Ok(parallax_kafka_diff::JoinKey::Header(name.to_owned()))
            }
            Some(("value", pointer)) if pointer.starts_with('/') && pointer.len() > 1 => {
                Ok(parallax_kafka_diff::JoinKey::ValueField(pointer.to_owned()))
            }
            _ => Err(invalid(field, format_args!("{:?}: {fix}", self.join))),
        }
    }

    /// The brokers to use.
    pub fn brokers(&self) -> String {
        self.brokers.clone().unwrap_or_else(|| {
            std::env::var("PARALLAX_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
        })
    }

    fn validate(&self) -> Result<(), Invalid> {
        let f = "side_effects.kafka";
        for (key, topic) in [
            ("baseline_topic", &self.baseline_topic),
            ("candidate_topic", &self.candidate_topic),
        ] {
            if topic.is_empty() {
                return Err(invalid(
                    format_args!("{f}.{key}"),
                    "empty; e.g. \"events-{run}-go\"",
                ));
            }
            check_placeholders(&format!("{f}.{key}"), topic)?;
        }
        if self.baseline_topic == self.candidate_topic {
            return Err(invalid(
                format_args!("{f}.candidate_topic"),
                "is the baseline's topic; each side must write its own to be joined",
            ));
        }
        self.join_key()?;
        if let Some(m) = &self.value_message {
            if parallax_compare::protobuf::project()
                .get_message_by_name(m)
                .is_none()
            {
                return Err(invalid(
                    format_args!("{f}.value_message"),
                    format_args!("{m:?} is not a message of the project's .proto files"),
                ));
            }
        }
        if let Some(b) = &self.brokers {
            if b.is_empty() {
                return Err(invalid(
                    format_args!("{f}.brokers"),
                    "empty; e.g. \"127.0.0.1:9092\"",
                ));
            }
        }
        Ok(())
    }
}

/// One backend: a command the runner starts, or a URL of one already running.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backend {
    /// Label in tables and results. Default `"baseline"`, `"candidate"`,
    /// `"secondary"`.
    pub name: Option<String>,
    /// Free text for the report (`go`, `rust`). Default: empty.
    pub language: String,
    /// argv of the service, with placeholders `{port}` (a free port the
    /// runner picks), `{listen}` (`127.0.0.1:{port}`), `{url}`
    /// (`http://127.0.0.1:{port}`), `{name}` and `{dir}` (the experiment
    /// file's directory). Either this or `url`.
    pub command: Vec<String>,
    /// Environment added to the command's (placeholders allowed).
    pub env: BTreeMap<String, String>,
    /// Working directory of `command` and `build`. Default: the experiment
    /// file's directory; relative paths are relative to it.
    pub dir: Option<PathBuf>,
    /// argv run once before starting (e.g. `["go", "build", "-o", "bin/orders", "."]`);
    /// a failure stops the run. Default: none.
    pub build: Vec<String>,
    /// A fixed port instead of a free one. Default: a free one.
    pub port: Option<u16>,
    /// Ready when `GET <this path>` answers 2xx (e.g. `"/healthz"`).
    pub ready: Option<String>,
    /// Ready when a line of its output (stdout or stderr) matches this regex.
    pub ready_log: Option<String>,
    /// Ready when its port accepts a TCP connection. The default when
    /// neither `ready` nor `ready_log` is given.
    pub ready_tcp: Option<bool>,
    /// How long it may take to become ready. Default `30`.
    pub ready_timeout_secs: Option<f64>,
    /// A backend already running, `http://host:port`. Either this or `command`.
    pub url: Option<String>,
    /// With `url`: its process id, for CPU and RSS from `/proc`. Default: none.
    pub pid: Option<u32>,
    /// With `url` and no `pid`: the path of its Prometheus metrics, read for
    /// `process_cpu_seconds_total` and `process_resident_memory_bytes`;
    /// `""` turns it off. Default `"/metrics"`. Without either, CPU and RSS
    /// are reported as not measured.
    pub metrics: Option<String>,
}

/// `[traffic]`: weighted request templates and the values they draw.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Traffic {
    /// Seeds every value generator and the choice of template, so a run can
    /// be repeated request for request. Default `1`.
    pub seed: Option<u64>,
    /// Named value generators, used as `{{name}}` in paths, headers and
    /// bodies. Default: none.
    pub values: BTreeMap<String, ValueSpec>,
    /// The request templates, at least one (unless `grpc` is given).
    pub requests: Vec<Template>,
    /// Unary gRPC calls instead of HTTP requests (`crate::grpc`).
    /// Default: none.
    pub grpc: Option<crate::grpc::GrpcTraffic>,
    /// WebSocket sessions held open while `requests` make the server
    /// publish (`crate::wsrun`). Default: none.
    pub websocket: Option<crate::traffic::WebSocketTraffic>,
    /// A recorded capture replayed in recorded order instead of request
    /// templates (`crate::capture_source`). Default: none.
    pub capture: Option<crate::capture_source::CaptureTraffic>,
}

/// How the backends are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModeName {
    /// Through `parallax proxy`: the baseline answers, the candidate gets a
    /// copy of every request, answers are compared.
    #[default]
    Shadow,
    /// Each backend alone in turn, A B B A.
    Direct,
    /// The baseline against a second instance of itself.
    Aa,
}

/// `[load]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Load {
    /// `"shadow"`, `"direct"` or `"aa"`. Default `"shadow"`.
    pub mode: ModeName,
    /// Requests per second (open model: sent on schedule whatever the
    /// answers' speed). Default `100`.
    pub rate: f64,
    /// Measured seconds. Default `10`.
    pub duration_secs: f64,
    /// Seconds of load before measuring, in no figure. Default `2`.
    pub warmup_secs: f64,
    /// Rate steps run one after another, each measured on its own (one
    /// scenario each, named `<name>@<rate>/s`); they replace `rate` and
    /// `duration_secs`. Default: none.
    pub steps: Vec<Step>,
    /// The most requests in flight at once. Default `32`.
    pub connections: usize,
    /// A request without an answer after this long is an error. Default `10000`.
    pub timeout_ms: u64,
    /// In shadow mode: how long the candidate may take before its copy
    /// counts as a timeout (not compared). Default `5000`.
    pub shadow_timeout_ms: u64,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            mode: ModeName::Shadow,
            rate: 100.0,
            duration_secs: 10.0,
            warmup_secs: 2.0,
            steps: Vec::new(),
            connections: 32,
            timeout_ms: 10_000,
            shadow_timeout_ms: 5_000,
        }
    }
}

/// One rate step.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Requests per second.
    pub rate: f64,
    /// Measured seconds at that rate.
    pub duration_secs: f64,
}

/// Which backend of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Baseline,
    Candidate,
    Secondary,
}

impl Side {
    pub fn field(self) -> &'static str {
        match self {
            Side::Baseline => "baseline",
            Side::Candidate => "candidate",
            Side::Secondary => "secondary",
        }
    }
}

impl Experiment {
    /// Reads, parses and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut experiment = Self::parse(&text, &path.display().to_string())?;
        experiment.origin = path.to_owned();
        experiment
            .validate()
            .and_then(|()| crate::capture_source::settle(&mut experiment))
            .map_err(|e| ExperimentError::Invalid {
                origin: path.display().to_string(),
                field: e.field,
                reason: e.reason,
            })?;
        Ok(experiment)
    }

    /// Parses TOML text (not yet checked); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ExperimentError> {
        toml::from_str(text).map_err(|e| ExperimentError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })
    }

    /// The scenario name: `name`, else the file's stem.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.origin
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "experiment".into())
        })
    }

    /// The experiment file's directory (relative paths resolve against it).
    pub fn dir(&self) -> PathBuf {
        match self.origin.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// The backend on `side` (`None`: no secondary).
    pub fn backend(&self, side: Side) -> Option<&Backend> {
        match side {
            Side::Baseline => Some(&self.baseline),
            Side::Candidate => Some(&self.candidate),
            Side::Secondary => self.secondary.as_ref(),
        }
    }

    /// The rate steps to run: `steps`, or one of `rate` for `duration_secs`.
    pub fn steps(&self) -> Vec<Step> {
        if self.load.steps.is_empty() {
            vec![Step {
                rate: self.load.rate,
                duration_secs: self.load.duration_secs,
            }]
        } else {
            self.load.steps.clone()
        }
    }

    /// Checks what the types cannot; the first problem found, by field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let name = self.name();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            let whence = if self.name.is_some() {
                ""
            } else {
                " (taken from the file's name; set `name` to choose another)"
            };
            return Err(invalid(
                "name",
                format_args!("{name:?} may hold only A-Z a-z 0-9 _ - . (e.g. \"orders\"){whence}"),
            ));
        }
        self.baseline.validate("baseline")?;
        self.candidate.validate("candidate")?;
        if let Some(s) = &self.secondary {
            s.validate("secondary")?;
        }
        let names: Vec<String> = [Side::Baseline, Side::Candidate, Side::Secondary]
            .into_iter()
            .filter_map(|side| self.backend(side).map(|b| b.label(side)))
            .collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(invalid(
                    format_args!("{}.name", ["baseline", "candidate", "secondary"][i]),
                    format_args!("{n:?} is already another backend's name; give each its own"),
                ));
            }
        }
        self.load.validate()?;
        if let Some(k) = &self.side_effects.kafka {
            k.validate()?;
        }
        traffic::validate(&self.traffic, &self.dir())?;
        parallax_proxy::config::route_rules(&self.compare, &self.routes, "").map_err(
            |e| match e {
                parallax_proxy::config::ConfigError::Invalid { field, reason } => {
                    invalid(field, reason)
                }
                other => invalid("routes", other),
            },
        )?;
        for (name, value) in [
            ("max_p99_ratio", self.budgets.max_p99_ratio),
            ("max_p50_ratio", self.budgets.max_p50_ratio),
            ("max_rss_ratio", self.budgets.max_rss_ratio),
            ("max_cpu_ratio", self.budgets.max_cpu_ratio),
        ] {
            if let Some(Some(v)) = value {
                if v <= 0.0 {
                    return Err(invalid(
                        format_args!("budgets.{name}"),
                        format_args!("{v} is not a ratio above 0 (e.g. 1.5), or \"off\""),
                    ));
                }
            }
        }
        for (name, value) in [
            ("max_mismatch_rate", self.budgets.max_mismatch_rate),
            ("max_error_rate", self.budgets.max_error_rate),
            ("max_late_rate", self.budgets.max_late_rate),
        ] {
            if let Some(Some(v)) = value {
                if v > 1.0 {
                    return Err(invalid(
                        format_args!("budgets.{name}"),
                        format_args!("{v} is not a share within 0-1 (e.g. 0.001), or \"off\""),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The parts of an experiment file a plain load test needs (`parallax load
/// http --experiment FILE`): its traffic, routes and load; the backends and
/// the rest are ignored, so a file with only these works too.
#[derive(Debug, Clone)]
pub struct TrafficFile {
    pub traffic: Traffic,
    pub routes: Vec<RouteConfig>,
    pub load: Load,
    /// The file's directory (`body_file` resolves against it).
    pub dir: PathBuf,
    /// `name`, else the file's stem.
    pub name: String,
}

impl TrafficFile {
    /// Reads `path` and checks its traffic section.
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        #[derive(Deserialize)]
        struct Parts {
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            traffic: Traffic,
            #[serde(default)]
            routes: Vec<RouteConfig>,
            #[serde(default)]
            load: Load,
        }
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parts: Parts = toml::from_str(&text).map_err(|e| ExperimentError::Parse {
            path: origin.clone(),
            message: e.to_string(),
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let checked = traffic::validate(&parts.traffic, &dir).and_then(|()| parts.load.validate());
        if let Err(e) = checked {
            return Err(ExperimentError::Invalid {
                origin,
                field: e.field,
                reason: e.reason,
            });
        }
        let name = parts.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "http".into())
        });
        Ok(Self {
            traffic: parts.traffic,
            routes: parts.routes,
            load: parts.load,
            dir,
            name,
        })
    }
}

impl Backend {
    /// The label in tables: `name`, else the side's name.
    pub fn label(&self, side: Side) -> String {
        self.name.clone().unwrap_or_else(|| side.field().to_owned())
    }

    /// How long it may take to become ready.
    pub fn ready_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.ready_timeout_secs.unwrap_or(30.0))
    }

    fn validate(&self, field: &str) -> Result<(), Invalid> {
        if let Some(name) = &self.name {
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(invalid(
                    format_args!("{field}.name"),
                    format_args!("{name:?} must be a non-empty word (e.g. \"go\")"),
                ));
            }
        }
        match (&self.url, self.command.is_empty()) {
            (Some(_), false) => {
                return Err(invalid(
                    field,
                    "has both `command` and `url`; give `command` for a service the runner \
                     starts, or `url` for one already running",
                ))
            }
            (None, true) => {
                return Err(invalid(
                    format_args!("{field}.command"),
                    "missing; give the argv that starts the service, e.g. \
                     [\"./orders\", \"--listen\", \"{listen}\"], or `url = \"http://host:port\"` \
                     for one already running",
                ))
            }
            _ => {}
        }
        if let Some(url) = &self.url {
            let rest = url.strip_prefix("http://").ok_or_else(|| {
                invalid(
                    format_args!("{field}.url"),
                    format_args!("{url:?}: give an http:// URL, e.g. \"http://10.0.0.5:8080\""),
                )
            })?;
            let authority = rest.trim_end_matches('/');
            if authority.contains('/') || !authority.contains(':') {
                return Err(invalid(
                    format_args!("{field}.url"),
                    format_args!(
                        "{url:?}: give scheme, host and port only, e.g. \"http://10.0.0.5:8080\""
                    ),
                ));
            }
            for (key, set) in [
                ("command", !self.command.is_empty()),
                ("build", !self.build.is_empty()),
                ("env", !self.env.is_empty()),
                ("dir", self.dir.is_some()),
                ("port", self.port.is_some()),
                ("ready_log", self.ready_log.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        format_args!("{field}.{key}"),
                        "only applies to a backend the runner starts (`command`), not to `url`",
                    ));
                }
            }
            if let Some(m) = &self.metrics {
                if !(m.is_empty() || m.starts_with('/')) {
                    return Err(invalid(
                        format_args!("{field}.metrics"),
                        format_args!("{m:?} is not a path; e.g. \"/metrics\", or \"\" for none"),
                    ));
                }
            }
        } else {
            for (key, set) in [
                ("pid", self.pid.is_some()),
                ("metrics", self.metrics.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        format_args!("{field}.{key}"),
                        "only applies to a backend given by `url`; the runner measures the \
                         processes it starts itself",
                    ));
                }
            }
            if self.command[0].is_empty() {
                return Err(invalid(
                    format_args!("{field}.command[0]"),
                    "empty program name",
                ));
            }
            let says_port =
                |s: &String| s.contains("{port}") || s.contains("{listen}") || s.contains("{url}");
            if self.port.is_none()
                && !self.command.iter().any(says_port)
                && !self.env.values().any(says_port)
            {
                return Err(invalid(
                    format_args!("{field}.command"),
                    "never says where to listen: put {port} or {listen} in the command or in \
                     `env` (e.g. env = { PORT = \"{port}\" }), or set a fixed `port`",
                ));
            }
            for (i, arg) in self.command.iter().enumerate() {
                check_placeholders(&format!("{field}.command[{i}]"), arg)?;
            }
            for (k, v) in &self.env {
                check_placeholders(&format!("{field}.env.{k}"), v)?;
            }
            if let Some(b) = self.build.first() {
                if b.is_empty() {
                    return Err(invalid(
                        format_args!("{field}.build[0]"),
                        "empty program name",
                    ));
                }
            }
            if let Some(pattern) = &self.ready_log {
                if let Err(e) = regex::Regex::new(pattern) {
                    return Err(invalid(
                        format_args!("{field}.ready_log"),
                        format_args!("{pattern:?} is not a valid regex: {e}"),
                    ));
                }
            }
        }
        let ways = [
            self.ready.is_some(),
            self.ready_log.is_some(),
            self.ready_tcp == Some(true),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Err(invalid(
                field,
                "give one readiness check: `ready` (an HTTP path), `ready_log` (a regex) or \
                 `ready_tcp = true`",
            ));
        }
        if let Some(path) = &self.ready {
            if !path.starts_with('/') {
                return Err(invalid(
                    format_args!("{field}.ready"),
                    format_args!("{path:?} is not a path; e.g. \"/healthz\""),
                ));
            }
        }
        if let Some(t) = self.ready_timeout_secs {
            if !(t.is_finite() && t > 0.0) {
                return Err(invalid(
                    format_args!("{field}.ready_timeout_secs"),
                    format_args!("{t} is not a positive number of seconds (e.g. 30)"),
                ));
            }
        }
        Ok(())
    }
}

/// The placeholders a command may use.
pub const PLACEHOLDERS: [&str; 8] = [
    "{port}",
    "{listen}",
    "{http_listen}",
    "{url}",
    "{name}",
    "{dir}",
    "{run}",
    "{brokers}",
];

fn check_placeholders(field: &str, text: &str) -> Result<(), Invalid> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start..];
        let Some(end) = after.find('}') else { break };
        let token = &after[..=end];
        let looks_like = token[1..token.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if looks_like && token.len() > 2 && !PLACEHOLDERS.contains(&token) {
            return Err(invalid(
                field,
                format_args!(
                    "unknown placeholder {token}; the runner fills in {}",
                    PLACEHOLDERS.join(", ")
                ),
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

impl Load {
    fn validate(&self) -> Result<(), Invalid> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.rate) {
            return Err(invalid(
                "load.rate",
                format_args!(
                    "{} is not a rate above 0 (requests per second, e.g. 200)",
                    self.rate
                ),
            ));
        }
        if !(self.duration_secs.is_finite() && self.duration_secs >= 1.0) {
            return Err(invalid(
                "load.duration_secs",
                format_args!("{} is less than 1 second", self.duration_secs),
            ));
        }
        if !(self.warmup_secs.is_finite() && self.warmup_secs >= 0.0) {
            return Err(invalid(
                "load.warmup_secs",
                format_args!("{} is not 0 or more seconds", self.warmup_secs),
            ));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if !positive(s.rate) {
                return Err(invalid(
                    format_args!("load.steps[{i}].rate"),
                    format_args!("{} is not a rate above 0", s.rate),
                ));
            }
            if !(s.duration_secs.is_finite() && s.duration_secs >= 1.0) {
                return Err(invalid(
                    format_args!("load.steps[{i}].duration_secs"),
                    format_args!("{} is less than 1 second", s.duration_secs),
                ));
            }
        }
        if self.connections == 0 {
            return Err(invalid(
                "load.connections",
                "0 would send nothing; e.g. 32 (the most requests in flight)",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(invalid(
                "load.timeout_ms",
                "0 would fail every request; e.g. 10000",
            ));
        }
        if self.shadow_timeout_ms == 0 {
            return Err(invalid(
                "load.shadow_timeout_ms",
                "0 would time out every copy; e.g. 5000",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [baseline]
        command = ["./old", "--listen", "{listen}"]
        [candidate]
        command = ["./new", "--port", "{port}"]
        ready = "/healthz"
        [[traffic.requests]]
        path = "/v1/orders/{{id}}"
        [traffic.values]
        id = { kind = "int", min = 1, max = 100 }
    "#;

    fn error(text: &str) -> String {
        let e = match Experiment::parse(text, "e.toml") {
            Ok(x) => match x.validate() {
                Ok(()) => panic!("accepted:\n{text}"),
                Err(e) => format!("{}: {}", e.field, e.reason),
            },
            Err(e) => e.to_string(),
        };
        e
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let x = Experiment::parse(MINIMAL, "orders.toml").unwrap();
        x.validate().unwrap();
        assert_eq!(x.unit, "requests");
        assert_eq!(x.load.mode, ModeName::Shadow);
        assert_eq!(x.load.rate, 100.0);
        assert_eq!(x.load.duration_secs, 10.0);
        assert_eq!(x.load.warmup_secs, 2.0);
        assert_eq!(x.load.connections, 32);
        assert_eq!(x.load.timeout_ms, 10_000);
        assert_eq!(x.load.shadow_timeout_ms, 5_000);
        assert_eq!(x.compare, CompareConfig::default());
        assert!(x.routes.is_empty() && x.secondary.is_none());
        assert_eq!(x.baseline.label(Side::Baseline), "baseline");
        assert_eq!(x.baseline.ready_timeout().as_secs(), 30);
        assert_eq!(x.traffic.requests[0].weight, 1.0);
        assert_eq!(x.traffic.requests[0].method, "GET");
        assert_eq!(x.steps().len(), 1);
        assert_eq!(x.budgets, BudgetSpec::default());
    }

    #[test]
    fn the_compare_and_routes_tables_are_the_proxys() {
        let text = format!(
            "{MINIMAL}\n[compare]\nignore = [\"/meta/**\"]\n[[routes]]\ntemplate = \"/v1/orders/{{id}}\"\n[routes.compare]\nheaders = []\n"
        );
        let x = Experiment::parse(&text, "t").unwrap();
        x.validate().unwrap();
        assert_eq!(x.compare.ignore, ["/meta/**"]);
        assert_eq!(x.routes[0].template, "/v1/orders/{id}");
        assert!(x.routes[0].compare.as_ref().unwrap().headers.is_empty());
    }

    #[test]
    fn a_misspelt_key_is_named() {
        let e = error(&format!("{MINIMAL}\n[load]\nrte = 5"));
        assert!(e.contains("unknown field `rte`"), "{e}");
        let e = error(&MINIMAL.replace("ready =", "readiness ="));
        assert!(e.contains("readiness"), "{e}");
    }

    #[test]
    fn a_backend_needs_a_command_or_a_url_not_both() {
        let e = error(&MINIMAL.replace("command = [\"./old\", \"--listen\", \"{listen}\"]", ""));
        assert!(e.starts_with("baseline.command: missing"), "{e}");
        let e = error(&MINIMAL.replace(
            "ready = \"/healthz\"",
            "ready = \"/healthz\"\nurl = \"http://127.0.0.1:1\"",
        ));
        assert!(e.starts_with("candidate: has both"), "{e}");
    }

    #[test]
    fn a_command_must_say_where_to_listen() {
        let e = error(&MINIMAL.replace("\"--port\", \"{port}\"", "\"--verbose\""));
        assert!(e.starts_with("candidate.command: never says where"), "{e}");
        let ok = MINIMAL.replace("\"--port\", \"{port}\"]", "]\nenv = { PORT = \"{port}\" }");
        Experiment::parse(&ok, "t").unwrap().validate().unwrap();
        let e = error(&MINIMAL.replace("\"{port}\"]", "\"{port}\", \"{prot}\"]"));
        assert!(
            e.starts_with("candidate.command[3]: unknown placeholder {prot}"),
            "{e}"
        );
    }

    #[test]
    fn url_backends_take_pid_and_metrics_only() {
        let text = MINIMAL.replace(
            "command = [\"./new\", \"--port\", \"{port}\"]",
            "url = \"http://10.0.0.5:8080\"\npid = 42",
        );
        Experiment::parse(&text, "t").unwrap().validate().unwrap();
        let e = error(&text.replace("10.0.0.5:8080", "10.0.0.5:8080/api"));
        assert!(e.starts_with("candidate.url: "), "{e}");
        let e = error(&MINIMAL.replace("ready = \"/healthz\"", "pid = 7"));
        assert!(e.starts_with("candidate.pid: only applies"), "{e}");
    }

    #[test]
    fn load_errors_name_the_field() {
        let e = error(&format!("{MINIMAL}\n[load]\nrate = 0"));
        assert!(e.starts_with("load.rate: "), "{e}");
        let e = error(&format!("{MINIMAL}\n[load]\nmode = \"mirror\""));
        assert!(e.contains("`shadow`") && e.contains("`direct`"), "{e}");
        let e = error(&format!(
            "{MINIMAL}\n[load]\nsteps = [{{ rate = 10, duration_secs = 0.5 }}]"
        ));
        assert!(e.starts_with("load.steps[0].duration_secs: "), "{e}");
    }

    #[test]
    fn sections_not_yet_expressible_say_so() {
        let e = error(&format!(
            "{MINIMAL}\n[traffic.capture]\npath = \"no-such.plxcap\""
        ));
        assert!(e.starts_with("traffic.capture"), "{e}");
        let kafka =
            "[side_effects.kafka]\nbaseline_topic = \"a-{run}\"\ncandidate_topic = \"b-{run}\"";
        Experiment::parse(&format!("{MINIMAL}\n{kafka}"), "t")
            .unwrap()
            .validate()
            .unwrap();
        let e = error(&format!("{MINIMAL}\n{kafka}\njoin = \"/id\""));
        assert!(e.starts_with("side_effects.kafka.join: "), "{e}");
        assert!(e.contains("value:/eventId"), "{e}");
        let joined = |join: &str| {
            let x =
                Experiment::parse(&format!("{MINIMAL}\n{kafka}\njoin = \"{join}\""), "t").unwrap();
            x.validate().unwrap();
            x.side_effects.kafka.unwrap().join_key().unwrap()
        };
        assert_eq!(
            joined("value:/eventId"),
            parallax_kafka_diff::JoinKey::ValueField("/eventId".into())
        );
        assert_eq!(
            joined("header:order-id"),
            parallax_kafka_diff::JoinKey::Header("order-id".into())
        );
        let e = error(&format!(
            "{MINIMAL}\n{}",
            kafka.replace("b-{run}", "a-{run}")
        ));
        assert!(e.starts_with("side_effects.kafka.candidate_topic: "), "{e}");
    }

    #[test]
    fn compare_and_route_errors_name_the_field() {
        let e = error(&format!(
            "{MINIMAL}\n[[routes]]\ntemplate = \"/a\"\ncompare = {{ replace = [{{ pattern = \"(\", with = \"\" }}] }}"
        ));
        assert!(
            e.starts_with("routes[0].compare.replace[0].pattern: "),
            "{e}"
        );
        let e = error(&format!("{MINIMAL}\n[[routes]]\ntemplate = \"a\""));
        assert!(e.starts_with("routes[0].template: "), "{e}");
        let e = error(&format!("{MINIMAL}\n[budgets]\nmax_p99_ratio = 0"));
        assert!(e.starts_with("budgets.max_p99_ratio: "), "{e}");
    }

    #[test]
    fn a_name_from_the_file_must_suit_labels_too() {
        let mut x = Experiment::parse(MINIMAL, "t").unwrap();
        x.origin = PathBuf::from("my orders.toml");
        let e = x.validate().unwrap_err();
        assert_eq!(e.field, "name");
        assert!(e.reason.contains("set `name`"), "{}", e.reason);
        x.name = Some("orders".into());
        x.validate().unwrap();
    }

    #[test]
    fn websocket_sessions_get_defaults_and_named_errors() {
        let ws = "[traffic.websocket]\npath = \"/v1/subscribe?topics=run\"";
        let x = Experiment::parse(&format!("{MINIMAL}\n{ws}"), "t").unwrap();
        x.validate().unwrap();
        let w = x.traffic.websocket.unwrap();
        assert_eq!(
            (w.clients, w.shadow_clients(), w.per_worker, w.sources),
            (100, 100, 10_000, 4)
        );
        assert_eq!(w.match_by, "/id");
        assert!(w.messages.is_empty() && w.headers.is_empty());
        for (extra, field) in [
            ("clients = 0", "traffic.websocket.clients"),
            ("match = \"id\"", "traffic.websocket.match"),
            ("per_worker = 30000", "traffic.websocket.per_worker"),
            (
                "headers = { \"bad header\" = \"x\" }",
                "traffic.websocket.headers.bad header",
            ),
        ] {
            let e = error(&format!("{MINIMAL}\n{ws}\n{extra}"));
            assert!(e.starts_with(&format!("{field}: ")), "{extra}: {e}");
        }
        let e = error(&format!("{MINIMAL}\n[traffic.websocket]\npath = \"ws\""));
        assert!(e.starts_with("traffic.websocket.path: "), "{e}");
        let e = error(&format!("{MINIMAL}\n{ws}\nclient = 5"));
        assert!(e.contains("unknown field `client`"), "{e}");
    }

    #[test]
    fn backends_need_distinct_names() {
        let e = error(&MINIMAL.replace(
            "ready = \"/healthz\"",
            "ready = \"/healthz\"\nname = \"baseline\"",
        ));
        assert!(e.starts_with("candidate.name: "), "{e}");
    }
}

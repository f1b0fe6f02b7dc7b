//! The fleet-wide canary controller (`parallax canary controller`).
//!
//! Several proxy replicas of one service — processes behind `SO_REUSEPORT`,
//! pods behind a load balancer — each see a slice of the traffic, and a
//! canary judged per replica steps and rolls back replica by replica. The
//! controller judges the **whole fleet** instead, from the Prometheus the
//! replicas are already scraped by, and moves every replica together:
//!
//! 1. every `interval_secs` it finds the replicas (listed, and/or the up
//!    targets of a Prometheus job);
//! 2. once the window (`canary.window_secs`) is over, it asks Prometheus for
//!    the window's figures summed over every replica — requests and
//!    failures per arm (`parallax_canary_requests_total`), each backend's
//!    p99 (`histogram_quantile` over `parallax_upstream_request_duration_seconds`),
//!    comparisons and mismatches (`parallax_comparisons_total`) — and judges
//!    them with the same rule a replica uses on its own
//!    ([`crate::canary::judge_figures`]);
//! 3. it steps up, completes or rolls back, and pushes the weight, state
//!    and reason to every replica (`POST /admin/canary/{service}/fleet`),
//!    every interval, each push holding for `lease_secs`.
//!
//! Replicas under a controller (`controller_lease_secs` in their
//! `[services.canary]`) do not judge; one that stops hearing from the
//! controller falls back to weight 0 when its lease runs out
//! ([`crate::canary`]). A replica restarted mid-step starts at 0 and takes
//! the fleet's weight at the next push.
//!
//! The controller's decisions, with reasons and figures, are in its log,
//! its metrics (`parallax_canary_controller_*`) and its own
//! `GET /admin/canary`, which `parallax canary --admin <controller> status`
//! reads like a proxy's; `POST /admin/canary/{service}/rollback|restart`
//! act on the whole fleet.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::Method;
use parking_lot::Mutex;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::canary::{
    judge_figures, ArmFigures, CanarySettings, Figures, FleetPush, Reason, Verdict,
};
use crate::client::{self, query_escape};
use crate::config::{CanaryConfig, ConfigError};

/// Longest wait for Prometheus or a replica.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The controller's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// Prometheus's base URL. Default `"http://127.0.0.1:9090"`.
    pub prometheus: String,
    /// The controller's own admin listener (`/admin/canary`, `/metrics`).
    /// Loopback unless `admin_token_file` is set. Default `"127.0.0.1:9911"`.
    pub listen: String,
    /// The canaried service: its `name` in the replicas' configuration and
    /// the `service` label of their metrics. Required.
    pub service: String,
    /// The replicas' admin listeners (`"127.0.0.1:9901"` or `"http://…"`).
    pub replicas: Vec<String>,
    /// A Prometheus job whose up targets are replicas (their scrape
    /// address is their admin listener). Default: none.
    pub discover_job: Option<String>,
    /// A file holding the replicas' admin token (sent as a bearer token),
    /// which is also this controller's own. Default: none.
    pub admin_token_file: Option<String>,
    /// How often the controller decides and pushes, in seconds. Default `2`.
    pub interval_secs: f64,
    /// How long a push holds on a replica without another, in seconds (at
    /// least 3 intervals). Default `30`.
    pub lease_secs: f64,
    /// The steps and thresholds, as in a proxy's `[services.canary]`.
    pub canary: CanaryConfig,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            prometheus: "http://127.0.0.1:9090".into(),
            listen: "127.0.0.1:9911".into(),
            service: String::new(),
            replicas: Vec::new(),
            discover_job: None,
            admin_token_file: None,
            interval_secs: 2.0,
            lease_secs: 30.0,
            canary: CanaryConfig::default(),
        }
    }
}

fn invalid(field: impl std::fmt::Display, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// A validated controller configuration.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub prometheus: String,
    pub listen: SocketAddr,
    pub service: String,
    pub replicas: Vec<String>,
    pub discover_job: Option<String>,
    pub token: Option<String>,
    pub interval: Duration,
    pub lease: Duration,
    pub canary: CanarySettings,
}

impl ControllerConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &std::path::Path) -> Result<ControllerSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: ControllerConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        config.validate()
    }

    pub fn validate(&self) -> Result<ControllerSettings, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            invalid(
                "listen",
                format_args!(
                    "{:?} is not an IP address and port (e.g. \"127.0.0.1:9911\")",
                    self.listen
                ),
            )
        })?;
        if self.service.is_empty() {
            return Err(invalid(
                "service",
                "missing: the canaried service's name in the replicas' configuration",
            ));
        }
        if self.replicas.is_empty() && self.discover_job.is_none() {
            return Err(invalid(
                "replicas",
                "empty and no discover_job: list the replicas' admin listeners, or name the Prometheus job that scrapes them",
            ));
        }
        for (i, r) in self.replicas.iter().enumerate() {
            if r.contains("://") && !r.starts_with("http://") {
                return Err(invalid(
                    format_args!("replicas[{i}]"),
                    format_args!("{r:?}: admin listeners are plain http:// (\"127.0.0.1:9901\")"),
                ));
            }
        }
        if !self.prometheus.starts_with("http://") {
            return Err(invalid(
                "prometheus",
                format_args!(
                    "{:?} is not an http:// URL (e.g. \"http://127.0.0.1:9090\")",
                    self.prometheus
                ),
            ));
        }
        if !(self.interval_secs.is_finite() && (0.1..=60.0).contains(&self.interval_secs)) {
            return Err(invalid(
                "interval_secs",
                format_args!("{} is not within 0.1-60", self.interval_secs),
            ));
        }
        if !(self.lease_secs.is_finite()
            && self.lease_secs >= 3.0 * self.interval_secs
            && self.lease_secs <= 3600.0)
        {
            return Err(invalid(
                "lease_secs",
                format_args!(
                    "{} must be at least 3 intervals ({} s) and at most 3600: a replica must not fall back between two pushes",
                    self.lease_secs,
                    3.0 * self.interval_secs
                ),
            ));
        }
        let token = match &self.admin_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        "admin_token_file",
                        format_args!("cannot read {path:?}: {e}"),
                    )
                })?;
                Some(text.trim().to_owned())
            }
            None => None,
        };
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(invalid(
                "listen",
                format_args!(
                    "{listen} is not loopback: set admin_token_file, or listen on 127.0.0.1"
                ),
            ));
        }
        let mut canary = self.canary.validate("canary")?;
        canary.controller_lease = None;
        Ok(ControllerSettings {
            prometheus: self.prometheus.trim_end_matches('/').to_owned(),
            listen,
            service: self.service.clone(),
            replicas: self.replicas.clone(),
            discover_job: self.discover_job.clone(),
            token,
            interval: Duration::from_secs_f64(self.interval_secs),
            lease: Duration::from_secs_f64(self.lease_secs),
            canary,
        })
    }
}

/// Where the fleet's canary is.
#[derive(Debug, Clone)]
enum Phase {
    Stepping {
        step: usize,
        since: Instant,
        healthy_windows: u64,
    },
    Complete,
    RolledBack {
        reason: Reason,
        detail: String,
        at: SystemTime,
    },
}

/// One replica as the last push found it.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaState {
    pub address: String,
    /// `listed` or `discovered`.
    pub source: &'static str,
    pub last_push_ok: bool,
    pub last_error: Option<String>,
}

/// The controller's metrics.
#[derive(Clone)]
struct ControllerMetrics {
    registry: parallax_common::metrics::Metrics,
    weight: Gauge,
    decisions: IntCounterVec,
    pushes_ok: IntCounter,
    pushes_failed: IntCounter,
    replicas: IntGauge,
    query_failures: IntCounter,
}

impl ControllerMetrics {
    fn new(service: &str) -> Self {
        let registry = parallax_common::metrics::Metrics::new();
        let weight = prometheus::GaugeVec::new(
            Opts::new(
                "parallax_canary_controller_weight_ratio",
                "The fleet's canary weight, 0-1.",
            ),
            &["service"],
        )
        .expect("valid metric");
        let decisions = IntCounterVec::new(
            Opts::new(
                "parallax_canary_controller_decisions_total",
                "Windows judged by the controller, by decision.",
            ),
            &["service", "decision"],
        )
        .expect("valid metric");
        let pushes = IntCounterVec::new(
            Opts::new(
                "parallax_canary_controller_pushes_total",
                "Pushes to replicas, by result.",
            ),
            &["service", "result"],
        )
        .expect("valid metric");
        let replicas = prometheus::IntGaugeVec::new(
            Opts::new(
                "parallax_canary_controller_replicas",
                "Replicas pushed to in the last round.",
            ),
            &["service"],
        )
        .expect("valid metric");
        let query_failures = IntCounterVec::new(
            Opts::new(
                "parallax_canary_controller_query_failures_total",
                "Prometheus queries that failed (the window is judged again later).",
            ),
            &["service"],
        )
        .expect("valid metric");
        registry.register(weight.clone());
        registry.register(decisions.clone());
        registry.register(pushes.clone());
        registry.register(replicas.clone());
        registry.register(query_failures.clone());
        for d in ["step_up", "hold", "not_enough", "complete", "rollback"] {
            decisions.with_label_values(&[service, d]);
        }
        Self {
            weight: weight.with_label_values(&[service]),
            pushes_ok: pushes.with_label_values(&[service, "ok"]),
            pushes_failed: pushes.with_label_values(&[service, "failed"]),
            replicas: replicas.with_label_values(&[service]),
            query_failures: query_failures.with_label_values(&[service]),
            decisions,
            registry,
        }
    }
}

/// The controller's state, shared with its admin listener.
pub struct Controller {
    settings: ControllerSettings,
    phase: Mutex<Phase>,
    /// When the window being counted started.
    window_started: Mutex<Instant>,
    last_figures: Mutex<Option<Figures>>,
    last_decision: Mutex<Option<(String, String)>>,
    replicas: Mutex<Vec<ReplicaState>>,
    metrics: ControllerMetrics,
}

impl Controller {
    pub fn new(settings: ControllerSettings, now: Instant) -> Self {
        let metrics = ControllerMetrics::new(&settings.service);
        let first = settings.canary.weights_bps[0];
        metrics.weight.set(f64::from(first) / 10_000.0);
        Self {
            settings,
            phase: Mutex::new(Phase::Stepping {
                step: 0,
                since: now,
                healthy_windows: 0,
            }),
            window_started: Mutex::new(now),
            last_figures: Mutex::new(None),
            last_decision: Mutex::new(None),
            replicas: Mutex::new(Vec::new()),
            metrics,
        }
    }

    /// The weight every replica gets now, in basis points.
    fn weight_bps(&self) -> u32 {
        match &*self.phase.lock() {
            Phase::Stepping { step, .. } => self.settings.canary.weights_bps[*step],
            Phase::Complete => *self
                .settings
                .canary
                .weights_bps
                .last()
                .expect("validated: not empty"),
            Phase::RolledBack { .. } => 0,
        }
    }

    fn decide(&self, decision: &str, detail: String) {
        self.metrics
            .decisions
            .with_label_values(&[&self.settings.service, decision])
            .inc();
        match decision {
            "rollback" => {
                tracing::warn!(service = %self.settings.service, %detail, "fleet canary rolled back")
            }
            "step_up" | "complete" => {
                tracing::info!(service = %self.settings.service, %detail, "fleet canary {decision}")
            }
            _ => {
                tracing::debug!(service = %self.settings.service, %detail, "fleet canary {decision}")
            }
        }
        *self.last_decision.lock() = Some((decision.to_owned(), detail));
    }

    /// One round: judge the window when it is due, then push to every replica.
    pub async fn round(&self, now: Instant) {
        if matches!(*self.phase.lock(), Phase::Stepping { .. }) {
            let started = *self.window_started.lock();
            let length = now.duration_since(started);
            if length >= self.settings.canary.window {
                match self.figures(length).await {
                    Ok(figures) => self.judge(figures, now),
                    Err(e) => {
                        self.metrics.query_failures.inc();
                        tracing::warn!(error = %e, "cannot read the fleet's figures from Prometheus; judging later");
                    }
                }
            }
        }
        self.push_all().await;
    }

    fn judge(&self, figures: Figures, now: Instant) {
        *self.last_figures.lock() = Some(figures);
        let verdict = judge_figures(&figures, &self.settings.canary);
        let mut phase = self.phase.lock();
        let Phase::Stepping {
            step,
            since,
            healthy_windows,
        } = &mut *phase
        else {
            return;
        };
        match verdict {
            // The window grows until the candidate served enough.
            Verdict::NotEnough => {
                drop(phase);
                self.decide(
                    "not_enough",
                    format!(
                        "{} shadow-served requests so far",
                        figures.candidate.requests
                    ),
                );
            }
            Verdict::Healthy => {
                *healthy_windows += 1;
                *self.window_started.lock() = now;
                if now.duration_since(*since) < self.settings.canary.step {
                    drop(phase);
                    self.decide("hold", "healthy window; the step's time is not up".into());
                    return;
                }
                let next = *step + 1;
                let weights = &self.settings.canary.weights_bps;
                if next < weights.len() {
                    *phase = Phase::Stepping {
                        step: next,
                        since: now,
                        healthy_windows: 0,
                    };
                    self.metrics.weight.set(f64::from(weights[next]) / 10_000.0);
                    drop(phase);
                    self.decide(
                        "step_up",
                        format!("weight {} %", f64::from(weights[next]) / 100.0),
                    );
                } else {
                    *phase = Phase::Complete;
                    drop(phase);
                    self.decide("complete", "every step passed".into());
                }
            }
            Verdict::Unhealthy(reason, detail) => {
                *phase = Phase::RolledBack {
                    reason,
                    detail: detail.clone(),
                    at: SystemTime::now(),
                };
                self.metrics.weight.set(0.0);
                drop(phase);
                self.decide("rollback", format!("{}: {detail}", reason.as_str()));
            }
        }
    }

    /// The window's figures summed over every replica.
    async fn figures(&self, window: Duration) -> Result<Figures, String> {
        let s = &self.settings.service;
        let range = format!("{}ms", window.as_millis().max(1000));
        let requests = self
            .query(&format!(
                "sum by (backend, result) (increase(parallax_canary_requests_total{{service=\"{s}\"}}[{range}]))"
            ))
            .await?;
        let p99 = self
            .query(&format!(
                "histogram_quantile(0.99, sum by (le, backend) (increase(parallax_upstream_request_duration_seconds_bucket{{service=\"{s}\",backend=~\"primary|shadow\"}}[{range}])))"
            ))
            .await?;
        let comparisons = self
            .query(&format!(
                "sum by (result) (increase(parallax_comparisons_total{{service=\"{s}\"}}[{range}]))"
            ))
            .await?;
        let count = |rows: &[(BTreeMap<String, String>, f64)], want: &[(&str, &str)]| -> u64 {
            rows.iter()
                .filter(|(labels, _)| {
                    want.iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|(_, v)| {
                    if v.is_finite() {
                        v.round().max(0.0) as u64
                    } else {
                        0
                    }
                })
                .sum()
        };
        let arm = |backend: &str| {
            let ok = count(&requests, &[("backend", backend), ("result", "success")]);
            let failed = count(&requests, &[("backend", backend), ("result", "failure")]);
            let p99 = p99
                .iter()
                .find(|(labels, _)| labels.get("backend").map(String::as_str) == Some(backend))
                .and_then(|(_, v)| {
                    (v.is_finite() && *v >= 0.0).then(|| Duration::from_secs_f64(*v))
                });
            ArmFigures {
                requests: ok + failed,
                failures: failed,
                p99,
            }
        };
        Ok(Figures {
            primary: arm("primary"),
            candidate: arm("shadow"),
            compared: count(&comparisons, &[]),
            mismatched: count(&comparisons, &[("result", "mismatch")]),
        })
    }

    /// An instant query's vector: each series' labels and value.
    async fn query(&self, promql: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
        let answer = client::call(
            Method::GET,
            &self.settings.prometheus,
            &format!("/api/v1/query?query={}", query_escape(promql)),
            None,
            None,
            CALL_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("Prometheus answered {} without JSON: {e}", answer.status))?;
        if body["status"] != "success" {
            return Err(format!("Prometheus refused {promql}: {}", body["error"]));
        }
        Ok(body["data"]["result"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|row| {
                        let labels = row["metric"]
                            .as_object()?
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect();
                        let value = row["value"][1].as_str()?.parse::<f64>().ok()?;
                        Some((labels, value))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The replicas now: listed ones and a job's up targets.
    async fn replicas_now(&self) -> Vec<(String, &'static str)> {
        let mut all: Vec<(String, &'static str)> = self
            .settings
            .replicas
            .iter()
            .map(|r| {
                (
                    r.trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned(),
                    "listed",
                )
            })
            .collect();
        if let Some(job) = &self.settings.discover_job {
            match client::call(
                Method::GET,
                &self.settings.prometheus,
                "/api/v1/targets?state=active",
                None,
                None,
                CALL_TIMEOUT,
            )
            .await
            {
                Ok(answer) => {
                    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                    for t in body["data"]["activeTargets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if t["labels"]["job"] == job.as_str() && t["health"] == "up" {
                            if let Some(instance) = t["labels"]["instance"].as_str() {
                                if !all.iter().any(|(a, _)| a == instance) {
                                    all.push((instance.to_owned(), "discovered"));
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list Prometheus targets"),
            }
        }
        all
    }

    fn push_body(&self) -> FleetPush {
        let phase = self.phase.lock().clone();
        let weight_percent = f64::from(self.weight_bps()) / 100.0;
        let lease_secs = self.settings.lease.as_secs_f64();
        match phase {
            Phase::Stepping { step, .. } => FleetPush {
                weight_percent,
                lease_secs,
                state: "stepping".into(),
                step: Some(step),
                reason: None,
                detail: None,
            },
            Phase::Complete => FleetPush {
                weight_percent,
                lease_secs,
                state: "complete".into(),
                step: None,
                reason: None,
                detail: None,
            },
            Phase::RolledBack { reason, detail, .. } => FleetPush {
                weight_percent: 0.0,
                lease_secs,
                state: "rolled_back".into(),
                step: None,
                reason: Some(reason),
                detail: Some(detail),
            },
        }
    }

    async fn push_all(&self) {
        let push = self.push_body();
        let body = Bytes::from(serde_json::to_vec(&push).expect("a push serialises"));
        let replicas = self.replicas_now().await;
        let path = format!("/admin/canary/{}/fleet", self.settings.service);
        let calls = replicas.iter().map(|(address, _)| {
            let (body, path) = (body.clone(), path.clone());
            async move {
                client::call(
                    Method::POST,
                    address,
                    &path,
                    self.settings.token.as_deref(),
                    Some(("application/json", body)),
                    CALL_TIMEOUT,
                )
                .await
            }
        });
        let results = futures::future::join_all(calls).await;
        let mut states = Vec::with_capacity(replicas.len());
        for ((address, source), result) in replicas.into_iter().zip(results) {
            let error = match result {
                Ok(a) if a.status.is_success() => None,
                Ok(a) => Some(format!(
                    "{}: {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                )),
                Err(e) => Some(e.to_string()),
            };
            if error.is_some() {
                self.metrics.pushes_failed.inc();
                tracing::warn!(replica = %address, error = ?error, "push failed");
            } else {
                self.metrics.pushes_ok.inc();
            }
            states.push(ReplicaState {
                address,
                source,
                last_push_ok: error.is_none(),
                last_error: error,
            });
        }
        self.metrics.replicas.set(states.len() as i64);
        *self.replicas.lock() = states;
    }

    /// Rolls the fleet back by hand.
    pub fn roll_back_manually(&self) {
        let mut phase = self.phase.lock();
        if !matches!(*phase, Phase::RolledBack { .. }) {
            *phase = Phase::RolledBack {
                reason: Reason::Manual,
                detail: "rolled back by hand".into(),
                at: SystemTime::now(),
            };
            self.metrics.weight.set(0.0);
            drop(phase);
            self.decide("rollback", "manual: rolled back by hand".into());
        }
    }

    /// Starts the fleet's canary again from its first step.
    pub fn restart(&self, now: Instant) {
        *self.phase.lock() = Phase::Stepping {
            step: 0,
            since: now,
            healthy_windows: 0,
        };
        *self.window_started.lock() = now;
        self.metrics
            .weight
            .set(f64::from(self.settings.canary.weights_bps[0]) / 10_000.0);
        tracing::info!("fleet canary restarted");
    }

    /// The state, in the shape of a proxy's `GET /admin/canary` entry.
    pub fn status(&self, now: Instant) -> Value {
        let phase = self.phase.lock().clone();
        let steps: Vec<f64> = self
            .settings
            .canary
            .weights_bps
            .iter()
            .map(|w| f64::from(*w) / 100.0)
            .collect();
        let figures = *self.last_figures.lock();
        let arm = |a: &ArmFigures| {
            json!({
                "requests": a.requests, "failures": a.failures,
                "error_rate": if a.requests > 0 { a.failures as f64 / a.requests as f64 } else { 0.0 },
                "p99_us": a.p99.map(|d| d.as_micros() as u64),
            })
        };
        let window = json!({
            "seconds": now.duration_since(*self.window_started.lock()).as_secs_f64(),
            "primary": figures.map_or(json!({"requests": 0, "failures": 0, "error_rate": 0.0, "p99_us": null}), |f| arm(&f.primary)),
            "shadow": figures.map_or(json!({"requests": 0, "failures": 0, "error_rate": 0.0, "p99_us": null}), |f| arm(&f.candidate)),
            "compared": figures.map_or(0, |f| f.compared),
            "mismatched": figures.map_or(0, |f| f.mismatched),
        });
        let mut status = json!({
            "state": "stepping",
            "weight_percent": f64::from(self.weight_bps()) / 100.0,
            "steps_percent": steps,
            "step": null, "step_seconds": null, "healthy_windows": null, "rollback": null,
            "window": window,
            "fleet": {
                "prometheus": self.settings.prometheus,
                "interval_seconds": self.settings.interval.as_secs_f64(),
                "lease_seconds": self.settings.lease.as_secs_f64(),
                "replicas": *self.replicas.lock(),
                "last_decision": self.last_decision.lock().as_ref().map(|(d, why)| json!({"decision": d, "detail": why})),
            },
        });
        match phase {
            Phase::Stepping {
                step,
                since,
                healthy_windows,
            } => {
                status["step"] = json!(step);
                status["step_seconds"] = json!(now.duration_since(since).as_secs_f64());
                status["healthy_windows"] = json!(healthy_windows);
            }
            Phase::Complete => status["state"] = json!("complete"),
            Phase::RolledBack { reason, detail, at } => {
                status["state"] = json!("rolled_back");
                status["rollback"] = json!({
                    "reason": reason, "detail": detail,
                    "at_unix_seconds": at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    "window": status["window"].clone(),
                });
            }
        }
        status
    }
}

/// Runs the controller: its admin listener and a round every interval,
/// until `shutdown` resolves.
pub async fn run(
    settings: ControllerSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    tracing::info!(
        "canary controller for {} listening on {}",
        settings.service,
        listener.local_addr()?
    );
    let controller = Arc::new(Controller::new(settings, Instant::now()));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let router = router(Arc::clone(&controller));
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        })
    };
    let rounds = {
        let controller = Arc::clone(&controller);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(controller.settings.interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stopped = async {
                    let _ = stop_rx.wait_for(|s| *s).await;
                };
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped => return,
                }
                controller.round(Instant::now()).await;
            }
        })
    };
    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = rounds.await;
    let _ = server.await;
    Ok(())
}

fn router(controller: Arc<Controller>) -> Router {
    Router::new()
        .route("/admin/canary", get(status))
        .route("/admin/canary/{service}/{action}", post(action))
        .route("/metrics", get(metrics))
        .route(
            "/healthz",
            get(|| async { json_response(StatusCode::OK, &json!({"status": "ok"})) }),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&controller),
            guard,
        ))
        .with_state(controller)
}

async fn guard(
    State(c): State<Arc<Controller>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == Method::POST && crate::admin::cross_site(request.headers()) {
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({"code": "cross_site", "message": "a POST from another site's page is refused"}),
        );
    }
    match &c.settings.token {
        Some(token)
            if request.uri().path() != "/healthz"
                && !crate::admin::presented(request.headers(), token) =>
        {
            json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"code": "unauthorized", "message": "this controller requires its token: Authorization: Bearer <token>"}),
            )
        }
        _ => next.run(request).await,
    }
}

async fn status(State(c): State<Arc<Controller>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"services": {c.settings.service.clone(): c.status(Instant::now())}}),
    )
}

async fn action(
    State(c): State<Arc<Controller>>,
    Path((service, action)): Path<(String, String)>,
) -> Response {
    if service != c.settings.service {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"code": "unknown_service", "message": format!("this controller judges {:?}, not {service:?}", c.settings.service)}),
        );
    }
    match action.as_str() {
        "rollback" => c.roll_back_manually(),
        "restart" => c.restart(Instant::now()),
        _ => {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"code": "unknown_action", "message": format!("{action:?} is neither \"rollback\" nor \"restart\"")}),
            )
        }
    }
    // Tell the replicas now rather than at the next round.
    c.push_all().await;
    status(State(c)).await
}

async fn metrics(State(c): State<Arc<Controller>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        c.metrics.registry.render(),
    )
        .into_response()
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Result<ControllerSettings, String> {
        let text = format!("service = \"cache\"\nreplicas = [\"127.0.0.1:9901\"]\n{extra}");
        toml::from_str::<ControllerConfig>(&text)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn errors_name_the_field() {
        assert!(settings("lease_secs = 1")
            .unwrap_err()
            .starts_with("lease_secs: "));
        assert!(settings("prometheus = \"localhost:9090\"")
            .unwrap_err()
            .starts_with("prometheus: "));
        assert!(settings("listen = \"0.0.0.0:9911\"")
            .unwrap_err()
            .starts_with("listen: "));
        assert!(settings("[canary]\nweights_percent = []")
            .unwrap_err()
            .starts_with("canary.weights_percent: "));
        let e = toml::from_str::<ControllerConfig>("replicas = []")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("service: "), "{e}");
    }

    fn figures(p_fail: u64, c_fail: u64, c_p99_ms: u64) -> Figures {
        Figures {
            primary: ArmFigures {
                requests: 1000,
                failures: p_fail,
                p99: Some(Duration::from_millis(5)),
            },
            candidate: ArmFigures {
                requests: 300,
                failures: c_fail,
                p99: Some(Duration::from_millis(c_p99_ms)),
            },
            compared: 0,
            mismatched: 0,
        }
    }

    #[test]
    fn a_healthy_fleet_steps_up_and_completes_and_a_regressed_one_rolls_back() {
        let s = settings("[canary]\nweights_percent = [10, 50]\nstep_secs = 1\nwindow_secs = 1\nmin_requests = 100").unwrap();
        let t0 = Instant::now();
        let c = Controller::new(s, t0);
        assert_eq!(c.weight_bps(), 1000);
        c.judge(figures(0, 0, 5), t0 + Duration::from_secs(2));
        assert_eq!(c.weight_bps(), 5000);
        c.judge(figures(0, 0, 5), t0 + Duration::from_secs(4));
        assert_eq!(c.push_body().state, "complete");

        let s = settings("[canary]\nweights_percent = [10, 50]\nmin_requests = 100").unwrap();
        let c = Controller::new(s, t0);
        c.judge(figures(0, 0, 60), t0 + Duration::from_secs(31));
        let push = c.push_body();
        assert_eq!(
            (push.state.as_str(), push.weight_percent, push.reason),
            ("rolled_back", 0.0, Some(Reason::Latency))
        );
    }
}

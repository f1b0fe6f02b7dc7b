#!/usr/bin/env python3
"""Generates parallax-side-by-side.json, the Go-vs-Rust Grafana dashboard.

The JSON is checked in (Grafana provisions it as is); this script is its
source, so the twelve near-identical panels per service stay consistent.
`gen.py` rewrites the JSON; `gen.py --check` exits 1 when the checked-in
file differs from what it would write (scripts/check-deploy.sh runs it).

Label scheme (deploy/prometheus.yml): every twin's series carry
`language` (go, rust) and `service` (ingest, cache, fanout); the proxy's own
metrics carry `service` (its config's service names, the same three) and
`backend` (primary = Go, shadow = Rust).
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("parallax-side-by-side.json")
DS = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"
# Probe and scrape routes would swamp the request rate of an idle twin.
NOT_INFRA = 'route!~"/metrics|/healthz|/readyz"'
GO_COLOUR = "#00ADD8"
RUST_COLOUR = "#DEA584"

SERVICES = [
    ("ingest", "Ingest (HTTP -> Kafka)"),
    ("cache", "Session cache"),
    ("fanout", "Fan-out (WebSocket)"),
]


class Layout:
    """Hands out panel ids and grid positions, four panels of width 6 a line."""

    def __init__(self):
        self.next_id = 1
        self.y = 0
        self.x = 0
        self.panels = []

    def row(self, title):
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel, w=6, h=8):
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self._h = h

    def _newline(self):
        if self.x:
            self.y += getattr(self, "_h", 8)
        self.x = 0

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def timeseries(title, targets, unit, description="", language_colours=True, stack=False):
    overrides = []
    if language_colours:
        for prefix, colour in (("go", GO_COLOUR), ("rust", RUST_COLOUR)):
            overrides.append(
                {
                    "matcher": {"id": "byRegexp", "options": f"/^{prefix}( .*)?$/"},
                    "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
                }
            )
        # p99 lines dashed, so p50 and p99 of one language share a colour.
        overrides.append(
            {
                "matcher": {"id": "byRegexp", "options": "/p99/"},
                "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
            }
        )
    custom = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 0, "showPoints": "never", "spanNulls": True}
    if stack:
        custom.update({"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30})
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": overrides},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
    }


def stat(title, targets, unit, description=""):
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(targets)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "decimals": 2,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1.2}],
                },
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "value_and_name",
            "orientation": "horizontal",
        },
    }


def quantile(q, metric, selector, by):
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[{RATE}])))"


def twin_panels(layout, svc):
    sel = f'service="{svc}"'
    http = f"{sel}, {NOT_INFRA}"
    layout.add(
        timeseries(
            "Requests/s, Go vs Rust",
            [(f"sum by (language) (rate(http_requests_total{{{http}}}[{RATE}]))", "{{language}}")],
            "reqps",
            "Answered requests per twin (probes and /metrics excluded). Through the proxy both get the same traffic.",
        )
    )
    layout.add(
        timeseries(
            "Latency p50 / p99 (in the service)",
            [
                (quantile(0.5, "http_request_duration_seconds", http, "language"), "{{language}} p50"),
                (quantile(0.99, "http_request_duration_seconds", http, "language"), "{{language}} p99"),
            ],
            "s",
            "http_request_duration_seconds as each twin measures itself (same buckets in both languages).",
        )
    )
    layout.add(
        timeseries(
            "CPU (cores)",
            [(f"sum by (language) (rate(process_cpu_seconds_total{{{sel}}}[{RATE}]))", "{{language}}")],
            "short",
            "process_cpu_seconds_total of each twin's own process.",
        )
    )
    layout.add(
        timeseries(
            "Resident memory",
            [(f"sum by (language) (process_resident_memory_bytes{{{sel}}})", "{{language}}")],
            "bytes",
        )
    )
    ratio = lambda expr_rust, expr_go: f"({expr_rust}) / ({expr_go})"  # noqa: E731
    p99 = lambda lang: quantile(0.99, "http_request_duration_seconds", f'{http}, language="{lang}"', "service")  # noqa: E731
    cpu = lambda lang: f'sum(rate(process_cpu_seconds_total{{{sel}, language="{lang}"}}[{RATE}]))'  # noqa: E731
    rss = lambda lang: f'sum(process_resident_memory_bytes{{{sel}, language="{lang}"}})'  # noqa: E731
    layout.add(
        stat(
            "Rust / Go",
            [
                (ratio(p99("rust"), p99("go")), "p99 latency"),
                (ratio(cpu("rust"), cpu("go")), "CPU"),
                (ratio(rss("rust"), rss("go")), "RSS"),
            ],
            "x",
            "Below 1: Rust uses less / answers faster. Orange from 1.2.",
        )
    )
    layout.add(
        timeseries(
            "Proxy: upstream latency by backend",
            [
                (quantile(0.5, "parallax_upstream_request_duration_seconds", sel, "backend"), "{{backend}} p50"),
                (quantile(0.99, "parallax_upstream_request_duration_seconds", sel, "backend"), "{{backend}} p99"),
            ],
            "s",
            "Measured by parallax proxy from sending to the answer's head: primary = Go, shadow = Rust.",
            language_colours=False,
        )
    )
    layout.add(
        timeseries(
            "Proxy: comparisons by result, mismatch rate",
            [
                (f"sum by (result) (rate(parallax_comparisons_total{{{sel}}}[{RATE}]))", "{{result}}/s"),
                (
                    f'sum(rate(parallax_comparisons_total{{{sel}, result="mismatch"}}[{RATE}]))'
                    f" / clamp_min(sum(rate(parallax_comparisons_total{{{sel}}}[{RATE}])), 1e-9)",
                    "mismatch rate",
                ),
            ],
            "short",
            "Primary-vs-shadow answers compared: match, mismatch, noise (with a secondary). The mismatch rate is a fraction (0-1).",
            language_colours=False,
        )
    )
    layout.add(
        timeseries(
            "Proxy: mirror outcomes",
            [(f"sum by (outcome) (rate(parallax_mirror_total{{{sel}}}[{RATE}]))", "{{outcome}}")],
            "reqps",
            "What became of each request's copy to the shadow (mirrored, sampled_out, shadow_timeout, dropped_queue_full, …).",
            language_colours=False,
            stack=True,
        )
    )
    layout.add(
        timeseries(
            "Proxy: canary (shadow serving clients)",
            [
                (f"sum(parallax_canary_weight_ratio{{{sel}}})", "weight (0-1)"),
                (
                    f"sum by (backend) (rate(parallax_canary_requests_total{{{sel}, result=\"failure\"}}[{RATE}]))"
                    f" / clamp_min(sum by (backend) (rate(parallax_canary_requests_total{{{sel}}}[{RATE}])), 1e-9)",
                    "{{backend}} failure rate",
                ),
                (f"sum by (reason) (increase(parallax_canary_rollbacks_total{{{sel}}}[{RATE}]))", "rollback: {{reason}}"),
            ],
            "short",
            "Only with a [services.canary] table: the share of clients the shadow serves, each backend's failure rate (5xx or no answer) and rollbacks by reason.",
            language_colours=False,
        )
    )


def ingest_panels(layout):
    layout.add(
        timeseries(
            "Events by outcome",
            [(f"sum by (language, outcome) (rate(ingest_events_total[{RATE}]))", "{{language}} {{outcome}}")],
            "short",
            "accepted (acknowledged by Kafka), rejected (validation), failed (Kafka did not acknowledge), per second.",
        ),
        w=12,
    )
    layout.add(
        timeseries(
            "Kafka produce errors/s",
            [(f"sum by (language) (rate(ingest_kafka_produce_errors_total[{RATE}]))", "{{language}}")],
            "short",
        ),
        w=12,
    )


def cache_panels(layout):
    layout.add(
        timeseries(
            "Cache requests by op and result",
            [(f"sum by (language, op, result) (rate(cache_requests_total[{RATE}]))", "{{language}} {{op}} {{result}}")],
            "reqps",
        ),
        w=8,
    )
    layout.add(
        timeseries(
            "Cache hit ratio (GET)",
            [
                (
                    f'sum by (language) (rate(cache_requests_total{{op="get", result="hit"}}[{RATE}]))'
                    f' / clamp_min(sum by (language) (rate(cache_requests_total{{op="get"}}[{RATE}])), 1e-9)',
                    "{{language}}",
                )
            ],
            "percentunit",
        ),
        w=8,
    )
    layout.add(
        timeseries(
            "Accounted bytes and evictions/s",
            [
                ("sum by (language) (cache_bytes)", "{{language}} bytes"),
                (f"sum by (language) (rate(cache_evictions_total[{RATE}]))", "{{language}} evictions/s"),
            ],
            "short",
        ),
        w=8,
    )


def fanout_panels(layout):
    layout.add(
        timeseries(
            "Open WebSocket connections",
            [
                ('sum by (language) (fanout_connections{service="fanout"})', "{{language}}"),
                ('sum by (backend) (parallax_ws_connections{service="fanout"})', "proxy to {{backend}}"),
            ],
            "short",
            "fanout_connections of each twin, and the proxy's open connections to each upstream.",
        )
    )
    layout.add(
        timeseries(
            "Delivery lag p50 / p99",
            [
                (quantile(0.5, "fanout_delivery_lag_seconds", 'service="fanout"', "language"), "{{language}} p50"),
                (quantile(0.99, "fanout_delivery_lag_seconds", 'service="fanout"', "language"), "{{language}} p99"),
            ],
            "s",
            "From a notification's broadcast (enqueue) to its frame written to a socket, in each twin.",
        )
    )
    layout.add(
        timeseries(
            "Frames sent and dropped/s",
            [
                (f'sum by (language) (rate(fanout_messages_sent_total{{service="fanout"}}[{RATE}]))', "{{language}} sent"),
                (
                    f'sum by (language, reason) (rate(fanout_dropped_total{{service="fanout"}}[{RATE}]))',
                    "{{language}} dropped {{reason}}",
                ),
            ],
            "short",
        )
    )
    layout.add(
        timeseries(
            "Proxy: WebSocket frames by result, delivery skew",
            [
                (f'sum by (result) (rate(parallax_ws_frames_total{{service="fanout"}}[{RATE}]))', "{{result}}/s"),
                (quantile(0.99, "parallax_ws_delivery_skew_seconds", 'service="fanout"', "service"), "skew p99 (s)"),
            ],
            "short",
            "Messages of shadowed connections paired by id and compared (match, mismatch, missing, extra, overflow), "
            "and the p99 gap between the shadow's and the primary's arrival of each paired message, in seconds.",
            language_colours=False,
        )
    )


def proxy_overview(layout):
    layout.add(
        timeseries(
            "Mismatch rate by service",
            [
                (
                    f'sum by (service) (rate(parallax_comparisons_total{{result="mismatch"}}[{RATE}]))'
                    f" / clamp_min(sum by (service) (rate(parallax_comparisons_total[{RATE}])), 1e-9)",
                    "{{service}} http",
                ),
                (
                    f'sum by (service) (rate(parallax_ws_frames_total{{result=~"different|missing|extra"}}[{RATE}]))'
                    f" / clamp_min(sum by (service) (rate(parallax_ws_frames_total[{RATE}])), 1e-9)",
                    "{{service}} ws",
                ),
            ],
            "percentunit",
            "Share of compared answers (HTTP) that differed, and of WebSocket messages that differed or had no counterpart.",
            language_colours=False,
        )
    )
    layout.add(
        timeseries(
            "Upstream p99 by service and backend",
            [
                (
                    quantile(0.99, "parallax_upstream_request_duration_seconds", "", "service, backend"),
                    "{{service}} {{backend}}",
                )
            ],
            "s",
            "primary = Go, shadow = Rust, as the proxy sees them.",
            language_colours=False,
        )
    )
    layout.add(
        timeseries(
            "Backend CPU seen by the proxy (cores)",
            [
                (
                    f"sum by (service, backend) (rate(parallax_backend_cpu_seconds_total[{RATE}]))",
                    "{{service}} {{backend}}",
                )
            ],
            "short",
            "Read by the proxy from /proc for loopback upstreams only: empty under docker-compose (each twin in "
            "its own container; use the per-service CPU panels), filled when parallax proxy runs beside the twins "
            "(parallax run).",
            language_colours=False,
        )
    )
    layout.add(
        timeseries(
            "Backend RSS seen by the proxy",
            [("sum by (service, backend) (parallax_backend_resident_memory_bytes)", "{{service}} {{backend}}")],
            "bytes",
            "As the CPU panel: loopback upstreams only, so empty under docker-compose.",
            language_colours=False,
        )
    )


def dashboard():
    layout = Layout()
    layout.row("Shadowing proxy: all services")
    proxy_overview(layout)
    extra = {"ingest": ingest_panels, "cache": cache_panels, "fanout": fanout_panels}
    for svc, title in SERVICES:
        layout.row(f"{title}: Go (primary) vs Rust (shadow)")
        twin_panels(layout, svc)
        extra[svc](layout)
    return {
        "uid": "parallax-side-by-side",
        "title": "Parallax: Go vs Rust side by side",
        "description": "The Go and Rust twins of every service on the same traffic, behind parallax proxy. "
        "Generated by dashboards/gen.py.",
        "tags": ["parallax", "go", "rust"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-15m", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": layout.panels,
    }


def main():
    text = json.dumps(dashboard(), indent=2) + "\n"
    if sys.argv[1:] == ["--check"]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.name} is not what gen.py writes: run dashboards/gen.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

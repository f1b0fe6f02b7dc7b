#!/usr/bin/env python3
"""Checks the dashboards' PromQL against what the stack really exposes.

For every query of every panel in dashboards/*.json:
- each metric name is one the project's services register (a quoted string
  in rust-services/, go-reference/ or proxy/src/; histogram series
  `_bucket`/`_sum`/`_count` of such a name) or a standard process metric the
  client libraries add;
- each `service="…"` / `language="…"` value is one deploy/prometheus.yml
  assigns (and, for `service`, one deploy/parallax.toml names);
- with promtool on PATH, the expression parses (`promtool check rules`).

Fails naming the metric or label and the panel. Usage: check_metrics.py [ROOT]
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent

# Added by prometheus/client_golang's process collector and the Rust
# prometheus crate's `process` feature, not named in the project's source.
STANDARD = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
}
SOURCES = [("rust-services", "*.rs"), ("go-reference", "*.go"), ("proxy/src", "*.rs")]
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def exposed_names():
    names = set(STANDARD)
    literal = re.compile(r'"([a-zA-Z_:][a-zA-Z0-9_:]*)"')
    for folder, pattern in SOURCES:
        for path in (ROOT / folder).rglob(pattern):
            if "/target/" in str(path):
                continue
            names.update(literal.findall(path.read_text(errors="replace")))
    return names


def metric_names(expr):
    """Metric names in a PromQL expression (no full parser: strings, label
    matchers, ranges and grouping clauses are removed first)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    found = []
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        after = e[m.end():].lstrip()
        before = e[: m.start()]
        if word in KEYWORDS or after.startswith("(") or re.search(r"[0-9.]$", before):
            continue  # a function, a keyword, or the exponent of 1e-9
        found.append(word)
    return found


def known(name, names):
    if name in names:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in names:
            return True
    return False


def label_values(expr, label):
    return re.findall(label + r'\s*=\s*"([^"]*)"', expr)


def main():
    names = exposed_names()
    prom = (ROOT / "deploy/prometheus.yml").read_text()
    languages = set(re.findall(r"^\s+language:\s*(\S+)\s*$", prom, re.M))
    services = set(re.findall(r"^\s+service:\s*(\S+)\s*$", prom, re.M))
    proxy_services = {s["name"] for s in tomllib.loads((ROOT / "deploy/parallax.toml").read_text())["services"]}
    if services != proxy_services:
        print(
            f"deploy/prometheus.yml labels services {sorted(services)} but deploy/parallax.toml names "
            f"{sorted(proxy_services)}: one dashboard query could not cover a twin and its proxy service",
            file=sys.stderr,
        )
        return 1

    errors, exprs = [], []
    dashboards = sorted((ROOT / "dashboards").glob("*.json"))
    if not dashboards:
        errors.append("no dashboards/*.json found")
    for path in dashboards:
        board = json.loads(path.read_text())
        for panel in board.get("panels", []):
            for t in panel.get("targets", []):
                expr = t.get("expr", "")
                where = f'{path.name}: panel {panel.get("id")} "{panel.get("title")}" ({t.get("refId")})'
                for var, value in GRAFANA_VARS.items():
                    expr = expr.replace(var, value)
                if "$" in expr:
                    errors.append(f"{where}: unknown variable in {expr!r}")
                exprs.append((where, expr))
                for name in metric_names(expr):
                    if not known(name, names):
                        errors.append(f"{where}: metric {name} is exposed by no service, proxy or process collector")
                for value in label_values(expr, "service"):
                    if value not in services:
                        errors.append(f'{where}: service="{value}" is not a service label of deploy/prometheus.yml')
                for value in label_values(expr, "language"):
                    if value not in languages:
                        errors.append(f'{where}: language="{value}" is not a language label of deploy/prometheus.yml')

    promtool = shutil.which("promtool")
    if promtool and exprs:
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, (_, expr) in enumerate(exprs):
                f.write(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(expr)}\n")
        run = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        Path(f.name).unlink()
        if run.returncode != 0:
            bad = {int(i) for i in re.findall(r"dashboard:expr(\d+)", run.stdout + run.stderr)}
            where = "".join(f"\n  {exprs[i][0]}: {exprs[i][1]}" for i in sorted(bad))
            errors.append("promtool check rules on the dashboards' queries failed:" + where + "\n" + run.stdout + run.stderr)
    elif not promtool:
        print("check_metrics: promtool not found, PromQL syntax not checked", file=sys.stderr)

    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print(f"check_metrics: {len(exprs)} queries in {len(dashboards)} dashboard(s) use only exposed metrics and labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Proves check.py catches what it is for: each case copies
deploy/kubernetes, breaks one thing, and expects check.py to fail with a
message naming the object and field. Run by scripts/check-kubernetes.sh.

Usage: test_check.py ROOT KUSTOMIZE_BIN
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve()
KUSTOMIZE = sys.argv[2]
SRC = ROOT / "deploy/kubernetes"

# (what is broken, file, old text, new text, expected in the error output
#  [, the binary the check needs: the case is skipped when it is not built])
CASES = [
    ("a misspelt field", "base/twins.yaml", "            failureThreshold: 2", "            failureTreshold: 2",
     "Deployment/ingest-go: spec.template.spec.containers[0].readinessProbe: Additional properties are not allowed ('failureTreshold'"),
    ("a value of the wrong type", "base/proxy.yaml", "  replicas: 3", "  replicas: three",
     "Deployment/parallax-proxy: spec.replicas"),
    ("an invalid proxy config", "base/proxy/parallax.toml", "mirror_percent = 100.0\nshadow_timeout_ms",
     "mirror_percent = 150.0\nshadow_timeout_ms", "mirror_percent", "target/debug/parallax"),
    ("a flag the twin does not have", "base/twins.yaml", '"--kafka-brokers=kafka:9092"', '"--kafka-broker=kafka:9092"',
     "Deployment/ingest-go: container ingest: args: --kafka-broker is not in", "target/parallax-bin/ingest"),
    ("the token outside its Secret mount", "base/proxy.yaml", "              mountPath: /etc/parallax/admin\n",
     "              mountPath: /etc/parallax/secret\n", "/etc/parallax/admin/token is not in a mounted Secret"),
    ("a Service port the pods lack", "base/proxy.yaml", "      targetPort: cache", "      targetPort: cach",
     "Service/parallax-proxy: port cache: targetPort cach"),
    ("a scrape rule that keeps nothing", "base/prometheus/prometheus.yml", "regex: parallax-proxy", "regex: parallax-proxies",
     "job parallax-proxy: its relabel rules keep no pod"),
    ("replicas that would judge on their own", "base/proxy/parallax.toml", "controller_lease_secs = 30\n", "",
     "has no controller_lease_secs"),
    ("a controller looking for replicas in the wrong job", "base/controller/controller.toml",
     'discover_job = "parallax-proxy"', 'discover_job = "proxy"', "discover_job 'proxy' is not a Prometheus job"),
    ("a misspelt discovery setting", "base/prometheus/prometheus.yml", "own_namespace: true", "own_namespce: true",
     "kubernetes_sd_configs.namespaces: unknown keys ['own_namespce']"),
    ("a ConfigMap key the path lacks", "base/proxy.yaml", "subPath: parallax.toml", "subPath: proxy.toml",
     "--config /etc/parallax/parallax.toml is not a key of a mounted ConfigMap"),
]


def main():
    failed = skipped = 0
    for what, rel, old, new, expected, *needs in CASES:
        if needs and not (ROOT / needs[0]).exists():
            print(f"test_check: skipped {what}: {needs[0]} not built")
            skipped += 1
            continue
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "kubernetes"
            shutil.copytree(SRC, copy)
            path = copy / rel
            text = path.read_text()
            if old not in text:
                print(f"test_check: {what}: {rel} no longer contains {old!r}; update the case", file=sys.stderr)
                failed += 1
                continue
            path.write_text(text.replace(old, new, 1))
            run = subprocess.run(
                [sys.executable, str(SRC / "check.py"), str(ROOT), KUSTOMIZE, str(copy), "overlays/local"],
                capture_output=True, text=True, timeout=120,
            )
            output = run.stdout + run.stderr
            if run.returncode == 0 or expected not in output:
                print(f"test_check: {what}: NOT caught (exit {run.returncode}); expected {expected!r} in:\n{output}", file=sys.stderr)
                failed += 1
            else:
                line = next(l for l in output.splitlines() if expected in l)
                print(f"test_check: caught {what}: {line.strip()}")
    print(f"test_check: {len(CASES) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

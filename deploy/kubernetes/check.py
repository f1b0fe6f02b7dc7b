#!/usr/bin/env python3
"""Checks the rendered Kubernetes manifests offline (no cluster, no kubectl).

Usage: check.py ROOT KUSTOMIZE_BIN [MANIFESTS_DIR [KUSTOMIZATION...]]
  MANIFESTS_DIR defaults to ROOT/deploy/kubernetes (test_check.py points
  it at mutated copies); KUSTOMIZATIONS limits which are rendered.

For every kustomization in KUSTOMIZATIONS: render it with kustomize, then
- validate every object against the Kubernetes OpenAPI schemas bundled in
  `kubernetes-validate` (strict: an unknown field is an error), at
  KUBERNETES_VERSION, the oldest release these manifests are meant for;
- check what a schema cannot: every ConfigMap, Secret and PVC a pod uses
  exists in the render (or is one the overlay expects to be created by
  hand), each Service selects some pod and names ports those pods have,
  each probe's named port exists, and every absolute path in a container's
  args or env that lies under a ConfigMap or Secret mount is a key of it;
- run `parallax proxy --config … --check` on the proxy's ConfigMap and
  `parallax canary controller --config … --check` on the controller's (once
  the binary has it), each token file they name resolved to the mounted
  Secret, and check that the controller's service is canaried by the proxy
  with the same steps and under a controller (controller_lease_secs), and
  that its discover_job finds the proxy pods at their admin port;
- `promtool check config` on Prometheus' ConfigMap (kubernetes_sd_configs
  swapped for static targets: Debian's promtool is built without Kubernetes
  discovery; with PROMTOOL_K8S naming a promtool that has it, also the
  config as deployed) and a simulation of its relabel rules on the rendered pods:
  every job finds targets, every twin is scraped with the same language and
  service labels deploy/prometheus.yml gives it, and the proxy's job sends
  the token;
- every --flag of every container running one of our images against that
  binary's --help (target/debug, target/parallax-bin; built by
  scripts/test.sh), as deploy/check_compose.py does for compose. Flags and
  subcommands in PENDING (issue 15, being built) are reported, not failed,
  while the binary lacks them.
Errors name the kustomization, the object and the field; exit 1 on any.
"""

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(sys.argv[1]).resolve()
KUSTOMIZE = sys.argv[2]
K8S = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 else ROOT / "deploy/kubernetes"
ONLY = sys.argv[4:]
KUBERNETES_VERSION = "1.34"

KUSTOMIZATIONS = {
    # path: Secrets the overlay expects to exist already (created by hand)
    "overlays/local": set(),
    "overlays/production": {"parallax-admin-token", "grafana-admin"},
    "load": set(),
}

# Image (name without registry and tag) -> the binary built here.
BINARIES = {
    "parallax": "target/debug/parallax",
    "ingest-rust": "target/debug/parallax-ingest",
    "session-cache-rust": "target/debug/parallax-session-cache",
    "fanout-rust": "target/debug/parallax-fanout",
    "ingest-go": "target/parallax-bin/ingest",
    "session-cache-go": "target/parallax-bin/session-cache",
    "fanout-go": "target/parallax-bin/fanout",
}

# Being built by others in issue 15: reported while missing, never failed.
# (`parallax canary controller` was here until it landed.)
PENDING_SUBCOMMANDS = set()
PENDING_FLAGS = {("load", "ingest"): {"worker"}}

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}

errors, notes = [], []


def render(kustomization):
    run = subprocess.run(
        [KUSTOMIZE, "build", str(K8S / kustomization)], capture_output=True, text=True
    )
    if run.returncode != 0:
        errors.append(f"{kustomization}: kustomize build failed:\n{run.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(run.stdout) if d]


def ident(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def field_path(parts):
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def validate_schema(where, obj):
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        errors.append(f"{where}: {ident(obj)}: no bundled schema for {obj.get('apiVersion')} {obj.get('kind')}")
    except kubernetes_validate.ValidationError as e:
        errors.append(f"{where}: {ident(obj)}: {field_path(list(e.absolute_path))}: {e.message}")


def pod_spec(obj):
    if obj["kind"] in POD_KINDS:
        return obj["spec"]["template"]["spec"], obj["spec"]["template"]["metadata"]
    return None, None


def image_name(image):
    name = image.rsplit("/", 1)[-1]
    return name.split("@")[0].split(":")[0]


def mounted_file(spec, container, path, by_name):
    """(volume kind, object name, key, object or None) of an absolute path
    inside a ConfigMap/Secret mount, or None when no such mount covers it."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        vol = volumes.get(m["name"], {})
        kind = "ConfigMap" if "configMap" in vol else "Secret" if "secret" in vol else None
        if not kind:
            continue
        source = vol["configMap"] if kind == "ConfigMap" else vol["secret"]
        name = source.get("name") or source.get("secretName")
        mount = m["mountPath"].rstrip("/")
        if "subPath" in m:
            if path != mount:
                continue
            key = m["subPath"]
        elif path.startswith(mount + "/"):
            key = path[len(mount) + 1:]
        else:
            continue
        items = source.get("items")
        if items:
            by_path = {i["path"]: i["key"] for i in items}
            key = by_path.get(key, None) or f"(no item with path {key})"
        return kind, name, key, by_name.get((kind, name))
    return None


def file_data(obj, key):
    if obj is None:
        return None
    if key in obj.get("data", {}) and obj["kind"] == "ConfigMap":
        return obj["data"][key]
    if key in obj.get("stringData", {}):
        return obj["stringData"][key]
    if key in obj.get("data", {}):
        import base64

        return base64.b64decode(obj["data"][key]).decode()
    return None


def check_references(where, objs, external_secrets):
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    pods = []
    for obj in objs:
        spec, meta = pod_spec(obj)
        if spec is None:
            continue
        pods.append((obj, spec, meta))
        claims = {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
        for vol in spec.get("volumes", []):
            for kind, key, name_key in (
                ("ConfigMap", "configMap", "name"),
                ("Secret", "secret", "secretName"),
                ("PersistentVolumeClaim", "persistentVolumeClaim", "claimName"),
            ):
                if key in vol:
                    name = vol[key][name_key]
                    if (kind, name) not in by_name and not (kind == "Secret" and name in external_secrets):
                        errors.append(f"{where}: {ident(obj)}: volume {vol['name']}: {kind} {name} is not in the render")
        for c in spec.get("containers", []):
            cwhere = f"{where}: {ident(obj)}: container {c['name']}"
            ports = {p.get("name") for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                p = c.get(probe, {})
                for action in ("httpGet", "tcpSocket"):
                    port = p.get(action, {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        errors.append(f"{cwhere}: {probe}.{action}.port {port} is not a named port of the container")
            for mount in c.get("volumeMounts", []):
                if mount["name"] not in {v["name"] for v in spec.get("volumes", [])} | claims:
                    errors.append(f"{cwhere}: volumeMounts {mount['name']} has no volume")
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = by_name.get(("Secret", ref["name"]))
                    if secret is None and ref["name"] not in external_secrets:
                        errors.append(f"{cwhere}: env {env['name']}: Secret {ref['name']} is not in the render")
                    elif secret is not None and file_data(secret, ref["key"]) is None:
                        errors.append(f"{cwhere}: env {env['name']}: Secret {ref['name']} has no key {ref['key']}")
            values = list(c.get("args", [])) + list(c.get("command", []))
            values += [e.get("value", "") for e in c.get("env", [])]
            for value in values:
                for path in re.findall(r"(?:^|=)(/[\w./-]+)", str(value)):
                    found = mounted_file(spec, c, path, by_name)
                    if not found:
                        continue
                    kind, name, key, src = found
                    if src is None:
                        if not (kind == "Secret" and name in external_secrets):
                            errors.append(f"{cwhere}: {path}: {kind} {name} is not in the render")
                    elif file_data(src, key) is None:
                        errors.append(f"{cwhere}: {path}: {kind} {name} has no key {key}")
    for obj in objs:
        if obj["kind"] != "Service" or not obj["spec"].get("selector"):
            continue
        selector = obj["spec"]["selector"]
        matched = [
            (o, s) for o, s, m in pods
            if all(m.get("labels", {}).get(k) == v for k, v in selector.items())
        ]
        if not matched:
            errors.append(f"{where}: {ident(obj)}: spec.selector {selector} matches no pod template")
            continue
        names = {p.get("name") for _, s in matched for c in s["containers"] for p in c.get("ports", [])}
        for port in obj["spec"].get("ports", []):
            target = port.get("targetPort")
            if isinstance(target, str) and target not in names:
                errors.append(f"{where}: {ident(obj)}: port {port.get('name')}: targetPort {target} is not a port of its pods")
    return by_name, pods


def container_config(pods, by_name, predicate, flag):
    """(obj, spec, container, path, ConfigMap text) for the containers that
    predicate(container) picks, their config file named by `flag`."""
    out = []
    for obj, spec, _ in pods:
        for c in spec["containers"]:
            if not predicate(c):
                continue
            args = c.get("args", [])
            path = None
            for i, a in enumerate(args):
                if a == flag and i + 1 < len(args):
                    path = args[i + 1]
                elif a.startswith(flag + "="):
                    path = a.split("=", 1)[1]
            found = mounted_file(spec, c, path, by_name) if path else None
            text = file_data(found[3], found[2]) if found else None
            out.append((obj, spec, c, path, text))
    return out


def token_file(where, obj, spec, c, path, by_name, external_secrets, tmp):
    """A stand-in for a token file the config names: it must lie in a Secret
    mount; the Secret's own value when rendered, a dummy when external."""
    found = mounted_file(spec, c, path, by_name)
    if not found or found[0] != "Secret":
        errors.append(f"{where}: {ident(obj)}: container {c['name']}: {path} is not in a mounted Secret")
        return None
    kind, name, key, src = found
    value = file_data(src, key) if src is not None else None
    if src is not None and value is None:
        errors.append(f"{where}: {ident(obj)}: container {c['name']}: {path}: Secret {name} has no key {key}")
        return None
    if src is None and name not in external_secrets:
        return None  # reported by check_references
    stand_in = Path(tmp) / f"token-{len(list(Path(tmp).iterdir()))}"
    stand_in.write_text(value if value is not None else "x" * 32 + "\n")
    return stand_in


# Our configs checked by the binary itself: subcommand -> its check command.
CONFIG_CHECKS = {
    ("proxy",): ["proxy", "--config", "{config}", "--check"],
    ("canary", "controller"): ["canary", "controller", "--config", "{config}", "--check"],
}


def parallax_sub(c):
    args = c.get("args", [])
    sub = []
    for a in args:
        if a.startswith("-"):
            break
        sub.append(a)
    return tuple(sub)


def check_parallax_configs(where, pods, by_name, external_secrets, tmp):
    """Each proxy's and controller's ConfigMap through `--check`, their
    token file resolved to the mounted Secret. Returns the configs seen
    (subcommand, parsed TOML) for the cross-checks."""
    binary = ROOT / BINARIES["parallax"]
    seen = []
    for sub, command in CONFIG_CHECKS.items():
        configs = container_config(
            pods, by_name, lambda c: image_name(c["image"]) == "parallax" and parallax_sub(c) == sub, "--config"
        )
        for obj, spec, c, path, text in configs:
            cwhere = f"{where}: {ident(obj)}: container {c['name']}"
            if text is None:
                errors.append(f"{cwhere}: --config {path} is not a key of a mounted ConfigMap")
                continue
            try:
                seen.append((sub, tomllib.loads(text), cwhere, path))
            except tomllib.TOMLDecodeError as e:
                errors.append(f"{cwhere}: {path}: not TOML: {e}")
                continue
            m = re.search(r'^admin_token_file\s*=\s*"([^"]+)"', text, re.M)
            if m:
                stand_in = token_file(where, obj, spec, c, m.group(1), by_name, external_secrets, tmp)
                if stand_in is None:
                    continue
                text = text.replace(m.group(0), f'admin_token_file = "{stand_in}"')
            if not binary.exists():
                notes.append(f"{cwhere}: {BINARIES['parallax']} not built, {path} not checked (cargo build -p parallax)")
                continue
            code, _ = help_text(binary, list(sub))
            if code != 0:
                # Reported by check_flags (pending or an error).
                continue
            config = Path(tmp) / Path(path).name
            config.write_text(text)
            run = subprocess.run(
                [str(binary), *[a.replace("{config}", str(config)) for a in command]],
                capture_output=True, text=True, timeout=60, env={"RUST_BACKTRACE": "0", "PATH": "/usr/bin:/bin"},
            )
            if run.returncode != 0:
                message = (run.stderr or run.stdout).strip().splitlines()
                errors.append(f"{cwhere}: `parallax {' '.join(sub)} --check` on {path}: {message[0] if message else run.returncode}")
    proxies = [cfg for sub, cfg, _, _ in seen if sub == ("proxy",)]
    for sub, cfg, cwhere, path in seen:
        if sub != ("canary", "controller") or "service" not in cfg:
            continue
        for proxy in proxies:
            canaried = {s["name"]: s["canary"] for s in proxy.get("services", []) if "canary" in s}
            if cfg["service"] not in canaried:
                errors.append(f"{cwhere}: {path}: service {cfg['service']!r} has no [services.canary] in the proxy's config")
            elif "canary" in cfg and cfg["canary"].get("weights_percent") != canaried[cfg["service"]].get("weights_percent"):
                errors.append(f"{cwhere}: {path}: canary.weights_percent differs from the proxy's [services.canary] of {cfg['service']}")
            elif "controller_lease_secs" not in canaried[cfg["service"]]:
                errors.append(f"{cwhere}: {path}: the proxy's [services.canary] of {cfg['service']} has no controller_lease_secs: "
                              "its replicas would judge on their own")
    counts = {" ".join(sub): sum(1 for s, *_ in seen if s == sub) for sub in CONFIG_CHECKS}
    return counts, seen


def relabel(rules, labels):
    """Prometheus relabelling, the actions used here; None when dropped."""
    labels = dict(labels)
    for r in rules:
        action = r.get("action", "replace")
        value = r.get("separator", ";").join(labels.get(s, "") for s in r.get("source_labels", []))
        regex = re.compile(r"(?:" + r.get("regex", "(.*)") + r")\Z")
        m = regex.match(value)
        if action == "keep" and not m:
            return None
        if action == "drop" and m:
            return None
        if action == "replace" and m:
            replacement = r.get("replacement", "$1")
            labels[r["target_label"]] = re.sub(r"\$\{?(\d+)\}?", lambda g: m.group(int(g.group(1))) or "", replacement)
    return labels


def sanitize(name):
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def check_prometheus(where, pods, by_name, external_secrets, tmp):
    """Returns {(pod object, port name): (labels after relabelling, job)}."""
    all_scraped = {}
    configs = container_config(
        pods, by_name, lambda c: image_name(c["image"]) == "prometheus", "--config.file"
    )
    for obj, spec, c, path, text in configs:
        cwhere = f"{where}: {ident(obj)}: container {c['name']}"
        if text is None:
            errors.append(f"{cwhere}: --config.file {path} is not a key of a mounted ConfigMap")
            continue
        config = yaml.safe_load(text)
        compose_labels = set()
        compose = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
        for job in compose["scrape_configs"]:
            for sc in job.get("static_configs", []):
                lab = sc.get("labels", {})
                if "language" in lab:
                    compose_labels.add((lab["language"], lab["service"], job["job_name"]))
        scraped = {}
        for job in config["scrape_configs"]:
            jwhere = f"{cwhere}: {path}: job {job['job_name']}"
            auth = job.get("authorization", {})
            if "credentials_file" in auth:
                stand_in = token_file(where, obj, spec, c, auth["credentials_file"], by_name, external_secrets, tmp)
                if stand_in is not None:
                    auth["credentials_file"] = str(stand_in)
            sds = job.pop("kubernetes_sd_configs", [])
            for sd in sds:
                unknown = set(sd) - {"role", "namespaces", "selectors", "attach_metadata", "api_server", "kubeconfig_file"}
                if unknown or sd.get("role") not in {"pod", "service", "endpoints", "endpointslice", "node", "ingress"}:
                    errors.append(f"{jwhere}: kubernetes_sd_configs: role {sd.get('role')!r}, unknown keys {sorted(unknown)}")
                namespaces = sd.get("namespaces") or {}
                if set(namespaces) - {"own_namespace", "names"}:
                    errors.append(f"{jwhere}: kubernetes_sd_configs.namespaces: unknown keys {sorted(set(namespaces) - {'own_namespace', 'names'})}")
            job["static_configs"] = [{"targets": ["192.0.2.1:80"]}]
            if not any(sd.get("role") == "pod" for sd in sds):
                continue
            found = 0
            for pobj, pspec, meta in pods:
                for pc in pspec["containers"]:
                    for port in pc.get("ports", []):
                        meta_labels = {f"__meta_kubernetes_pod_label_{sanitize(k)}": v for k, v in meta.get("labels", {}).items()}
                        meta_labels.update({
                            "__address__": f"10.0.0.1:{port.get('containerPort')}",
                            "__meta_kubernetes_pod_name": pobj["metadata"]["name"] + "-xyz",
                            "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                            "__meta_kubernetes_pod_container_name": pc["name"],
                            "job": job["job_name"],
                        })
                        out = relabel(job.get("relabel_configs", []), meta_labels)
                        if out is None:
                            continue
                        found += 1
                        scraped[(ident(pobj), port.get("name"))] = (out, job)
            if found == 0:
                errors.append(f"{jwhere}: its relabel rules keep no pod of the render")
        for pobj, pspec, meta in pods:
            labels = meta.get("labels", {})
            name = labels.get("app.kubernetes.io/name")
            if "parallax.dev/language" in labels:
                hit = scraped.get((ident(pobj), "http"))
                got = hit and (hit[0].get("language"), hit[0].get("service"), hit[0].get("job"))
                if got not in compose_labels:
                    errors.append(f"{cwhere}: {path}: twin {ident(pobj)} is scraped as (language, service, job) {got}, "
                                  f"not as deploy/prometheus.yml names one of {sorted(compose_labels)}")
            if name == "parallax-proxy":
                hit = scraped.get((ident(pobj), "admin"))
                if not hit:
                    errors.append(f"{cwhere}: {path}: no job scrapes the proxy's admin port")
                elif "credentials_file" not in hit[1].get("authorization", {}):
                    errors.append(f"{cwhere}: {path}: job {hit[1]['job_name']} scrapes the proxy without its admin token")
                elif "service" in hit[0]:
                    errors.append(f"{cwhere}: {path}: job {hit[1]['job_name']} gives the proxy a `service` target label (its metrics carry their own)")
        all_scraped.update(scraped)
        full = os.environ.get("PROMTOOL_K8S")
        if full:
            # A promtool with Kubernetes discovery (e.g. Prometheus 3.x's,
            # built from github.com/prometheus/prometheus/cmd/promtool): the
            # config as deployed, only the token file swapped.
            unmodified = yaml.safe_load(text)
            for job, original in zip(config["scrape_configs"], unmodified["scrape_configs"]):
                if "credentials_file" in original.get("authorization", {}):
                    original["authorization"]["credentials_file"] = job["authorization"]["credentials_file"]
            as_deployed = Path(tmp) / "prometheus-k8s.yml"
            as_deployed.write_text(yaml.safe_dump(unmodified))
            run = subprocess.run([full, "check", "config", str(as_deployed)], capture_output=True, text=True, timeout=60)
            if run.returncode != 0:
                errors.append(f"{cwhere}: {full} check config {path}: {(run.stdout + run.stderr).strip()}")
        checked = Path(tmp) / "prometheus.yml"
        checked.write_text(yaml.safe_dump(config))
        run = subprocess.run(["promtool", "check", "config", str(checked)], capture_output=True, text=True, timeout=60)
        if run.returncode != 0:
            errors.append(f"{cwhere}: promtool check config {path}: {(run.stdout + run.stderr).strip()}")
    return all_scraped


def check_discovery(where, seen, scraped):
    """The controller finds the replicas as Prometheus' up targets of
    discover_job, at their `instance` label: that must be each proxy pod's
    admin port."""
    admin_ports = {
        cfg.get("admin_listen", "").rsplit(":", 1)[-1] for sub, cfg, _, _ in seen if sub == ("proxy",)
    }
    for sub, cfg, cwhere, path in seen:
        job = cfg.get("discover_job") if sub == ("canary", "controller") else None
        if not job:
            continue
        found = [(k, v) for k, v in scraped.items() if v[1]["job_name"] == job or v[0].get("job") == job]
        if not found:
            errors.append(f"{cwhere}: {path}: discover_job {job!r} is not a Prometheus job of the render")
            continue
        for (pod, port), (labels, _) in found:
            instance = labels.get("instance", labels.get("__address__", ""))
            if instance.rsplit(":", 1)[-1] not in admin_ports:
                errors.append(f"{cwhere}: {path}: discover_job {job!r} finds {pod} at {instance}, not at the proxy's admin port {sorted(admin_ports)}")


def help_text(binary, sub):
    run = subprocess.run([str(binary), *sub, "--help"], capture_output=True, text=True, timeout=30)
    return run.returncode, run.stdout + run.stderr


def check_flags(where, pods):
    checked = 0
    for obj, spec, _ in pods:
        for c in spec["containers"]:
            rel = BINARIES.get(image_name(c["image"]))
            if rel is None:
                continue
            cwhere = f"{where}: {ident(obj)}: container {c['name']}"
            binary = ROOT / rel
            if not binary.exists():
                notes.append(f"{cwhere}: {rel} not built, its flags not checked")
                continue
            args = [str(a) for a in c.get("command", []) + c.get("args", [])]
            sub = []
            if image_name(c["image"]) == "parallax":
                while args and not args[0].startswith("-"):
                    sub.append(args.pop(0))
            # The deepest subcommand the binary knows.
            known = []
            for i in range(len(sub)):
                code, text = help_text(binary, sub[: i + 1])
                listed = i == 0 or re.search(r"^\s+" + re.escape(sub[i]) + r"\s", help_text(binary, sub[:i])[1], re.M)
                if code != 0 or not listed:
                    break
                known = sub[: i + 1]
            if known != sub:
                missing = tuple(sub)
                if missing in PENDING_SUBCOMMANDS:
                    notes.append(f"{cwhere}: PENDING (issue 15): `{rel.rsplit('/', 1)[-1]} {' '.join(sub)}` does not exist yet; its flags are not checked")
                else:
                    errors.append(f"{cwhere}: `{' '.join(sub)}` is not a subcommand of {rel}")
                continue
            _, text = help_text(binary, sub)
            pending = PENDING_FLAGS.get(tuple(sub), set())
            for arg in args:
                m = re.match(r"--?([a-z][a-z0-9.-]*)", arg)
                if not m:
                    continue
                flag = m.group(1)
                if re.search(r"(^|\s)--?" + re.escape(flag) + r"(?![\w-])", text):
                    continue
                if flag in pending:
                    notes.append(f"{cwhere}: PENDING (issue 15): --{flag} is not in `{' '.join([rel.rsplit('/', 1)[-1], *sub])} --help` yet")
                else:
                    errors.append(f"{cwhere}: args: --{flag} is not in `{' '.join([rel.rsplit('/', 1)[-1], *sub])} --help`")
            checked += 1
    return checked


def main():
    dashboard = ROOT / "dashboards/parallax-side-by-side.json"
    copy = K8S / "base/grafana/parallax-side-by-side.json"
    if dashboard.read_bytes() != copy.read_bytes():
        errors.append("deploy/kubernetes/base/grafana/parallax-side-by-side.json differs from dashboards/: "
                      "cp dashboards/parallax-side-by-side.json deploy/kubernetes/base/grafana/")
    summary = []
    for kustomization, external in KUSTOMIZATIONS.items():
        if ONLY and kustomization not in ONLY:
            continue
        objs = render(kustomization)
        if not objs:
            continue
        before = len(errors)
        for obj in objs:
            validate_schema(kustomization, obj)
        if len(errors) > before:
            # The checks below assume well-formed objects.
            notes.append(f"{kustomization}: schema errors, the other checks skipped")
            continue
        by_name, pods = check_references(kustomization, objs, external)
        with tempfile.TemporaryDirectory() as tmp:
            configs, seen = check_parallax_configs(kustomization, pods, by_name, external, tmp)
            scraped = check_prometheus(kustomization, pods, by_name, external, tmp)
            check_discovery(kustomization, seen, scraped)
        flagged = check_flags(kustomization, pods)
        counted = ", ".join(f"{n} {sub} config(s)" for sub, n in configs.items() if n)
        summary.append(f"{kustomization}: {len(objs)} objects, {counted + ', ' if counted else ''}{flagged} containers' flags")
    for n in notes:
        print(f"check-kubernetes: {n}", file=sys.stderr)
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    if errors:
        print(f"check-kubernetes: {len(errors)} error(s)", file=sys.stderr)
        return 1
    print(f"check-kubernetes: valid against Kubernetes {KUBERNETES_VERSION} schemas; " + "; ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks what `docker-compose config` cannot without a Docker engine.

Reads the resolved compose file (the output of `docker-compose config`) on
stdin and checks, for every service:
- a build's context and Dockerfile exist, and each build arg is an ARG of
  that Dockerfile;
- the arg names something real: SERVICE a Go command (go-reference/cmd/…),
  BIN a binary of a workspace package of the same name;
- each bind-mounted host path exists;
- with the binaries built (target/debug, target/parallax-bin), every
  `--flag` of the service's command is one its `--help` lists.

Usage: docker-compose config | check_compose.py ROOT
"""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(sys.argv[1]).resolve()


def dockerfile_args(path):
    return set(re.findall(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", path.read_text(), re.M))


def rust_bins():
    """Binary name -> package name, over the workspace members."""
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    bins = {}
    for member in workspace["workspace"]["members"]:
        manifest = tomllib.loads((ROOT / member / "Cargo.toml").read_text())
        package = manifest["package"]["name"]
        for b in manifest.get("bin", []):
            bins[b["name"]] = package
        if (ROOT / member / "src/main.rs").exists():
            bins.setdefault(package, package)
    return bins


def flags(command):
    out = []
    for arg in command:
        m = re.match(r"--?([a-z][a-z0-9-]*)", arg)
        if m:
            out.append(m.group(1))
    return out


def main():
    config = yaml.safe_load(sys.stdin)
    bins = rust_bins()
    errors, notes = [], []
    for name, svc in sorted(config["services"].items()):
        binary, sub = None, []
        build = svc.get("build")
        if build:
            context = Path(build["context"])
            if not context.is_absolute():
                context = ROOT / context
            dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
            if not context.is_dir():
                errors.append(f"{name}: build context {context} is not a directory")
                continue
            if not dockerfile.is_file():
                errors.append(f"{name}: Dockerfile {dockerfile} not found")
                continue
            declared = dockerfile_args(dockerfile)
            args = build.get("args") or {}
            for arg in args:
                if arg not in declared:
                    errors.append(f"{name}: build arg {arg} is not an ARG of {dockerfile.name}")
            if "SERVICE" in args:
                cmd = ROOT / "go-reference/cmd" / args["SERVICE"]
                if not (cmd / "main.go").is_file():
                    errors.append(f"{name}: SERVICE={args['SERVICE']}: no go-reference/cmd/{args['SERVICE']}/main.go")
                binary = ROOT / "target/parallax-bin" / args["SERVICE"]
            if "BIN" in args:
                if bins.get(args["BIN"]) != args["BIN"]:
                    errors.append(f"{name}: BIN={args['BIN']} is not a binary of a workspace package of that name")
                binary = ROOT / "target/debug" / args["BIN"]
                if args["BIN"] == "parallax":
                    sub = (svc.get("command") or [])[:1]
        for volume in svc.get("volumes", []):
            source = volume.get("source") if isinstance(volume, dict) else volume.split(":")[0]
            kind = volume.get("type") if isinstance(volume, dict) else ("bind" if "/" in source else "volume")
            if kind == "bind" and not Path(source).exists():
                errors.append(f"{name}: bind-mounted {source} does not exist")
        command = svc.get("command") or []
        if isinstance(command, str):
            command = command.split()
        if binary is None or not command:
            continue
        if not binary.exists():
            notes.append(f"{name}: {binary.relative_to(ROOT)} not built, its flags not checked")
            continue
        run = subprocess.run([str(binary), *sub, "--help"], capture_output=True, text=True, timeout=30)
        help_text = run.stdout + run.stderr
        for flag in flags(command[len(sub):]):
            if not re.search(r"(^|\s)--?" + re.escape(flag) + r"(?![\w-])", help_text):
                errors.append(f"{name}: flag --{flag} is not in `{binary.name} {' '.join(sub)} --help`")
    for n in notes:
        print(f"check_compose: {n}", file=sys.stderr)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print(f"check_compose: {len(config['services'])} services: builds, args, mounts and flags agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())

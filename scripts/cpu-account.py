#!/usr/bin/env python3
"""Where a benchmark's CPU goes, per request: the machine's idle share and
each named process's CPU and run-queue wait over one window of a load run.

Why: on a 2-CPU box the client, both backends and the kernel's loopback
work share the CPUs with the proxy, so a throughput ratio or an open-model
median says little until we know who had the CPUs, and who waited for them.
The kernel keeps both numbers per thread at no cost to the measured
processes:

- /proc/PID/task/TID/schedstat: ns on a CPU, ns runnable but waiting on a
  run queue (the scheduler's run delay), time slices. Summed over a
  process's threads; a thread that exits inside the window loses its share.
- /proc/stat's first line: the machine's user, system, idle, iowait, irq,
  softirq and steal ticks. This kernel counts softirq time apart from the
  tasks it interrupted (loopback TCP is mostly softirq), so named processes
  + softirq + irq + what nobody named = the machine's busy time.

Usage:

  cpu-account.py run --out F.json [--skip S] [--span T] [--pid NAME=PID]...
      [--metrics NAME=URL]... [--result wrk | --result json:PATH]
      [--tag KEY=VALUE]... -- COMMAND...
    runs COMMAND (the load generator; its output passes through), takes a
    reading S seconds after it started and another T seconds later, and
    writes both deltas to F.json: the machine, every --pid and the
    generator itself (its threads, as `generator`). --metrics scrapes a
    proxy's /metrics at both readings for its
    parallax_upstream_request_duration_seconds (mean and p50 by backend).
    --result says where the request rate comes from: wrk's stdout, or a
    JSON file the generator writes (`parallax load`'s load.json or the
    lean generator's, read after it exits).

  cpu-account.py table F.json...
    one Markdown table per request: req/s, p50, idle, machine busy, then
    CPU and run-queue wait of each process, softirq, steal and the rest.

  cpu-account.py budget F.json --against G.json --ratio 2.5 --proxy NAME
      [--optimistic P.json]
    what the proxy's CPU per request would have to be for F's path to
    reach RATIO times G's throughput on the same CPUs, everything else
    costing per request what it cost in F (and, with P, each other process
    at the lower of its cost in F and in P: a pass-through run at a higher
    rate, where a wake-up serves more requests).
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
STAT_FIELDS = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]


def machine():
    """The first line of /proc/stat in seconds per field."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return {k: t / HZ for k, t in zip(STAT_FIELDS, ticks)}


def threads(pid):
    """{tid: (run_ns, wait_ns, slices)} of a process's live threads."""
    out = {}
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                run, wait, slices = (int(x) for x in f.read().split()[:3])
        except (OSError, ValueError):
            continue
        out[path.split("/")[4]] = (run, wait, slices)
    return out


def delta_threads(before, after):
    """CPU and wait seconds and slices between two readings of one process;
    a thread born in between counts from zero."""
    run = wait = slices = 0
    for tid, (r, w, s) in after.items():
        r0, w0, s0 = before.get(tid, (0, 0, 0))
        run, wait, slices = run + r - r0, wait + w - w0, slices + s - s0
    return {"cpu_s": run / 1e9, "wait_s": wait / 1e9, "slices": slices}


HIST = "parallax_upstream_request_duration_seconds"
SAMPLE = re.compile(r"^(\w+)\{(.*)\}\s+(\S+)$")


def scrape(url):
    """{backend: {"sum": s, "count": n, "buckets": {le: cumulative}}} of the
    proxy's upstream latency histogram, summed over services and routes."""
    try:
        text = urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError as e:
        return {"error": str(e)}
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or not m.group(1).startswith(HIST):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        h = out.setdefault(labels.get("backend", "?"), {"sum": 0.0, "count": 0.0, "buckets": {}})
        value = float(m.group(3))
        if m.group(1) == HIST + "_sum":
            h["sum"] += value
        elif m.group(1) == HIST + "_count":
            h["count"] += value
        elif m.group(1) == HIST + "_bucket":
            h["buckets"][labels["le"]] = h["buckets"].get(labels["le"], 0.0) + value
    return out


def histogram_delta(before, after):
    """Mean and p50 (linear inside the bucket, as histogram_quantile does)
    of what the histogram saw between two scrapes, per backend, in µs."""
    out = {}
    for backend, h in after.items():
        if not isinstance(h, dict):
            continue
        b = before.get(backend, {"sum": 0.0, "count": 0.0, "buckets": {}})
        count = h["count"] - b["count"]
        if count <= 0:
            continue
        les = sorted((float(le), c - b["buckets"].get(le, 0.0)) for le, c in h["buckets"].items())
        p50, lower, below = None, 0.0, 0.0
        for le, cum in les:
            if cum >= count / 2:
                p50 = le if le == float("inf") else lower + (le - lower) * (count / 2 - below) / max(cum - below, 1e-9)
                break
            lower, below = le, cum
        out[backend] = {"count": count, "mean_us": (h["sum"] - b["sum"]) / count * 1e6,
                        "p50_us": None if p50 is None or p50 == float("inf") else p50 * 1e6}
    return out


def reading(pids, child, metrics):
    r = {"t": time.monotonic(), "machine": machine(),
         "procs": {name: threads(pid) for name, pid in pids.items()}}
    r["procs"]["generator"] = threads(child)
    r["metrics"] = {name: scrape(url) for name, url in metrics.items()}
    return r


def parse_wrk(text):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\b", text, re.M)
    scale = {"us": 1, "ms": 1e3, "s": 1e6}
    return {"rate": float(rps.group(1)) if rps else None,
            "p50_us": float(p50.group(1)) * scale[p50.group(2)] if p50 else None}


def parse_json(path):
    with open(path) as f:
        d = json.load(f)
    lat = d.get("latency", {})
    return {"rate": d.get("achieved_rate_per_sec"), "p50_us": lat.get("p50_us"),
            "p99_us": lat.get("p99_us"), "errors": d.get("errors"), "late": d.get("late"),
            "generator_cpu_us_per_request": d.get("generator_cpu_us_per_request")}


def run(args):
    pids = dict(kv.split("=", 1) for kv in args.pid)
    metrics = dict(kv.split("=", 1) for kv in args.metrics)
    capture = args.result == "wrk"
    child = subprocess.Popen(args.command, stdout=subprocess.PIPE if capture else None)
    started = time.monotonic()
    readings = []

    def take():
        # The first reading after S seconds, the second T seconds after it:
        # a window inside the generator's steady part.
        for at in (args.skip, args.skip + args.span):
            delay = started + at - time.monotonic()
            if delay > 0 and child.poll() is None:
                time.sleep(delay)
            if child.poll() is not None:
                return
            readings.append(reading(pids, child.pid, metrics))

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    out = child.stdout.read().decode() if capture else ""
    if capture:
        sys.stdout.write(out)
        sys.stdout.flush()
    _, status, usage = os.wait4(child.pid, 0)
    taker.join(timeout=1)
    code = os.waitstatus_to_exitcode(status)
    record = {"tags": dict(kv.split("=", 1) for kv in args.tag), "ncpu": NCPU,
              "exit": code, "generator_rusage_s": usage.ru_utime + usage.ru_stime}
    if len(readings) == 2:
        a, b = readings
        record["window_s"] = b["t"] - a["t"]
        record["machine_s"] = {k: b["machine"][k] - a["machine"][k] for k in STAT_FIELDS}
        record["procs"] = {n: delta_threads(a["procs"][n], b["procs"][n]) for n in b["procs"]}
        record["proxy_latency"] = {n: histogram_delta(a["metrics"][n], b["metrics"][n]) for n in metrics}
    else:
        record["error"] = f"the generator ended before the window closed ({args.skip}+{args.span} s)"
    if args.result == "wrk":
        record["result"] = parse_wrk(out)
    elif args.result and args.result.startswith("json:"):
        try:
            record["result"] = parse_json(args.result[5:])
        except (OSError, ValueError) as e:
            record["result"] = {"error": str(e)}
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
    return code


def per_request(rec):
    """Per-request µs figures of one record, or None without a window."""
    rate = (rec.get("result") or {}).get("rate")
    if "window_s" not in rec or not rate:
        return None
    n = rate * rec["window_s"]
    m = rec["machine_s"]
    total = sum(m.values())
    busy = total - m["idle"] - m["iowait"]
    procs = {k: {"cpu": v["cpu_s"] * 1e6 / n, "wait": v["wait_s"] * 1e6 / n} for k, v in rec["procs"].items()}
    named = sum(v["cpu_s"] for v in rec["procs"].values())
    return {
        "rate": rate, "idle": (m["idle"] + m["iowait"]) / total if total else 0.0,
        "busy": busy * 1e6 / n, "softirq": (m["softirq"] + m["irq"]) * 1e6 / n,
        "system": m["system"] * 1e6 / n, "steal": m["steal"] * 1e6 / n,
        "rest": (busy - named - m["softirq"] - m["irq"] - m["steal"]) * 1e6 / n,
        "procs": procs, "budget": rec["ncpu"] * 1e6 / rate,
    }


def table(args):
    recs = []
    for path in args.files:
        with open(path) as f:
            recs.append(json.load(f))
    names = []
    for rec in recs:
        for k in rec.get("procs", {}):
            if k not in names:
                names.append(k)
    # The added median: p50 minus `direct`'s in the same generator's same
    # run (tags `path`, `gen`, `run`).
    direct = {(r["tags"].get("gen"), r["tags"].get("run")): (r.get("result") or {}).get("p50_us")
              for r in recs if r.get("tags", {}).get("path") == "direct"}
    head = ["run", "req/s", "p50", "added p50", "idle", "busy µs/req (of %s CPUs × 1e6 / rate)" % NCPU]
    head += [f"{n} CPU / wait" for n in names]
    head += ["softirq+irq", "kernel sys (all)", "steal", "rest"]
    if any(rec.get("proxy_latency") for rec in recs):
        head += ["proxy's primary / shadow mean (p50) µs"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for rec in recs:
        t = rec.get("tags", {})
        label = t.get("label", "?")
        p = per_request(rec)
        res = rec.get("result") or {}
        if p is None:
            print(f"| {label} | {rec.get('error') or res.get('error') or 'no rate'} |")
            continue
        p50 = res.get("p50_us")
        base = direct.get((t.get("gen"), t.get("run")))
        added = f"{p50 - base:+,.0f} µs" if p50 and base and t.get("path") != "direct" else "–"
        row = [label, f"{p['rate']:,.0f}", f"{p50:,.0f} µs" if p50 else "–", added, f"{p['idle'] * 100:.0f} %",
               f"{p['busy']:.1f} (of {p['budget']:.1f})"]
        for n in names:
            v = p["procs"].get(n)
            row.append(f"{v['cpu']:.1f} / {v['wait']:.1f}" if v else "–")
        row += [f"{p['softirq']:.1f}", f"{p['system']:.1f}", f"{p['steal']:.1f}", f"{p['rest']:.1f}"]
        if any(r.get("proxy_latency") for r in recs):
            cells = []
            for lat in (rec.get("proxy_latency") or {}).values():
                for backend in ("primary", "shadow"):
                    b = lat.get(backend)
                    if b:
                        p50b = f"{b['p50_us']:.0f}" if b["p50_us"] is not None else "?"
                        cells.append(f"{b['mean_us']:.0f} ({p50b})")
            row.append(" / ".join(cells) or "–")
        print("| " + " | ".join(row) + " |")


def budget(args):
    with open(args.file) as f:
        rec = json.load(f)
    with open(args.against) as f:
        other = json.load(f)
    p = per_request(rec)
    target = args.ratio * other["result"]["rate"]
    allowed = rec["ncpu"] * 1e6 / target
    proxy = p["procs"].get(args.proxy, {"cpu": 0.0})["cpu"]
    everything_else = p["busy"] - proxy
    free = rec["ncpu"] * 1e6 / everything_else / other["result"]["rate"]
    line = (f"{args.ratio}× {other['tags'].get('label')} ({other['result']['rate']:,.0f} req/s) is "
            f"{target:,.0f} req/s: {allowed:.1f} µs of the {rec['ncpu']} CPUs per request for everything. "
            f"At {p['rate']:,.0f} req/s {rec['tags'].get('label')} used {p['busy']:.1f} µs "
            f"({p['idle'] * 100:.0f} % idle), the proxy {proxy:.1f} of it, everything else {everything_else:.1f} "
            f"(of which {p['rest']:.1f} nobody named): the proxy could have {allowed - everything_else:.1f} µs "
            f"per request; a proxy that cost nothing would reach {free:.2f}×.")
    if args.optimistic:
        # The other processes cost less per request at a higher rate (more
        # requests per wake-up): take each at its cheapest, in this run or
        # in the pass-through run at its (higher) maximum.
        with open(args.optimistic) as f:
            q = per_request(json.load(f))
        best = p["rest"] + min(p["softirq"], q["softirq"]) + p["steal"]
        for name, v in p["procs"].items():
            if name == args.proxy:
                continue
            # The shadow does nothing in a pass-through run: its own cost.
            cheaper = q["procs"].get(name, v)["cpu"] if name in ("primary", "generator") else v["cpu"]
            best += min(v["cpu"], cheaper)
        line += (f" With the primary, the generator and softirq at their cheapest per request (the pass-through "
                 f"run at {q['rate']:,.0f} req/s): everything else {best:.1f} µs, the proxy could have "
                 f"{allowed - best:.1f} µs; a free proxy would reach "
                 f"{rec['ncpu'] * 1e6 / best / other['result']['rate']:.2f}×.")
    print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--skip", type=float, default=0.5)
    r.add_argument("--span", type=float, required=True)
    r.add_argument("--pid", action="append", default=[])
    r.add_argument("--metrics", action="append", default=[])
    r.add_argument("--tag", action="append", default=[])
    r.add_argument("--result")
    r.add_argument("command", nargs=argparse.REMAINDER)
    t = sub.add_parser("table")
    t.add_argument("files", nargs="+")
    b = sub.add_parser("budget")
    b.add_argument("file")
    b.add_argument("--against", required=True)
    b.add_argument("--ratio", type=float, default=2.5)
    b.add_argument("--proxy", default="proxy")
    b.add_argument("--optimistic", help="the pass-through run's account, for the best case")
    args = ap.parse_args()
    if args.cmd == "run":
        if args.command[:1] == ["--"]:
            args.command = args.command[1:]
        if not args.command:
            ap.error("run: give the generator's command after --")
        sys.exit(run(args))
    {"table": table, "budget": budget}[args.cmd](args)


if __name__ == "__main__":
    main()

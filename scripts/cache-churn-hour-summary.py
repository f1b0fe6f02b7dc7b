#!/usr/bin/env python3
"""Summarise a scripts/cache-churn-hour.sh run: one table for docs/benchmarks.md
and one CSV row per minute (both twins' latency, RSS and CPU, Go's GC cycles
in that minute) to plot.

Usage: scripts/cache-churn-hour-summary.py RUN_DIR [OUT.csv [NAME=CSV ...]]

NAME=CSV adds another twin's per-minute columns (a churn_hour CSV from
scripts/cache-churn-ab.sh, e.g. a fixed build run beside the hour's Go
twin). A twin stopped early has empty cells after its last minute.

Go's GODEBUG=gctrace=1 lines read
  gc N @T s P%: A+B+C ms clock, ... H0->H1->H2 MB, G MB goal, ...
A (sweep termination) and C (mark termination) are the stop-the-world
pauses; B is the concurrent mark, during which goroutines assist and the
collector takes a quarter of GOMAXPROCS. Each cycle is put in the churn
minute whose end follows it (the driver starts within a second of the twin;
both clocks count from the start).
"""

import csv
import re
import sys
from pathlib import Path

GC = re.compile(
    r"^gc (\d+) @([\d.]+)s \d+%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock.*?"
    r"(\d+)->(\d+)->(\d+) MB, (\d+) MB goal"
)


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def cpu_at(samples, key, t):
    """CPU ns of a twin at time t (s since start), from the nearest sample."""
    best = min(samples, key=lambda r: abs(float(r["t_s"]) - t))
    return float(best[key])


def main():
    run = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    go, rust = rows(run / "go.csv"), rows(run / "rust.csv")
    samples = rows(run / "samples.csv")
    gcs = []
    for line in (run / "go.stderr").read_text().splitlines():
        m = GC.match(line)
        if m:
            n, t, a, b, c, h0, h1, h2, goal = m.groups()
            gcs.append(dict(t=float(t), stw=float(a) + float(c), mark=float(b),
                            h0=int(h0), live=int(h2), goal=int(goal)))
    extra = {}
    for spec in sys.argv[3:]:
        name, path = spec.split("=", 1)
        extra[name] = rows(path)
    minutes = max(len(go), len(rust), *(len(v) for v in extra.values()))
    fill_end_go = float(go[0]["elapsed_s"]) - 60 if go else 0.0

    def twin_minute(name, data, i, row, key_cpu):
        if i >= len(data):
            return
        r = data[i]
        end = float(r["elapsed_s"])
        start = float(data[i - 1]["elapsed_s"]) if i else end - 60
        row[f"{name}_p50_ms"] = int(r["p50_us"]) / 1000
        row[f"{name}_p99_ms"] = int(r["p99_us"]) / 1000
        row[f"{name}_p999_ms"] = int(r["p999_us"]) / 1000
        row[f"{name}_late"] = int(r["late"])
        row[f"{name}_rss_mib"] = int(r["rss_end"]) / 2**20
        row[f"{name}_cache_mib"] = int(r["cache_bytes"]) / 2**20
        if key_cpu:
            cpu = cpu_at(samples, key_cpu, end) - cpu_at(samples, key_cpu, start)
            row[f"{name}_cpu_us_per_put"] = cpu / 1000 / max(int(r["requests"]), 1)
        return start, end

    table = []
    for i in range(minutes):
        row = dict(minute=i + 1)
        span = twin_minute("go", go, i, row, "go_cpu_ns")
        if span:
            row["loadavg1"] = cpu_at(samples, "loadavg1", span[1])
            in_min = [c for c in gcs if span[0] < c["t"] <= span[1]]
            row["go_gc_cycles"] = len(in_min)
            row["go_gc_mark_ms"] = sum(c["mark"] for c in in_min)
            row["go_gc_stw_max_ms"] = max((c["stw"] for c in in_min), default=0.0)
        twin_minute("rust", rust, i, row, "rust_cpu_ns")
        for name, data in extra.items():
            twin_minute(name, data, i, row, None)
        table.append(row)
    if out:
        with open(out, "w", newline="") as f:
            fields = []
            for row in table:
                fields += [k for k in row if k not in fields]
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for row in table:
                w.writerow({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})

    twins = {"go": go, "rust": rust, **extra}

    def at(twin, minute):
        rows_ = twins[twin]
        return int(rows_[minute - 1]["rss_end"]) / 2**20 if len(rows_) >= minute else float("nan")

    print(f"minutes measured: {minutes}")
    for twin, rows_ in twins.items():
        if not rows_:
            continue
        fill = int(rows_[0]["rss_start"]) / 2**20
        cache = int(rows_[-1]["cache_bytes"]) / 2**20
        marks = [at(twin, m) for m in (15, 30, 60)]
        last = int(rows_[-1]["rss_end"]) / 2**20
        p99 = [int(x["p99_us"]) / 1000 for x in rows_]
        print(f"{twin} ({len(rows_)} min): RSS after fill {fill:.0f} MiB ({fill / cache:.2f}x accounted {cache:.0f} MiB); "
              f"after 15/30/60 min {marks[0]:.0f} / {marks[1]:.0f} / {marks[2]:.0f} MiB; "
              f"end {last:.0f} MiB ({last / cache:.2f}x), growth {100 * (last - fill) / fill:.1f} %; "
              f"per-minute p99 median {pct(p99, 0.5):.1f} ms, worst {max(p99):.1f} ms")
    churn = [c for c in gcs if c["t"] > fill_end_go]
    if churn:
        stw = [c["stw"] for c in churn]
        mark = [c["mark"] for c in churn]
        span = (churn[-1]["t"] - churn[0]["t"]) or 1
        print(f"go GC during churn: {len(churn)} cycles (one every {span / max(len(churn) - 1, 1):.1f} s); "
              f"STW per cycle p50 {pct(stw, 0.5):.2f} ms, max {max(stw):.2f} ms; "
              f"concurrent mark p50 {pct(mark, 0.5):.0f} ms, max {max(mark):.0f} ms; "
              f"live heap after mark {pct([c['live'] for c in churn], 0.5)} MB, "
              f"goal {pct([c['goal'] for c in churn], 0.5)} MB")
        with_gc = [t for t in table if t.get("go_gc_cycles", 0) > 0]
        without = [t for t in table if t.get("go_gc_cycles") == 0]
        if with_gc and without:
            print(f"go p99 in minutes with a GC cycle: median {pct([t['go_p99_ms'] for t in with_gc], 0.5):.1f} ms "
                  f"({len(with_gc)} min); without: {pct([t['go_p99_ms'] for t in without], 0.5):.1f} ms "
                  f"({len(without)} min)")


if __name__ == "__main__":
    main()

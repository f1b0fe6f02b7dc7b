#!/usr/bin/env python3
"""Summarise a scripts/cache-gc-tail.sh run: capacity at the SLO and where
Go's GC shows in the tail.

Reads OUT/steps.csv (one row per probe or tail run), OUT/tail-<twin>.csv
(every request of the tail runs: slot time, latency), OUT/go.stderr (Go's
GODEBUG=gctrace=1 lines) and OUT/run.txt. Prints markdown tables; writes
OUT/bins.csv (100 ms bins) and OUT/tail.svg; --data PREFIX copies them
and steps.csv to PREFIX.csv, PREFIX.svg and PREFIX-steps.csv.

Lining the GC up with the tail: gctrace's "@t s" counts from the Go
runtime's start. The script notes the wall clock at launch, and after every
step the driver reads go_memstats_last_gc_time_seconds, the wall clock at
the end of the last cycle; the cycle whose end (launch + t + its phases)
lies nearest each reading gives the offset, and their median is used
(printed: typically a few ms from the launch time).

A request is "in a GC cycle" when its interval from its slot time to its
answer overlaps a cycle (sweep termination + concurrent mark + mark
termination, the "clock" times); a 100 ms bin is a GC bin when it overlaps
one. The Rust twin never collects; its tail run is classified by Go's
cycles at the same offsets from the start of Go's tail run (a placebo:
if the "GC" requests of Rust are slower too, something other than the GC
— the driver, the machine — is periodic).
"""

import argparse
import csv
import re
import statistics
import sys
from pathlib import Path

BIN_S = 0.1
GC_LINE = re.compile(
    r"^gc (\d+) @([\d.]+)s (\d+)%: ([\d.]+)\+([\d.]+)\+([\d.]+) ms clock, "
    r"[^,]+ ms cpu, (\d+)->(\d+)->(\d+) MB, (\d+) MB goal"
)


def read_kv(path):
    kv = {}
    for line in path.read_text().splitlines():
        for part in line.split():
            if "=" in part:
                k, v = part.split("=", 1)
                kv.setdefault(k, v)
    return kv


def gc_cycles(path):
    cycles = []
    for line in path.read_text(errors="replace").splitlines():
        m = GC_LINE.match(line)
        if m:
            at = float(m.group(2))
            stw1, mark, stw2 = (float(m.group(i)) for i in (4, 5, 6))
            cycles.append({
                "n": int(m.group(1)), "at": at, "stw1_ms": stw1, "mark_ms": mark,
                "stw2_ms": stw2, "end": at + (stw1 + mark + stw2) / 1000,
                "live_mb": int(m.group(9)), "goal_mb": int(m.group(10)),
            })
    return cycles


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def ms(us):
    return f"{us / 1000:.2f}" if us == us else "—"


def read_tail(path):
    rows = []
    with path.open() as f:
        for r in csv.DictReader(f):
            rows.append((int(r["due_us"]) / 1e6, int(r["latency_us"]), r["late"] == "1",
                         r["status"] not in ("200", "204", "404")))
    return rows


def overlaps(a0, a1, windows):
    return any(a0 < w1 and w0 < a1 for w0, w1 in windows)


# A request is classed by its slot time: during a cycle, in the second
# after one ends (the backlog drains), or neither. By slot time, not by the
# request's whole interval, so that a slow request is not more likely to be
# counted "in a cycle" because it is slow.
CLASSES = ("during", "after", "other")
CLASS_TEXT = {"during": "during a GC cycle", "after": "in the 1 s after one",
              "other": "at other times"}
AFTER_S = 1.0


def classify(t, windows):
    if any(w0 <= t < w1 for w0, w1 in windows):
        return "during"
    if any(w1 <= t < w1 + AFTER_S for _, w1 in windows):
        return "after"
    return "other"


def classify_bin(t, windows):
    """A bin is "during" when it overlaps a cycle at all."""
    if overlaps(t, t + BIN_S, windows):
        return "during"
    return classify(t, windows)


def describe(lat):
    s = sorted(lat)
    return len(s), pct(s, 0.5), pct(s, 0.99), pct(s, 0.999), (s[-1] if s else float("nan"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path,
                    help="also write PREFIX.csv (bins), PREFIX-steps.csv and PREFIX.svg")
    args = ap.parse_args()
    out = args.out
    run = read_kv(out / "run.txt")
    steps = list(csv.DictReader((out / "steps.csv").open()))
    cycles = gc_cycles(out / "go.stderr")
    launch = float(run["go_launch_unix"])

    # Pin gctrace's clock to the wall clock.
    offsets = []
    for s in steps:
        if s["twin"] != "go" or not s["last_gc_unix_s"]:
            continue
        last = float(s["last_gc_unix_s"])
        best = min(cycles, key=lambda c: abs(launch + c["end"] - last), default=None)
        if best and abs(launch + best["end"] - last) < 1.0:
            offsets.append(last - best["end"])
    start = statistics.median(offsets) if offsets else launch
    cap = int(run["capacity"])
    size = f"{cap / 2**30:g} GiB" if cap >= 2**30 else f"{cap / 2**20:g} MiB"
    print(f"# Session cache at {size}: capacity and Go's GC in the tail\n")
    print(f"Run {run['date']}, {run['nproc']} cores; load average at start {run['loadavg_start']}, "
          f"at end {run.get('loadavg_end', '?')}; GET share {run['get_share']}, "
          f"{run['connections']} connections per twin, GOGC={run['GOGC']}, GOMEMLIMIT={run['GOMEMLIMIT']}.")
    print(f"gctrace clock pinned by {len(offsets)} readings of go_memstats_last_gc_time_seconds: "
          f"runtime start = launch + {1000 * (start - launch):.1f} ms"
          + (f" (readings spread {1000 * (max(offsets) - min(offsets)):.1f} ms)" if offsets else " (no readings: launch time used)")
          + "\n")
    machine = []
    if (out / "machine.txt").exists():
        for line in (out / "machine.txt").read_text().split("\n"):
            p = line.split()
            if len(p) == 3:
                machine.append((float(p[0]), float(p[1])))

    def load_during(t0, t1):
        vals = [l for t, l in machine if t0 - 2 <= t <= t1 + 2]
        return f"{min(vals):.1f}–{max(vals):.1f}" if vals else "?"

    def cycles_in(t0, t1):
        return [c for c in cycles if start + c["at"] < t1 and t0 < start + c["end"]]

    # --- ladder ---
    ladder = [s for s in steps if s["phase"] == "ladder"]
    twins = list(dict.fromkeys(s["twin"] for s in steps))
    if ladder:
        print(f"## Capacity at p99 < {run['slo_p99_ms']} ms, < 1 % late/failed/unsent "
              f"({run['warmup_secs']} s warm-up + {run['probe_secs']} s per probe)\n")
        def cycles_near(probe):
            """Go's cycles overlapping a probe's measured part or the second before it."""
            m0 = int(probe["start_unix_ms"]) / 1000 + float(probe["measured_from_s"])
            return len(cycles_in(m0 - AFTER_S, m0 + float(probe["secs"])))

        print("| rate/s | twin | probe | p99 ms | p99.9 ms | bad % | held | GC cycles in probe or the 1 s before | CPU µs/req | load |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for s in ladder:
            t0 = int(s["start_unix_ms"]) / 1000
            t1 = t0 + float(s["measured_from_s"]) + float(s["secs"])
            m0 = t0 + float(s["measured_from_s"])
            gcs = cycles_near(s) if s["twin"] == "go" else "—"
            print(f"| {s['rate']} | {s['twin']} | {s['probe']} | {int(s['p99_us']) / 1000:.2f} | "
                  f"{int(s['p999_us']) / 1000:.2f} | {float(s['bad_pct']):.2f} | {s['held']} | {gcs} | "
                  f"{float(s['cpu_us_per_req']):.0f} | {load_during(t0, t1)} |")

        def capacity(twin, which, between_cycles=False):
            """Highest rung at which every chosen probe held, all lower rungs too.
            between_cycles: leave out probes that hold a GC cycle (a rung
            left with none is skipped), i.e. the capacity between cycles."""
            cap = None
            for rate in dict.fromkeys(s["rate"] for s in ladder):
                probes = [s for s in ladder if s["twin"] == twin and s["rate"] == rate]
                probes = probes if which is None else probes[which:which + 1]
                if between_cycles and probes:
                    probes = [p for p in probes if cycles_near(p) == 0]
                    if not probes:
                        continue
                if not probes or not all(p["held"] == "true" for p in probes):
                    break
                cap = float(rate)
            return cap

        caps = {t: capacity(t, None) for t in twins}
        print()
        for t in twins:
            first, second = capacity(t, 0), capacity(t, 1)
            print(f"- capacity {t}: {caps[t] or 'none held'}/s "
                  f"(from its first probes alone {first}, its second alone {second})")
        if "go" in twins:
            with_gc = sum(1 for s in ladder if s["twin"] == "go" and cycles_near(s))
            failed = sum(1 for s in ladder if s["twin"] == "go" and cycles_near(s) and s["held"] != "true")
            print(f"- go between GC cycles (its {with_gc} probes near a cycle left out, "
                  f"{failed} of them failed): {capacity('go', None, True) or 'none held'}/s")
        if caps.get("go") and caps.get("rust"):
            print(f"- **rust/go = {caps['rust'] / caps['go']:.2f}×**")
        f0, f1 = capacity("go", 0), capacity("go", 1)
        if f0 and f1:
            print(f"- A/A (Go's second probes against its first, same process): {f1 / f0:.2f}×")
        print()

    # --- tail ---
    tails = {s["twin"]: s for s in steps if s["phase"] == "tail"}
    if not tails:
        return
    go_tail = tails.get("go")
    g0 = int(go_tail["start_unix_ms"]) / 1000 if go_tail else None
    # Go's cycles during its tail run, as offsets from that run's start.
    windows = []
    if go_tail:
        secs = float(go_tail["secs"])
        for c in cycles_in(g0, g0 + secs + 10):
            windows.append((start + c["at"] - g0, start + c["end"] - g0, c))
    rate = float(next(iter(tails.values()))["rate"])
    slo_ms = float(run["slo_p99_ms"])
    print(f"## The tail at {rate:.0f} requests/s, each twin alone\n")
    if go_tail:
        secs = float(go_tail["secs"])
        marks = [w[2]["mark_ms"] for w in windows]
        stws = [max(w[2]["stw1_ms"], w[2]["stw2_ms"]) for w in windows]
        print(f"Go: {len(windows)} GC cycles in {secs:.0f} s (one every "
              f"{secs / len(windows):.0f} s)" if windows else f"Go: no GC cycle in {secs:.0f} s", end="")
        if windows:
            print(f"; concurrent mark median {statistics.median(marks):.0f} ms (max {max(marks):.0f}), "
                  f"longest stop-the-world phase median {statistics.median(stws):.2f} ms (max {max(stws):.2f}); "
                  f"live heap {windows[0][2]['live_mb']} MB, goal {windows[0][2]['goal_mb']} MB.")
        else:
            print(".")
        print()
    print(f"| twin | requests due … | requests | share | p50 ms | p99 ms | p99.9 ms | max ms | over {slo_ms:g} ms % | late % | 100 ms bins with p99 > {slo_ms:g} ms | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    gc_windows = [(a, b) for a, b, _ in windows]
    bins_rows = []
    svg_series = {}
    for twin, s in tails.items():
        path = out / f"tail-{twin}.csv"
        if not path.exists():
            continue
        rows = read_tail(path)
        t0 = int(s["start_unix_ms"]) / 1000
        secs = float(s["secs"])
        lat = {c: [] for c in CLASSES}
        late = {c: 0 for c in CLASSES}
        nbins = int(round(secs / BIN_S))
        bins = [[] for _ in range(nbins + 1)]
        late_bins = [0] * (nbins + 1)
        for due, latency, is_late, _err in rows:
            c = classify(due, gc_windows)
            lat[c].append(latency)
            late[c] += is_late
            b = min(nbins, int(due / BIN_S))
            bins[b].append(latency)
            late_bins[b] += is_late
        bin_p99 = {c: [] for c in CLASSES}
        series = []
        for b, lats in enumerate(bins[:nbins]):
            lats.sort()
            c = classify_bin(b * BIN_S, gc_windows)
            n = len(lats)
            row = {"twin": twin, "bin_start_s": f"{b * BIN_S:.1f}", "requests": n,
                   "late": late_bins[b], "gc": c,
                   "p50_us": pct(lats, 0.5) if n else "", "p99_us": pct(lats, 0.99) if n else "",
                   "p999_us": pct(lats, 0.999) if n else "", "max_us": lats[-1] if n else ""}
            bins_rows.append(row)
            if n:
                bin_p99[c].append(pct(lats, 0.99))
                series.append((b * BIN_S, pct(lats, 0.99)))
        svg_series[twin] = series
        label = twin if twin == "go" else f"{twin} (placebo: Go's cycle times)"
        for c in CLASSES:
            n, p50, p99, p999, mx = describe(lat[c])
            share = f"{100 * n / len(rows):.2f} %" if rows else "—"
            late_pct = f"{100 * late[c] / n:.2f}" if n else "—"
            over = f"{sum(1 for x in bin_p99[c] if x > slo_ms * 1000)}/{len(bin_p99[c])}"
            slow = f"{100 * sum(1 for x in lat[c] if x > slo_ms * 1000) / n:.2f}" if n else "—"
            print(f"| {label} | {CLASS_TEXT[c]} | {n} | {share} | {ms(p50)} | {ms(p99)} | {ms(p999)} | "
                  f"{ms(mx)} | {slow} | {late_pct} | {over} | {load_during(t0, t0 + secs)} |")
        every = [x for c in CLASSES for x in lat[c]]
        all_n, all50, all99, all999, allmax = describe(every)
        all_slow = 100 * sum(1 for x in every if x > slo_ms * 1000) / max(1, all_n)
        print(f"| {label} | whole run | {all_n} | 100 % | {ms(all50)} | {ms(all99)} | {ms(all999)} | "
              f"{ms(allmax)} | {all_slow:.2f} | {100 * sum(late.values()) / max(1, all_n):.2f} | "
              f"{sum(1 for c in CLASSES for x in bin_p99[c] if x > slo_ms * 1000)}/{sum(len(v) for v in bin_p99.values())} | |")
    print()
    if bins_rows:
        fields = list(bins_rows[0].keys())
        with (out / "bins.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(bins_rows)
        write_svg(out / "tail.svg", svg_series, gc_windows, rate)
        print(f"Per-bin data: {out / 'bins.csv'}; plot: {out / 'tail.svg'}")
        if args.data:
            args.data.parent.mkdir(parents=True, exist_ok=True)
            stem = args.data.name
            for src, name in (("bins.csv", f"{stem}.csv"), ("steps.csv", f"{stem}-steps.csv"),
                              ("tail.svg", f"{stem}.svg")):
                (args.data.parent / name).write_bytes((out / src).read_bytes())
            print(f"Copied to {args.data}.csv, {args.data}-steps.csv, {args.data}.svg")


def write_svg(path, series, windows, rate):
    """p99 per 100 ms bin over time, one panel per twin, GC cycles shaded."""
    width, panel, pad = 900, 160, 40
    secs = max((t for s in series.values() for t, _ in s), default=1) + BIN_S
    top = max((v for s in series.values() for _, v in s), default=1)
    top = max(top, 20_000)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{len(series) * (panel + pad) + pad}" font-family="sans-serif" font-size="11">']
    for i, (twin, pts) in enumerate(series.items()):
        y0 = pad + i * (panel + pad)
        x = lambda t: 50 + (width - 70) * t / secs
        # log scale from 0.1 ms to the top
        import math
        lo, hi = math.log10(100), math.log10(top)
        y = lambda v: y0 + panel - panel * (math.log10(max(v, 100)) - lo) / (hi - lo)
        shaded = "Go's GC cycles" if twin == "go" else "Go's cycle times (placebo)"
        parts.append(f'<text x="50" y="{y0 - 8}">{twin}: p99 per 100 ms bin at {rate:.0f}/s '
                     f'(log scale, 0.1 ms – {top / 1000:.0f} ms); shaded: {shaded}</text>')
        for a, b in windows:
            parts.append(f'<rect x="{x(a):.1f}" y="{y0}" width="{max(1.0, x(b) - x(a)):.1f}" '
                         f'height="{panel}" fill="#f4c2c2"/>')
        parts.append(f'<rect x="50" y="{y0}" width="{width - 70}" height="{panel}" fill="none" stroke="#999"/>')
        for t in range(0, int(secs) + 1, 30):
            parts.append(f'<text x="{x(t) - 8:.1f}" y="{y0 + panel + 13}">{t} s</text>')
        for v in (1000, 10_000, 100_000):
            if v <= top:
                parts.append(f'<line x1="50" x2="{width - 20}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                             f'stroke="#ddd"/><text x="5" y="{y(v) + 4:.1f}">{v // 1000} ms</text>')
        d = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(f'<polyline points="{d}" fill="none" stroke="#246" stroke-width="1"/>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))


if __name__ == "__main__":
    sys.exit(main())

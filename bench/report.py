#!/usr/bin/env python3
"""Turns bench/out/ into docs/BENCHMARKS.md and docs/benchmarks.svg.

    report.py collect-criterion CRITERION_DIR OUT_JSON
    report.py report OUT_DIR BENCHMARKS_MD CHART_SVG

Standard library only. Every figure is a median with its min and max; ratios
are between medians from the same hyperfine invocation.
"""
import json
import math
import os
import statistics
import sys
from html import escape

MIB = 1024 * 1024

# The suite's targets, as they were set when it was written. Never loosened here.
TARGET_FILE_OVER_DIRECT_MS = 1.0
TARGET_HTTPS_MS = 5.0
TARGET_RSS_20_KIB = 4 * 1024
TARGET_BINARY_BYTES = int(2.5 * MIB)

DIRECT = "direct"
TINI = "tini -s"
TINI_STATIC = "tini-static -s"
FILE20 = "agent-init file:// (20)"
HTTPS20 = "agent-init https:// (20)"


# --- criterion ---------------------------------------------------------------

def collect_criterion(crit_dir, out_json):
    rows = []
    for dirpath, _dirs, files in os.walk(crit_dir):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        meta = {}
        if "benchmark.json" in files:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                meta = json.load(f)
        bid = meta.get("full_id") or os.path.relpath(os.path.dirname(dirpath), crit_dir)
        med = est["median"]
        rows.append({
            "id": bid,
            "median_ns": med["point_estimate"],
            "ci_lower_ns": med["confidence_interval"]["lower_bound"],
            "ci_upper_ns": med["confidence_interval"]["upper_bound"],
            "throughput": meta.get("throughput"),
        })
    rows.sort(key=lambda r: r["id"])
    with open(out_json, "w") as f:
        json.dump(rows, f, indent=1)


# --- helpers -------------------------------------------------------------------

def stats(xs):
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1],
            "p25": q[0], "p75": q[2], "n": len(xs)}


def ms(s):
    return s * 1000.0


def fmt_ms(x):
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def fmt_ns(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_bytes(n):
    if n >= MIB:
        return f"{n / MIB:.2f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} B"


def read_kv(path):
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    out[k] = v
    return out


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def verdict(ok):
    return "**met**" if ok else "**missed**"


def hyperfine(path):
    with open(path) as f:
        data = json.load(f)
    out = {}
    for r in data["results"]:
        name = r.get("command_name") or r["command"]
        out[name] = {"s": stats([ms(t) for t in r["times"]]),
                     "exit_codes": sorted(set(r.get("exit_codes") or []))}
    return out


def rss_by_name(rows):
    """`name<TAB>KiB exitcode` rows -> name -> stats of KiB."""
    acc = {}
    for name, rest in rows:
        parts = rest.split()
        if parts and parts[0].isdigit():
            acc.setdefault(name, []).append(int(parts[0]))
    return {k: stats(v) for k, v in acc.items()}


def linear_fit(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys))
    r2 = 1 - ss_res / ss_tot if ss_tot else 1.0
    return a, b, r2


# --- the chart -----------------------------------------------------------------

def nice_max(v):
    if v <= 0:
        return 1
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def svg_chart(startup, scale_pts, rss_limit):
    """Three panels: start-up medians (IQR whiskers), --check wall time and
    peak RSS against bundle size."""
    W = 920
    H = 50 + len(startup) * 32 + 80 + 260 + 90
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="#fff"/>']

    def text(x, y, s, anchor="start", size=12, weight="normal", fill="#222"):
        out.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
                   f'font-weight="{weight}" fill="{fill}">{escape(s)}</text>')

    def line(x1, y1, x2, y2, stroke="#999", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                   f'stroke="{stroke}" stroke-width="{width}"{d}/>')

    # Panel 1: start-up.
    text(20, 28, "Start-up, process start to the no-op's exit: median, whiskers p25–p75 (ms)", size=15,
         weight="bold")
    left, right, top = 250, W - 60, 50
    bar_h, gap = 22, 10
    vmax = nice_max(max(r["s"]["p75"] for _, r in startup) * 1.05) if startup else 1
    sx = lambda v: left + (right - left) * v / vmax
    bottom = top + len(startup) * (bar_h + gap)
    for i in range(6):
        v = vmax * i / 5
        line(sx(v), top - 4, sx(v), bottom, stroke="#e4e4e4")
        text(sx(v), bottom + 16, fmt_ms(v), anchor="middle", size=11, fill="#555")
    for i, (name, r) in enumerate(startup):
        y = top + i * (bar_h + gap)
        color = "#2f6db5" if name.startswith("agent-init") else "#9a9a9a"
        s = r["s"]
        out.append(f'<rect x="{left}" y="{y}" width="{sx(s["median"]) - left:.1f}" height="{bar_h}" fill="{color}"/>')
        line(sx(s["p25"]), y + bar_h / 2, sx(s["p75"]), y + bar_h / 2, stroke="#111", width=1.5)
        line(sx(s["p25"]), y + 5, sx(s["p25"]), y + bar_h - 5, stroke="#111", width=1.5)
        line(sx(s["p75"]), y + 5, sx(s["p75"]), y + bar_h - 5, stroke="#111", width=1.5)
        text(left - 8, y + bar_h / 2 + 4, name, anchor="end")
        text(sx(s["p75"]) + 6, y + bar_h / 2 + 4, f'{s["median"]:.2f} ms', size=11)

    # Panels 2 and 3: against bundle size.
    def xy_panel(x0, y0, w, h, title, pts, ylabel, limit=None):
        text(x0, y0 - 14, title, size=14, weight="bold")
        if not pts:
            text(x0, y0 + 20, "no data")
            return
        xmax = nice_max(max(p[0] for p in pts))
        ys = [p[3] for p in pts] + ([limit(xmax)] if limit else [])
        ymax = nice_max(max(ys) * 1.05)
        px = lambda v: x0 + w * v / xmax
        py = lambda v: y0 + h - h * v / ymax
        for i in range(6):
            gx, gy = xmax * i / 5, ymax * i / 5
            line(px(gx), y0, px(gx), y0 + h, stroke="#eee")
            line(x0, py(gy), x0 + w, py(gy), stroke="#eee")
            text(px(gx), y0 + h + 16, f"{gx:.3g}", anchor="middle", size=11, fill="#555")
            text(x0 - 6, py(gy) + 4, f"{gy:.3g}", anchor="end", size=11, fill="#555")
        line(x0, y0 + h, x0 + w, y0 + h, stroke="#555")
        line(x0, y0, x0, y0 + h, stroke="#555")
        text(x0 + w / 2, y0 + h + 34, "sealed bundle size (MiB)", anchor="middle", size=11)
        out.append(f'<text x="{x0 - 44}" y="{y0 + h / 2}" font-size="11" text-anchor="middle" '
                   f'transform="rotate(-90 {x0 - 44} {y0 + h / 2})">{escape(ylabel)}</text>')
        if limit:
            line(px(0), py(limit(0)), px(xmax), py(limit(xmax)), stroke="#c0392b", width=1.5, dash="6 4")
            text(px(xmax) - 4, py(limit(xmax)) + 14, "target: 3 × bundle + 4 MiB", anchor="end",
                 size=11, fill="#c0392b")
        for (x, lo, mid, hi, label) in pts:
            line(px(x), py(lo), px(x), py(hi), stroke="#2f6db5", width=1.5)
        d = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(m):.1f}" for i, (x, _, m, _, _) in enumerate(pts))
        out.append(f'<path d="{d}" fill="none" stroke="#2f6db5" stroke-width="2"/>')
        for (x, lo, mid, hi, label) in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(mid):.1f}" r="3.5" fill="#2f6db5"/>')
            text(px(x) + 6, py(mid) - 6, label, size=10, fill="#444")

    ptop = bottom + 80
    pw, ph = 340, 260
    time_pts = [(b / MIB, t["min"], t["median"], t["max"], f"{n}") for n, b, t, _ in scale_pts if t]
    rss_pts = [(b / MIB, r["min"] / 1024, r["median"] / 1024, r["max"] / 1024, f"{n}")
               for n, b, _, r in scale_pts if r]
    xy_panel(90, ptop, pw, ph, "--check wall time, median and min–max (ms)", time_pts, "ms")
    xy_panel(90 + pw + 110, ptop, pw, ph, "--check peak RSS, median and min–max (MiB)", rss_pts, "MiB",
             limit=rss_limit)
    text(20, H - 14, "Points are labelled with the number of 16 KiB secrets. Generated by bench/run.sh.",
         size=11, fill="#555")
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- the report ------------------------------------------------------------
#
# `load` reads bench/out/ once; each section below is one function from
# that data to its Markdown lines; `render` joins them and `report` writes
# the files. bench/test_report.py checks them over a small sample.

class Data:
    """Everything the report reads from an output directory."""

    def __init__(self, out_dir):
        run = os.path.join(out_dir, "run")
        self.out_dir = out_dir
        self.run = run
        self.machine = read_kv(os.path.join(run, "machine.txt"))
        self.startup = hyperfine(os.path.join(run, "startup.json"))
        self.order = list(self.startup)
        self.probes = read_tsv(os.path.join(run, "probe.tsv"))
        self.rss_start = rss_by_name(read_tsv(os.path.join(run, "rss-startup.tsv")))
        scale_hf = hyperfine(os.path.join(run, "scale.json"))
        self.scale_rows = read_tsv(os.path.join(run, "scale.tsv"))
        rss_scale = rss_by_name(read_tsv(os.path.join(run, "rss-scale.tsv")))
        self.sizes = read_tsv(os.path.join(run, "size.tsv"))
        crit_path = os.path.join(out_dir, "criterion.json")
        self.crit = json.load(open(crit_path)) if os.path.exists(crit_path) else []
        notes_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
        self.notes = open(notes_path).read().strip() if os.path.exists(notes_path) else ""
        self.med = {k: v["s"]["median"] for k, v in self.startup.items()}
        # (secrets, sealed bundle bytes, wall-time stats or None, RSS stats or None)
        self.scale_pts = []
        for row in self.scale_rows:
            n, bundle_bytes = int(row[0]), int(row[1])
            t = scale_hf.get(row[0], {}).get("s")
            r = rss_scale.get(row[0])
            self.scale_pts.append((n, bundle_bytes, t, r))


def rss_limit(mib):
    """The peak-RSS target for a bundle of `mib` MiB, in MiB."""
    return 3 * mib + 4


def section_intro(d):
    return [
        "# Benchmarks: what agent-init costs a container",
        "",
        "Generated by `bash bench/run.sh` (the whole suite, one command; it installs what it "
        "needs and rewrites this file and [benchmarks.svg](benchmarks.svg)). "
        "Every figure is a **median** with its min and max; ratios are between medians from one "
        "hyperfine invocation. Do not edit by hand: edit `bench/notes.md` or `bench/report.py`.",
        "",
        "![start-up, --check wall time and peak RSS against bundle size](benchmarks.svg)",
        "",
    ]


def section_machine(d):
    machine = d.machine
    L = ["## The machine", "", "| | |", "| --- | --- |"]
    for k, label in (("cpu", "CPU"), ("cores", "cores"), ("memory", "memory"), ("kernel", "kernel"),
                     ("date", "run at"), ("commit", "commit"), ("load_start", "load average at start"),
                     ("load_end", "load average at end of the timed part")):
        if k in machine:
            L.append(f"| {label} | {machine[k]} |")
    L.append("")
    L.append("Tools: " + "; ".join(f"{machine[k]}" for k in
                                   ("rustc", "hyperfine", "tini", "dumb-init", "catatonit", "time", "gcc",
                                    "openssl", "python", "cargo-bloat") if k in machine) + ".")
    L.append("")
    return L


def section_targets(d):
    med, rss_start, scale_pts, sizes = d.med, d.rss_start, d.scale_pts, d.sizes
    L = ["## Targets", "", "| target | measured | |", "| --- | --- | --- |"]
    w = L.append
    if DIRECT in med and FILE20 in med:
        over = med[FILE20] - med[DIRECT]
        w(f"| exec from a sealed file, 20 secrets: ≤ {TARGET_FILE_OVER_DIRECT_MS:g} ms over direct (median) "
          f"| {over:+.2f} ms ({fmt_ms(med[FILE20])} vs {fmt_ms(med[DIRECT])} ms) "
          f"| {verdict(over <= TARGET_FILE_OVER_DIRECT_MS)} |")
        if TINI in med:
            w(f"| … and no slower than `tini -s` | {fmt_ms(med[FILE20])} vs {fmt_ms(med[TINI])} ms "
              f"({med[FILE20] / med[TINI]:.2f}×, {med[FILE20] - med[TINI]:+.3f} ms) "
              f"| {verdict(med[FILE20] <= med[TINI])} |")
        if TINI_STATIC in med:
            w(f"| (for reference, not a target: against `tini-static -s`) | {fmt_ms(med[FILE20])} vs "
              f"{fmt_ms(med[TINI_STATIC])} ms ({med[FILE20] / med[TINI_STATIC]:.2f}×) | |")
    else:
        w("| exec from a sealed file, 20 secrets | not measured (see probes) | **missed** |")
    if HTTPS20 in med:
        w(f"| HTTPS on loopback, handshake included: ≤ {TARGET_HTTPS_MS:g} ms median end to end "
          f"| {fmt_ms(med[HTTPS20])} ms | {verdict(med[HTTPS20] <= TARGET_HTTPS_MS)} |")
    for name in (FILE20, HTTPS20):
        if name in rss_start:
            r = rss_start[name]["median"]
            w(f"| peak RSS with 20 secrets ≤ 4 MiB ({name.replace('agent-init ', '').replace(' (20)', '')}) "
              f"| {fmt_bytes(r * 1024)} | {verdict(r <= TARGET_RSS_20_KIB)} |")
    if scale_pts:
        big = max(scale_pts, key=lambda p: p[0])
        xs = [p[1] for p in scale_pts if p[3]]
        ys = [p[3]["median"] * 1024 for p in scale_pts if p[3]]
        a, b, r2 = linear_fit(xs, ys) if len(xs) >= 2 else (0, 0, 0)
        ok_all = all(p[3] and p[3]["median"] * 1024 <= 3 * p[1] + 4 * MIB for p in scale_pts)
        if big[3]:
            w(f"| {big[0]:,} × 16 KiB: peak RSS ≤ 3 × bundle + 4 MiB "
              f"| {fmt_bytes(big[3]['median'] * 1024)} for a {fmt_bytes(big[1])} bundle "
              f"(limit {fmt_bytes(3 * big[1] + 4 * MIB)}) | {verdict(ok_all)} |")
        w(f"| … growing linearly | RSS ≈ {fmt_bytes(a)} + {b:.2f} × bundle, R² = {r2:.4f} "
          f"| {verdict(r2 >= 0.99)} |")
    for path, size, kind in sizes[:1]:
        static = "static" in kind
        w(f"| binary ≤ 2.5 MiB, static, with TLS | {fmt_bytes(int(size))} ({int(size):,} bytes), "
          f"{'static' if static else 'NOT static'} | {verdict(int(size) <= TARGET_BINARY_BYTES and static)} |")
    w("")
    return L


def section_startup(d):
    startup, order, med, rss_start, probes = d.startup, d.order, d.med, d.rss_start, d.probes
    L = ["## Start-up", ""]
    w = L.append
    w("Wall time from process start to the command's exit, for a command that is a static no-op "
      "(`bench/noop.c`: one `exit_group`, no libc), so the figures are the wrapper's own. "
      "`hyperfine -N` (no shell), one invocation for all rows, "
      f"{startup[order[0]]['s']['n']} runs each after warm-up. Every row, the baseline included, "
      "starts through `bench/launch.c`, a libc-free static exec that sets the row's environment "
      "(hyperfine cannot set one per command); its cost is in every row alike, so differences are "
      "exact and ratios slightly understated. The HTTPS row fetches the same bundle from "
      "`openssl s_server -WWW` on 127.0.0.1 (TLS 1.3, an ECDSA P-256 certificate from a CA made for "
      "the run, passed in `AGENT_INIT_CA_FILE`): a new process, connection and full handshake "
      "every run, the server's side included; an IP literal, so no name lookup.")
    w("")
    w("| variant | median ms | min | max | p25–p75 | over direct | × direct | × tini -s | × tini-static -s | peak RSS (median) |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in order:
        s = startup[name]["s"]
        over = s["median"] - med[DIRECT] if DIRECT in med else float("nan")
        rx = lambda ref: f"{s['median'] / med[ref]:.2f}" if ref in med else "–"
        rss = fmt_bytes(rss_start[name]["median"] * 1024) if name in rss_start else "–"
        w(f"| {name} | {fmt_ms(s['median'])} | {fmt_ms(s['min'])} | {fmt_ms(s['max'])} "
          f"| {fmt_ms(s['p25'])}–{fmt_ms(s['p75'])} | {over:+.2f} | {rx(DIRECT)} | {rx(TINI)} "
          f"| {rx(TINI_STATIC)} | {rss} |")
    w("")
    failed = [p for p in probes if p[1] != "0"]
    if failed:
        w("Left out of the timing because a probe run failed:")
        w("")
        for name, rc, err in failed:
            w(f"- **{name}** exited {rc}: `{err.strip()}`")
        w("")
    w("Peak RSS is `/usr/bin/time -v`'s maximum resident set size, median of "
      f"{next(iter(rss_start.values()))['n'] if rss_start else 0} runs; the kernel keeps the larger "
      "of agent-init's and the command's peak across `execve`, and the no-op's own is one page.")
    w("")
    return L


def section_scale(d):
    L = ["## Scale: `--check` with bundles of 16 KiB secrets", ""]
    w = L.append
    w("`--check` does everything up to the exec (read, open, check, merge, size budget) and runs "
      "nothing. `file://` bundles, `AGENT_INIT_MAX_BUNDLE` raised to 64 MiB.")
    w("")
    w("| secrets | sealed bundle | exit | wall ms median | min | max | peak RSS median | min | max | RSS limit 3 × bundle + 4 MiB |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    exits = {row[0]: (row[2], row[3] if len(row) > 3 else "") for row in d.scale_rows}
    for n, bb, t, r in d.scale_pts:
        tt = [fmt_ms(t[k]) for k in ("median", "min", "max")] if t else ["–"] * 3
        rr = [fmt_bytes(r[k] * 1024) for k in ("median", "min", "max")] if r else ["–"] * 3
        w(f"| {n:,} | {fmt_bytes(bb)} | {exits[str(n)][0]} | {' | '.join(tt)} | {' | '.join(rr)} "
          f"| {fmt_bytes(3 * bb + 4 * MIB)} |")
    w("")
    refused = [(n, e) for n, (rc, e) in exits.items() if rc != "0"]
    for n, e in refused:
        w(f"- {int(n):,} secrets: `{e.strip()}`")
    if refused:
        w("")
        w("Those refusals are the check working: an environment that large cannot pass `execve` "
          "(Linux caps argv + envp at a quarter of the stack limit, at most 6 MiB), so agent-init "
          "refuses it before the exec, after doing all the work measured here.")
        w("")
    return L


def section_size(d):
    L = ["## Size", "", "| binary | bytes | | kind |", "| --- | ---: | ---: | --- |"]
    w = L.append
    for path, size, kind in d.sizes:
        w(f"| `{path.split('/')[-1] if 'agent-init' not in path else 'agent-init'}` | {int(size):,} "
          f"| {fmt_bytes(int(size))} | {kind} |")
    w("")
    for title, fname in (("By crate (`cargo bloat --crates`; `.text` only, [Unknown] is mostly static glibc)",
                          "bloat-crates.txt"),
                         ("Largest functions (`cargo bloat`)", "bloat-functions.txt")):
        p = os.path.join(d.out_dir, fname)
        if os.path.exists(p):
            body = [l for l in open(p).read().splitlines() if l.strip() and not l.startswith(("   Compiling", "    Finished", "    Analyzing", "  Downloaded", "   Fresh"))]
            w(f"{title}:")
            w("")
            w("```text")
            L.extend(body)
            w("```")
            w("")
    p = os.path.join(d.run, "sections.txt")
    if os.path.exists(p):
        secs = []
        for line in open(p).read().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit() and int(parts[1]) >= 20000:
                secs.append((int(parts[1]), f"`{parts[0]}` {fmt_bytes(int(parts[1]))}"))
        if secs:
            secs.sort(reverse=True)
            w("Largest sections of the stripped binary: " + ", ".join(t for _, t in secs) + ".")
            w("")
    return L


def section_criterion(d):
    L = ["## In-process (criterion)", ""]
    w = L.append
    if d.crit:
        w("`cargo bench --bench hot_paths` (benches/hot_paths.rs), with the binary's wiping allocator. "
          "Median per iteration and its 95% confidence interval.")
        w("")
        w("| benchmark | median | 95% CI | throughput |")
        w("| --- | ---: | ---: | ---: |")
        for c in d.crit:
            tp = ""
            t = c.get("throughput") or {}
            if "Bytes" in t and c["median_ns"]:
                tp = f"{t['Bytes'] / c['median_ns'] * 1e9 / MIB:.0f} MiB/s"
            w(f"| {c['id']} | {fmt_ns(c['median_ns'])} | {fmt_ns(c['ci_lower_ns'])} – "
              f"{fmt_ns(c['ci_upper_ns'])} | {tp} |")
        w("")
    else:
        w("Not run (BENCH_SKIP_CRITERION=1).")
        w("")
    return L


def section_notes(d):
    return [d.notes, ""] if d.notes else []


SERVICE_BEGIN, SERVICE_END = "<!-- service-bench:begin", "<!-- service-bench:end -->"


def section_service(old_md):
    """The secrets service's section is bench/service.sh's (between its
    markers): kept as it is, so either command rewrites only its own part."""
    if SERVICE_BEGIN in old_md and SERVICE_END in old_md:
        return ["", SERVICE_BEGIN + old_md.split(SERVICE_BEGIN, 1)[1].split(SERVICE_END, 1)[0] + SERVICE_END]
    return []


SECTIONS = (section_intro, section_machine, section_targets, section_startup, section_scale,
            section_size, section_criterion, section_notes)


def render(d, old_md=""):
    """The whole of BENCHMARKS.md for `d`, keeping `old_md`'s service section."""
    L = []
    for section in SECTIONS:
        L.extend(section(d))
    L.extend(section_service(old_md))
    return "\n".join(L).rstrip() + "\n"


def report(out_dir, md_path, svg_path):
    d = Data(out_dir)
    old = open(md_path).read() if os.path.exists(md_path) else ""
    md = render(d, old)
    os.makedirs(os.path.dirname(md_path), exist_ok=True)
    with open(md_path, "w") as f:
        f.write(md)
    with open(svg_path, "w") as f:
        f.write(svg_chart([(n, d.startup[n]) for n in d.order], d.scale_pts, rss_limit))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "collect-criterion":
        collect_criterion(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

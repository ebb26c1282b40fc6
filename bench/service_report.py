#!/usr/bin/env python3
"""Turns bench/service.sh's results into the "Secrets service" section of
docs/BENCHMARKS.md (replaced between its markers, or appended) and a chart.

Usage: service_report.py OUT_DIR BENCHMARKS_MD SVG_PATH
"""

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

BEGIN = "<!-- service-bench:begin (bench/service.sh writes this section) -->"
END = "<!-- service-bench:end -->"


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def machine():
    model = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) // 1024
    try:
        ngx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", "")
    except OSError:
        ngx = "nginx"
    load = open("/proc/loadavg").read().split()[:3]
    return "%s, %d cores, %d MiB, Linux %s; %s; load average when the report was written %s (the machine was shared with other work)" % (
        model, os.cpu_count(), mem, platform.release(), ngx, " ".join(load))


def bar(svg, x, y, w, h, color, label, value_text):
    svg.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>' % (x, y, w, h, color))
    svg.append('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>' % (x + w / 2, y - 5, value_text))
    svg.append('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%s</text>' % (x + w / 2, 0, label))


STORM_LABELS = {
    "storm-herd": ("the herd alone: file://, no service (the floor this machine sets)", "#7f7f7f"),
    "storm-default": ("agent-secrets, default queue (4096)", "#1f77b4"),
    "storm-short": ("agent-secrets, queue 64", "#2ca02c"),
    "storm-shed": ("storm/server.py: sheds at once, 429 + fixed `Retry-After: 1`", "#d62728"),
}


def med(rounds, key):
    vals = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(vals) if len(vals) == len(rounds) and vals else None


def fmt_s(v):
    return "%.2f s" % v if v is not None else "–"


def storm_section(out, one, storms):
    L = []
    check = one.get("agent_init_check_median_s")
    fetch_ms = one.get("fetch_p50_ms")
    first = next(iter(storms.values()))[0]
    agents, nice = first["agents"], first.get("client_nice", 0)
    cap = storms.get("storm-default", [first])[0]["capacity"]
    n = len(next(iter(storms.values())))
    L.append("### The restart storm")
    L.append("")
    L.append("%d agent-init processes held at a gate, released at once, each fetching one token's bundle over plain "
             "`http://127.0.0.1` (TLS would measure handshakes, not the herd), each running `storm/check.sh`, which "
             "checks every secret's exact value. The service's concurrency capped at %d. The agents run at nice %d and "
             "the servers at 0: on separate machines a fleet does not take the service's CPU, and on %d shared cores "
             "1000 runnable processes would. Requests are counted by the clients (1 + the failed attempts agent-init "
             "logs); a handshake the kernel drops is resent by TCP unseen by agent-init, so the kernel's "
             "`ListenOverflows` over each storm are counted too. %d rounds, each storm in turn; medians, then every "
             "round's value." % (agents, cap, nice, os.cpu_count(), n))
    L.append("")
    floors = []
    if fetch_ms:
        floors.append(("one fetch alone (%.2f ms p50, fetch-load, 1 thread, the service's time per fetch)" % fetch_ms,
                       agents * fetch_ms / 1000 / cap))
    if check:
        floors.append(("one `agent-init --check` alone (%.2f ms median, its process start included)" % (check * 1000),
                       agents * check / cap))
    herd = med(storms.get("storm-herd", []), "all_started_s")
    for what, f in floors:
        L.append("- Floor from %s: %d × that ÷ %d = **%.2f s**; goal: last start within %.2f s." % (what, agents, cap, f, 2 * f))
    if herd is not None:
        L.append("- The herd alone (the same %d processes and shells opening the same bundle from a `file://` URL, no "
                 "service at all): the last started at **%.2f s** (median). That is this machine's floor for any "
                 "service." % (agents, herd))
    L.append("")
    L.append("| storm | every agent started | last start (median; rounds) | median start | requests per agent | most by one agent | listen overflows | exit codes |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in ("storm-herd", "storm-default", "storm-short", "storm-shed"):
        rounds = storms.get(name)
        if not rounds:
            continue
        label = STORM_LABELS[name][0]
        if name == "storm-shed":
            label += " (same capacity, %.1f ms per request)" % (rounds[0]["service_s"] * 1000)
        oks = [r.get("markers_ok", 0) for r in rounds]
        every = "yes" if all(o == agents for o in oks) else "no (%s of %d)" % (", ".join(map(str, oks)), agents)
        lasts = ", ".join("%.2f" % r["all_started_s"] if r.get("all_started_s") is not None else "–" for r in rounds)
        overflow = [r.get("kernel", {}).get("ListenOverflows") for r in rounds]
        codes = {}
        for r in rounds:
            for k, v in r["exit_codes"].items():
                codes[k] = codes.get(k, 0) + v
        L.append("| %s | %s | %s (%s) | %s | %s | %s | %s | %s |" % (
            label, every, fmt_s(med(rounds, "all_started_s")), lasts, fmt_s(med(rounds, "started_p50_s")),
            "–" if name == "storm-herd" else "%.2f" % med(rounds, "requests_per_agent"),
            "–" if name == "storm-herd" else "%d" % max(r["max_requests_one_agent"] for r in rounds),
            ", ".join("–" if o is None else str(o) for o in overflow),
            ", ".join("%s: %d" % kv for kv in sorted(codes.items()))))
    L.append("")
    d = storms.get("storm-default")
    if d and check:
        last = med(d, "all_started_s")
        floor = agents * check / cap
        ok_all = all(r.get("markers_ok") == agents for r in d)
        rpa = med(d, "requests_per_agent")
        L.append("Against the goals (default queue, medians): every agent started: **%s**; at most 1.2 requests per "
                 "agent: **%s** (%.2f); the last start within 2 × the floor: **%s** (%s against %.2f s from the "
                 "agent-init floor)%s." % (
                     "yes" if ok_all else "no", "yes" if rpa is not None and rpa <= 1.2 else "no", rpa or 0,
                     "yes" if last is not None and last <= 2 * floor else "no", fmt_s(last), 2 * floor,
                     "; against the herd alone: %.2f × (%s against %.2f s)" % (last / herd, fmt_s(last), herd)
                     if last is not None and herd else ""))
        L.append("")
        h = storms.get("storm-herd", [])
        pairs = [(x.get("all_started_s"), y.get("all_started_s")) for x, y in zip(d, h)]
        pairs = [(x, y) for x, y in pairs if x is not None and y]
        if pairs:
            L.append("Round by round (the storm and the herd alone measured minutes apart, under the same load): the "
                     "default-queue storm's last start ÷ the herd's: %s; median **%.2f**." % (
                         ", ".join("%.2f" % (x / y) for x, y in pairs), statistics.median(x / y for x, y in pairs)))
            L.append("")
        waits = []
        for r in sorted(os.listdir(os.path.join(out, "storm-short"))) if os.path.isdir(os.path.join(out, "storm-short")) else []:
            logs = os.path.join(out, "storm-short", r, "logs")
            for name in os.listdir(logs):
                text = open(os.path.join(logs, name), errors="replace").read()
                waits += [float(w) for w in re.findall(r"retrying in ([0-9.]+)s", text)]
        waits.sort()
        L.append("Where the time goes:")
        L.append("")
        L.append("1. The kernel's listen backlog. With tokio's default (128), 1000 simultaneous connects overflowed it: "
                 "in one storm the kernel counted 1,291 `ListenOverflows` and 1,032 SYN retransmissions; the dropped "
                 "handshakes were resent by the clients' TCP 1 s and 3 s later, unseen by the gate and by agent-init's "
                 "count of requests. `serve` now listens with a backlog of 4096 (`net.core.somaxconn` caps it); the "
                 "overflow column above checks it in every storm, and `a_burst_of_connects_is_held_by_the_backlog_"
                 "while_the_service_is_busy` in service/tests/hardening.rs proves it.")
        L.append("2. The floor. The formula divides by the service's concurrency only, as if the clients cost "
                 "nothing; here the %d clients and their shells share %d cores with the service. The herd alone, with "
                 "no service at all, takes %s against 2 × the formula's floor of %.2f s: %s What agent-secrets adds "
                 "over the herd is the round-by-round ratio above; one fetch takes the service %.2f ms."
                 % (agents, os.cpu_count(), fmt_s(herd), 2 * floor,
                    "on this machine the goal is not reachable by any service." if herd and herd > 2 * floor
                    else "the goal is within this machine's reach.", fetch_ms or 0))
        L.append("3. A short queue (64). A 503's `Retry-After` is this request's turn: pending ÷ the drain rate over "
                 "the current busy stretch, each 503 booked after the ones sent away before it, so the clients come "
                 "back spread out rather than as one wave (`service/src/serve/gate.rs`). Before, the rate spanned the "
                 "idle gap since the token's creation (0.3 per second) and the first 503s were told 30 s (one storm's "
                 "last start: 30.6 s). agent-init waited %s (`Retry-After` plus its jitter of up to 250 ms)."
                 % ("%.1f to %.1f s, median %.1f s, over %d retries" % (waits[0], waits[-1], statistics.median(waits), len(waits))
                    if waits else "–"))
        L.append("")
    return L


def chart_storms(svg, storms):
    """Agents started over time, one curve per storm (its median round by last start)."""
    x0, y0, w, h = 60, 380, 800, 220
    svg.append('<text x="20" y="360" fill="#555">storm: agents started (of %d) against seconds after the gate opened; '
               'the round with the median last start</text>' % next(iter(storms.values()))[0]["agents"])
    curves = []
    for name, rounds in storms.items():
        done = [r for r in rounds if r.get("started")]
        if not done:
            continue
        done.sort(key=lambda r: r["started"][-1])
        curves.append((name, done[len(done) // 2]))
    if not curves:
        return
    tmax = max(r["started"][-1] for _, r in curves) or 1
    agents = curves[0][1]["agents"]
    svg.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (x0, y0 + h, x0 + w, y0 + h))
    svg.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (x0, y0, x0, y0 + h))
    for k in range(int(tmax) + 1):
        x = x0 + w * k / tmax
        svg.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%d s</text>' % (x, y0 + h + 15, k))
    for i, (name, r) in enumerate(curves):
        label, color = STORM_LABELS[name]
        s = r["started"]
        pts = " ".join("%.1f,%.1f" % (x0 + w * t / tmax, y0 + h - h * (j + 1) / agents) for j, t in enumerate(s))
        svg.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (color, pts))
        svg.append('<text x="%d" y="%d" fill="%s">%s: last %.2f s</text>' % (x0 + 10, y0 + 15 + 15 * i, color,
                                                                           label.replace("`", ""), s[-1]))


def main():
    out, md_path, svg_path = sys.argv[1:4]
    rows = [json.loads(l) for l in open(os.path.join(out, "fetch.jsonl")) if l.strip()]
    per = {t: [r["result"]["per_s"] for r in rows if r["target"] == t] for t in ("agent-secrets", "nginx")}
    p50 = {t: [r["result"]["p50_ms"] for r in rows if r["target"] == t] for t in per}
    errs = {t: sum(r["result"]["errors"] for r in rows if r["target"] == t) for t in per}
    med = {t: statistics.median(v) for t, v in per.items()}
    ratio = med["agent-secrets"] / med["nginx"]
    threads = rows[0]["result"]["threads"]
    secs = rows[0]["result"]["seconds"]
    one = load(os.path.join(out, "one-fetch.json")) or {}
    # Each storm ran in rounds: OUT/storm-NAME/ROUND/result.json (storm/storm.py
    # adds its mode's directory).
    storms = []
    for name in ("storm-herd", "storm-default", "storm-short", "storm-shed"):
        base = os.path.join(out, name)
        rounds = []
        for r in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            sub = ("retry-after",) if name == "storm-shed" else ()
            res = load(os.path.join(base, r, *sub, "result.json"))
            if res:
                rounds.append(res)
        if rounds:
            storms.append((name, rounds))
    L = []
    L.append(BEGIN)
    L.append("## Secrets service (issue 13)")
    L.append("")
    L.append("`bash bench/service.sh` (run %s UTC) on %s." % (time.strftime("%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(os.path.join(out, "fetch.jsonl")))), machine()))
    L.append("Clients and servers share the machine's cores; compare ratios within this run, not absolute figures across machines.")
    L.append("")
    L.append("### Fetch throughput: a new TLS handshake per fetch")
    L.append("")
    L.append("%d client threads (`service/examples/fetch-load.rs`), each fetch a new client: TCP connect, a full TLS handshake "
             "(ECDSA P-256, the same certificate on both servers), `GET /v1/bundle` with the token's `Authorization`, the body read "
             "and opened with the token. %d alternating rounds of %.0f s; medians." % (threads, len(per["nginx"]), secs))
    L.append("")
    L.append("| server | fetches/s (median) | rounds | p50 latency (median of rounds) | errors |")
    L.append("| --- | ---: | --- | ---: | ---: |")
    for t in ("agent-secrets", "nginx"):
        L.append("| %s | %.0f | %s | %.2f ms | %d |" % (
            "`agent-secrets serve` (SQLite)" if t == "agent-secrets" else "nginx, the bundle as a static file",
            med[t], ", ".join("%.0f" % v for v in per[t]), statistics.median(p50[t]), errs[t]))
    L.append("")
    L.append("**Ratio: %.2f of nginx's fetches/s** (goal: at least 0.80)." % ratio)
    L.append("")
    if storms:
        L += storm_section(out, one, dict(storms))
    L.append("![fetch throughput and restart storm](service.svg)")
    L.append("")
    L.append(END)
    section = "\n".join(L) + "\n"

    md = open(md_path).read() if os.path.exists(md_path) else ""
    if BEGIN in md and END in md:
        head, rest = md.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        md = head + section + ("\n" + tail if tail else "")
    else:
        md = md.rstrip("\n") + "\n\n" + section
    open(md_path, "w").write(md)

    # The chart: fetches/s side by side; the storms' last start and requests per agent.
    W, H = 900, 330 + (300 if storms else 0)
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (W, H, W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="20" y="24" font-size="15" font-weight="bold">agent-secrets: fetch throughput (fresh TLS each) and the restart storm</text>']
    top, base = 60, 280
    m = max(med.values()) or 1
    svg.append('<text x="20" y="48" fill="#555">fetches/s, median of %d rounds (ratio %.2f)</text>' % (len(per["nginx"]), ratio))
    for i, (t, color) in enumerate((("agent-secrets", "#1f77b4"), ("nginx", "#7f7f7f"))):
        h = (base - top) * med[t] / m
        x = 60 + i * 130
        svg.append('<rect x="%d" y="%.1f" width="90" height="%.1f" fill="%s"/>' % (x, base - h, h, color))
        svg.append('<text x="%d" y="%.1f" text-anchor="middle">%.0f/s</text>' % (x + 45, base - h - 5, med[t]))
        svg.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % (x + 45, base + 18, t))
    if storms:
        chart_storms(svg, dict(storms))
    svg.append("</svg>")
    open(svg_path, "w").write("\n".join(svg) + "\n")
    print(section)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Draws the request rate the secrets server saw over time, one panel per
storm mode, as an SVG (standard library only), and prints the results as a
Markdown table.

Usage: plot.py OUT_DIR SVG_PATH
"""

import json
import os
import sys

MODES = [
    ("backoff", "agent-init: exponential backoff, full jitter (503, no Retry-After)", "#1f77b4"),
    ("retry-after", "agent-init: Retry-After: 1 plus jitter (429)", "#9467bd"),
    ("fixed", "fixed 1 s interval: shell loop of curl (503, no Retry-After)", "#d62728"),
    ("fixed-async", "fixed 1 s interval: one HTTP client per agent, in-process (503)", "#ff7f0e"),
]
BIN = 0.2  # seconds per plotted point


def rebin(rate, bin_s):
    """The 100 ms series as BIN-second points: (t, requests/s, 200s/s)."""
    k = max(1, int(round(BIN / bin_s)))
    out = []
    for i in range(0, len(rate), k):
        chunk = rate[i:i + k]
        out.append((chunk[0][0], sum(c[1] for c in chunk) / len(chunk), sum(c[2] for c in chunk) / len(chunk)))
    return out


def main():
    out_dir, svg_path = sys.argv[1], sys.argv[2]
    results = []
    for mode, label, color in MODES:
        path = os.path.join(out_dir, mode, "result.json")
        if os.path.exists(path):
            results.append((json.load(open(path)), label, color))
    if not results:
        sys.exit("plot: no results in %s" % out_dir)

    series = [rebin(r["rate"], r["bin_s"]) for r, _, _ in results]
    t_max = max(max(p[0] for p in s) for s in series) + BIN
    t_max = max(5, int(t_max + 4.999) // 5 * 5)
    y_max = max(max(p[1] for p in s) for s in series)
    y_max = max(50, int(y_max + 49.999) // 50 * 50)

    W, left, right, top = 900, 70, 20, 50
    ph, gap = 170, 55
    H = top + len(results) * (ph + gap) + 20
    pw = W - left - right
    x = lambda t: left + pw * t / t_max
    svg = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
        'font-family="sans-serif" font-size="12">' % (W, H, W, H),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="%d" y="24" font-size="15" font-weight="bold">Fleet-restart storm: %d agents at once, '
        'server capacity %d requests at a time (%.0f ms each)</text>'
        % (left, results[0][0]["agents"], results[0][0]["capacity"], results[0][0]["service_s"] * 1000),
        '<text x="%d" y="40" fill="#555">requests per second the server saw (%.1f s bins): all requests (line) '
        'and 200s (shaded); dashed: the last agent started</text>' % (left, BIN),
    ]
    for n, ((r, label, color), pts) in enumerate(zip(results, series)):
        y0 = top + n * (ph + gap) + 20
        y = lambda v: y0 + ph - ph * v / y_max
        svg.append('<text x="%d" y="%d" font-weight="bold" fill="%s">%s</text>' % (left, y0 - 6, color, label))
        svg.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (left, y0, pw, ph))
        for v in range(0, y_max + 1, y_max // 4):
            svg.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>' % (left, y(v), left + pw, y(v)))
            svg.append('<text x="%d" y="%.1f" text-anchor="end">%d</text>' % (left - 6, y(v) + 4, v))
        step = 5 if t_max <= 60 else 10
        for t in range(0, t_max + 1, step):
            svg.append('<text x="%.1f" y="%d" text-anchor="middle">%d s</text>' % (x(t), y0 + ph + 15, t))
        ok = " ".join("%.1f,%.1f" % (x(t), y(o)) for t, _, o in pts)
        svg.append('<polygon points="%.1f,%.1f %s %.1f,%.1f" fill="%s" fill-opacity="0.25" stroke="none"/>'
                   % (x(pts[0][0]), y(0), ok, x(pts[-1][0]), y(0), color))
        svg.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>'
                   % (" ".join("%.1f,%.1f" % (x(t), y(v)) for t, v, _ in pts), color))
        if r["all_started_s"] is not None:
            xs = x(r["all_started_s"])
            svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" stroke-dasharray="4,3"/>'
                       % (xs, y0, xs, y0 + ph))
        svg.append('<text x="%d" y="%d" text-anchor="end" fill="#333">all started in %s s; %.2f requests/agent; '
                   'peak %d req/s (1 s window); %d gave up</text>'
                   % (left + pw - 6, y0 + 16, r["all_started_s"], r["requests_per_agent"],
                      r["peak_rate_1s_per_s"], r["gave_up_69"]))
    svg.append("</svg>")
    with open(svg_path, "w") as f:
        f.write("\n".join(svg) + "\n")

    print("| client | all started | p50 / p95 start | requests / agent (max) | peak req/s (100 ms / 1 s) "
          "| 200s | gave up (69) | markers ok / partial / missing |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r, label, _ in results:
        print("| %s | %s s | %s / %s s | %.2f (%d) | %d / %d | %d | %d | %d / %d / %d |" % (
            label, r["all_started_s"], r["started_p50_s"], r["started_p95_s"], r["requests_per_agent"],
            r["max_requests_one_agent"], r["peak_rate_100ms_per_s"], r["peak_rate_1s_per_s"], r["ok_responses"],
            r["gave_up_69"], r["markers_ok"], r["markers_partial"], r["markers_missing"]))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Draws bench/run.sh's JSON results (bench/report.py) as one SVG chart, offline.

    python3 bench/chart.py RESULTS.json OUT.svg

One block per group of rows: a bar per target, its length the ratio of its median against
the group's baseline row (nginx's plain proxying, or mod_auth_openidc for sign-ins; the
baseline itself is 1.0), a whisker over the lowest to highest per-round ratio, the median
figure and the CPU-us per operation written beside it, and the group's goal as a dashed line
(for "lower is better" groups the bar is still the plain ratio, so below the line is good).
A group without a baseline (refreshes) draws its figure against its own largest. The machine,
command and load are in the footer. Standard library only: no network, no fonts fetched.
"""
import json
import sys
from xml.sax.saxutils import escape

W = 1200
LABEL_W = 300
BAR_W = 400
ROW_H = 20
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
COLORS = {"nginx": "#9e9e9e", "apache": "#d08b3a", "ssogate": "#2f6db5"}


def color(name):
    for k, c in COLORS.items():
        if name.lower().startswith(k):
            return c
    return "#6a6a6a"


def fmt(v):
    if v is None:
        return "n/a"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def text(x, y, s, size=12, anchor="start", weight="normal", fill="#222"):
    return (f"<text x='{x:.1f}' y='{y:.1f}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'>{escape(s)}</text>")


def ratio_of(group, row):
    if group["unit"].startswith("x "):  # the figure is already a ratio (session bytes)
        return row["value"], None
    if row["ratio"] is not None:
        return row["ratio"], row["ratio_range"]
    if any(r["baseline"] == row["name"] for r in group["rows"]):
        return 1.0, None
    return None, None


def block(group, y):
    out = []
    goal = group.get("goal")
    title = group["title"] + (f" ({goal['text']})" if goal else "")
    out.append(text(10, y + 14, title, 13, weight="bold"))
    y += 22
    ratios = [ratio_of(group, r) for r in group["rows"]]
    has_ratio = any(r for r, _ in ratios)
    # Rows with errors (a 302 counted as an answer) do not set the scale; their bars are cut.
    # Nor does a figure more than 3 times ssogate's largest (and the goal's): Apache's 50x RSS
    # per idle connection would leave nginx's and ssogate's bars a pixel long. A cut bar's
    # label starts with "»".
    clean = [(r, rng) for (r, rng), row in zip(ratios, group["rows"]) if not row["errors"]]
    if has_ratio:
        floor = [goal["goal"] if goal else 1.0]
        figures = [r for r, _ in clean if r] + [rng[1] for _, rng in clean if rng] + floor
        ours = [r for (r, _), row in zip(ratios, group["rows"]) if r and row["name"].startswith("ssogate")]
        limit = 3 * max(ours + floor)
        top = max(f for f in figures if f <= limit or not ours)
    else:
        top = max(r["value"] for r in group["rows"])
    scale = BAR_W / (top * 1.08)
    x0 = LABEL_W
    for row, (ratio, rng) in zip(group["rows"], ratios):
        out.append(text(x0 - 8, y + 14, row["name"], 12, anchor="end"))
        full = (ratio if has_ratio else row["value"]) or 0
        length = min(full, top * 1.08)
        if rng:
            rng = [min(v, top * 1.08) for v in rng]
        out.append(f"<rect x='{x0}' y='{y + 3}' width='{length * scale:.1f}' height='{ROW_H - 6}' "
                   f"fill='{color(row['name'])}'/>")
        if rng:
            ya = y + ROW_H / 2
            out.append(f"<line x1='{x0 + rng[0] * scale:.1f}' y1='{ya}' x2='{x0 + rng[1] * scale:.1f}' y2='{ya}' "
                       f"stroke='#111' stroke-width='1.2'/>")
            for v in rng:
                out.append(f"<line x1='{x0 + v * scale:.1f}' y1='{ya - 4}' x2='{x0 + v * scale:.1f}' y2='{ya + 4}' "
                           f"stroke='#111' stroke-width='1.2'/>")
        label = f"{fmt(row['value'])} {group['unit']}"
        if has_ratio and ratio is not None and not group["unit"].startswith("x "):
            label = f"{ratio:.2f}x · " + label
        if row.get("mb_per_s") is not None:
            label += f" ({fmt(row['mb_per_s'])} MB/s)"
        if row.get("cpu_us_per_op") is not None and not group["unit"].startswith(("bytes", "x ")):
            label += f" · {fmt(row['cpu_us_per_op'])} CPU-µs/op"
        if row.get("rss_peak_mib") is not None and not group["unit"].startswith("x "):
            label += f" · {fmt(row['rss_peak_mib'])} MiB"
        if row["errors"]:
            label += " · errors (see the table)!"
        if full > length:
            label = "» " + label
        end = max(length * scale, (rng[1] * scale) if rng else 0)
        out.append(text(x0 + end + 6, y + 14, label, 11, fill="#333"))
        y += ROW_H
    if goal and has_ratio:
        gx = x0 + goal["goal"] * scale
        out.append(f"<line x1='{gx:.1f}' y1='{y - ROW_H * len(group['rows']) - 2}' x2='{gx:.1f}' y2='{y + 2}' "
                   f"stroke='#c62828' stroke-width='1.2' stroke-dasharray='4 3'/>")
    return out, y + 14


def main():
    doc = json.load(open(sys.argv[1]))
    parts, y = [], 34
    meta = doc.get("meta", {})
    parts.append(text(10, 22, f"ssogate against nginx (plain proxy) and Apache mod_auth_openidc: "
                      f"ratio of medians, whisker = per-round range", 14, weight="bold"))
    for g in doc["groups"]:
        lines, y = block(g, y)
        parts.extend(lines)
    command = f"command: {meta.get('command', '')}"
    foot = [f"{meta.get('date', '')} · {meta.get('host', '')} · git {meta.get('git', '')}"]
    while len(command) > 170:  # wrapped at a space
        cut = command.rfind(" ", 0, 170)
        cut = cut if cut > 0 else 170
        foot.append(command[:cut])
        command = "    " + command[cut:].lstrip()
    foot += [command, f"load average (1 min) at each round's start: {meta.get('loadavg', '')}"]
    for line in foot:
        y += 15
        parts.append(text(10, y, line, 11, fill="#555"))
    y += 12
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{y:.0f}' viewBox='0 0 {W} {y:.0f}'>",
           f"<rect width='{W}' height='{y:.0f}' fill='white'/>"] + parts + ["</svg>"]
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()

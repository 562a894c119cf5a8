#!/usr/bin/env python3
"""Two runs of bench/run.sh side by side, row by row: which rows got worse, which better.

    python3 bench/compare.py BEFORE.json NOW.json
    python3 bench/compare.py --newest-in bench/results NOW.json   # BEFORE: the newest run there
                                                                   # with the most of NOW's rows

Compares what holds between machines and runs: each ssogate row's ratio to its baseline (measured in
the same rounds) and its CPU per operation relative to the baseline's. A ratio is called worse
or better only when the two runs' per-round ranges do not overlap (with a single round on
either side, when it moved by more than 10%); CPU, steadier than throughput, when its ratio to
the baseline's moved by more than 15%. Everything else is the same within the noise. Rows
without a baseline (refreshes/s), or in one run only, are not compared.

Prints a Markdown table (worse first, then better, then the same), with a line that names the
rows that got worse. Exits 0
whatever it finds: these are measurements, not tests (bench/README.md).
"""
import argparse
import glob
import json
import os
import sys

from report import goal_for

# Beyond these, a move is more than this machine's noise (bench/README.md, "Noise").
POINT_MARGIN = 0.10
CPU_MARGIN = 0.15


def rows(doc):
    """{(group title, row name): row} for ssogate's rows that have a ratio to a baseline."""
    out = {}
    for g in doc["groups"]:
        lower = (goal_for(g["title"]) or {}).get("better") == "lower"
        for r in g["rows"]:
            if r.get("ratio") is not None and r["name"].lower().startswith("ssogate"):
                out[(g["title"], r["name"])] = dict(r, lower_is_better=lower)
    return out


def span(r):
    lo, hi = r.get("ratio_range") or (r["ratio"], r["ratio"])
    return lo, hi


def ratio_move(before, now):
    """-1 worse, 1 better, 0 the same within the noise."""
    sign = -1 if now["lower_is_better"] else 1
    if before["rounds"] > 1 and now["rounds"] > 1:
        (b_lo, b_hi), (n_lo, n_hi) = span(before), span(now)
        if n_hi < b_lo:
            return -sign
        if n_lo > b_hi:
            return sign
        return 0
    change = now["ratio"] / before["ratio"] - 1
    if abs(change) <= POINT_MARGIN:
        return 0
    return sign if change > 0 else -sign


def cpu_move(before, now):
    """The change of the row's CPU per operation relative to its baseline's, when it is more
    than CPU_MARGIN (positive: costs more now), else None."""
    b, n = before.get("cpu_ratio"), now.get("cpu_ratio")
    if not b or not n:
        return None
    change = n / b - 1
    return change if abs(change) > CPU_MARGIN else None


def fmt_ratio(r):
    lo, hi = span(r)
    text = f"{r['ratio']:.2f}x"
    return text + (f" ({lo:.2f}-{hi:.2f})" if r["rounds"] > 1 else "")


def compare(before_doc, now_doc):
    before, now = rows(before_doc), rows(now_doc)
    lines, worse = [], []
    for key in now:
        if key not in before:
            continue
        b, n = before[key], now[key]
        move, cpu = ratio_move(b, n), cpu_move(b, n)
        words = {-1: "**worse**", 1: "better", 0: "same"}[move]
        if cpu is not None:
            words += f"; CPU per op {'+' if cpu > 0 else ''}{cpu * 100:.0f}% against the baseline's"
        got_worse = move < 0 or (cpu is not None and cpu > 0)
        if got_worse:
            worse.append(f"{key[0].split(' (')[0]} / {key[1]}")
        b_cpu = "n/a" if not b.get("cpu_ratio") else f"{b['cpu_ratio']:.2f}"
        n_cpu = "n/a" if not n.get("cpu_ratio") else f"{n['cpu_ratio']:.2f}"
        order = 0 if got_worse else 1 if move > 0 or cpu is not None else 2
        lines.append((order, f"| {key[0].split(' (')[0]} | {key[1]} | {fmt_ratio(b)} | {fmt_ratio(n)} | "
                             f"{b_cpu} / {n_cpu} | {words} |"))
    head = [
        f"Against {before_doc['meta'].get('date', '?')} ({before_doc['meta'].get('git', '?')}, "
        f"{before_doc['meta'].get('host', '?')}):",
        "",
        ("Worse: " + "; ".join(worse) + ".") if worse else
        "No row worse beyond the noise." if lines else "No rows in common.",
    ]
    if not lines:
        return "\n".join(head)
    table = ["", "| rows | target | ratio before (range) | ratio now (range) | CPU/op vs baseline's, before / now | |",
             "|---|---|---:|---:|---:|---|"]
    table += [text for _, text in sorted(lines, key=lambda x: x[0])]
    return "\n".join(head + table)


def newest(directory, exclude, wanted=()):
    """The run in `directory` (not `exclude` itself, nor a copy of it) that holds the most of
    the `wanted` rows, the latest by the date in its meta among those: a run of a few rows kept
    there never stands in for a full run's baseline, and is the baseline of the next run of
    the same rows."""
    wanted = set(wanted)
    try:
        own = json.load(open(exclude))["meta"]["date"]
    except (OSError, ValueError, KeyError):
        own = None
    best = None
    for path in glob.glob(os.path.join(directory, "*.json")):
        if os.path.abspath(path) == os.path.abspath(exclude):
            continue
        try:
            doc = json.load(open(path))
            date = doc["meta"]["date"]
            held = len(wanted & set(rows(doc)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if date == own:
            continue
        if best is None or (held, date) > best[0]:
            best = ((held, date), path)
    return best and best[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="RUN.json", help="BEFORE.json NOW.json, or NOW.json with --newest-in")
    ap.add_argument("--newest-in", metavar="DIR")
    a = ap.parse_args()
    if len(a.runs) == 2 and not a.newest_in:
        before, now = a.runs
    elif len(a.runs) == 1 and a.newest_in:
        now = a.runs[0]
        before = newest(a.newest_in, now, rows(json.load(open(now))))
    else:
        ap.error("give BEFORE.json NOW.json, or --newest-in DIR NOW.json")
    if not before:
        print("No earlier run to compare with.")
        return
    print(compare(json.load(open(before)), json.load(open(now))))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""bench/run.sh's results as one JSON document and Markdown tables.

    python3 bench/report.py --rows ROWS.tsv --more MORE.jsonl --meta META.json --json OUT.json > tables.md

ROWS.tsv: the GET rows (round, name, req/s, p50 us, p99 us, CPU-us/req, RSS MiB, errors) as
bench_row writes them; MORE.jsonl: the other rows, one JSON object per measured run, as
bench/measure.py writes them; META.json: the machine, the command, the load. Per group and row
it keeps every round's value and gives the median, the ratio against the row's baseline
(another row of the same group): the median of the per-round ratios, each of two figures
measured in the same minute, with their range; the same against a second row for rows
measured with --versus (`versus_ratio`, `versus_range`, `versus_cpu_ratio`); the median
CPU-us per operation, the largest RSS and the errors. A drift of the machine between rounds
moves both figures of a round alike, so the per-round ratio holds where a ratio of the medians
(kept as `ratio_of_medians`) may pair a row's good round with its baseline's bad one.
Standard library only.
"""
import argparse
import json
import sys
import statistics
from collections import OrderedDict

GET_GROUP = "signed-in GET, HTTP/1.1 keep-alive (wrk -t2 -c32)"
# What each group is held to; the chart draws the line.
GOALS = {
    "proxy": {"goal": 1.0, "better": "higher", "text": "goal: at or above nginx (1.0x)"},
    "sign-in": {"goal": 5.0, "better": "higher", "text": "goal: at least 5x mod_auth_openidc"},
    "idle": {"goal": 1.0, "better": "lower", "text": "goal: at or below nginx's RSS per connection (1.0x)"},
    "session": {"goal": 1.25, "better": "lower", "text": "goal: at most 1.25x the raw token bytes"},
}


def goal_for(title):
    t = title.lower()
    if t.startswith("sign-ins"):
        return GOALS["sign-in"]
    if "idle" in t:
        return GOALS["idle"]
    if t.startswith("sessions"):
        return GOALS["session"]
    if t.startswith("session refreshes"):
        return None
    return GOALS["proxy"]


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def load_runs(rows_tsv, more_jsonl):
    runs = []
    for line in open(rows_tsv):
        if not line.strip():
            continue
        rnd, name, rps, p50, p99, cpu, rss, err = line.rstrip("\n").split("\t")
        num = lambda v: None if v in ("n/a", "") else float(v)  # noqa: E731
        base = "" if name in ("nginx proxy", "nginx proxy, TLS") else \
            ("nginx proxy, TLS" if name.endswith(", TLS") else "nginx proxy")
        p50, p99 = num(p50), num(p99)
        runs.append({"round": int(rnd), "group": GET_GROUP, "name": name, "baseline": base,
                     "value": float(rps), "unit": "req/s", "cpu_us_per_op": num(cpu), "rss_peak_mib": num(rss),
                     "p50_ms": p50 / 1000 if p50 is not None else None,
                     "p99_ms": p99 / 1000 if p99 is not None else None,
                     "errors": [] if err == "0" else [err]})
    for line in open(more_jsonl):
        if line.strip():
            runs.append(json.loads(line))
    return runs


def summarize(runs):
    groups = OrderedDict()
    for r in runs:
        groups.setdefault(r["group"], OrderedDict()).setdefault(r["name"], []).append(r)
    out = []
    for title, rows in groups.items():
        goal = goal_for(title)
        g = {"title": title, "unit": next(iter(rows.values()))[0]["unit"], "goal": goal, "rows": []}
        for name, rs in rows.items():
            base_rs = rows.get(rs[0]["baseline"], []) if rs[0]["baseline"] else []
            value = med([r["value"] for r in rs])
            base_med = med([b["value"] for b in base_rs])
            per_round = round_ratios(rs, base_rs)
            row = {
                "name": name, "baseline": rs[0]["baseline"], "rounds": len(rs),
                "value": value, "values": [r["value"] for r in rs],
                "ratio": med(per_round) if per_round else None,
                "ratio_of_medians": value / base_med if base_med else None,
                "ratio_range": [per_round[0], per_round[-1]] if per_round else None,
                "cpu_us_per_op": med([r.get("cpu_us_per_op") for r in rs]),
                "rss_peak_mib": max((r["rss_peak_mib"] for r in rs if r.get("rss_peak_mib") is not None), default=None),
                "p50_ms": med([r.get("p50_ms") for r in rs]),
                "p99_ms": med([r.get("p99_ms") for r in rs]),
                "errors": sorted({e for r in rs for e in r.get("errors", [])}),
            }
            if any("mb_per_s" in r for r in rs):
                row["mb_per_s"] = med([r.get("mb_per_s") for r in rs])
            if any("bytes_per_session" in r for r in rs):
                for k in ("bytes_per_session", "raw_token_bytes", "sessions"):
                    row[k] = med([r.get(k) for r in rs])
            others(row, rs, base_med, goal)
            if base_rs and row["cpu_us_per_op"] and med([b.get("cpu_us_per_op") for b in base_rs]):
                row["cpu_ratio"] = row["cpu_us_per_op"] / med([b.get("cpu_us_per_op") for b in base_rs])
            versus_rs = rows.get(rs[0].get("versus") or "", [])
            vr = round_ratios(rs, versus_rs)
            if vr:
                row.update(versus=rs[0]["versus"], versus_ratio=med(vr), versus_range=[vr[0], vr[-1]])
                versus_cpu = med([v.get("cpu_us_per_op") for v in versus_rs])
                if row["cpu_us_per_op"] and versus_cpu:
                    row["versus_cpu_ratio"] = row["cpu_us_per_op"] / versus_cpu
            g["rows"].append(row)
        out.append(g)
    return out


def round_ratios(rs, other_rs):
    """The per-round ratios of a row's values to another row's (same round), sorted."""
    other = {o["round"]: o["value"] for o in other_rs}
    return sorted(r["value"] / other[r["round"]] for r in rs if other.get(r["round"]))


def versus_text(r):
    """"; 2.10x (1.90-2.30) vs NAME" for a row measured with --versus, else ""."""
    if r.get("versus_ratio") is None:
        return ""
    text = f"; {r['versus_ratio']:.2f}x"
    if r["rounds"] > 1:
        text += f" ({r['versus_range'][0]:.2f}-{r['versus_range'][1]:.2f})"
    return text + f" vs {r['versus']}"


def others(row, rs, base_med, goal):
    """What the load generator and the processes named with measure.py's --also (the test
    provider, the upstream) cost per operation, and from them the row's ceiling on this
    machine: were the server measured free, the others' CPU alone would cap the rate at
    cores x 1e6 / their CPU-us per operation (`ceiling`), that much against the baseline's
    median (`ceiling_ratio`). A row whose goal lies beyond its ceiling (`beyond_reach`) cannot
    meet it here, whatever the server does."""
    client = med([r.get("client_cpu_us_per_op") for r in rs])
    if client is None:
        return
    row["client_cpu_us_per_op"] = client
    names = [n for r in rs for n in r.get("also_cpu_us_per_op", {})]
    also = {n: med([r.get("also_cpu_us_per_op", {}).get(n) for r in rs]) for n in dict.fromkeys(names)}
    if not also:
        return
    row["also_cpu_us_per_op"] = also
    cores = max((r.get("cores") or 0 for r in rs), default=0)
    rest = client + sum(v for v in also.values() if v)
    if cores and rest > 0:
        row["ceiling"] = cores * 1e6 / rest
        if base_med and goal and goal["better"] == "higher":
            row["ceiling_ratio"] = row["ceiling"] / base_med
            row["beyond_reach"] = row["ceiling_ratio"] < goal["goal"]


def where_it_went(g):
    """Lines under a group's table for its rows measured with the others' CPU (--also)."""
    lines = []
    for r in g["rows"]:
        if "also_cpu_us_per_op" not in r:
            continue
        parts = [f"the server {fmt(r['cpu_us_per_op'])}"] + \
            [f"{n} {fmt(v)}" for n, v in r["also_cpu_us_per_op"].items()] + \
            [f"the load generator {fmt(r['client_cpu_us_per_op'])}"]
        line = f"- {r['name']}: CPU-us per operation: {', '.join(parts)}."
        if "ceiling" in r:
            line += (f" A server that cost nothing would leave the rest's CPU: at most "
                     f"{fmt(r['ceiling'], 0)} {g['unit']} on this machine")
            if "ceiling_ratio" in r:
                line += f", {r['ceiling_ratio']:.2f}x {r['baseline']}"
                if r.get("beyond_reach"):
                    line += f": this row cannot show the goal ({g['goal']['goal']:g}x) here, whatever the server does"
            line += "."
        lines.append(line)
    return lines


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def markdown(groups):
    lines = []
    for g in groups:
        has_mb = any("mb_per_s" in r for r in g["rows"])
        lines.append(f"**{g['title']}**" + (f" ({g['goal']['text']})" if g["goal"] else ""))
        lines.append("")
        head = f"| target | {g['unit']} (median) |" + (" MB/s |" if has_mb else "") + \
            " vs baseline (per-round range) | p99 | CPU-us/op | peak RSS MiB | errors |"
        lines.append(head)
        lines.append("|---|---:|" + ("---:|" if has_mb else "") + "---:|---:|---:|---:|---|")
        for r in g["rows"]:
            if r["ratio"] is None:
                vs = "baseline" if any(x["baseline"] == r["name"] for x in g["rows"]) else "-"
            else:
                vs = f"{r['ratio']:.2f}x"
                if r["ratio_range"] and r["rounds"] > 1:
                    vs += f" ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f})"
                if r["baseline"]:
                    vs += f" vs {r['baseline']}"
                vs += versus_text(r)
            p99 = "n/a" if r["p99_ms"] is None else f"{r['p99_ms']:.2f} ms"
            mb = f" {fmt(r.get('mb_per_s'), 0)} |" if has_mb else ""
            lines.append(f"| {r['name']} | {fmt(r['value'], 2)} |{mb} {vs} | {p99} | {fmt(r['cpu_us_per_op'])} | "
                         f"{fmt(r['rss_peak_mib'])} | {'; '.join(r['errors']) or 0} |")
        lines.append("")
        went = where_it_went(g)
        if went:
            lines.extend(went + [""])
    return "\n".join(lines)


def verdict(goal, ratio):
    """Met or missed, judged on the ratio as the tables print it (two decimals): a 0.998x
    row reads 1.00x and is at nginx's speed within any box's noise."""
    if goal is None or ratio is None:
        return "-"
    ratio = round(ratio, 2)
    if goal["better"] == "higher":
        return "met" if ratio >= goal["goal"] else "**missed**"
    return "met" if ratio <= goal["goal"] else "**missed**"


def summary(groups):
    """One line per ssogate row that has a goal: the table the README shows beside the chart."""
    lines = ["| rows | ssogate | figure (median) | vs baseline (per-round range) | CPU-us/op, ssogate / baseline | goal | |",
             "|---|---|---:|---:|---:|---:|---|"]
    for g in groups:
        goal = g["goal"]
        by_name = {r["name"]: r for r in g["rows"]}
        for r in g["rows"]:
            if not r["name"].lower().startswith("ssogate") and not g["unit"].startswith("x "):
                continue
            ratio = r["value"] if g["unit"].startswith("x ") else r["ratio"]
            vs = "-" if ratio is None else f"{ratio:.2f}x"
            if r["ratio_range"] and r["rounds"] > 1 and not g["unit"].startswith("x "):
                vs += f" ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f})"
            vs += versus_text(r)
            base = by_name.get(r["baseline"])
            cpu = fmt(r["cpu_us_per_op"]) + (f" / {fmt(base['cpu_us_per_op'])}" if base else "")
            title = g["title"].split(" (")[0]
            goal_text = "-" if goal is None else (("≥ " if goal["better"] == "higher" else "≤ ") + f"{goal['goal']:g}x")
            judged = verdict(goal, ratio)
            if judged == "**missed**" and r.get("beyond_reach"):
                judged += f" (at most {r['ceiling_ratio']:.2f}x on this machine, however cheap the gateway)"
            lines.append(f"| {title} | {r['name']} | {fmt(r['value'], 2)} {g['unit']} | {vs} | {cpu} | "
                         f"{goal_text} | {judged} |")
    return "\n".join(lines)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--summary":
        print(summary(json.load(open(sys.argv[2]))["groups"]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--more", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    groups = summarize(load_runs(a.rows, a.more))
    doc = {"meta": json.load(open(a.meta)), "groups": groups}
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(markdown(groups))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The verdict of bench/soak: reads soak_load.py's raw JSON, prints the tables, writes the results.

    python3 bench/soak_report.py RAW.json RESULTS.json [--rss-pct 20] [--fds 10] [--sockets 10]

Start (after the warm-up, under load) against end (the last moment of the load), and the
state once the load has stopped. Flags:
- RSS grew more than --rss-pct percent; open fds grew by more than --fds; the gateway's
  ESTABLISHED connections to the upstream grew by more than --sockets, or its CLOSE_WAIT ones
  by more than 5 (half-closed by the upstream and never closed by the gateway);
- any failed request of any kind after the warm-up (in the warm-up they are listed too);
- a kind whose last-minute p99 is more than twice its first-minute p99 and 5 ms slower;
- pooled upstream connections still open 2 x upstream.pool_idle_timeout + 2 s after the load
  stopped, or client connections the gateway still holds then.
Prints Markdown; writes RAW plus "verdict" to RESULTS. Exit status 0 = nothing flagged, 3 = flagged.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("results")
    ap.add_argument("--rss-pct", type=float, default=20)
    ap.add_argument("--fds", type=int, default=10)
    ap.add_argument("--sockets", type=int, default=10)
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    r = json.load(open(a.raw))
    flags = []
    out = []
    p = out.append

    s, e = r["start"], r["end"]
    win = r["window_s"]
    cpu_first, cpu_last = cpu_pct(r, win["start"], win["start"] + win["minute"]), cpu_pct(r, win["end"] - win["minute"], win["end"])

    def row(name, start, end, change, limit, bad, flag_text=None):
        if bad:
            flags.append(flag_text or f"{name}: {start} -> {end} ({change}, limit {limit})")
        p(f"| {name} | {start} | {end} | {change} | {limit} | {'**FLAG**' if bad else 'ok'} |")

    if a.title:
        p(f"### {a.title}\n")
    p(f"Load: {r['config']['seconds']:g} s measured after {r['config']['warmup']:g} s warm-up "
      f"(rate scale {r['config']['rate_scale']:g}); start = {win['start']} s, end = {win['end']} s into the run; "
      f"first/last minute = {win['minute']:g} s windows.\n")
    p("| gateway | start | end | change | limit | verdict |")
    p("|---|---:|---:|---:|---:|---|")
    rss0, rss1 = s["rss_kb"] / 1024, e["rss_kb"] / 1024
    pct = (rss1 - rss0) / rss0 * 100
    row("RSS (MiB)", f"{rss0:.1f}", f"{rss1:.1f}", f"{pct:+.1f}%", f"+{a.rss_pct:g}%", pct > a.rss_pct)
    row("open fds", s["fds"], e["fds"], f"{e['fds'] - s['fds']:+d}", f"+{a.fds}", e["fds"] - s["fds"] > a.fds)
    d = e["upstream_established"] - s["upstream_established"]
    row("upstream conns ESTABLISHED", s["upstream_established"], e["upstream_established"], f"{d:+d}",
        f"+{a.sockets}", d > a.sockets)
    d = e["upstream_close_wait"] - s["upstream_close_wait"]
    row("upstream conns CLOSE_WAIT", s["upstream_close_wait"], e["upstream_close_wait"], f"{d:+d}", "+5", d > 5)
    row("client conns ESTABLISHED", s["client_established"], e["client_established"],
        f"{e['client_established'] - s['client_established']:+d}", "-", False)
    row("client conns CLOSE_WAIT", s["client_close_wait"], e["client_close_wait"],
        f"{e['client_close_wait'] - s['client_close_wait']:+d}", "+5", e["client_close_wait"] - s["client_close_wait"] > 5)
    ua, ub = s.get("upstream_app") or {}, e.get("upstream_app") or {}
    if "open_connections" in ua and "open_connections" in ub:
        row("upstream app: open conns", ua["open_connections"], ub["open_connections"],
            f"{ub['open_connections'] - ua['open_connections']:+d}", "-", False)
        row("upstream app: open WebSockets", ua["open_websockets"], ub["open_websockets"],
            f"{ub['open_websockets'] - ua['open_websockets']:+d}", "-", False)
    row("threads", s.get("threads"), e.get("threads"), f"{e.get('threads', 0) - s.get('threads', 0):+d}", "-", False)
    row("CPU % (first / last minute)", f"{cpu_first:.0f}", f"{cpu_last:.0f}", f"{cpu_last - cpu_first:+.0f}", "-", False)
    load_first = cpu_pct(r, win["start"], win["start"] + win["minute"], "load_cpu_s", 1)
    load_last = cpu_pct(r, win["end"] - win["minute"], win["end"], "load_cpu_s", 1)
    p(f"\nThe load generator (one Python process) used {load_first:.0f}% / {load_last:.0f}% of a core in the first / "
      "last minute; near 100% its own queueing adds to every latency below.")

    p("")
    p(f"\n| minute | RSS MiB | open fds | upstream ESTABLISHED | upstream CLOSE_WAIT | client conns | threads |")
    p("|---:|---:|---:|---:|---:|---:|---:|")
    for m in per_minute(r):
        p(f"| {m['t'] / 60:.1f} | {m['rss_kb'] / 1024:.1f} | {m['fds']} | {m['upstream_established']} "
          f"| {m['upstream_close_wait']} | {m['client_established'] + m['client_close_wait'] + m['client_other']} "
          f"| {m.get('threads', '-')} |")

    p("")
    p("| traffic | requests first / last min | p50 ms first / last | p99 ms first / last | max ms first / last "
      "| failed after warm-up (first / last min) | failed in warm-up | verdict |")
    p("|---|---:|---:|---:|---:|---:|---:|---|")
    for kind, k in r["kinds"].items():
        f, l = k["first_minute"], k["last_minute"]
        failed = k["total_failures"] - k["failures_in_warmup"]
        bad = []
        if failed:
            bad.append(f"{failed} failed")
            reasons = r["failure_reasons"].get(kind, {})
            flags.append(f"{kind}: {failed} failed after the warm-up ({fmt_reasons(reasons)})")
        slow_kind = kind in r.get("slow_client_bounds_s", {})
        if not slow_kind and f["p99_ms"] and l["p99_ms"] and l["p99_ms"] > 2 * f["p99_ms"] and l["p99_ms"] - f["p99_ms"] > 5:
            bad.append("p99 grew")
            flags.append(f"{kind}: p99 {f['p99_ms']} ms in the first minute, {l['p99_ms']} ms in the last")
        if f["count"] == 0 and l["count"] == 0 and not slow_kind:
            bad.append("no requests")
            flags.append(f"{kind}: no successful requests in the first or last minute")
        p(f"| {kind}{' (time to cut-off)' if slow_kind else ''} | {f['count']} / {l['count']} | {ms(f['p50_ms'])} / {ms(l['p50_ms'])} "
          f"| {ms(f['p99_ms'])} / {ms(l['p99_ms'])} | {ms(f['max_ms'])} / {ms(l['max_ms'])} "
          f"| {failed} ({f['failures']} / {l['failures']}) | {k['failures_in_warmup']} "
          f"| {'**' + ', '.join(bad) + '**' if bad else 'ok'} |")

    p("")
    pit = r["config"]["pool_idle_timeout"]
    p(f"After the load (upstream.pool_idle_timeout = {pit:g} s):\n")
    p("| after the load stopped | upstream ESTABLISHED | upstream CLOSE_WAIT | upstream other | client conns | open fds | RSS MiB "
      "| upstream app: open conns / WebSockets | verdict |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    st = r["stopped"]
    p(f"| 1 s | {st['upstream_established']} | {st['upstream_close_wait']} | {st['upstream_other']} "
      f"| {st['client_established'] + st['client_close_wait'] + st['client_other']} | {st['fds']} | {st['rss_kb'] / 1024:.1f} "
      f"| {app(st)} | - |")
    for i, idle in enumerate(r["idle"]):
        last = i == len(r["idle"]) - 1
        pooled = idle["upstream_established"] + idle["upstream_close_wait"]
        clients = idle["client_established"] + idle["client_close_wait"] + idle["client_other"]
        bad = last and (pooled > 0 or clients > 0)
        if bad:
            flags.append(f"{pooled} pooled upstream connections ({idle['upstream_established']} ESTABLISHED, "
                         f"{idle['upstream_close_wait']} CLOSE_WAIT) and {clients} client connections still open "
                         f"{idle['after_load_s']:g} s after the load")
        p(f"| {idle['after_load_s']:g} s | {idle['upstream_established']} | {idle['upstream_close_wait']} "
          f"| {idle['upstream_other']} | {clients} | {idle['fds']} | {idle['rss_kb'] / 1024:.1f} | {app(idle)} "
          f"| {('**FLAG**' if bad else 'ok') if last else '-'} |")

    answers = r.get("slow_client_answers") or {}
    p("")
    bounds = ", ".join(f"{k} {v:g} s" for k, v in (r.get("slow_client_bounds_s") or {}).items())
    said = "; ".join(f"{k}: " + ", ".join(f"{n} x HTTP {st}" for st, n in v.items()) for k, v in answers.items() if v)
    p(f"Slow clients must be cut off within: {bounds}. Answers they got before the connection closed: "
      f"{said or 'none'}; "
      f"session cookie updated from Set-Cookie {r.get('cookie_updates', 0)} times.")
    p("")
    p("**Verdict: " + ("nothing flagged**" if not flags else "FLAGGED**"))
    for f in flags:
        p(f"- {f}")

    print("\n".join(out))
    r["verdict"] = {"flagged": bool(flags), "flags": flags,
                    "limits": {"rss_pct": a.rss_pct, "fds": a.fds, "sockets": a.sockets}}
    r["report_markdown"] = "\n".join(out)
    with open(a.results, "w") as f:
        json.dump(r, f, indent=1)
    sys.exit(3 if flags else 0)


def cpu_pct(r, t0, t1, key="cpu_ticks", per_second=None):
    """CPU use (% of one core) between the samples nearest t0 and t1: the gateway's (clock
    ticks), or with key="load_cpu_s" the load generator's own (seconds)."""
    samples = sorted(r["samples"] + [r["start"], r["end"]], key=lambda x: x["t"])
    a = min(samples, key=lambda x: abs(x["t"] - t0))
    b = min(samples, key=lambda x: abs(x["t"] - t1))
    if b["t"] <= a["t"]:
        return 0.0
    return (b[key] - a[key]) / (per_second or r["clk_tck"]) / (b["t"] - a["t"]) * 100


def per_minute(r):
    """The sample nearest each whole minute after the start of the measured load, and the end."""
    samples = sorted(r["samples"], key=lambda x: x["t"])
    start, end = r["start"], r["end"]
    picked = [dict(start, t=0.0)]
    t = start["t"] + 60
    while t < end["t"] - 5:
        near = min(samples, key=lambda x: abs(x["t"] - t))
        picked.append(dict(near, t=near["t"] - start["t"]))
        t += 60
    picked.append(dict(end, t=end["t"] - start["t"]))
    return picked


def app(sample):
    """The upstream's own view: open connections / open WebSockets."""
    u = sample.get("upstream_app") or {}
    return f"{u['open_connections']} / {u['open_websockets']}" if "open_connections" in u else "-"


def ms(v):
    return "-" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def fmt_reasons(reasons):
    return "; ".join(f"{n} x {why}" for why, n in reasons.items())


if __name__ == "__main__":
    main()

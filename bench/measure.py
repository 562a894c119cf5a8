#!/usr/bin/env python3
"""One measured run of a load generator against one server, as a row of bench/run.sh.

    python3 bench/measure.py --out ROWS.jsonl --round R --group G --name NAME [--baseline NAME]
        [--versus NAME] [--pid PID] [--parse wrk|h2load|json] [--unit req/s] [--bytes N] -- COMMAND...

Runs COMMAND (the load generator) and meanwhile samples the process tree of PID (the server
measured: nginx master + workers, ssogate, apache2 + children) every 50 ms: its CPU ticks
(utime + stime from /proc/PID/stat) before and after, and the largest sum of VmRSS seen while
the load ran (unlike VmHWM, not since the process started). Then reads the count of operations
from the generator's output:

- `wrk`: "N requests in Ts", p50/p99 from --latency, socket errors and non-2xx/3xx;
- `h2load`: the "requests: ... succeeded, F failed, E errored" line and "finished in Ts";
- `json`: one JSON object on the last line: {"ops": N, "seconds": T, "errors": E}, and
  optionally "value" (the row's figure when it is not ops/seconds) and other members kept as
  they are (e.g. "bytes_per_conn").

Appends one JSON line to ROWS.jsonl: round, group, name, baseline (the row this one is
compared with in the report), with --versus NAME `versus` (a second row it is compared with,
e.g. mod_auth_openidc's where the baseline is nginx), value (ops/s unless the client gave
one), unit, ops, seconds, cpu_us_per_op, rss_peak_mib, p50_ms, p99_ms, errors, and the command. Also what the others
cost per operation: `client_cpu_us_per_op`, the load generator's own CPU (its rusage), and
with `--also NAME=PID` (repeatable) `also_cpu_us_per_op`, {NAME: CPU-us per operation} of
that process tree (the test provider, the upstream), and `cores`, the CPUs this machine has:
what a row's rate could be at most if the server measured cost nothing. With --bytes N
(the body size of one request) it adds MB/s. Standard library only; never fails on a bad
number, only when the generator fails or its output cannot be read.
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")


def tree(pid):
    """pid and its descendants (from /proc/*/stat ppid)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError):
            pass
    return total


def to_ms(token):
    m = re.match(r"([0-9.]+)(us|ms|s|m)$", token)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def parse_wrk(text):
    m = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError("no 'requests in' line")
    seconds = to_ms(m.group(2) + m.group(3)) / 1e3
    row = {"ops": int(m.group(1)), "seconds": seconds, "errors": []}
    for q, key in (("50%", "p50_ms"), ("99%", "p99_ms")):
        m = re.search(rf"^\s*{re.escape(q)}\s+(\S+)", text, re.M)
        if m:
            row[key] = to_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        for kind, n in zip(("connect", "read", "write", "timeout"), m.groups()):
            if n != "0":
                row["errors"].append(f"{kind}={n}")
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        row["errors"].append(f"{m.group(1)} non-2xx/3xx")
    if "tokens ran out" in text:  # bench/tokens.lua
        row["errors"].append("tokens ran out (some were sent twice)")
    return row


def parse_h2load(text):
    m = re.search(r"finished in ([0-9.]+)(us|ms|s|m),", text)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
    if not m or not r:
        raise ValueError("no 'finished in' or 'requests:' line")
    row = {"ops": int(r.group(4)), "seconds": to_ms(m.group(1) + m.group(2)) / 1e3, "errors": []}
    if r.group(5) != "0":
        row["errors"].append(f"{r.group(5)} failed")
    if r.group(6) != "0":
        row["errors"].append(f"{r.group(6)} errored")
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if s and any(x != "0" for x in s.groups()[1:]):
        row["errors"].append(f"status 3xx/4xx/5xx {s.group(2)}/{s.group(3)}/{s.group(4)}")
    return row


def parse_json(text):
    last = [line for line in text.splitlines() if line.strip().startswith("{")]
    if not last:
        raise ValueError("no JSON line")
    row = json.loads(last[-1])
    errs = row.get("errors", 0)
    row["errors"] = [f"{errs} errors"] if errs else []
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--group", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--baseline", default="")
    ap.add_argument("--versus", default="", help="a second row of the group this one is compared with")
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--parse", choices=("wrk", "h2load", "json"), default="wrk")
    ap.add_argument("--unit", default="req/s")
    ap.add_argument("--bytes", type=int, default=0)
    ap.add_argument("--log", default="", help="append the generator's output here")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PID",
                    help="another process tree whose CPU per operation is recorded")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        sys.exit("measure.py: no command")

    also = []
    for spec in a.also:
        name, _, pid = spec.rpartition("=")
        if not name or not pid.isdigit():
            sys.exit(f"measure.py: --also {spec!r}: expected NAME=PID")
        also.append((name, tree(int(pid))))
    pids = tree(a.pid) if a.pid else []
    rss_before = rss_kb(pids)
    peak = [rss_before]
    done = threading.Event()

    def sample():
        n = 0
        while not done.wait(0.05):
            n += 1
            if n % 20 == 0:  # a worker may have been started since
                pids[:] = tree(a.pid)
            peak[0] = max(peak[0], rss_kb(pids))

    cpu0 = cpu_ticks(pids)
    also0 = [cpu_ticks(p) for _, p in also]
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = threading.Thread(target=sample, daemon=True)
    if a.pid:
        t.start()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    also1 = [cpu_ticks(p) for _, p in also]
    done.set()
    if a.pid:
        t.join()
        pids[:] = tree(a.pid)
    cpu1 = cpu_ticks(pids)
    if a.log:
        with open(a.log, "a") as f:
            f.write(f"== {a.group} / {a.name} (round {a.round}): {' '.join(cmd)}\n{proc.stdout}\n")
    try:
        row = {"wrk": parse_wrk, "h2load": parse_h2load, "json": parse_json}[a.parse](proc.stdout)
    except (ValueError, json.JSONDecodeError) as e:
        sys.stderr.write(proc.stdout[-3000:])
        sys.exit(f"measure.py: {a.name}: cannot read the output of {cmd[0]} (exit {proc.returncode}): {e}")
    ops, seconds = row.pop("ops"), row.pop("seconds")
    value = row.pop("value", ops / seconds if seconds else 0.0)
    out = {
        "round": a.round, "group": a.group, "name": a.name, "baseline": a.baseline,
        "value": value, "unit": row.pop("unit", a.unit), "ops": ops, "seconds": seconds,
        "cpu_us_per_op": (cpu1 - cpu0) / HZ * 1e6 / ops if a.pid and ops else None,
        "rss_peak_mib": peak[0] / 1024 if a.pid else None,
        "rss_before_mib": rss_before / 1024 if a.pid else None,
        "errors": row.pop("errors"),
        "cmd": " ".join(cmd),
    }
    if a.versus:
        out["versus"] = a.versus
    if ops:
        used = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
        out["client_cpu_us_per_op"] = used * 1e6 / ops
        out["cores"] = os.cpu_count()
        if also:
            out["also_cpu_us_per_op"] = {
                name: (t1 - t0) / HZ * 1e6 / ops for (name, _), t0, t1 in zip(also, also0, also1)}
    if a.bytes:
        out["mb_per_s"] = ops * a.bytes / seconds / 1e6 if seconds else 0.0
    out.update(row)  # p50_ms, p99_ms and whatever else the client reported
    with open(a.out, "a") as f:
        f.write(json.dumps(out) + "\n")
    extra = f", {out['mb_per_s']:.0f} MB/s" if a.bytes else ""
    cpu = "n/a" if out["cpu_us_per_op"] is None else f"{out['cpu_us_per_op']:.1f}"
    rss = "n/a" if out["rss_peak_mib"] is None else f"{out['rss_peak_mib']:.1f}"
    print(f"[bench] {a.group} / {a.name}: {value:.1f} {out['unit']}{extra}, {cpu} CPU-us/op, "
          f"peak RSS {rss} MiB, errors: {'; '.join(out['errors']) or 0}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Memory a server spends per idle keep-alive connection, for bench/run.sh.

    python3 bench/idle_conns.py HOST:PORT/PATH --pid PID [--connections 10000] [--cookie C]
        [--hold SECONDS]

Samples the RSS of PID's process tree (VmRSS summed), opens N connections (at most 500 being
opened at a time), sends one keep-alive GET on each and reads its 200 answer, so that every
connection has served a request and is now idle; then holds them for SECONDS and samples the
RSS again. Prints one JSON line for bench/measure.py: {"ops": N connections that answered,
"seconds": time to open them, "value": bytes of RSS per connection, "errors": connections
that failed or were closed by the server while held}. Needs N + some file descriptors
(`ulimit -n`). asyncio, standard library only.
"""
import argparse
import asyncio
import json
import time

from measure import rss_kb, tree


async def one(host, port, path, cookie, gate, conns, counts):
    async with gate:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            if cookie:
                head += f"Cookie: {cookie}\r\n"
            writer.write((head + "\r\n").encode())
            resp = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = 0
            for line in resp.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if not resp.startswith(b"HTTP/1.1 200"):
                counts["errors"] += 1
            conns.append((reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            counts["errors"] += 1


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target", help="HOST:PORT/PATH")
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--cookie", default="")
    ap.add_argument("--hold", type=float, default=2)
    a = ap.parse_args()
    hostport, _, path = a.target.partition("/")
    host, _, port = hostport.rpartition(":")
    before = rss_kb(tree(a.pid))
    conns, counts = [], {"errors": 0}
    gate = asyncio.Semaphore(500)
    start = time.monotonic()
    await asyncio.gather(*(one(host, int(port), "/" + path, a.cookie, gate, conns, counts)
                           for _ in range(a.connections)))
    opened = time.monotonic() - start
    await asyncio.sleep(a.hold)
    after = rss_kb(tree(a.pid))
    # A connection the server closed while held reads EOF at once.
    closed = 0
    for reader, _ in conns:
        if reader.at_eof() or reader._buffer:  # noqa: SLF001 (only a peek)
            closed += 1
    for _, writer in conns:
        writer.close()
    n = len(conns)
    print(json.dumps({"ops": n, "seconds": opened, "value": (after - before) * 1024 / max(n, 1),
                      "unit": "bytes/conn", "rss_before_kib": before, "rss_after_kib": after,
                      "errors": counts["errors"] + closed}))


if __name__ == "__main__":
    asyncio.run(main())

#!/usr/bin/env python3
"""WebSocket load for bench/run.sh: messages through open connections, or connection set-ups.

    python3 bench/ws_load.py messages|setups HOST:PORT/PATH [--cookie C] [--connections N]
        [--seconds S] [--size BYTES]

`messages`: N connections upgrade once, then each sends a masked text message of BYTES and
waits for its echo, back to back, for S seconds. `setups`: N loops each open a TCP
connection, upgrade (101 expected), exchange one message, send a close frame and wait for the
peer's close, then start again. Prints one JSON line for bench/measure.py:
{"ops": messages or set-ups, "seconds": S, "errors": N}. asyncio, standard library only;
the upstream must echo (bench/soak_upstream.py does).
"""
import argparse
import asyncio
import base64
import json
import os
import struct
import time


def frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    if b1 & 0x80:
        await reader.readexactly(4)  # a server does not mask; skip if it does
    return b0 & 0x0F, await reader.readexactly(n)


async def upgrade(host, port, path, cookie):
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if cookie:
        head += f"Cookie: {cookie}\r\n"
    writer.write((head + "\r\n").encode())
    resp = await reader.readuntil(b"\r\n\r\n")
    if not resp.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise ConnectionError(resp.split(b"\r\n", 1)[0].decode("latin-1"))
    return reader, writer


async def messages(host, port, path, cookie, deadline, size, counts):
    try:
        reader, writer = await upgrade(host, port, path, cookie)
    except (OSError, ConnectionError, asyncio.IncompleteReadError):
        counts["errors"] += 1
        return
    payload = b"m" * size
    out = frame(0x1, payload)
    try:
        while time.monotonic() < deadline:
            writer.write(out)
            op, data = await read_frame(reader)
            if op != 0x1 or data != payload:
                counts["errors"] += 1
                break
            counts["ops"] += 1
        writer.write(frame(0x8, b"\x03\xe8"))
        await asyncio.wait_for(read_frame(reader), 2)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
        counts["errors"] += 1
    writer.close()


async def setups(host, port, path, cookie, deadline, size, counts):
    payload = b"s" * size
    while time.monotonic() < deadline:
        try:
            reader, writer = await upgrade(host, port, path, cookie)
            writer.write(frame(0x1, payload))
            op, data = await read_frame(reader)
            writer.write(frame(0x8, b"\x03\xe8"))
            op2, _ = await asyncio.wait_for(read_frame(reader), 2)
            writer.close()
            if op == 0x1 and data == payload and op2 == 0x8:
                counts["ops"] += 1
            else:
                counts["errors"] += 1
        except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            counts["errors"] += 1
            await asyncio.sleep(0.01)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("messages", "setups"))
    ap.add_argument("target", help="HOST:PORT/PATH")
    ap.add_argument("--cookie", default="")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--size", type=int, default=128)
    a = ap.parse_args()
    hostport, _, path = a.target.partition("/")
    host, _, port = hostport.rpartition(":")
    counts = {"ops": 0, "errors": 0}
    start = time.monotonic()
    deadline = start + a.seconds
    run = messages if a.mode == "messages" else setups
    await asyncio.gather(*(run(host, int(port), "/" + path, a.cookie, deadline, a.size, counts)
                           for _ in range(a.connections)))
    print(json.dumps({"ops": counts["ops"], "seconds": time.monotonic() - start, "errors": counts["errors"]}))


if __name__ == "__main__":
    asyncio.run(main())

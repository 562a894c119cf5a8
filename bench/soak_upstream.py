#!/usr/bin/env python3
"""The upstream app behind the gateway in bench/soak: HTTP/1.1 keep-alive and WebSocket echo.

    python3 bench/soak_upstream.py PORT [--idle-timeout SECONDS]

Listens on 127.0.0.1:PORT (asyncio, standard library only) and answers
- a WebSocket upgrade (`Upgrade: websocket`): 101, then echoes every text/binary message back
  (ping -> pong, close -> close);
- any other request: reads the body (Content-Length or chunked) and answers 200 with
  `ok <bytes of body received>\n`, keeping the connection open unless asked to close.
`GET /__soak/stats` (sent straight to the upstream, not through the gateway) answers JSON counts:
open connections, open WebSockets among them, requests and WebSockets served so far.
A connection idle for --idle-timeout seconds (default 60, like nginx's keepalive_timeout of 75 s,
above the gateway's upstream.pool_idle_timeout) is closed, so a pooled connection the gateway
keeps too long shows up there as CLOSE_WAIT.
"""
import argparse
import asyncio
import base64
import hashlib
import json
import struct

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
STATS = {"open_connections": 0, "open_websockets": 0, "requests": 0, "websockets": 0, "idle_closed": 0}


async def read_head(reader, idle):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), idle)
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, target, version, headers


async def read_body(reader, headers):
    """The number of body bytes read (the body itself is dropped)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return total
            left = size
            while left:
                left -= len(await reader.read(min(left, 65536)) or b"") or _eof()
            await reader.readexactly(2)
            total += size
    left = total = int(headers.get("content-length", "0"))
    while left:
        left -= len(await reader.read(min(left, 65536))) or _eof()
    return total


def _eof():
    raise asyncio.IncompleteReadError(b"", None)


async def websocket_echo(reader, writer, headers):
    accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + WS_GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    await writer.drain()
    while True:
        b0, b1 = await reader.readexactly(2)
        opcode, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(await reader.readexactly(n)))
        if opcode == 0x8:  # close: answer it and end
            writer.write(frame(0x8, data[:2]))
            await writer.drain()
            return
        if opcode == 0x9:  # ping
            opcode = 0xA
        elif opcode == 0xA:  # pong
            continue
        writer.write(frame(opcode, data))
        await writer.drain()


def frame(opcode, data):
    """A final, unmasked server frame."""
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + data


async def serve(reader, writer, idle):
    STATS["open_connections"] += 1
    try:
        while True:
            try:
                method, target, version, headers = await read_head(reader, idle)
            except asyncio.TimeoutError:
                STATS["idle_closed"] += 1
                return
            if target == "/__soak/stats":
                body = json.dumps(STATS).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
                return
            STATS["requests"] += 1
            if headers.get("upgrade", "").lower() == "websocket":
                STATS["websockets"] += 1
                STATS["open_websockets"] += 1
                try:
                    await websocket_echo(reader, writer, headers)
                finally:
                    STATS["open_websockets"] -= 1
                return
            got = await read_body(reader, headers) if method not in ("GET", "HEAD") or \
                "content-length" in headers or "transfer-encoding" in headers else 0
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            body = f"ok {got}\n".encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                         + str(len(body)).encode() + (b"\r\nConnection: close" if close else b"")
                         + b"\r\n\r\n" + (b"" if method == "HEAD" else body))
            await writer.drain()
            if close:
                return
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError,
            ConnectionError, ValueError, KeyError):
        pass
    finally:
        STATS["open_connections"] -= 1
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--idle-timeout", type=float, default=60.0)
    args = ap.parse_args()
    server = await asyncio.start_server(lambda r, w: serve(r, w, args.idle_timeout),
                                        "127.0.0.1", args.port, backlog=1024, limit=1 << 16)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

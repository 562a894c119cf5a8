#!/usr/bin/env python3
"""The traffic and the measurements of bench/soak (started by it; see bench/README.md).

    python3 bench/soak_load.py --gateway-port P --gateway-pid PID --upstream-port U \
        --cookie 'COOKIE' --token 'ID TOKEN' --seconds S --out raw.json [options]

Runs every traffic kind at once against the gateway on 127.0.0.1 for --warmup + --seconds
seconds, samples the gateway process (VmRSS, open fds, its TCP connections to the upstream and
from clients, CPU ticks) every --sample-every seconds, stops the load, waits for the upstream
pool's idle timeout and samples again, then writes the raw results (samples, latency
percentiles per kind for the first and the last minute after the warm-up, failures) as JSON.
Standard library only (asyncio); one process; loopback only. bench/soak_report.py judges them.
"""
import argparse
import array
import asyncio
import base64
import hashlib
import http.client
import json
import math
import os
import random
import socket
import struct
import time
from collections import Counter, defaultdict

HOST = "127.0.0.1"
UPLOAD = os.urandom(1 << 20)  # 1 MiB request body
REQUEST_TIMEOUT = 10.0  # a request (or a WebSocket echo) that takes longer is a failure
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- recording
class Recorder:
    """Latencies (seconds, with the time they ended, relative to the start) and failures."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.times = defaultdict(lambda: array.array("d"))
        self.lats = defaultdict(lambda: array.array("d"))
        self.failures = []  # (t, kind, reason)

    def now(self):
        return time.monotonic() - self.t0

    def ok(self, kind, latency):
        self.times[kind].append(self.now())
        self.lats[kind].append(latency)

    def fail(self, kind, reason):
        self.failures.append((self.now(), kind, reason))

    def window(self, kind, start, end):
        lats = sorted(l for t, l in zip(self.times[kind], self.lats[kind]) if start <= t < end)
        fails = sum(1 for t, k, _ in self.failures if k == kind and start <= t < end)
        out = {"count": len(lats), "failures": fails}
        for name, q in (("p50", 0.50), ("p99", 0.99)):
            out[name + "_ms"] = round(lats[max(0, math.ceil(q * len(lats)) - 1)] * 1000, 3) if lats else None
        out["max_ms"] = round(lats[-1] * 1000, 3) if lats else None
        return out


class Jar:
    """The gateway's session cookies, updated from Set-Cookie as a browser would (a refresh
    re-seals the cookie store's session)."""

    def __init__(self, header, name):
        self.name = name
        self.cookies = dict(c.split("=", 1) for c in header.split("; ") if "=" in c)
        self.updates = 0

    def header(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def ours(self, name):
        return name == self.name or (name.startswith(self.name + "_") and name[len(self.name) + 1:].isdigit())

    def update(self, set_cookies):
        for sc in set_cookies:
            first, *attrs = sc.split(";")
            name, _, value = first.strip().partition("=")
            if not self.ours(name):
                continue
            gone = any(a.strip().lower() in ("max-age=0",) for a in attrs) or value == ""
            if gone:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
            self.updates += 1


# --------------------------------------------------------------------------- HTTP/1.1 client
class Closed(Exception):
    pass


class Conn:
    """One client connection to the gateway."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.usable = True

    @classmethod
    async def open(cls, port):
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    def close(self, abort=False):
        self.usable = False
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()

    async def request(self, method, path, headers, body=b""):
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        return await self.response(method)

    async def head(self):
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            raise Closed(f"connection closed before a response ({len(e.partial)} bytes)") from None
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = defaultdict(list)
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()].append(v.strip())
        return status, headers

    async def response(self, method):
        status, headers = await self.head()
        te = ",".join(headers.get("transfer-encoding", [])).lower()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in te:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await self.reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                body += await self.reader.readexactly(size + 2)
                body = body[:-2]
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"][0]))
        else:
            body = await self.reader.read()
            self.usable = False
        if any(v.lower() == "close" for v in headers.get("connection", [])):
            self.usable = False
        return status, headers, body


# --------------------------------------------------------------------------- the soak
class Soak:
    def __init__(self, args):
        self.a = args
        self.rec = Recorder()
        self.jar = Jar(args.cookie, args.cookie_name)
        self.stop = asyncio.Event()
        self.port = args.gateway_port

    def cookie(self):
        return ("Cookie", self.jar.header())

    def check(self, kind, status, headers, body, want_body=None):
        """True when the answer is the expected one; records a failure otherwise."""
        self.jar.update(headers.get("set-cookie", []))
        if status != 200:
            self.rec.fail(kind, f"HTTP {status}")
            return False
        if want_body is not None and body != want_body:
            self.rec.fail(kind, f"unexpected body {body[:40]!r}")
            return False
        return True

    async def paced(self, workers, rate, one):
        """`workers` loops that together call `one(state)` `rate` times a second."""
        interval = workers / rate

        async def loop(i):
            state = {}
            nxt = time.monotonic() + random.random() * interval
            try:
                while not self.stop.is_set():
                    delay = nxt - time.monotonic()
                    if delay > 0:
                        try:
                            await asyncio.wait_for(self.stop.wait(), delay)
                            break
                        except asyncio.TimeoutError:
                            pass
                    nxt = max(nxt + interval, time.monotonic())
                    await one(state, i)
            finally:
                if state.get("conn"):
                    state["conn"].close()

        return [asyncio.create_task(loop(i)) for i in range(workers)]

    # ---- keep-alive request kinds -----------------------------------------------------
    async def keepalive(self, kind, state, method, path, headers, body=b"", want_body=None):
        t = time.monotonic()
        try:
            conn = state.get("conn")
            if conn is None or not conn.usable:
                conn = state["conn"] = await asyncio.wait_for(Conn.open(self.port), REQUEST_TIMEOUT)
            status, hdrs, got = await asyncio.wait_for(conn.request(method, path, headers, body), REQUEST_TIMEOUT)
        except asyncio.TimeoutError:
            self.rec.fail(kind, "timeout")
            self.drop(state)
            return
        except (OSError, Closed, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            self.rec.fail(kind, f"connection error: {type(e).__name__}: {e}"[:120])
            self.drop(state)
            return
        if self.check(kind, status, hdrs, got, want_body):
            self.rec.ok(kind, time.monotonic() - t)

    @staticmethod
    def drop(state):
        if state.get("conn"):
            state["conn"].close(abort=True)
            state["conn"] = None

    async def signed_in(self, state, i):
        await self.keepalive("signed_in", state, "GET", f"/app/page?n={i}", [self.cookie(), ("Accept", "text/html")])

    async def public(self, state, i):
        await self.keepalive("public", state, "GET", f"/public/page?n={i}", [("Accept", "text/html")])

    async def bearer(self, state, i):
        await self.keepalive("bearer", state, "GET", f"/api/items?n={i}",
                             [("Authorization", f"Bearer {self.a.token}"), ("Accept", "application/json")])

    async def upload(self, state, i):
        await self.keepalive("upload", state, "POST", "/app/upload",
                             [self.cookie(), ("Content-Type", "application/octet-stream")], UPLOAD,
                             want_body=f"ok {len(UPLOAD)}\n".encode())

    # ---- a new connection per request ----------------------------------------------------
    async def churn(self, state, i):
        """Even requests ask for `Connection: close`; odd ones keep-alive, and the client just
        closes after the answer. Signed-in and public in turn. Latency includes the connect."""
        state["n"] = n = state.get("n", 0) + 1
        path, headers = (f"/app/churn?n={n}", [self.cookie()]) if n % 4 < 2 else (f"/public/churn?n={n}", [])
        if n % 2 == 0:
            headers = headers + [("Connection", "close")]
        t = time.monotonic()
        conn = None
        try:
            conn = await asyncio.wait_for(Conn.open(self.port), REQUEST_TIMEOUT)
            status, hdrs, body = await asyncio.wait_for(conn.request("GET", path, headers), REQUEST_TIMEOUT)
        except asyncio.TimeoutError:
            self.rec.fail("churn", "timeout")
            return
        except (OSError, Closed, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            self.rec.fail("churn", f"connection error: {type(e).__name__}: {e}"[:120])
            return
        finally:
            if conn:
                conn.close()
        if self.check("churn", status, hdrs, body):
            self.rec.ok("churn", time.monotonic() - t)

    # ---- WebSocket -------------------------------------------------------------------------
    async def websocket(self, state, i):
        """One message on the worker's WebSocket: a masked text frame, timed until its echo.
        A connection carries about --ws-messages messages (50-150%), then ends: with a close handshake, or
        (every fourth) by just dropping the TCP connection."""
        t = time.monotonic()
        try:
            if state.get("conn") is None:
                state["conn"] = await asyncio.wait_for(self.ws_connect(), REQUEST_TIMEOUT)
                state["sent"] = 0
                # 50-150% of --ws-messages, so the workers' reconnects do not fall together
                state["limit"] = random.randint(self.a.ws_messages // 2, self.a.ws_messages * 3 // 2)
                state["conns"] = state.get("conns", 0) + 1
                t = time.monotonic()
            conn = state["conn"]
            msg = f"soak {i} {state['sent']} ".encode().ljust(128, b"x")
            conn.writer.write(ws_frame(0x1, msg))
            await conn.writer.drain()
            opcode, echo = await asyncio.wait_for(ws_read(conn.reader), REQUEST_TIMEOUT)
            if opcode != 0x1 or echo != msg:
                raise Closed(f"echo mismatch (opcode {opcode}, {echo[:30]!r})")
            self.rec.ok("websocket", time.monotonic() - t)
            state["sent"] += 1
            if state["sent"] >= state["limit"]:
                conn, state["conn"] = state["conn"], None
                if state["conns"] % 4 == 0:
                    conn.close(abort=True)
                else:
                    conn.writer.write(ws_frame(0x8, struct.pack("!H", 1000)))
                    await conn.writer.drain()
                    opcode, _ = await asyncio.wait_for(ws_read(conn.reader), REQUEST_TIMEOUT)
                    conn.close()
                    if opcode != 0x8:
                        raise Closed(f"no close frame back (opcode {opcode})")
        except asyncio.TimeoutError:
            self.rec.fail("websocket", "timeout")
            self.drop(state)
        except (OSError, Closed, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            self.rec.fail("websocket", f"{type(e).__name__}: {e}"[:120])
            self.drop(state)

    async def ws_connect(self):
        conn = await Conn.open(self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET /app/ws HTTP/1.1", f"Host: {HOST}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", "Cookie: " + self.jar.header()]
        conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await conn.writer.drain()
        status, headers = await conn.head()
        self.jar.update(headers.get("set-cookie", []))
        want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        if status != 101 or headers.get("sec-websocket-accept", [""])[0] != want:
            conn.close(abort=True)
            raise Closed(f"handshake answered HTTP {status}")
        return conn

    # ---- slow clients ------------------------------------------------------------------------
    async def slow(self, kind, state, i):
        """slow_head: a request head sent one byte a second; slow_body: a whole head saying a
        1 MiB body follows, then the body one byte a second; stalled_body: that head and 1 KiB
        of the body, then nothing. Expected: the gateway closes the connection (or answers with
        an error status and closes) within the bound; its latency is the time to that."""
        bound = self.cut_off_bounds()[kind]
        if kind == "slow_head":
            head, trickle = b"", (f"GET /app/slow?n={i} HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: "
                                  + "p" * 400 + "\r\n\r\n").encode()
        else:
            head = (f"POST /app/upload HTTP/1.1\r\nHost: {HOST}\r\nCookie: {self.jar.header()}\r\n"
                    f"Content-Length: {len(UPLOAD)}\r\n\r\n").encode()
            trickle = UPLOAD
            if kind == "stalled_body":
                head, trickle = head + UPLOAD[:1024], b""
        try:
            conn = await asyncio.wait_for(Conn.open(self.port), REQUEST_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as e:
            self.rec.fail(kind, f"connect: {type(e).__name__}: {e}"[:120])
            await asyncio.sleep(1)
            return
        t = time.monotonic()
        try:
            conn.writer.write(head)
            sent = 0
            while True:
                if time.monotonic() - t > bound:
                    self.rec.fail(kind, f"not cut off within {bound:.0f} s ({sent} bytes trickled)")
                    return
                if self.stop.is_set():
                    return  # the load ended first: neither cut off nor a failure
                if sent < len(trickle):
                    conn.writer.write(trickle[sent:sent + 1])
                    sent += 1
                await conn.writer.drain()
                try:
                    got = await asyncio.wait_for(conn.reader.read(65536), 1.0)
                except asyncio.TimeoutError:
                    continue
                if got:  # an answer: fine if it is an error status, the gateway cutting it short
                    status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else 0
                    if 200 <= status < 400:
                        self.rec.fail(kind, f"answered HTTP {status} to a trickled request")
                        return
                    state.setdefault("answers", Counter())[status] += 1
                self.rec.ok(kind, time.monotonic() - t)
                return
        except (ConnectionError, OSError):
            self.rec.ok(kind, time.monotonic() - t)  # reset by the gateway: cut off
        finally:
            conn.close()

    def cut_off_bounds(self):
        """Seconds within which each slow client must be cut off: the timeout that applies
        (header_read_timeout for a head, upstream.response_timeout for a body that stopped
        moving; for a trickled body, which keeps moving, the sum of both) plus some slack."""
        a = self.a
        return {"slow_head": a.header_read_timeout + 3, "stalled_body": a.response_timeout + 3,
                "slow_body": a.header_read_timeout + a.response_timeout + 5}

    async def slow_loop(self, kind, workers):
        async def loop(i):
            state = {}
            while not self.stop.is_set():
                await self.slow(kind, state, i)
            return kind, state.get("answers", Counter())
        return [asyncio.create_task(loop(i)) for i in range(workers)]

    # ---- sampling the gateway ------------------------------------------------------------------
    def sample(self, label=None):
        pid, up, gw = self.a.gateway_pid, self.a.upstream_port, self.port
        s = {"t": round(self.rec.now(), 1), "load_cpu_s": round(sum(os.times()[:2]), 2)}
        if label:
            s["label"] = label
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "Threads:")):
                    k, v = line.split(":", 1)
                    s["rss_kb" if k == "VmRSS" else "threads"] = int(v.split()[0])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            s["cpu_ticks"] = int(fields[11]) + int(fields[12])
        inodes = set()
        fds = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            fds += 1
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        s["fds"] = fds
        states = Counter()
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{pid}/net/{table}") as f:
                    next(f)
                    for line in f:
                        p = line.split()
                        if p[9] not in inodes:
                            continue
                        lport, rport = int(p[1].rsplit(":", 1)[1], 16), int(p[2].rsplit(":", 1)[1], 16)
                        st = TCP_STATES.get(p[3], p[3])
                        if rport == up:
                            states["upstream_" + st] += 1
                        elif lport == gw and st != "listen":
                            states["client_" + st] += 1
            except FileNotFoundError:
                pass
        s["upstream_established"] = states.pop("upstream_established", 0)
        s["upstream_close_wait"] = states.pop("upstream_close_wait", 0)
        s["upstream_other"] = sum(v for k, v in states.items() if k.startswith("upstream_"))
        s["client_established"] = states.get("client_established", 0)
        s["client_close_wait"] = states.get("client_close_wait", 0)
        s["client_other"] = sum(v for k, v in states.items()
                                if k.startswith("client_") and k not in ("client_established", "client_close_wait"))
        s["upstream_app"] = self.upstream_stats()
        return s

    def upstream_stats(self):
        """The upstream's own counts (open connections, open WebSockets), asked directly."""
        try:
            c = http.client.HTTPConnection(HOST, self.a.upstream_port, timeout=2)
            c.request("GET", "/__soak/stats")
            stats = json.loads(c.getresponse().read())
            c.close()
            stats["open_connections"] -= 1  # this one
            return stats
        except (OSError, ValueError, http.client.HTTPException) as e:
            return {"error": str(e)}

    async def sampler(self, samples):
        while not self.stop.is_set():
            samples.append(self.sample())
            try:
                await asyncio.wait_for(self.stop.wait(), self.a.sample_every)
            except asyncio.TimeoutError:
                pass

    # ---- the run -------------------------------------------------------------------------------
    async def run(self):
        a, scale = self.a, self.a.rate_scale
        samples = []
        tasks = []
        tasks += await self.paced(8, 200 * scale, self.signed_in)
        tasks += await self.paced(4, 100 * scale, self.public)
        tasks += await self.paced(4, 100 * scale, self.bearer)
        tasks += await self.paced(4, 50 * scale, self.churn)
        tasks += await self.paced(2, 4 * scale, self.upload)
        tasks += await self.paced(4, 50 * scale, self.websocket)
        slow_tasks = (await self.slow_loop("slow_head", 2) + await self.slow_loop("slow_body", 2)
                      + await self.slow_loop("stalled_body", 1))
        sampler = asyncio.create_task(self.sampler(samples))
        log(f"load running: {a.warmup:.0f} s warm-up, then {a.seconds:.0f} s measured")

        await asyncio.sleep(a.warmup)
        start = self.sample("start")
        t_start = self.rec.now()
        await asyncio.sleep(a.seconds)
        end = self.sample("end")
        t_end = self.rec.now()

        self.stop.set()
        _, pending = await asyncio.wait(tasks + slow_tasks + [sampler], timeout=3)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        slow_answers = defaultdict(Counter)
        for t in slow_tasks:
            if not t.cancelled() and t.exception() is None:
                kind, answers = t.result()
                slow_answers[kind].update({str(k): v for k, v in answers.items()})
        await asyncio.sleep(1)
        stopped = self.sample("stopped")
        idle = []
        for wait_s in (a.pool_idle_timeout + 2, 2 * a.pool_idle_timeout + 2):
            await asyncio.sleep(wait_s - (self.rec.now() - stopped["t"]))
            s = self.sample(f"idle {wait_s:g} s after the load")
            s["after_load_s"] = wait_s
            idle.append(s)
            log(f"{wait_s:g} s after the load: {s['upstream_established']} upstream connections ESTABLISHED, "
                f"{s['upstream_close_wait']} CLOSE_WAIT")

        minute = min(60.0, t_end - t_start)
        kinds = ["signed_in", "public", "bearer", "churn", "upload", "websocket", "slow_head", "slow_body",
                 "stalled_body"]
        result = {
            "config": {k: getattr(a, k) for k in ("seconds", "warmup", "rate_scale", "header_read_timeout",
                                                    "response_timeout", "pool_idle_timeout", "ws_messages")},
            "clk_tck": CLK_TCK,
            "window_s": {"start": round(t_start, 1), "end": round(t_end, 1), "minute": round(minute, 1)},
            "start": start, "end": end, "stopped": stopped, "idle": idle,
            "samples": samples,
            "kinds": {k: {
                "first_minute": self.rec.window(k, t_start, t_start + minute),
                "last_minute": self.rec.window(k, t_end - minute, t_end),
                "total_ok": len(self.rec.lats[k]),
                "total_failures": sum(1 for _, kk, _ in self.rec.failures if kk == k),
                "failures_in_warmup": sum(1 for t, kk, _ in self.rec.failures if kk == k and t < t_start),
            } for k in kinds},
            "failure_reasons": {k: dict(Counter(r for _, kk, r in self.rec.failures if kk == k).most_common(10))
                                for k in kinds},
            "slow_client_answers": {k: dict(v) for k, v in slow_answers.items()},
            "slow_client_bounds_s": self.cut_off_bounds(),
            "cookie_updates": self.jar.updates,
        }
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)


TCP_STATES = {"01": "established", "02": "syn_sent", "03": "syn_recv", "04": "fin_wait1", "05": "fin_wait2",
              "06": "time_wait", "07": "close", "08": "close_wait", "09": "last_ack", "0A": "listen",
              "0B": "closing"}


def ws_frame(opcode, data):
    """A final, masked client frame."""
    key = os.urandom(4)
    n = len(data)
    head = struct.pack("!BB", 0x80 | opcode, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    pad = (key * (n // 4 + 1))[:n]
    return head + key + (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big")


async def ws_read(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0 & 0x0F, await reader.readexactly(n)


def log(msg):
    print(f"[soak] {msg}", flush=True, file=__import__("sys").stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway-port", type=int, required=True)
    ap.add_argument("--gateway-pid", type=int, required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--cookie", required=True, help="the session cookie header from bench/sign_in.py")
    ap.add_argument("--cookie-name", default="_ssogate")
    ap.add_argument("--token", required=True, help="an ID token for the bearer requests")
    ap.add_argument("--seconds", type=float, required=True, help="measured load, after the warm-up")
    ap.add_argument("--warmup", type=float, default=30)
    ap.add_argument("--rate-scale", type=float, default=1.0, help="multiplies every kind's request rate")
    ap.add_argument("--header-read-timeout", type=float, required=True)
    ap.add_argument("--response-timeout", type=float, required=True)
    ap.add_argument("--pool-idle-timeout", type=float, required=True)
    ap.add_argument("--ws-messages", type=int, default=50, help="messages per WebSocket connection (on average)")
    ap.add_argument("--sample-every", type=float, default=5)
    ap.add_argument("--out", required=True)
    asyncio.run(Soak(ap.parse_args()).run())


if __name__ == "__main__":
    main()

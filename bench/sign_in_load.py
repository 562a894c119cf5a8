#!/usr/bin/env python3
"""Sign-ins or session refreshes per second through a gateway, for bench/run.sh.

    python3 bench/sign_in_load.py signins URL [--prefix COOKIE_PREFIX] [--threads N] [--seconds S]
    python3 bench/sign_in_load.py refreshes URL [--prefix P] [--threads N] [--seconds S]
        [--provider-stats URL]

`signins`: N threads each sign in again and again, as a new browser each time (fresh cookie
jar): the protected URL, the gateway's redirect to the provider, the provider's login form
filled in and posted, the redirects back through the gateway's callback, and the page behind
it (200); bench/sign_in.py does each one, each with an `X-Forwarded-For` address of its own
(the gateway must trust 127.0.0.1 as a proxy: ssogate limits callbacks per client address). `refreshes`: each thread signs in once (not counted),
then asks for URL with its session again and again; an answer that sets the session cookie
anew (a refresh at the provider: the gateway must be configured to refresh at every request,
e.g. ssogate's `session.refresh_interval = "0s"`) counts, and its cookie is used from then on.
With --provider-stats (the test provider's GET /__test/stats) what counts is the refresh grants
the provider answered in the measured time instead (`refresh_grants` less `refresh_failures`):
a gateway with server-side sessions, such as mod_auth_openidc, refreshes without a new cookie.
The answers that set the cookie anew are then reported as `answers_refreshed`, and
`not_refreshed` is the answers (200) beyond the grants.
Prints one JSON line for bench/measure.py: {"ops", "seconds", "errors"}. Standard library
only; user alice of the test provider.
"""
import argparse
import itertools
import json
import threading
import time
import urllib.error
import urllib.request

from sign_in import sign_in

USER, PASSWORD = "alice", "Passw0rd!"


ADDRESSES = itertools.count(1)


def next_address():
    n = next(ADDRESSES)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def why(counts, lock, e):
    """Keeps a count of each kind of failure, for the JSON line."""
    text = f"{type(e).__name__}: {e}"[:160]
    with lock:
        counts["why"][text] = counts["why"].get(text, 0) + 1


def signins(url, prefix, window, counts, lock, ready):
    ready.wait()
    while time.monotonic() < window[1]:
        try:
            # Each browser from an address of its own, as a trusted proxy in front would say:
            # ssogate admits 30 callbacks a minute from one address.
            sign_in(url, USER, PASSWORD, prefix, headers=[("X-Forwarded-For", next_address())])
            key = "ops"
        except (OSError, SystemExit, urllib.error.URLError) as e:
            key = "errors"
            why(counts, lock, e)
        with lock:
            counts[key] += 1


def refreshes(url, prefix, window, counts, lock, ready):
    try:
        cookie = sign_in(url, USER, PASSWORD, prefix)
    except (OSError, SystemExit, urllib.error.URLError):
        with lock:
            counts["errors"] += 1
        ready.wait()
        return
    ready.wait()  # every thread signed in: the measured time starts
    jar = dict(pair.split("=", 1) for pair in cookie.split("; "))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < window[1]:
        req = urllib.request.Request(url, headers={
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()), "Accept": "text/html"})
        key = "errors"
        try:
            with opener.open(req, timeout=10) as resp:
                resp.read()
                fresh = [v.split(";", 1)[0] for v in resp.headers.get_all("Set-Cookie") or []]
                fresh = [c.split("=", 1) for c in fresh
                         if (c.startswith(prefix) if prefix else c.startswith("_ssogate"))]
                if resp.status == 200:
                    key = "ops" if fresh else "not_refreshed"
                for name, value in fresh:
                    if value:
                        jar[name] = value
                    else:
                        jar.pop(name, None)
        except (OSError, urllib.error.URLError) as e:
            why(counts, lock, e)
        with lock:
            counts[key] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("signins", "refreshes"))
    ap.add_argument("url")
    ap.add_argument("--prefix", default=None)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--provider-stats", default=None, metavar="URL",
                    help="count the provider's refresh grants (refreshes only)")
    a = ap.parse_args()
    counts = {"ops": 0, "errors": 0, "not_refreshed": 0, "why": {}}
    lock = threading.Lock()
    run = signins if a.mode == "signins" else refreshes
    window = [0.0, 0.0]  # start and deadline, set when every thread is ready

    grants = []  # the provider's successful refresh grants when the measured time starts

    def provider_grants():
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(a.provider_stats, timeout=10) as r:
            stats = json.load(r)
        return stats["refresh_grants"] - stats["refresh_failures"]

    def go():
        if a.provider_stats:
            grants.append(provider_grants())
        window[0] = time.monotonic()
        window[1] = window[0] + a.seconds

    ready = threading.Barrier(a.threads, action=go)
    threads = [threading.Thread(target=run, args=(a.url, a.prefix, window, counts, lock, ready))
               for _ in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - window[0]
    out = {"ops": counts["ops"], "seconds": seconds, "errors": counts["errors"],
           "not_refreshed": counts["not_refreshed"], "why": counts["why"]}
    if a.provider_stats and grants:
        ops = provider_grants() - grants[0]
        answered = counts["ops"] + counts["not_refreshed"]  # every 200
        out.update(ops=ops, answers_refreshed=counts["ops"], not_refreshed=max(0, answered - ops))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

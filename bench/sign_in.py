#!/usr/bin/env python3
"""Signs in through a gateway the way a browser would and prints the session cookie.

    python3 bench/sign_in.py http://127.0.0.1:4180/ alice 'Passw0rd!' [COOKIE_PREFIX]

Follows the redirects from the protected URL to the provider's login form (any form with
`username` and `password` fields; hidden fields are sent back as they are), submits it,
follows the redirects back through the gateway's callback, and prints `name=value` pairs
of the gateway's session cookies (`_ssogate` and its chunks, or those whose names start
with COOKIE_PREFIX) joined with `; `, ready for
`-H "Cookie: ..."`. Standard library only; loopback only. For a gateway serving HTTPS with
a certificate of its own, name the certificate to trust in SIGN_IN_CA_FILE.
"""
import html.parser
import http.cookiejar
import os
import ssl
import sys
import urllib.parse
import urllib.request


class Form(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def sign_in(url, user, password, prefix=None, ca_file=None, timeout=10, headers=()):
    """Signs in at `url` like a browser; returns the session cookies as `name=value; ...`.
    `headers`: more (name, value) pairs sent with every request. Raises SystemExit with the
    reason when it cannot."""
    jar = http.cookiejar.CookieJar()
    handlers = [urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)]
    if ca_file:
        ca = ssl.create_default_context(cafile=ca_file)
        handlers.append(urllib.request.HTTPSHandler(context=ca))
    opener = urllib.request.build_opener(*handlers)
    # Look like a browser navigating: some gateways answer other clients with 401.
    opener.addheaders = [("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"), ("User-Agent", "ssogate-bench"),
                         *headers]
    page = opener.open(url, timeout=timeout)
    form = Form()
    form.feed(page.read().decode("utf-8", "replace"))
    if form.action is None or "password" not in form.fields:
        sys.exit(f"no login form at {page.geturl()}")
    form.fields["username"] = user
    form.fields["password"] = password
    target = urllib.parse.urljoin(page.geturl(), form.action)
    data = urllib.parse.urlencode(form.fields).encode()
    final = opener.open(target, data=data, timeout=timeout)
    final.read()
    if final.status != 200:
        sys.exit(f"sign-in ended with HTTP {final.status} at {final.geturl()}")

    def wanted(name):
        if prefix:
            return name.startswith(prefix)
        return name == "_ssogate" or (name.startswith("_ssogate_") and name[9:].isdigit())

    cookies = [f"{c.name}={c.value}" for c in jar if wanted(c.name)]
    if not cookies:
        sys.exit("signed in, but no session cookie was set")
    return "; ".join(cookies)


def main():
    url, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
    prefix = sys.argv[4] if len(sys.argv) > 4 else None
    print(sign_in(url, user, password, prefix, os.environ.get("SIGN_IN_CA_FILE") or None))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Gets an ID token from the test provider the way an API client's own login would, and prints it.

    python3 bench/id_token.py ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI USER PASSWORD

A code flow straight against the provider (tests/support/idp.mjs): the authorization request
with a PKCE S256 verifier of our own, the provider's login form filled in, the redirect to
REDIRECT_URI (which must be registered at the provider) caught without following it, and the
code redeemed at `{ISSUER}/oauth2/token` with client_secret_basic. The test provider's access
tokens are opaque, so the ID token (token_use=id, aud=CLIENT_ID) is what a bearer client sends.
Standard library only; loopback only. Same steps as `tokens_by_code_flow` in tests/common/idp.rs.
"""
import base64
import hashlib
import http.cookiejar
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

from sign_in import Form


class Caught(Exception):
    def __init__(self, url):
        super().__init__(url)
        self.url = url


def main():
    issuer, client_id, client_secret, redirect_uri, user, password = sys.argv[1:7]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()

    class StopAtRedirectUri(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if newurl.startswith(redirect_uri):
                raise Caught(newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPCookieProcessor(jar), StopAtRedirectUri())
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "openid email profile", "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16), "code_challenge": challenge, "code_challenge_method": "S256",
    })
    page = opener.open(f"{issuer}/oauth2/authorize?{query}", timeout=10)
    form = Form()
    form.feed(page.read().decode("utf-8", "replace"))
    if form.action is None or "password" not in form.fields:
        sys.exit(f"no login form at {page.geturl()}")
    form.fields.update(username=user, password=password)
    try:
        end = opener.open(urllib.parse.urljoin(page.geturl(), form.action),
                          data=urllib.parse.urlencode(form.fields).encode(), timeout=10)
        sys.exit(f"the login ended at {end.geturl()} (HTTP {end.status}), not at {redirect_uri}")
    except Caught as caught:
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(caught.url).query).get("code", [None])[0]
    if not code:
        sys.exit(f"no code in {caught.url}")
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    req = urllib.request.Request(
        f"{issuer}/oauth2/token",
        data=urllib.parse.urlencode({"grant_type": "authorization_code", "code": code,
                                     "redirect_uri": redirect_uri, "code_verifier": verifier}).encode(),
        headers={"Authorization": f"Basic {basic}"})
    try:
        tokens = json.load(urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10))
    except urllib.error.HTTPError as e:
        sys.exit(f"token endpoint: HTTP {e.code}: {e.read()[:300]!r}")
    if "id_token" not in tokens:
        sys.exit(f"no id_token in the token response: {sorted(tokens)}")
    print(tokens["id_token"])


if __name__ == "__main__":
    main()

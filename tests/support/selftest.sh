#!/usr/bin/env bash
# Self-test of the Cognito-shaped test IdP (idp.mjs) with nothing but curl and node:
# logs in through the HTML form with a cookie jar, exchanges codes for both clients,
# checks ID-token claims and signatures, refresh, groups, disable, revoke, key rotation,
# Cognito logout, the wrong-password page and the stats counters.
# Exits non-zero on the first failure.   Usage: bash tests/support/selftest.sh
set -Eeuo pipefail
cd "$(dirname "$0")"
[ -d node_modules/oidc-provider ] || npm ci --no-audit --no-fund >&2

REDIRECT=http://127.0.0.1:9/cb
LOGOUT=http://127.0.0.1:9/out
POOL=eu-central-1_TestPool1
WORK=$(mktemp -d)
PASSES=0

node idp.mjs --pool "$POOL" --redirect-uri "$REDIRECT" --logout-uri "$LOGOUT" >"$WORK/stdout" 2>"$WORK/stderr" &
IDP_PID=$!
cleanup() { kill "$IDP_PID" 2>/dev/null || true; wait "$IDP_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'fail "command failed at line $LINENO: $BASH_COMMAND"' ERR

fail() { echo "FAIL: $*" >&2; echo "--- idp stderr:" >&2; tail -n 20 "$WORK/stderr" >&2; exit 1; }
ok() { PASSES=$((PASSES + 1)); echo "ok - $*"; }

# check JSON EXPR MESSAGE: EXPR is a JS expression over `j` (the parsed JSON) that must be truthy.
check() {
  node -e 'const j = JSON.parse(process.argv[1]); if (!(0, eval)(`(j) => (${process.argv[2]})`)(j)) process.exit(1)' -- "$1" "$2" \
    || fail "$3: expected ($2) in: $1"
  ok "$3"
}
# JWT payload / header as JSON
jwt_payload() { node -e 'console.log(Buffer.from(process.argv[1].split(".")[1], "base64url").toString())' -- "$1"; }
jwt_header() { node -e 'console.log(Buffer.from(process.argv[1].split(".")[0], "base64url").toString())' -- "$1"; }
field() { node -e 'const v = JSON.parse(process.argv[1])[process.argv[2]]; console.log(typeof v === "string" ? v : JSON.stringify(v ?? null))' -- "$1" "$2"; }
# verify_sig JWT JWKS_JSON: RS256 signature checked with the JWKS key of the header's kid
verify_sig() {
  node -e '
    const crypto = require("node:crypto");
    const [jwt, jwks] = process.argv.slice(1);
    const [h, p, s] = jwt.split(".");
    const { kid, alg } = JSON.parse(Buffer.from(h, "base64url"));
    const jwk = JSON.parse(jwks).keys.find((k) => k.kid === kid);
    if (alg !== "RS256" || !jwk) process.exit(1);
    const key = crypto.createPublicKey({ key: jwk, format: "jwk" });
    process.exit(crypto.verify("sha256", Buffer.from(`${h}.${p}`), key, Buffer.from(s, "base64url")) ? 0 : 1);
  ' -- "$1" "$2"
}
at_hash() { node -e 'const h = require("node:crypto").createHash("sha256").update(process.argv[1]).digest(); console.log(h.subarray(0, 16).toString("base64url"))' -- "$1"; }

# ---------------------------------------------------------------- start
for _ in $(seq 100); do [ -s "$WORK/stdout" ] && break; sleep 0.1; done
[ -s "$WORK/stdout" ] || fail "idp printed nothing"
LINE=$(cat "$WORK/stdout")
[ "$(wc -l <"$WORK/stdout")" -eq 1 ] || fail "stdout must be one line: $LINE"
PORT=$(field "$LINE" port)
ISSUER="http://127.0.0.1:$PORT/$POOL"
check "$LINE" "j.port === $PORT && j.issuer === '$ISSUER' && Object.keys(j).length === 2" "stdout line is {port, issuer}"
ROOT="http://127.0.0.1:$PORT"

# ---------------------------------------------------------------- discovery, JWKS
DISC=$(curl -sf "$ISSUER/.well-known/openid-configuration")
check "$DISC" "j.issuer === '$ISSUER'" "discovery issuer"
check "$DISC" "j.authorization_endpoint === '$ISSUER/oauth2/authorize' && j.token_endpoint === '$ISSUER/oauth2/token' && j.userinfo_endpoint === '$ISSUER/oauth2/userInfo' && j.revocation_endpoint === '$ISSUER/oauth2/revoke' && j.jwks_uri === '$ISSUER/.well-known/jwks.json'" "discovery endpoints are Cognito-shaped"
check "$DISC" "j.end_session_endpoint === '$ISSUER/oidc/logout'" "standard end_session advertised"
check "$DISC" "JSON.stringify(j.id_token_signing_alg_values_supported) === '[\"RS256\"]' && JSON.stringify(j.code_challenge_methods_supported) === '[\"S256\"]'" "RS256 only, S256 only"
check "$DISC" "JSON.stringify(j.token_endpoint_auth_methods_supported) === '[\"client_secret_basic\",\"client_secret_post\"]'" "client auth methods"
JWKS=$(curl -sf "$ISSUER/.well-known/jwks.json")
check "$JWKS" "j.keys.length === 1 && j.keys[0].kty === 'RSA' && j.keys[0].alg === 'RS256' && j.keys[0].use === 'sig' && !('d' in j.keys[0])" "JWKS: one public RS256 key"
KID1=$(node -e 'console.log(JSON.parse(process.argv[1]).keys[0].kid)' -- "$JWKS")

# ---------------------------------------------------------------- browser-like login helpers
# follow JAR URL: GET/redirect loop like a browser, but stops at the client's redirect_uri
# (nothing listens on port 9). Prints "REDIRECT <location>" or "PAGE <url>" (body in $WORK/page).
follow() {
  local jar=$1 url=$2 hdr="$WORK/headers" status loc
  for _ in $(seq 10); do
    status=$(curl -s -b "$jar" -c "$jar" -D "$hdr" -o "$WORK/page" -w '%{http_code}' "$url")
    if [[ $status == 30[1237] ]]; then
      loc=$(grep -i '^location:' "$hdr" | tail -n1 | sed 's/^[^:]*: *//' | tr -d '\r')
      url=$(node -e 'console.log(new URL(process.argv[1], process.argv[2]).href)' -- "$loc" "$url")
      if [[ $url == "$REDIRECT"* ]]; then echo "REDIRECT $url"; return; fi
    else
      echo "PAGE $status $url"; return
    fi
  done
  fail "too many redirects"
}
form_action() { # absolute URL of the form action of $WORK/page, resolved against $1
  local action
  action=$(grep -o '<form[^>]*action="[^"]*"' "$WORK/page" | sed 's/.*action="//; s/"$//' | sed 's/&amp;/\&/g')
  [ -n "$action" ] || fail "no form action in page"
  node -e 'console.log(new URL(process.argv[1], process.argv[2]).href)' -- "$action" "$1"
}
# submit_login JAR PAGE_URL USER PASSWORD: POST the form, then follow redirects like follow()
submit_login() {
  local jar=$1 page_url=$2 action status loc hdr="$WORK/headers"
  action=$(form_action "$page_url")
  status=$(curl -s -b "$jar" -c "$jar" -D "$hdr" -o "$WORK/page" -w '%{http_code}' \
    --data-urlencode "username=$3" --data-urlencode "password=$4" "$action")
  if [[ $status == 30[1237] ]]; then
    loc=$(grep -i '^location:' "$hdr" | tail -n1 | sed 's/^[^:]*: *//' | tr -d '\r')
    loc=$(node -e 'console.log(new URL(process.argv[1], process.argv[2]).href)' -- "$loc" "$action")
    if [[ $loc == "$REDIRECT"* ]]; then echo "REDIRECT $loc"; else follow "$jar" "$loc"; fi
  else
    echo "PAGE $status $action"
  fi
}
# new_request CLIENT: sets STATE NONCE VERIFIER AUTH_URL (PKCE S256 computed with openssl)
new_request() {
  STATE=$(openssl rand -hex 12); NONCE=$(openssl rand -hex 12)
  VERIFIER=$(openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n')
  local challenge
  challenge=$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
  AUTH_URL="$ISSUER/oauth2/authorize?response_type=code&client_id=$1&redirect_uri=$(node -p 'encodeURIComponent(process.argv[1])' -- "$REDIRECT")&scope=openid%20email%20profile&state=$STATE&nonce=$NONCE&code_challenge=$challenge&code_challenge_method=S256"
}
code_from() { node -e 'const u = new URL(process.argv[1]); if (u.searchParams.get("state") !== process.argv[2]) process.exit(1); console.log(u.searchParams.get("code"))' -- "$1" "$2" || fail "bad state in $1"; }
# login CLIENT USER JAR: full login; sets CODE (and STATE NONCE VERIFIER). Not for $(...): the
# variables must survive.
login() {
  new_request "$1"
  local r
  r=$(follow "$3" "$AUTH_URL")
  [[ $r == "PAGE 200 "* ]] || fail "expected login page, got $r"
  grep -q 'name="username"' "$WORK/page" && grep -q 'name="password"' "$WORK/page" || fail "login form fields missing"
  r=$(submit_login "$3" "${r#PAGE 200 }" "$2" 'Passw0rd!')
  [[ $r == "REDIRECT "* ]] || fail "login as $2 did not redirect to the client: $r $(cat "$WORK/page")"
  CODE=$(code_from "${r#REDIRECT }" "$STATE")
}
# token CLIENT FORM-ARGS...: token endpoint call with the client's auth method; prints "STATUS BODY"
token() {
  local client=$1; shift
  local auth=(-u "$client:${client%-client}-secret")
  [ "$client" = post-client ] && auth=(-d "client_id=$client" -d "client_secret=post-secret")
  local out
  out=$(curl -s -w '\n%{http_code}' "${auth[@]}" "$@" "$ISSUER/oauth2/token")
  echo "${out##*$'\n'} ${out%$'\n'*}"
}
exchange() { token "$1" -d grant_type=authorization_code -d "code=$2" --data-urlencode "redirect_uri=$REDIRECT" -d "code_verifier=$VERIFIER"; }
refresh() { token "$1" -d grant_type=refresh_token --data-urlencode "refresh_token=$2"; }

# check_id_token TOKENS_JSON CLIENT USER NONCE: the claims every Cognito ID token has
check_id_token() {
  local id at payload header
  id=$(field "$1" id_token); at=$(field "$1" access_token)
  payload=$(jwt_payload "$id"); header=$(jwt_header "$id")
  check "$header" "j.alg === 'RS256' && typeof j.kid === 'string'" "$3: ID token header RS256 with kid"
  verify_sig "$id" "$(curl -sf "$ISSUER/.well-known/jwks.json")" || fail "$3: ID token signature does not verify"
  ok "$3: ID token signature verifies against JWKS"
  check "$payload" "j.iss === '$ISSUER' && j.aud === '$2' && j.token_use === 'id' && j['cognito:username'] === '$3'" "$3: iss, aud, token_use, cognito:username"
  check "$payload" "Number.isInteger(j.exp) && Number.isInteger(j.iat) && j.exp > j.iat && Number.isInteger(j.auth_time) && j.auth_time <= j.iat" "$3: exp, iat, auth_time"
  check "$payload" "j.nonce === '$4' && j.at_hash === '$(at_hash "$at")'" "$3: nonce and at_hash"
  check "$payload" "j.email === '$3@example.com' && 'email_verified' in j" "$3: email claims in the ID token"
}

# ---------------------------------------------------------------- wrong password, unknown user
curl -sf -X POST "$ROOT/__test/reset-stats" >/dev/null
JAR_X="$WORK/jar-x"
new_request basic-client
R=$(follow "$JAR_X" "$AUTH_URL")
[[ $R == "PAGE 200 $ISSUER/login/"* ]] || fail "authorize should lead to the login page under the pool: $R"
ok "authorize redirects to the login page under /$POOL/"
PAGE_URL=${R#PAGE 200 }
for creds in "alice:wrong" "mallory:Passw0rd!"; do
  R=$(submit_login "$JAR_X" "$PAGE_URL" "${creds%%:*}" "${creds#*:}")
  [[ $R == "PAGE 200 "* ]] && grep -q 'Incorrect username or password\.' "$WORK/page" && grep -q 'name="password"' "$WORK/page" \
    || fail "bad credentials ${creds%%:*} should re-render the form with the error: $R"
  ok "bad credentials (${creds%%:*}) -> form again with 'Incorrect username or password.'"
done
# ...and the same interaction still completes with the right password
R=$(submit_login "$JAR_X" "$PAGE_URL" carol 'Passw0rd!')
[[ $R == "REDIRECT "* ]] || fail "retry after a wrong password should log in: $R"
CODE=$(code_from "${R#REDIRECT }" "$STATE")
ok "retry after a wrong password completes"

# carol: basic-client, no groups -> cognito:groups absent, email_verified false
R=$(exchange basic-client "$CODE")
[[ $R == "200 "* ]] || fail "carol code exchange: $R"
TOK=${R#200 }
check "$TOK" "j.token_type === 'Bearer' && j.expires_in === 3600 && typeof j.refresh_token === 'string' && typeof j.access_token === 'string'" "carol (basic-client): token response with refresh_token"
check_id_token "$TOK" basic-client carol "$NONCE"
check "$(jwt_payload "$(field "$TOK" id_token)")" "!('cognito:groups' in j) && j.email_verified === false" "carol: no cognito:groups claim, email_verified false"
# (on carol's code: replaying a code makes oidc-provider revoke what the code issued)
R=$(token post-client -d grant_type=authorization_code -d "code=$CODE" --data-urlencode "redirect_uri=$REDIRECT")
[[ $R == "400 "* ]] || fail "code of another client: $R"
ok "a code only works for its own client"
R=$(exchange basic-client "$CODE")
[[ $R == "400 "* ]] && check "${R#400 }" "j.error === 'invalid_grant'" "a code is single-use" || fail "code reuse: $R"

# ---------------------------------------------------------------- alice, basic-client
JAR_A="$WORK/jar-a"
login basic-client alice "$JAR_A"
R=$(exchange basic-client "$CODE")
[[ $R == "200 "* ]] || fail "alice code exchange: $R"
TOK_A=${R#200 }
ALICE_NONCE=$NONCE
check_id_token "$TOK_A" basic-client alice "$NONCE"
ID_A=$(jwt_payload "$(field "$TOK_A" id_token)")
check "$ID_A" "JSON.stringify(j['cognito:groups']) === '[\"admins\",\"staff\"]' && j.email_verified === true && j.sub === '11111111-1111-4111-8111-111111111111'" "alice: groups, email_verified true, sub"
AUTH_TIME_A=$(field "$ID_A" auth_time)
RT_A=$(field "$TOK_A" refresh_token)

# wrong client secret
R=$(curl -s -w '\n%{http_code}' -u basic-client:nope -d grant_type=refresh_token -d "refresh_token=$RT_A" "$ISSUER/oauth2/token" | tail -n1)
[ "$R" = 401 ] || fail "wrong client secret should be 401, got $R"
ok "wrong client secret -> 401"

# userInfo with the opaque access token
UI=$(curl -sf -H "Authorization: Bearer $(field "$TOK_A" access_token)" "$ISSUER/oauth2/userInfo")
check "$UI" "j.sub === '11111111-1111-4111-8111-111111111111' && j.email === 'alice@example.com' && j.username === 'alice'" "userInfo answers"

# PKCE is required
new_request basic-client
R=$(follow "$JAR_A" "${AUTH_URL%%&code_challenge=*}")
[[ $R == "REDIRECT "*"error=invalid_request"* ]] || fail "authorize without code_challenge should fail: $R"
ok "PKCE required (no code_challenge -> invalid_request)"
# a second authorize in the same browser is silent (hosted-UI session), and needs the right verifier
new_request basic-client
R=$(follow "$JAR_A" "$AUTH_URL")
[[ $R == "REDIRECT "* ]] || fail "second authorize with a session should be silent: $R"
CODE=$(code_from "${R#REDIRECT }" "$STATE")
ok "signed-in browser: authorize redirects straight back"
R=$(token basic-client -d grant_type=authorization_code -d "code=$CODE" --data-urlencode "redirect_uri=$REDIRECT" -d "code_verifier=${VERIFIER}x")
[[ $R == "400 "*invalid_grant* ]] || fail "wrong code_verifier: $R"
ok "wrong code_verifier -> invalid_grant"
# each sign-in has its own grant: revoking a second login's refresh token leaves the first one alive
new_request basic-client
R=$(follow "$JAR_A" "$AUTH_URL")
R=$(exchange basic-client "$(code_from "${R#REDIRECT }" "$STATE")")
RT_A2=$(field "${R#200 }" refresh_token)
[ "$RT_A2" != "$RT_A" ] || fail "second login should get its own refresh token"
R=$(curl -s -o /dev/null -w '%{http_code}' -u basic-client:basic-secret --data-urlencode "token=$RT_A2" "$ISSUER/oauth2/revoke")
[ "$R" = 200 ] || fail "revoke (basic auth): $R"
R=$(refresh basic-client "$RT_A2")
[[ $R == "400 "*invalid_grant* ]] || fail "refresh after revoke (basic-client): $R"
ok "revoke (basic-client) kills that login's refresh token"

# ---------------------------------------------------------------- bob, post-client
JAR_B="$WORK/jar-b"
login post-client bob "$JAR_B"
R=$(exchange post-client "$CODE")
[[ $R == "200 "* ]] || fail "bob code exchange: $R"
TOK_B=${R#200 }
check_id_token "$TOK_B" post-client bob "$NONCE"
check "$(jwt_payload "$(field "$TOK_B" id_token)")" "j.email_verified === 'true' && JSON.stringify(j['cognito:groups']) === '[\"staff\"]'" "bob: email_verified is the STRING \"true\", groups [staff]"
RT_B=$(field "$TOK_B" refresh_token)
# bob's browser session, other client: no form; the consent step is granted silently
new_request basic-client
R=$(follow "$JAR_B" "$AUTH_URL")
[[ $R == "REDIRECT "* ]] || fail "SSO to a second client should be silent: $R"
R=$(exchange basic-client "$(code_from "${R#REDIRECT }" "$STATE")")
check "$(jwt_payload "$(field "${R#200 }" id_token)")" "j.aud === 'basic-client' && j['cognito:username'] === 'bob' && j.nonce === '$NONCE'" "signed-in browser, second client: silent consent, tokens for bob"

# ---------------------------------------------------------------- refresh
R=$(refresh basic-client "$RT_A")
[[ $R == "200 "* ]] || fail "alice refresh: $R"
check "${R#200 }" "!('refresh_token' in j) && typeof j.id_token === 'string' && typeof j.access_token === 'string'" "refresh: new id/access tokens, NO refresh_token"
P=$(jwt_payload "$(field "${R#200 }" id_token)")
check "$P" "j.auth_time === $AUTH_TIME_A && j.token_use === 'id' && j.aud === 'basic-client' && JSON.stringify(j['cognito:groups']) === '[\"admins\",\"staff\"]'" "refresh: auth_time kept, claims present"
R=$(refresh post-client "$RT_A")
[[ $R == "400 "*invalid_grant* ]] || fail "refresh with another client's token: $R"
ok "refresh token bound to its client"

curl -sf -X POST -H 'Content-Type: application/json' -d '["staff"]' "$ROOT/__test/users/alice/groups" >/dev/null
R=$(refresh basic-client "$RT_A")
check "$(jwt_payload "$(field "${R#* }" id_token)")" "JSON.stringify(j['cognito:groups']) === '[\"staff\"]'" "refresh after group change: new groups"
curl -sf -X POST -d '[]' "$ROOT/__test/users/alice/groups" >/dev/null
R=$(refresh basic-client "$RT_A")
check "$(jwt_payload "$(field "${R#* }" id_token)")" "!('cognito:groups' in j)" "groups [] -> claim absent after refresh"
curl -sf -X POST -d '["admins","staff"]' "$ROOT/__test/users/alice/groups" >/dev/null
R=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"no":1}' "$ROOT/__test/users/alice/groups")
[ "$R" = 400 ] || fail "groups body must be an array: $R"
R=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$ROOT/__test/users/nobody/disable")
[ "$R" = 404 ] || fail "unknown user should be 404: $R"
ok "control API rejects bad input"

curl -sf -X POST "$ROOT/__test/users/alice/disable" >/dev/null
R=$(refresh basic-client "$RT_A")
[[ $R == "400 "* ]] && check "${R#400 }" "j.error === 'invalid_grant'" "disabled user: refresh -> invalid_grant" || fail "disabled refresh: $R"
JAR_D="$WORK/jar-d"
new_request basic-client
R=$(follow "$JAR_D" "$AUTH_URL")
R=$(submit_login "$JAR_D" "${R#PAGE 200 }" alice 'Passw0rd!')
[[ $R == "PAGE 200 "* ]] && grep -q 'User is disabled\.' "$WORK/page" || fail "disabled user should not log in: $R"
ok "disabled user cannot log in"
curl -sf -X POST "$ROOT/__test/users/alice/enable" >/dev/null
R=$(refresh basic-client "$RT_A")
[[ $R == "200 "* ]] || fail "re-enabled refresh: $R"
ok "re-enabled user: refresh works again"

# ---------------------------------------------------------------- revoke
R=$(curl -s -o /dev/null -w '%{http_code}' -d client_id=post-client -d client_secret=post-secret --data-urlencode "token=$RT_B" "$ISSUER/oauth2/revoke")
[ "$R" = 200 ] || fail "revoke: $R"
ok "revoke (post-client) -> 200"
R=$(refresh post-client "$RT_B")
[[ $R == "400 "*invalid_grant* ]] || fail "refresh after revoke: $R"
ok "revoked refresh token -> invalid_grant"
R=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(field "$TOK_B" access_token)" "$ISSUER/oauth2/userInfo")
[ "$R" = 401 ] || fail "access token of a revoked grant should be dead at userInfo: $R"
ok "revoking the refresh token also kills its access tokens"

# ---------------------------------------------------------------- key rotation
ROT=$(curl -sf -X POST "$ROOT/__test/rotate-keys")
KID2=$(field "$ROT" kid)
check "$ROT" "j.kid !== '$KID1' && j.kids.length === 2 && j.kids.includes('$KID1')" "rotate-keys: new kid, old kept"
check "$(curl -sf "$ISSUER/.well-known/jwks.json")" "j.keys.map((k) => k.kid).sort().join() === ['$KID1', '$KID2'].sort().join()" "JWKS has old and new key"
R=$(refresh basic-client "$RT_A")   # refresh token from before the rotation still works
[[ $R == "200 "* ]] || fail "refresh after rotation: $R"
check "$(jwt_header "$(field "${R#200 }" id_token)")" "j.kid === '$KID2'" "after rotation: tokens signed with the new kid, old refresh token still valid"
verify_sig "$(field "${R#200 }" id_token)" "$(curl -sf "$ISSUER/.well-known/jwks.json")" || fail "rotated signature"
ok "rotated signature verifies"
[[ $(follow "$JAR_A" "$AUTH_URL") == "REDIRECT "* ]] || fail "browser session lost by rotation"
ok "browser session survives rotation"

curl -sf -X POST "$ROOT/__test/hide-signing-key" >/dev/null
check "$(curl -sf "$ISSUER/.well-known/jwks.json")" "j.keys.length === 1 && j.keys[0].kid === '$KID1'" "hide-signing-key: current kid not served"
R=$(refresh basic-client "$RT_A")
check "$(jwt_header "$(field "${R#200 }" id_token)")" "j.kid === '$KID2'" "hidden key still signs"
curl -sf -X POST "$ROOT/__test/show-signing-key" >/dev/null
check "$(curl -sf "$ISSUER/.well-known/jwks.json")" "j.keys.some((k) => k.kid === '$KID2')" "show-signing-key: served again"

ROT=$(curl -sf -X POST "$ROOT/__test/rotate-keys?drop_old=1")
KID3=$(field "$ROT" kid)
check "$(curl -sf "$ISSUER/.well-known/jwks.json")" "j.keys.length === 1 && j.keys[0].kid === '$KID3'" "rotate-keys?drop_old=1: only the new key"
R=$(refresh basic-client "$RT_A")
check "$(jwt_header "$(field "${R#200 }" id_token)")" "j.kid === '$KID3'" "signed with the newest key"

# ---------------------------------------------------------------- Cognito logout
LO="$ISSUER/logout?client_id=basic-client&logout_uri=$(node -p 'encodeURIComponent(process.argv[1])' -- "$LOGOUT")"
R=$(curl -s -b "$JAR_A" -c "$JAR_A" -o /dev/null -w '%{http_code} %{redirect_url}' "$LO")
[ "$R" = "302 $LOGOUT" ] || fail "logout should 302 to the logout_uri: $R"
ok "Cognito /logout -> 302 to logout_uri"
new_request basic-client
R=$(follow "$JAR_A" "$AUTH_URL")
[[ $R == "PAGE 200 "* ]] && grep -q 'name="password"' "$WORK/page" || fail "after logout, authorize should show the login form: $R"
ok "after logout the login form is shown again"
R=$(refresh basic-client "$RT_A")
[[ $R == "200 "* ]] || fail "refresh after logout: $R"
ok "refresh tokens outlive the hosted-UI session (logout does not revoke)"
R=$(curl -s -o /dev/null -w '%{http_code}' "$ISSUER/logout?client_id=basic-client&logout_uri=http%3A%2F%2Fevil.example%2F")
[ "$R" = 400 ] || fail "unlisted logout_uri: $R"
R=$(curl -s -o /dev/null -w '%{http_code}' "$ISSUER/logout?client_id=nope&logout_uri=$(node -p 'encodeURIComponent(process.argv[1])' -- "$LOGOUT")")
[ "$R" = 400 ] || fail "unknown client logout: $R"
ok "logout with unknown client or unlisted logout_uri -> 400"

# ---------------------------------------------------------------- deleted user
curl -sf -X POST "$ROOT/__test/users/alice/delete" >/dev/null
R=$(refresh basic-client "$RT_A")
[[ $R == "400 "*invalid_grant* ]] || fail "deleted user refresh: $R"
ok "deleted user: refresh -> invalid_grant"
curl -sf -X POST "$ROOT/__test/reset-users" >/dev/null
R=$(refresh basic-client "$RT_A")
[[ $R == "200 "* ]] || fail "refresh after reset-users: $R"
ok "reset-users restores the users"

# ---------------------------------------------------------------- stats
# Expected since the reset at the top, counting the calls made above:
#   code grants (8): carol, carol at post-client, carol replay, alice, wrong verifier, alice 2nd,
#     bob, bob SSO
#   refresh grants (15): wrong secret*, alice 2nd revoked*, alice, other client*, groups x2, disabled*, enabled,
#     bob revoked*, rotation, hidden, drop_old, after logout, deleted*, after reset  (* = failure)
STATS=$(curl -sf "$ROOT/__test/stats")
check "$STATS" "j.authorization_code_grants === 8 && j.refresh_grants === 15 && j.token_requests === 23" "stats: token/code/refresh counts"
check "$STATS" "j.refresh_failures === 6 && j.revocations === 2 && j.userinfo_requests === 2 && j.logouts === 3" "stats: failures, revocations, userinfo, logouts"
curl -sf -X POST "$ROOT/__test/reset-stats" >/dev/null
check "$(curl -sf "$ROOT/__test/stats")" "Object.values(j).every((v) => v === 0) && Object.keys(j).length === 7" "reset-stats zeroes all seven counters"

# ---------------------------------------------------------------- no internal errors logged
if grep -q 'server_error\|control error' "$WORK/stderr"; then fail "idp logged internal errors"; fi
ok "no internal errors in the idp log"

# ---------------------------------------------------------------- clean exit on SIGTERM
kill -TERM "$IDP_PID"
RC=0; wait "$IDP_PID" || RC=$?
[ "$RC" = 0 ] || fail "idp exit status after SIGTERM: $RC"
ok "SIGTERM -> exit 0"

echo "selftest: $PASSES passed, 0 failed"

#!/usr/bin/env bash
# =============================================================================
# ssogate benchmark harness
#
# What it measures
#   Throughput, latency and server-side cost of proxying a tiny static response
#   through ssogate, compared with hitting the upstream directly and with a
#   plain nginx reverse proxy doing the same job. Everything runs on loopback on
#   this machine, in one run, on free ports chosen at run time:
#
#     direct upstream   wrk -> nginx (1 worker, `return 200 "hello from upstream\n"`)
#     nginx proxy       wrk -> nginx (2 workers, proxy_pass, upstream keepalive 64) -> upstream
#     ssogate public    wrk -> ssogate (public route "/")                           -> upstream
#
#   For every row: 2 s warm-up, then `wrk -t2 -c32 -d${BENCH_SECONDS}s --latency`; all rows
#   once per round, BENCH_ROUNDS rounds (which 32 connections land on which worker, and what
#   else the machine does, moves single runs by 5-10%). Reported, as medians over the
#   rounds: requests/s, p50, p99, ratio of req/s vs the direct and vs the nginx proxy rows
#   (with the range of the per-round ratio against nginx), CPU microseconds per request of the measured server's process
#   tree (utime+stime from /proc/PID/stat, before/after the measured run only,
#   summed over master + workers for nginx), peak RSS (VmHWM summed over the
#   process tree, MiB), and errors (socket errors + non-2xx/3xx from wrk, plus a
#   flag if a curl pre-flight did not get a 2xx).
#
#   wrk and the servers share the machine's cores (unless BENCH_SERVER_CPUS/BENCH_WRK_CPUS
#   split them); absolute numbers depend on the machine, the ratios are what matter. These are
#   measurements, not tests: the script does not fail because a number is "bad".
#
# How to run (as root: it installs nginx-light/wrk with apt-get if missing)
#     bash bench/run.sh
#   Environment:
#     BENCH_SECONDS=10       length of each measured wrk run
#     BENCH_ROUNDS=3         how many times every row is measured (medians are reported)
#     SSOGATE_BIN=path       use this binary instead of `cargo build --release`
#     SSOGATE_WORKERS=N      set `server.workers` in every ssogate row (default: ssogate's own)
#     BENCH_SKIP_SSOGATE=1   skip the build and the ssogate row(s)
#     BENCH_SKIP_SIGNED_IN=1 skip the signed-in rows (test provider tests/support/idp.mjs; ssogate with
#                            cookie/memory/redis stores; Apache + mod_auth_openidc when installed)
#     BENCH_THREADS=2 BENCH_CONNECTIONS=32 BENCH_WARMUP=2   wrk knobs
#     BENCH_TLS=1            more rows over HTTPS (self-signed P-256 certificate made with
#                            openssl): nginx proxy, ssogate public and (unless the signed-in rows
#                            are skipped) ssogate signed-in with the cookie store, all TLS-terminating
#     BENCH_SERVER_CPUS=list BENCH_WRK_CPUS=list   pin the servers (upstream, proxies, provider,
#                            redis, Apache) and wrk to these CPUs (`taskset -c` lists, e.g. 0 and
#                            1), so the load generator does not take CPU from the server measured
#     BENCH_KEEP_TMP=1       keep the temp dir (configs, logs) for inspection
#     BENCH_ROWS="get h2 tls body ws idle signin refresh bearer session"   which groups of rows
#                            (default all): the signed-in GET table, HTTP/2 over TLS, TLS
#                            handshakes, 1 MiB / 100 MiB uploads and downloads, WebSocket
#                            messages and set-ups, idle keep-alive connections, sign-ins,
#                            refreshes, bearer tokens, memory-store bytes per session
#                            (bench/README.md, "The other rows")
#     BENCH_IDLE=10000 BENCH_IDLE_HOLD=10 BENCH_TOKENS=60000 BENCH_FIRST_SIGHT_SECONDS=2
#                            idle connections held, and for how many seconds before their
#                            RSS is read; bearer tokens per round, and the length of the
#                            first-sight run
#   Output: Markdown tables on stdout, also written to bench/out/results-<date>.md, with the
#   same as JSON (results-<date>.json) and an SVG chart of it (results-<date>.svg, bench/chart.py),
#   and the rows that got worse or better since the newest run in bench/results (bench/compare.py)
#
# Adding rows
#   Start the server in main(), then: add_target NAME URL PID [COOKIE]
#     PID is the server process whose tree is measured for CPU/RSS ("-" = none); COOKIE
#     is sent as the Cookie header (by wrk and by the curl pre-flight, which catches e.g.
#     a 302 to the IdP that wrk would count as success).
# =============================================================================
set -euo pipefail

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-32}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_SKIP_SSOGATE=${BENCH_SKIP_SSOGATE:-0}
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
SSOGATE_WORKERS=${SSOGATE_WORKERS:-}
BENCH_SERVER_CPUS=${BENCH_SERVER_CPUS:-}
BENCH_TLS=${BENCH_TLS:-0}
BENCH_WRK_CPUS=${BENCH_WRK_CPUS:-}
# Which rows: get (the signed-in GET table) and the others (see bench/README.md).
BENCH_ROWS=${BENCH_ROWS:-get h2 tls body ws idle signin refresh bearer session}
BENCH_IDLE=${BENCH_IDLE:-10000}
BENCH_IDLE_HOLD=${BENCH_IDLE_HOLD:-10}
BENCH_TOKENS=${BENCH_TOKENS:-60000}
BENCH_FIRST_SIGHT_SECONDS=${BENCH_FIRST_SIGHT_SECONDS:-2}
# Command prefixes: `taskset -c LIST` when pinned, nothing otherwise.
ON_SERVER_CPUS=()
[[ -n $BENCH_SERVER_CPUS ]] && ON_SERVER_CPUS=(taskset -c "$BENCH_SERVER_CPUS")
ON_WRK_CPUS=()
[[ -n $BENCH_WRK_CPUS ]] && ON_WRK_CPUS=(taskset -c "$BENCH_WRK_CPUS")

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR="$REPO/bench/out"
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------
ensure_tools() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if has_rows h2; then command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client); fi
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        local SUDO=()
        [[ $EUID -eq 0 ]] || SUDO=(sudo)
        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" apt-get install -y "${missing[@]}" ||
            { "${SUDO[@]}" apt-get update && "${SUDO[@]}" apt-get install -y "${missing[@]}"; } ||
            die "could not install ${missing[*]}"
    fi
    NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
    WRK=$(command -v wrk)
}

# ---------------------------------------------------------------------------
# process bookkeeping + cleanup (only PIDs we started, never by name)
# ---------------------------------------------------------------------------
WORK=""
STARTED_PIDS=()
WRK_PID=""

# PID and all its descendants, one per line
tree_pids() {
    local p=$1 c
    [[ -d /proc/$p ]] || return 0
    echo "$p"
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null || true); do
        tree_pids "$c"
    done
}

stop_tree() {
    local pid=$1 p i alive
    local pids
    pids=$(tree_pids "$pid")
    [[ -n $pids ]] || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive=0
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in $(tac <<<"$pids"); do # leaves first, so parents can still reap them
        if kill -0 "$p" 2>/dev/null; then
            log "killing leftover pid $p"
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    if [[ -n $WRK_PID ]]; then kill -TERM "$WRK_PID" 2>/dev/null || true; wait "$WRK_PID" 2>/dev/null || true; fi
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        stop_tree "${STARTED_PIDS[i]}"
    done
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ $BENCH_KEEP_TMP == 1 ]]; then log "kept temp dir $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# N distinct free loopback ports (all bound at once so they differ)
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# wait_http NAME URL PID TIMEOUT_S LOGFILE: poll until URL answers 200
wait_http() {
    local name=$1 url=$2 pid=$3 timeout=$4 logf=$5 deadline code
    deadline=$((SECONDS + timeout))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) exited during start-up; last log lines:"
            tail -n 30 "$logf" >&2 || true
            die "$name failed to start"
        fi
        code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        [[ $code == 200 ]] && return 0
        if ((SECONDS >= deadline)); then
            log "$name: $url did not answer 200 within ${timeout}s (last status: ${code:-none}); last log lines:"
            tail -n 30 "$logf" >&2 || true
            die "$name not ready"
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------
# start_nginx NAME DIR  (DIR/nginx.conf must exist); sets LAST_PID
start_nginx() {
    local name=$1 dir=$2
    local args=(-p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g "pid $dir/nginx.pid;")
    "$NGINX" -t -q "${args[@]}" >"$dir/configtest.log" 2>&1 ||
        { cat "$dir/configtest.log" >&2; die "$name: nginx config test failed"; }
    ${ON_SERVER_CPUS[@]+"${ON_SERVER_CPUS[@]}"} "$NGINX" "${args[@]}" >"$dir/stdout.log" 2>&1 &
    LAST_PID=$!
    STARTED_PIDS+=("$LAST_PID")
    log "$name: nginx pid $LAST_PID"
}

nginx_common() { # DIR WORKERS
    local dir=$1 workers=$2
    cat <<EOF
daemon off;
master_process on;
worker_processes $workers;
$( [[ $EUID -eq 0 ]] && echo "user www-data;" )
error_log $dir/error.log warn;
worker_rlimit_nofile 40000;
events { worker_connections 16384; }
EOF
}

nginx_http_common() { # DIR
    local dir=$1
    cat <<EOF
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_max_body_size 0;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
EOF
}

start_upstream() { # PORT ; sets UP_PID
    local port=$1 dir="$WORK/upstream"
    mkdir -p "$dir/tmp"
    {
        nginx_common "$dir" 1
        echo "http {"
        nginx_http_common "$dir"
        cat <<EOF
    # An app server reads a request head a few KB at a time (Go's net/http 4 KiB, gunicorn
    # 8 KiB, Node 64 KiB). nginx's default is 1 KiB: a head over 1,024 bytes costs it a
    # second read and a copy. In the bearer rows, the head ssogate sends (with the identity
    # headers) is over that size, and nginx's plain copy is not.
    client_header_buffer_size 4k;
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "hello from upstream\n"; }
        location /blob/ { alias $WORK/blobs/; }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx upstream "$dir"
    UP_PID=$LAST_PID
    wait_http upstream "http://127.0.0.1:$port/" "$UP_PID" 10 "$dir/error.log"
}

start_nginx_proxy() { # PORT UPSTREAM_PORT [tls] ; sets NGX_PID
    local port=$1 up=$2 tls=${3:-} dir="$WORK/nginx-proxy${3:+-tls}${4:+-$4}" listen
    listen="listen 127.0.0.1:$port;"
    # TLS 1.3 as ssogate (and nginx's own default since 1.23.4; Debian 12's 1.22 offers only up
    # to 1.2 unless told): a TLS 1.2 client resuming a session skips the key exchange that a
    # TLS 1.3 resumption still makes, so the handshake rows would compare different protocols.
    [[ -n $tls ]] && listen="listen 127.0.0.1:$port ssl http2; ssl_certificate $WORK/tls/cert.pem; ssl_certificate_key $WORK/tls/key.pem; ssl_protocols TLSv1.2 TLSv1.3;"
    # The WebSocket echo and upload sink (bench/soak_upstream.py), when it runs.
    local py_upstream="" py_locations=""
    if [[ -n ${PORT_PY:-} ]]; then
        py_upstream="upstream pyapp { server 127.0.0.1:$PORT_PY; keepalive 64; }
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }"
        py_locations="location /ws {
            proxy_pass http://pyapp;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_read_timeout 120s;
        }
        location /blob/ {
            # Streamed as ssogate streams: no spilling of a large answer to a temp file.
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_max_temp_file_size 0;
        }
        location /upload {
            proxy_pass http://pyapp;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_request_buffering off;
        }"
    fi
    mkdir -p "$dir/tmp"
    {
        nginx_common "$dir" 2
        echo "http {"
        nginx_http_common "$dir"
        cat <<EOF
    upstream backend {
        server 127.0.0.1:$up;
        keepalive 64;
        keepalive_requests 1000000;
    }
    $py_upstream
    server {
        $listen
        $py_locations
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx "nginx-proxy${tls:+-tls}" "$dir"
    NGX_PID=$LAST_PID
    wait_http "nginx-proxy${tls:+-tls}" "http${tls:+s}://127.0.0.1:$port/" "$NGX_PID" 10 "$dir/error.log"
}

build_ssogate() {
    if [[ -n ${SSOGATE_BIN:-} ]]; then
        [[ -x $SSOGATE_BIN ]] || die "SSOGATE_BIN=$SSOGATE_BIN is not an executable"
        return 0
    fi
    log "building ssogate (cargo build --release)"
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed"
    SSOGATE_BIN="$REPO/target/release/ssogate"
    [[ -x $SSOGATE_BIN ]] || die "$SSOGATE_BIN not found after build"
}

start_ssogate() { # PORT UPSTREAM_PORT [tls] [DIR_SUFFIX] ; sets SSO_PID
    local port=$1 up=$2 tls=${3:-} dir="$WORK/ssogate${3:+-tls}${4:+-$4}"
    mkdir -p "$dir"
    cat >"$dir/ssogate.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
${SSOGATE_WORKERS:+workers = $SSOGATE_WORKERS}
${EXTRA_SERVER_TOML:-}
$([[ -n $tls ]] && ssogate_tls_section)

[[routes]]
path_prefix = "/"
upstream = "http://127.0.0.1:$up"
public = true

[logging]
level = "warn"
format = "json"
EOF
    ${ON_SERVER_CPUS[@]+"${ON_SERVER_CPUS[@]}"} "$SSOGATE_BIN" serve --config "$dir/ssogate.toml" >"$dir/ssogate.log" 2>&1 &
    SSO_PID=$!
    STARTED_PIDS+=("$SSO_PID")
    log "ssogate: pid $SSO_PID"
    wait_http "ssogate${tls:+-tls}" "http${tls:+s}://127.0.0.1:$port/oauth2/ping" "$SSO_PID" 20 "$dir/ssogate.log"
}

# The Cognito-shaped test provider (npm oidc-provider, tests/support/idp.mjs), registered
# for the given redirect URIs. start_idp REDIRECT_URI... ; sets IDP_PID, IDP_ISSUER
start_idp() {
    command -v node >/dev/null 2>&1 || die "node is needed for the signed-in rows (BENCH_SKIP_SIGNED_IN=1 skips them)"
    [[ -d $REPO/tests/support/node_modules ]] ||
        npm ci --prefix "$REPO/tests/support" --no-audit --no-fund --loglevel=error >&2
    local args=() uri
    for uri in "$@"; do args+=(--redirect-uri "$uri"); done
    ${ON_SERVER_CPUS[@]+"${ON_SERVER_CPUS[@]}"} node "$REPO/tests/support/idp.mjs" --port "${PORT_IDP:-0}" "${args[@]}" >"$WORK/idp.out" 2>"$WORK/idp.log" &
    IDP_PID=$!
    STARTED_PIDS+=("$IDP_PID")
    local i
    for i in $(seq 1 100); do
        [[ -s $WORK/idp.out ]] && break
        sleep 0.1
    done
    IDP_ISSUER=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issuer"])' "$WORK/idp.out") ||
        die "the test provider did not start (see $WORK/idp.log)"
    log "test provider: $IDP_ISSUER (pid $IDP_PID)"
}

# `ssogate serve` with a protected route (any signed-in user) in front of the upstream,
# signing in at the test provider; signs in as alice and sets SESSION_COOKIE.
# start_ssogate_signed_in NAME PORT UPSTREAM_PORT STORE [REDIS_URL] [tls]
start_ssogate_signed_in() {
    local name=$1 port=$2 up=$3 store=$4 redis=${5:-} tls=${6:-} dir="$WORK/$1"
    mkdir -p "$dir"
    {
        echo "[server]"
        echo "listen = \"127.0.0.1:$port\""
        echo "public_url = \"http${tls:+s}://127.0.0.1:$port\""
        [[ -n $SSOGATE_WORKERS ]] && echo "workers = $SSOGATE_WORKERS"
        [[ -n ${EXTRA_SERVER_TOML:-} ]] && echo "$EXTRA_SERVER_TOML"
        [[ -n $tls ]] && ssogate_tls_section
        echo "[provider]"
        echo "kind = \"cognito\""
        echo "user_pool_id = \"eu-central-1_TestPool1\""
        echo "issuer_url = \"$IDP_ISSUER\""
        echo "domain = \"$IDP_ISSUER\""
        echo "client_id = \"basic-client\""
        echo "client_secret = \"basic-secret\""
        echo "[session]"
        echo "secret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\""
        echo "store = \"$store\""
        [[ -n $redis ]] && echo "redis_url = \"$redis\""
        [[ -n ${EXTRA_SESSION_TOML:-} ]] && echo "$EXTRA_SESSION_TOML"
        [[ -n ${EXTRA_ROUTES_TOML:-} ]] && echo "$EXTRA_ROUTES_TOML"
        echo "[[routes]]"
        echo "path_prefix = \"/\""
        echo "upstream = \"http://127.0.0.1:$up\""
        echo "[logging]"
        echo "level = \"warn\""
        echo "format = \"json\""
    } >"$dir/ssogate.toml"
    ${ON_SERVER_CPUS[@]+"${ON_SERVER_CPUS[@]}"} "$SSOGATE_BIN" serve --config "$dir/ssogate.toml" >"$dir/ssogate.log" 2>&1 &
    SIGNED_PID=$!
    STARTED_PIDS+=("$SIGNED_PID")
    wait_http "$name" "http${tls:+s}://127.0.0.1:$port/oauth2/ready" "$SIGNED_PID" 30 "$dir/ssogate.log"
    SESSION_COOKIE=$(SIGN_IN_CA_FILE=${tls:+$WORK/tls/cert.pem} python3 "$REPO/bench/sign_in.py" \
        "http${tls:+s}://127.0.0.1:$port/" alice 'Passw0rd!') ||
        die "$name: could not sign in (see $dir/ssogate.log)"
    log "$name: signed in as alice (${#SESSION_COOKIE} cookie bytes)"
}

# The start of each of the bench's httpd.conf: its own root, logs, port and user.
# apache_conf_head DIR PORT
apache_conf_head() {
    echo "ServerRoot \"$1\""
    echo "ServerName 127.0.0.1"
    echo "Listen 127.0.0.1:$2"
    echo "PidFile \"$1/httpd.pid\""
    echo "ErrorLog \"$1/error.log\""
    echo "LogLevel warn"
    echo "User www-data"
    echo "Group www-data"
}

# apache2 in the foreground on DIR/httpd.conf; sets LAST_PID. start_apache DIR
start_apache() {
    ${ON_SERVER_CPUS[@]+"${ON_SERVER_CPUS[@]}"} /usr/sbin/apache2 -f "$1/httpd.conf" -DFOREGROUND >"$1/stdout.log" 2>&1 &
    LAST_PID=$!
    STARTED_PIDS+=("$LAST_PID")
}

# Apache with Debian's mod_auth_openidc in front of the same upstream, against the same
# provider (its default server-side session cache). start_apache_oidc PORT UPSTREAM_PORT [TLS_PORT]
# (TLS_PORT: the same over TLS, with HTTP/2, for the h2 and tls rows; sets APACHE_TLS)
start_apache_oidc() {
    local port=$1 up=$2 tls_port=${3:-} dir="$WORK/apache" m=/usr/lib/apache2/modules certs=""
    [[ -n $tls_port ]] && make_cert
    mkdir -p "$dir"
    chmod 755 "$dir"
    if has_rows bearer; then
        # A certificate of each of the provider's signing keys (test-only keys of
        # tests/support/keys/), named by its kid.
        local kid key n=0
        while read -r kid key; do
            n=$((n + 1))
            openssl req -new -x509 -key "$key" -subj /CN=ssogate-bench-test-provider -days 2 \
                -out "$dir/provider-$n.pem" 2>>"$dir/openssl.log" || die "apache: openssl could not make a certificate of $key"
            chmod 644 "$dir/provider-$n.pem"
            certs+=" \"$kid#$dir/provider-$n.pem\""
        done < <(node "$REPO/bench/mint_tokens.mjs" --keys "$IDP_ISSUER/.well-known/jwks.json")
        [[ -n $certs ]] || die "apache: none of the provider's keys is in tests/support/keys/"
    fi
    {
        apache_conf_head "$dir" "$port"
        local mod
        for mod in mpm_event authn_core authz_core authz_user proxy proxy_http; do
            echo "LoadModule ${mod}_module $m/mod_${mod}.so"
        done
        echo "LoadModule auth_openidc_module $m/mod_auth_openidc.so"
        echo "KeepAlive On"
        echo "MaxKeepAliveRequests 0"
        echo "OIDCProviderMetadataURL $IDP_ISSUER/.well-known/openid-configuration"
        echo "OIDCClientID basic-client"
        echo "OIDCClientSecret basic-secret"
        echo "OIDCRedirectURI http://127.0.0.1:$port/redirect_uri"
        echo "OIDCCryptoPassphrase bench-passphrase-0123456789"
        echo "OIDCPKCEMethod S256"
        echo "OIDCScope \"openid email profile\""
        if [[ -n $tls_port ]]; then
            # The HTTP/2 and TLS rows: the same server, sessions and routes over TLS (the
            # session cookie holds for any port of 127.0.0.1).
            local mod
            for mod in ssl http2 socache_shmcb; do
                echo "LoadModule ${mod}_module $m/mod_${mod}.so"
            done
            echo "SSLSessionCache \"shmcb:$dir/ssl_scache(512000)\""
            echo "Listen 127.0.0.1:$tls_port"
            echo "<VirtualHost 127.0.0.1:$tls_port>"
            echo "    SSLEngine on"
            echo "    SSLCertificateFile \"$WORK/tls/cert.pem\""
            echo "    SSLCertificateKeyFile \"$WORK/tls/key.pem\""
            echo "    SSLProtocol -all +TLSv1.2 +TLSv1.3"
            echo "    Protocols h2 http/1.1"
            echo "</VirtualHost>"
        fi
        echo "<Location />"
        echo "    AuthType openid-connect"
        echo "    Require valid-user"
        echo "</Location>"
        # A public route (after /: the later section wins), as ssogate's public route: the
        # handshake rows.
        echo "<Location /pub/>"
        echo "    AuthType None"
        echo "    Require all granted"
        echo "</Location>"
        if has_rows refresh; then
            # The refresh row's route: the access token refreshed at every request (it lives
            # an hour; refreshed when it has less than a day left).
            echo "<Location /refresh/>"
            echo "    OIDCRefreshAccessTokenBeforeExpiry 86400"
            echo "</Location>"
        fi
        if [[ -n $certs ]]; then
            # The bearer rows' route, as ssogate's /api/: mod_auth_openidc's OAuth 2.0
            # resource server checks each token's signature (with the provider's key: its
            # OIDCOAuthVerifyJwksUri takes https only) at every request.
            echo "OIDCOAuthVerifyCertFiles $certs"
            echo "OIDCOAuthRemoteUserClaim sub"
            echo "<Location /api/>"
            echo "    AuthType oauth20"
            echo "    Require valid-user"
            echo "</Location>"
        fi
        echo "ProxyPass /redirect_uri !"
        if [[ -n ${PORT_PY:-} ]]; then
            echo "ProxyPass /ws http://127.0.0.1:$PORT_PY/ws upgrade=websocket"
            echo "ProxyPass /upload http://127.0.0.1:$PORT_PY/upload keepalive=On"
        fi
        echo "ProxyPass / http://127.0.0.1:$up/ keepalive=On"
    } >"$dir/httpd.conf"
    start_apache "$dir"
    APACHE_PID=$LAST_PID
    local i code=""
    for i in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/" || true)
        [[ $code == 302 ]] && break
        sleep 0.1
    done
    [[ $code == 302 ]] || { tail -n 20 "$dir/error.log" "$dir/stdout.log" >&2; die "apache did not start"; }
    apache_sign_in "$port"
    if [[ -n $tls_port ]]; then
        APACHE_TLS=https://127.0.0.1:$tls_port
        local signed public
        signed=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 -H "Cookie: $APACHE_COOKIE" "$APACHE_TLS/")
        public=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 "$APACHE_TLS/pub/")
        [[ $signed == 200 && $public == 200 ]] ||
            { tail -n 20 "$dir/error.log" >&2; die "apache over TLS: $signed signed in, $public on /pub/ (200 and 200 expected)"; }
    fi
}

# A fresh Apache (mpm_event) proxying the upstream on PORT, for the idle rows: the server
# mod_auth_openidc runs in, on a public route (the module has no part in an idle
# connection). mpm_event keeps an idle connection off its worker threads, up to
# ThreadsPerChild + AsyncRequestWorkerFactor x idle threads per process: 16 processes of 64
# threads hold 17,000. When all of a process's threads are busy it closes its idle
# connections (mpm_event's rule): with 25 threads a process, a loaded round lost up to 576 of
# the 10,000 in the burst of opening them; the RSS per connection was the same with either
# (it is the connections', not the threads'). start_apache_idle NAME PORT UPSTREAM_PORT; sets
# APACHE_IDLE_PID
start_apache_idle() {
    local dir="$WORK/$1" port=$2 up=$3 m=/usr/lib/apache2/modules mod
    mkdir -p "$dir"
    chmod 755 "$dir"
    {
        apache_conf_head "$dir" "$port"
        for mod in mpm_event authz_core proxy proxy_http; do
            echo "LoadModule ${mod}_module $m/mod_${mod}.so"
        done
        echo "KeepAlive On"
        echo "KeepAliveTimeout 120"
        echo "MaxKeepAliveRequests 0"
        echo "ServerLimit 16"
        echo "StartServers 16"
        echo "ThreadsPerChild 64"
        echo "MaxRequestWorkers 1024"
        echo "MinSpareThreads 64"
        echo "MaxSpareThreads 1024"
        echo "AsyncRequestWorkerFactor 16"
        echo "ListenBacklog 4096"
        echo "ProxyPass / http://127.0.0.1:$up/ keepalive=On"
    } >"$dir/httpd.conf"
    start_apache "$dir"
    APACHE_IDLE_PID=$LAST_PID
    wait_http "$1" "http://127.0.0.1:$port/" "$APACHE_IDLE_PID" 10 "$dir/error.log"
}

# Signs alice in at Apache on PORT and sets APACHE_COOKIE.
apache_sign_in() {
    APACHE_COOKIE=$(python3 "$REPO/bench/sign_in.py" "http://127.0.0.1:$1/" alice 'Passw0rd!' mod_auth_openidc_session) ||
        { tail -n 20 "$WORK/apache/error.log" >&2; die "apache: could not sign in"; }
    log "apache mod_auth_openidc: signed in as alice"
}

# mod_auth_openidc keeps sessions server-side, in a shared-memory cache of 500 entries by
# default: the sign-in row's thousands of sign-ins push alice's session out, and Apache then
# answers her cookie with a 302 to the provider, which wrk counts as a success. So before
# each round's Apache rows her cookie must still get a 200, or she signs in again.
apache_keep_signed_in() {
    [[ -n ${APACHE_PID:-} ]] || return 0
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Cookie: $APACHE_COOKIE" \
        "http://127.0.0.1:$PORT_APACHE/" || true)
    [[ $code == 200 ]] && return 0
    log "apache mod_auth_openidc: alice's session is gone ($code): signing in again"
    apache_sign_in "$PORT_APACHE"
    local i
    for i in "${!T_NAME[@]}"; do
        [[ ${T_NAME[i]} == "apache mod_auth_openidc signed-in" ]] && T_COOKIE[i]=$APACHE_COOKIE
    done
    return 0
}

# A self-signed P-256 certificate for 127.0.0.1 in $WORK/tls (the TLS rows).
make_cert() {
    [[ -f $WORK/tls/cert.pem ]] && return 0 # made already, for Apache's TLS rows
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 ||
        die "openssl could not make a certificate for the TLS rows"
    chmod 644 "$WORK/tls/key.pem" # nginx workers run as www-data
}

# ssogate's `[server.tls]` table for that certificate.
ssogate_tls_section() {
    printf '[server.tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$WORK/tls/cert.pem" "$WORK/tls/key.pem"
}

start_redis() { # PORT ; sets REDIS_PID
    local port=$1
    ${ON_SERVER_CPUS[@]+"${ON_SERVER_CPUS[@]}"} redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    STARTED_PIDS+=("$REDIS_PID")
    local i
    for i in $(seq 1 100); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    die "redis-server did not start (see $WORK/redis.log)"
}

# ---------------------------------------------------------------------------
# measurement helpers
# ---------------------------------------------------------------------------
# utime+stime (clock ticks) summed over the process tree
cpu_ticks() {
    local pid=$1 p total=0 t
    for p in $(tree_pids "$pid"); do
        # strip "pid (comm) " (comm may contain spaces/parens); utime/stime are
        # fields 14/15 overall = 12/13 after the strip
        t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# VmHWM (kB) summed over the process tree
hwm_kb() {
    local pid=$1 p total=0 v
    for p in $(tree_pids "$pid"); do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# wrk latency token (e.g. 812.00us, 1.23ms, 2.00s, 1.00m) -> microseconds
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1e6;
        else if (u == "m") m = 6e7; else if (u == "h") m = 3.6e9; else m = 1
        printf "%.0f", n * m }'
}

fmt_ms() { [[ $1 == n/a ]] && { echo n/a; return; }; awk -v u="$1" 'BEGIN { printf "%.3f ms", u / 1000 }'; }

# run_wrk OUTFILE wrk-args...: wrk in the background + wait, so INT/TERM
# interrupt it at once (a foreground child would delay the trap until it ends)
run_wrk() {
    local outf=$1 rc=0
    shift
    ${ON_WRK_CPUS[@]+"${ON_WRK_CPUS[@]}"} "$WRK" "$@" >"$outf" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    return "$rc"
}

# result rows: one tab-separated line per measured run in $WORK/rows.tsv
# (round, name, req/s, p50 us, p99 us, CPU-us/req, RSS MiB, errors)
ROUND=1

# bench_row NAME URL PID [extra wrk args...]
bench_row() {
    local name=$1 url=$2 pid=$3
    shift 3
    local extra=("$@")

    # curl pre-flight with the same -H headers (catches 3xx/4xx that wrk would
    # count as success or hide in a single counter)
    local curl_hdr=() i=0 a
    while ((i < ${#extra[@]})); do
        a=${extra[i]}
        case $a in
            -H | --header) curl_hdr+=(-H "${extra[i + 1]:-}"); i=$((i + 2)); continue ;;
            -H?*) curl_hdr+=(-H "${a#-H}") ;;
            --header=*) curl_hdr+=(-H "${a#--header=}") ;;
        esac
        i=$((i + 1))
    done
    local pre
    pre=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 ${curl_hdr[@]+"${curl_hdr[@]}"} "$url" || true)
    [[ $pre == 2?? ]] || log "WARNING: $name: pre-flight GET $url answered HTTP ${pre:-none}, not 2xx"

    log "$name: warm-up ${BENCH_WARMUP}s"
    run_wrk /dev/null -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${BENCH_WARMUP}s" \
        ${extra[@]+"${extra[@]}"} "$url" || true

    local cpu0=0 cpu1=0 out
    [[ $pid == - ]] || cpu0=$(cpu_ticks "$pid")
    log "$name: wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d${BENCH_SECONDS}s --latency $url"
    run_wrk "$WORK/wrk.out" -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${BENCH_SECONDS}s" --latency \
        ${extra[@]+"${extra[@]}"} "$url" || { cat "$WORK/wrk.out" >&2; die "$name: wrk failed"; }
    out=$(<"$WORK/wrk.out")
    [[ $pid == - ]] || cpu1=$(cpu_ticks "$pid")
    printf '%s\n' "$out" >>"$WORK/wrk.log"

    local rps reqs p50 p99 sock non2xx
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
    reqs=$(awk '/ requests in / {print $1}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    # "Socket errors: connect 0, read 0, write 0, timeout 0"
    sock=$(awk '/Socket errors:/ {gsub(",", ""); print "connect=" $4 " read=" $6 " write=" $8 " timeout=" $10}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    [[ -n $rps && -n $reqs ]] || { printf '%s\n' "$out" >&2; die "$name: could not parse wrk output"; }

    local errs=()
    [[ -n $non2xx && $non2xx != 0 ]] && errs+=("$non2xx non-2xx/3xx")
    if [[ -n $sock ]]; then
        local kv
        for kv in $sock; do [[ ${kv#*=} == 0 ]] || errs+=("$kv"); done
    fi
    [[ $pre == 2?? ]] || errs+=("pre-flight HTTP ${pre:-none}")
    local err_s=0
    ((${#errs[@]})) && err_s=$(IFS=';'; echo "${errs[*]}" | sed 's/;/; /g')

    local cpu_us=n/a rss=n/a
    if [[ $pid != - ]]; then
        cpu_us=$(awk -v d=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="$reqs" \
            'BEGIN { if (n > 0) printf "%.1f", d / hz * 1e6 / n; else print "n/a" }')
        rss=$(awk -v k="$(hwm_kb "$pid")" 'BEGIN { printf "%.1f", k / 1024 }')
    fi

    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$name" "$rps" \
        "$([[ -n $p50 ]] && to_us "$p50" || echo n/a)" "$([[ -n $p99 ]] && to_us "$p99" || echo n/a)" \
        "$cpu_us" "$rss" "$err_s" >>"$WORK/rows.tsv"
    log "$name: $rps req/s, p50 ${p50:-?}, p99 ${p99:-?}, ${cpu_us} CPU-us/req, errors: $err_s"
}

# The table: per target the median over the rounds of req/s, p50, p99 and CPU-us/req, the
# peak RSS over the rounds, and the ratio of req/s against the direct and nginx rows: the
# median of the per-round ratios (same round), with their range against nginx beside it.
print_table() {
    python3 - "$WORK/rows.tsv" <<'PY'
import statistics, sys
from collections import OrderedDict
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = OrderedDict()
for rnd, name, rps, p50, p99, cpu, rss, err in rows:
    by.setdefault(name, []).append(dict(round=rnd, rps=float(rps), p50=p50, p99=p99, cpu=cpu, rss=rss, err=err))
def med(vals):
    nums = [float(v) for v in vals if v not in ("n/a", "")]
    return statistics.median(nums) if nums else None
def ms(us):
    return "n/a" if us is None else f"{us / 1000:.3f} ms"
nginx = {r["round"]: r["rps"] for r in by.get("nginx proxy", [])}
nginx_tls = {r["round"]: r["rps"] for r in by.get("nginx proxy, TLS", [])}
direct = {r["round"]: r["rps"] for r in by.get("direct upstream", [])}
print("| target | req/s | p50 | p99 | vs direct | vs nginx proxy (per-round range) | CPU-us/req | peak RSS MiB | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for name, rs in by.items():
    rps = med([r["rps"] for r in rs])
    # HTTPS rows against the HTTPS nginx proxy, the others against the plain one.
    base = nginx_tls if name.endswith(", TLS") else nginx
    per_round = sorted(r["rps"] / base[r["round"]] for r in rs if base.get(r["round"]))
    vs_proxy = "n/a" if not per_round else f"{statistics.median(per_round):.2f}"
    if len(per_round) > 1:
        vs_proxy += f" ({per_round[0]:.2f}-{per_round[-1]:.2f})"
    to_direct = [r["rps"] / direct[r["round"]] for r in rs if direct.get(r["round"])]
    vs_direct = "n/a" if not to_direct else f"{statistics.median(to_direct):.2f}"
    cpu = med([r["cpu"] for r in rs])
    rss = [float(r["rss"]) for r in rs if r["rss"] not in ("n/a", "")]
    errs = sorted({r["err"] for r in rs if r["err"] != "0"})
    print(f"| {name} | {rps:.0f} | {ms(med([r['p50'] for r in rs]))} | {ms(med([r['p99'] for r in rs]))} | "
          f"{vs_direct} | {vs_proxy} | {'n/a' if cpu is None else f'{cpu:.1f}'} | "
          f"{'n/a' if not rss else f'{max(rss):.1f}'} | {'; '.join(errs) or 0} |")
PY
}

# ---------------------------------------------------------------------------
# more rows (BENCH_ROWS): HTTP/2, TLS handshakes, bodies, WebSockets, idle connections,
# sign-ins, refreshes, bearer tokens, session size. Each is measured by bench/measure.py
# (CPU of the server's process tree per operation, largest RSS while the load ran) and
# appended to $WORK/more.jsonl; bench/report.py puts them beside the GET rows.
# ---------------------------------------------------------------------------
has_rows() { local r; for r in "$@"; do [[ " $BENCH_ROWS " == *" $r "* ]] && return 0; done; return 1; }

# The rows of a group run in the order written on odd rounds and in the reverse order on even
# ones (`in_turn` ... `end_turn`), so that no target always runs first: load that drifts
# during a group (a baseline's leftovers, the box's neighbours) would otherwise favour the
# same side in every round. A `warm` stays with the measurement after it.
TURN=0 TURN_QUEUE=() TURN_WARM=""
in_turn() { TURN=1 TURN_QUEUE=() TURN_WARM=""; }
end_turn() {
    TURN=0
    local i n=${#TURN_QUEUE[@]}
    for ((i = 0; i < n; i++)); do
        if ((ROUND % 2 == 0)); then eval "${TURN_QUEUE[n - 1 - i]}"; else eval "${TURN_QUEUE[i]}"; fi
    done
    TURN_QUEUE=()
}

# measure GROUP NAME BASELINE PID PARSE [measure.py options...] -- COMMAND...
measure() {
    if ((TURN)); then
        TURN_QUEUE+=("$TURN_WARM measure $(printf '%q ' "$@")")
        TURN_WARM=""
        # Queued: run by end_turn, outside the turn.
        return 0
    fi
    local group=$1 name=$2 base=$3 pid=$4 parse=$5
    shift 5
    local opts=()
    while [[ $# -gt 0 && $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    [[ $pid == - ]] && pid=0
    python3 "$REPO/bench/measure.py" --out "$WORK/more.jsonl" --log "$WORK/more.log" --round "$ROUND" \
        --group "$group" --name "$name" --baseline "$base" --pid "$pid" --parse "$parse" \
        ${opts[@]+"${opts[@]}"} -- ${ON_WRK_CPUS[@]+"${ON_WRK_CPUS[@]}"} "$@" ||
        die "$group / $name: the measurement failed (see $WORK/more.log)"
}

# warm COMMAND...: a short run whose figures are thrown away
warm() {
    if ((TURN)); then TURN_WARM+="warm $(printf '%q ' "$@");"; return 0; fi
    ${ON_WRK_CPUS[@]+"${ON_WRK_CPUS[@]}"} "$@" >/dev/null 2>&1 || true
}

start_pyapp() { # PORT ; the WebSocket echo and upload sink; sets PY_PID
    local port=$1
    ${ON_SERVER_CPUS[@]+"${ON_SERVER_CPUS[@]}"} python3 "$REPO/bench/soak_upstream.py" "$port" --idle-timeout 600 \
        >"$WORK/pyapp.log" 2>&1 &
    PY_PID=$!
    STARTED_PIDS+=("$PY_PID")
    wait_http pyapp "http://127.0.0.1:$port/__soak/stats" "$PY_PID" 10 "$WORK/pyapp.log"
}

make_blobs() { # the download and upload bodies: 1 MiB and 100 MiB
    mkdir -p "$WORK/blobs"
    head -c 1048576 /dev/urandom >"$WORK/blobs/1m"
    head -c 104857600 /dev/zero >"$WORK/blobs/100m"
    chmod 755 "$WORK/blobs"
    chmod 644 "$WORK/blobs"/*
}

# The servers of the extra rows; sets the *_MORE variables used by more_round.
start_more_servers() {
    local ports
    ports=$(free_ports 4)
    read -r PORT_PY PORT_MORE PORT_REFRESH PORT_IDP_SPARE <<<"$ports"
    export PORT_PY
    start_pyapp "$PORT_PY"
    make_blobs
}

# ssogate signed in (cookie store) with the echo/upload routes: the body, WebSocket, sign-in
# and bearer rows; and one refreshing at every request. Needs the provider running.
start_more_gateways() {
    local pyroutes
    pyroutes=$(printf '[[routes]]\npath_prefix = "/ws"\nupstream = "http://127.0.0.1:%s"\n[[routes]]\npath_prefix = "/upload"\nupstream = "http://127.0.0.1:%s"\n' "$PORT_PY" "$PORT_PY")
    # Trusts 127.0.0.1's X-Forwarded-For: the sign-in rows' browsers each name an address of
    # their own (ssogate admits 30 callbacks a minute per client address).
    EXTRA_ROUTES_TOML=$pyroutes EXTRA_SERVER_TOML='trusted_proxies = ["127.0.0.1/32"]' \
        start_ssogate_signed_in "signed-in-more" "$PORT_MORE" "$PORT_UP" cookie
    MORE_PID=$SIGNED_PID
    MORE_COOKIE=$SESSION_COOKIE
    if has_rows refresh; then
        EXTRA_SESSION_TOML='refresh_interval = "0s"' start_ssogate_signed_in "signed-in-refresh" "$PORT_REFRESH" "$PORT_UP" cookie
        REFRESH_PID=$SIGNED_PID
    fi
    if has_rows bearer; then
        local id_token r pid minting=() cores
        id_token=$(cd "$REPO/bench" && python3 id_token.py "$IDP_ISSUER" basic-client basic-secret \
            "http://127.0.0.1:$PORT_MORE/oauth2/callback" alice 'Passw0rd!') || die "bearer rows: no ID token"
        BEARER_TOKEN=$id_token
        cores=$(nproc)
        log "bearer rows: minting $BENCH_TOKENS ID tokens for each of $BENCH_ROUNDS rounds, $cores at a time"
        for ((r = 1; r <= BENCH_ROUNDS; r++)); do
            node "$REPO/bench/mint_tokens.mjs" "$id_token" "$IDP_ISSUER/.well-known/jwks.json" "$BENCH_TOKENS" \
                >"$WORK/tokens.$r" &
            minting+=("$!")
            if ((${#minting[@]} >= cores)); then
                wait "${minting[0]}" || die "bearer rows: could not mint tokens"
                minting=("${minting[@]:1}")
            fi
        done
        for pid in ${minting[@]+"${minting[@]}"}; do wait "$pid" || die "bearer rows: could not mint tokens"; done
        for ((r = 1; r <= BENCH_ROUNDS; r++)); do
            [[ $(wc -l <"$WORK/tokens.$r") -eq $BENCH_TOKENS ]] || die "bearer rows: round $r's tokens are missing"
        done
    fi
}

# One round of the extra rows, every target of a group one after the other (in the reverse
# order on even rounds: `in_turn`).
more_round() {
    local S=$BENCH_SECONDS W=1 ngx=http://127.0.0.1:$PORT_NGX sso=http://127.0.0.1:$PORT_MORE
    local apache="" ck="Cookie: $MORE_COOKIE" ack="Cookie: ${APACHE_COOKIE:-}"
    [[ -n ${APACHE_PID:-} ]] && apache=http://127.0.0.1:$PORT_APACHE

    if has_rows h2 && [[ -n ${NGX_TLS_PID:-} ]]; then
        in_turn
        local g="HTTP/2 over TLS, signed in (h2load -c4 -m32)"
        local h2=(h2load -t1 -c4 -m32 -D "$S" --warm-up-time "$W")
        measure "$g" "nginx proxy, h2" "" "$NGX_TLS_PID" h2load -- "${h2[@]}" "https://127.0.0.1:$PORT_NGX_TLS/"
        measure "$g" "ssogate signed-in, h2" "nginx proxy, h2" "$COOKIE_TLS_PID" h2load -- \
            "${h2[@]}" -H "cookie: $COOKIE_TLS_COOKIE" "https://127.0.0.1:$PORT_COOKIE_TLS/"
        if [[ -n ${APACHE_TLS:-} ]]; then
            measure "$g" "apache mod_auth_openidc signed-in, h2" "nginx proxy, h2" "$APACHE_PID" h2load -- \
                "${h2[@]}" -H "cookie: $APACHE_COOKIE" "$APACHE_TLS/"
        fi
        end_turn
    fi
    if has_rows tls && [[ -n ${NGX_TLS_PID:-} ]]; then
        in_turn
        local g="a new connection per request: TLS handshakes, and plain HTTP (wrk -c16, Connection: close)"
        local w=("$WRK" -t2 -c16 -H "Connection: close")
        warm "${w[@]}" -d${W}s "https://127.0.0.1:$PORT_NGX_TLS/"
        measure "$g" "nginx proxy, TLS" "" "$NGX_TLS_PID" wrk -- "${w[@]}" -d${S}s --latency "https://127.0.0.1:$PORT_NGX_TLS/"
        warm "${w[@]}" -d${W}s "https://127.0.0.1:$PORT_SSO_TLS/"
        measure "$g" "ssogate public, TLS" "nginx proxy, TLS" "$SSO_TLS_PID" wrk -- "${w[@]}" -d${S}s --latency "https://127.0.0.1:$PORT_SSO_TLS/"
        if [[ -n ${APACHE_TLS:-} ]]; then
            warm "${w[@]}" -d${W}s "$APACHE_TLS/pub/"
            measure "$g" "apache public, TLS" "nginx proxy, TLS" "$APACHE_PID" wrk -- "${w[@]}" -d${S}s --latency "$APACHE_TLS/pub/"
        fi
        # The same without TLS: what a new connection costs besides the handshake.
        measure "$g" "nginx proxy, plain HTTP" "" "$NGX_PLAIN_PID" wrk -- "${w[@]}" -d${S}s --latency "$ngx/"
        measure "$g" "ssogate public, plain HTTP" "nginx proxy, plain HTTP" "$SSO_PLAIN_PID" wrk -- "${w[@]}" -d${S}s --latency "http://127.0.0.1:$PORT_SSO/"
        if [[ -n $apache ]]; then
            measure "$g" "apache public, plain HTTP" "nginx proxy, plain HTTP" "$APACHE_PID" wrk -- \
                "${w[@]}" -d${S}s --latency "$apache/pub/"
        fi
        end_turn
    fi
    if has_rows body; then
        in_turn
        local size bytes c g
        for size in 1m 100m; do
            bytes=$(stat -c %s "$WORK/blobs/$size")
            c=4
            [[ $size == 100m ]] && c=2
            g="download ${size/m/ MiB} (wrk -c$c)"
            measure "$g" "nginx proxy" "" "$NGX_PLAIN_PID" wrk --bytes "$bytes" -- "$WRK" -t1 -c$c -d${S}s --latency "$ngx/blob/$size"
            measure "$g" "ssogate signed-in" "nginx proxy" "$MORE_PID" wrk --bytes "$bytes" -- \
                "$WRK" -t1 -c$c -d${S}s --latency -H "$ck" "$sso/blob/$size"
            [[ -n $apache ]] && measure "$g" "apache mod_auth_openidc signed-in" "nginx proxy" "$APACHE_PID" wrk --bytes "$bytes" -- \
                "$WRK" -t1 -c$c -d${S}s --latency -H "$ack" "$apache/blob/$size"
            g="upload ${size/m/ MiB} (wrk -c$c)"
            measure "$g" "nginx proxy" "" "$NGX_PLAIN_PID" wrk --bytes "$bytes" -- \
                env BODY_FILE="$WORK/blobs/$size" "$WRK" -t1 -c$c -d${S}s --latency -s "$REPO/bench/upload.lua" "$ngx/upload"
            measure "$g" "ssogate signed-in" "nginx proxy" "$MORE_PID" wrk --bytes "$bytes" -- \
                env BODY_FILE="$WORK/blobs/$size" COOKIE="$MORE_COOKIE" "$WRK" -t1 -c$c -d${S}s --latency -s "$REPO/bench/upload.lua" "$sso/upload"
            [[ -n $apache ]] && measure "$g" "apache mod_auth_openidc signed-in" "nginx proxy" "$APACHE_PID" wrk --bytes "$bytes" -- \
                env BODY_FILE="$WORK/blobs/$size" COOKIE="$APACHE_COOKIE" "$WRK" -t1 -c$c -d${S}s --latency -s "$REPO/bench/upload.lua" "$apache/upload"
        done
        end_turn
    fi
    if has_rows ws; then
        in_turn
        local mode g ws=(python3 "$REPO/bench/ws_load.py")
        # The WebSocket echo's CPU too (bench/soak_upstream.py): it shares the cores.
        local up=(--also "upstream=$PY_PID")
        for mode in messages setups; do
            g="WebSocket $mode (8 connections)"
            [[ $mode == messages ]] && g="WebSocket messages, 128 B echoed (8 open connections)"
            [[ $mode == setups ]] && g="WebSocket set-ups: upgrade, 1 message, close (8 loops)"
            measure "$g" "nginx proxy" "" "$NGX_PLAIN_PID" json --unit "$mode/s" "${up[@]}" -- "${ws[@]}" "$mode" "127.0.0.1:$PORT_NGX/ws" --seconds "$S"
            measure "$g" "ssogate signed-in" "nginx proxy" "$MORE_PID" json --unit "$mode/s" "${up[@]}" -- \
                "${ws[@]}" "$mode" "127.0.0.1:$PORT_MORE/ws" --seconds "$S" --cookie "$MORE_COOKIE"
            [[ -n $apache ]] && measure "$g" "apache mod_auth_openidc signed-in" "nginx proxy" "$APACHE_PID" json --unit "$mode/s" "${up[@]}" -- \
                "${ws[@]}" "$mode" "127.0.0.1:$PORT_APACHE/ws" --seconds "$S" --cookie "$APACHE_COOKIE"
        done
        end_turn
    fi
    if has_rows idle; then
        # Fresh servers each round: memory freed after a round stays with the process and
        # would make the next round's connections look free.
        # The RSS is read after the connections have been idle BENCH_IDLE_HOLD seconds: an
        # allocator may give back what the burst of opening them used after a delay (mimalloc
        # does, over a few seconds); nginx's figure is the same after 2 s and after 8 s.
        local g="$BENCH_IDLE idle keep-alive connections (RSS per connection after ${BENCH_IDLE_HOLD} s idle; lower is better)" p1 p2 p3
        read -r p1 p2 p3 <<<"$(free_ports 3)"
        start_nginx_proxy "$p1" "$PORT_UP" "" "idle-$ROUND"
        local ngx_idle=$NGX_PID
        EXTRA_SERVER_TOML=$(printf 'header_read_timeout = "120s"\nmax_connections = %s' $((BENCH_IDLE * 2))) \
            start_ssogate "$p2" "$PORT_UP" "" "idle-$ROUND"
        local sso_idle=$SSO_PID ap_idle=""
        if [[ -n ${APACHE_PID:-} ]]; then
            start_apache_idle "apache-idle-$ROUND" "$p3" "$PORT_UP"
            ap_idle=$APACHE_IDLE_PID
        fi
        sleep 1
        measure "$g" "nginx proxy" "" "$ngx_idle" json --unit bytes/conn -- \
            python3 "$REPO/bench/idle_conns.py" "127.0.0.1:$p1/" --pid "$ngx_idle" --connections "$BENCH_IDLE" --hold "$BENCH_IDLE_HOLD"
        measure "$g" "ssogate public" "nginx proxy" "$sso_idle" json --unit bytes/conn -- \
            python3 "$REPO/bench/idle_conns.py" "127.0.0.1:$p2/" --pid "$sso_idle" --connections "$BENCH_IDLE" --hold "$BENCH_IDLE_HOLD"
        if [[ -n $ap_idle ]]; then
            measure "$g" "apache public" "nginx proxy" "$ap_idle" json --unit bytes/conn -- \
                python3 "$REPO/bench/idle_conns.py" "127.0.0.1:$p3/" --pid "$ap_idle" --connections "$BENCH_IDLE" --hold "$BENCH_IDLE_HOLD"
            stop_tree "$ap_idle"
        fi
        stop_tree "$ngx_idle"
        stop_tree "$sso_idle"
    fi
    if has_rows signin && [[ -n ${MORE_PID:-} ]]; then
        in_turn
        local g="sign-ins through the whole flow (4 browsers at once, test provider)"
        local si=(python3 "$REPO/bench/sign_in_load.py" signins --threads 4 --seconds "$S")
        # The provider's, the app's and the browsers' CPU too: what caps this row's rate
        # whatever the gateway costs (bench/report.py prints that ceiling).
        local others=(--also "test provider=$IDP_PID" --also "upstream=$UP_PID")
        if [[ -n $apache ]]; then
            measure "$g" "apache mod_auth_openidc" "" "$APACHE_PID" json --unit sign-ins/s "${others[@]}" -- \
                "${si[@]}" "$apache/" --prefix mod_auth_openidc_session
            measure "$g" "ssogate, cookie store" "apache mod_auth_openidc" "$MORE_PID" json --unit sign-ins/s "${others[@]}" -- \
                "${si[@]}" "$sso/"
        else
            measure "$g" "ssogate, cookie store" "" "$MORE_PID" json --unit sign-ins/s "${others[@]}" -- "${si[@]}" "$sso/"
        fi
        end_turn
    fi
    if has_rows refresh && [[ -n ${REFRESH_PID:-} ]]; then
        in_turn
        local g="session refreshes (refresh_interval 0s: a refresh grant at every request, 4 sessions)"
        # Counted at the provider (its refresh grants): mod_auth_openidc keeps its sessions on
        # the server and sets no new cookie when it refreshes.
        local rl=(python3 "$REPO/bench/sign_in_load.py" refreshes --threads 4 --seconds "$S"
            --provider-stats "${IDP_ISSUER%/*}/__test/stats")
        local others=(--also "test provider=$IDP_PID" --also "upstream=$UP_PID") a_base=""
        if [[ -n $apache ]]; then
            a_base="apache mod_auth_openidc"
            measure "$g" "$a_base" "" "$APACHE_PID" json --unit refreshes/s "${others[@]}" -- \
                "${rl[@]}" --prefix mod_auth_openidc_session "$apache/refresh/"
        fi
        measure "$g" "ssogate, cookie store" "$a_base" "$REFRESH_PID" json --unit refreshes/s "${others[@]}" -- \
            "${rl[@]}" "http://127.0.0.1:$PORT_REFRESH/"
        end_turn
    fi
    if has_rows bearer && [[ -n ${BEARER_TOKEN:-} ]]; then
        in_turn
        local g="bearer ID tokens (wrk -t2 -c8)"
        local w=("$WRK" -t2 -c8 --latency)
        # The upstream's CPU too: a request the gateway sends it with the identity headers is
        # larger than nginx's plain copy, and the upstream shares the cores.
        local up=(--also "upstream=$UP_PID")
        # The baseline proxies the same request (the token travels on to the app with both):
        # what nginx costs for these bytes, with no check of the token.
        local base="nginx proxy (same request)"
        warm "${w[@]}" -d${W}s -H "Authorization: Bearer $BEARER_TOKEN" -H "Accept: application/json" "$ngx/api/"
        measure "$g" "$base" "" "$NGX_PLAIN_PID" wrk "${up[@]}" -- "${w[@]}" -d${S}s \
            -H "Authorization: Bearer $BEARER_TOKEN" -H "Accept: application/json" "$ngx/api/"
        # mod_auth_openidc (AuthType oauth20) keeps no verified tokens: it checks the
        # signature of the same token at every request too.
        local a_same="" a_first=""
        if [[ -n $apache ]]; then
            a_same="apache mod_auth_openidc, same token" a_first="apache mod_auth_openidc, first sight"
            warm "${w[@]}" -d${W}s -H "Authorization: Bearer $BEARER_TOKEN" -H "Accept: application/json" "$apache/api/"
            measure "$g" "$a_same" "$base" "$APACHE_PID" wrk "${up[@]}" -- "${w[@]}" -d${S}s \
                -H "Authorization: Bearer $BEARER_TOKEN" -H "Accept: application/json" "$apache/api/"
        fi
        warm "${w[@]}" -d${W}s -H "Authorization: Bearer $BEARER_TOKEN" -H "Accept: application/json" "$sso/api/"
        measure "$g" "ssogate, cached token" "$base" "$MORE_PID" wrk "${up[@]}" ${a_same:+--versus "$a_same"} -- "${w[@]}" -d${S}s \
            -H "Authorization: Bearer $BEARER_TOKEN" -H "Accept: application/json" "$sso/api/"
        # The same gateway and route with alice's session cookie: what the bearer path costs
        # beyond a signed-in request at this connection count.
        measure "$g" "ssogate, session cookie" "$base" "$MORE_PID" wrk "${up[@]}" -- "${w[@]}" -d${S}s \
            -H "$ck" "$sso/"
        # The same new tokens for both: mod_auth_openidc remembers none of them.
        if [[ -n $apache ]]; then
            measure "$g" "$a_first" "$base" "$APACHE_PID" wrk "${up[@]}" -- env TOKENS="$WORK/tokens.$ROUND" TOKEN_THREADS=2 \
                "${w[@]}" -d${BENCH_FIRST_SIGHT_SECONDS}s -s "$REPO/bench/tokens.lua" "$apache/api/"
        fi
        measure "$g" "ssogate, first sight (signature checked)" "$base" "$MORE_PID" wrk "${up[@]}" ${a_first:+--versus "$a_first"} -- \
            env TOKENS="$WORK/tokens.$ROUND" TOKEN_THREADS=2 "${w[@]}" -d${BENCH_FIRST_SIGHT_SECONDS}s -s "$REPO/bench/tokens.lua" "$sso/api/"
        end_turn
    fi
}

# Bytes per session in the memory store with Cognito-sized tokens (examples/memory_sessions),
# once: it does not depend on the machine's load.
session_row() {
    local bin=$REPO/target/release/examples/memory_sessions
    if [[ -z ${SESSION_EXAMPLE_BIN:-} ]]; then
        log "building examples/memory_sessions (cargo build --release --example memory_sessions)"
        (cd "$REPO" && cargo build --release --example memory_sessions >&2) || die "could not build examples/memory_sessions"
    else
        bin=$SESSION_EXAMPLE_BIN
    fi
    local g="sessions in the memory store, Cognito-sized tokens (bytes per session / raw bytes of the tokens kept)"
    ROUND=1 measure "$g" "refresh token (1.8 KB JWE) kept" "" - json --unit "x raw token bytes" -- \
        "$bin" 100000 --cognito --json
    ROUND=1 measure "$g" "refresh, ID and access tokens kept" "" - json --unit "x raw token bytes" -- \
        "$bin" 100000 --cognito --all-tokens --json
}

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
main() {
    ensure_tools
    if [[ $BENCH_SKIP_SSOGATE != 1 ]]; then build_ssogate; fi

    WORK=$(mktemp -d /tmp/ssogate-bench.XXXXXX)
    chmod 755 "$WORK" # nginx workers run as www-data when started as root
    : >"$WORK/wrk.log"

    # The test provider's port is one of them too: left to pick its own (port 0), it could be
    # given one of these, released a moment before and not yet bound by its server.
    local ports PORT_UP PORT_NGX PORT_SSO PORT_COOKIE PORT_MEM PORT_REDIS_GW PORT_REDIS PORT_APACHE PORT_IDP PORT_APACHE_TLS
    ports=$(free_ports 13)
    read -r PORT_UP PORT_NGX PORT_SSO PORT_COOKIE PORT_MEM PORT_REDIS_GW PORT_REDIS PORT_APACHE \
        PORT_NGX_TLS PORT_SSO_TLS PORT_COOKIE_TLS PORT_IDP PORT_APACHE_TLS <<<"$ports"
    log "ports: upstream=$PORT_UP nginx-proxy=$PORT_NGX ssogate=$PORT_SSO; temp dir $WORK"

    local MORE=0
    has_rows h2 tls body ws idle signin refresh bearer && [[ $BENCH_SKIP_SSOGATE != 1 ]] && MORE=1
    # The idle rows hold BENCH_IDLE connections in one client and in each server.
    ulimit -n $((BENCH_IDLE * 2 + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    start_upstream "$PORT_UP"
    ((MORE)) && start_more_servers
    start_nginx_proxy "$PORT_NGX" "$PORT_UP"
    NGX_PLAIN_PID=$NGX_PID
    if [[ $BENCH_SKIP_SSOGATE != 1 ]]; then start_ssogate "$PORT_SSO" "$PORT_UP"; SSO_PLAIN_PID=$SSO_PID; fi

    # ---- targets: everything is started first, then measured round by round --------
    # One target per line: name, URL, PID whose tree is measured, Cookie header ("" = none).
    local -a T_NAME=() T_URL=() T_PID=() T_COOKIE=()
    add_target() { T_NAME+=("$1"); T_URL+=("$2"); T_PID+=("$3"); T_COOKIE+=("${4:-}"); }
    add_target "direct upstream" "http://127.0.0.1:$PORT_UP/" "$UP_PID"
    add_target "nginx proxy" "http://127.0.0.1:$PORT_NGX/" "$NGX_PID"
    if [[ $BENCH_SKIP_SSOGATE != 1 ]]; then
        add_target "ssogate public" "http://127.0.0.1:$PORT_SSO/" "$SSO_PID"
        if [[ ${BENCH_SKIP_SIGNED_IN:-0} != 1 ]]; then
            start_idp "http://127.0.0.1:$PORT_COOKIE/oauth2/callback" "http://127.0.0.1:$PORT_MEM/oauth2/callback" \
                "http://127.0.0.1:$PORT_REDIS_GW/oauth2/callback" "http://127.0.0.1:$PORT_APACHE/redirect_uri" \
                "https://127.0.0.1:$PORT_COOKIE_TLS/oauth2/callback" \
                ${PORT_MORE:+"http://127.0.0.1:$PORT_MORE/oauth2/callback" "http://127.0.0.1:$PORT_REFRESH/oauth2/callback"}
            start_ssogate_signed_in "signed-in-cookie" "$PORT_COOKIE" "$PORT_UP" cookie
            add_target "ssogate signed-in, cookie store" "http://127.0.0.1:$PORT_COOKIE/" "$SIGNED_PID" "$SESSION_COOKIE"
            start_ssogate_signed_in "signed-in-memory" "$PORT_MEM" "$PORT_UP" memory
            add_target "ssogate signed-in, memory store" "http://127.0.0.1:$PORT_MEM/" "$SIGNED_PID" "$SESSION_COOKIE"
            if command -v redis-server >/dev/null 2>&1; then
                start_redis "$PORT_REDIS"
                start_ssogate_signed_in "signed-in-redis" "$PORT_REDIS_GW" "$PORT_UP" redis \
                    "redis://127.0.0.1:$PORT_REDIS/0"
                add_target "ssogate signed-in, redis store" "http://127.0.0.1:$PORT_REDIS_GW/" "$SIGNED_PID" "$SESSION_COOKIE"
            else
                log "redis-server not installed: no redis row (apt-get install redis-server)"
            fi
            if [[ -x /usr/sbin/apache2 && -f /usr/lib/apache2/modules/mod_auth_openidc.so ]]; then
                if ((MORE)) && has_rows h2 tls; then
                    start_apache_oidc "$PORT_APACHE" "$PORT_UP" "$PORT_APACHE_TLS"
                else
                    start_apache_oidc "$PORT_APACHE" "$PORT_UP"
                fi
                add_target "apache mod_auth_openidc signed-in" "http://127.0.0.1:$PORT_APACHE/" "$APACHE_PID" "$APACHE_COOKIE"
            else
                log "no apache2 + libapache2-mod-auth-openidc: no mod_auth_openidc row (apt-get install apache2 libapache2-mod-auth-openidc)"
            fi
        fi
    fi

    # HTTPS rows last: their own nginx and ssogate, TLS-terminating, same upstream (also
    # the servers of the HTTP/2 and TLS-handshake rows).
    local tls_rows=0
    [[ $BENCH_TLS == 1 ]] && has_rows get && tls_rows=1
    if ((tls_rows)) || { ((MORE)) && has_rows h2 tls; }; then
        make_cert
        start_nginx_proxy "$PORT_NGX_TLS" "$PORT_UP" tls
        NGX_TLS_PID=$NGX_PID
        ((tls_rows)) && add_target "nginx proxy, TLS" "https://127.0.0.1:$PORT_NGX_TLS/" "$NGX_PID"
        if [[ $BENCH_SKIP_SSOGATE != 1 ]]; then
            start_ssogate "$PORT_SSO_TLS" "$PORT_UP" tls
            SSO_TLS_PID=$SSO_PID
            ((tls_rows)) && add_target "ssogate public, TLS" "https://127.0.0.1:$PORT_SSO_TLS/" "$SSO_PID"
            if [[ ${BENCH_SKIP_SIGNED_IN:-0} != 1 ]]; then
                start_ssogate_signed_in "signed-in-cookie-tls" "$PORT_COOKIE_TLS" "$PORT_UP" cookie "" tls
                COOKIE_TLS_PID=$SIGNED_PID
                COOKIE_TLS_COOKIE=$SESSION_COOKIE
                ((tls_rows)) && add_target "ssogate signed-in, cookie store, TLS" "https://127.0.0.1:$PORT_COOKIE_TLS/" \
                    "$SIGNED_PID" "$SESSION_COOKIE"
            fi
        fi
    fi
    if ((MORE)) && [[ ${BENCH_SKIP_SIGNED_IN:-0} != 1 ]]; then start_more_gateways; fi

    # ---- rows: every target once per round, so slow drifts of the machine hit all alike; on
    # even rounds in the reverse order, so that none always runs first ----
    : >"$WORK/rows.tsv"
    : >"$WORK/more.jsonl"
    local i
    has_rows get || T_NAME=()
    local loads=()
    for ((ROUND = 1; ROUND <= BENCH_ROUNDS; ROUND++)); do
        loads+=("$(cut -d' ' -f1 /proc/loadavg)")
        log "round $ROUND of $BENCH_ROUNDS (load average ${loads[-1]})"
        apache_keep_signed_in
        ((MORE)) && more_round
        apache_keep_signed_in
        # The GET rows, as the groups of more_round: reversed on even rounds.
        local order=("${!T_NAME[@]}")
        if ((ROUND % 2 == 0)); then
            order=()
            for ((i = ${#T_NAME[@]} - 1; i >= 0; i--)); do order+=("$i"); done
        fi
        for i in ${order[@]+"${order[@]}"}; do
            if [[ -n ${T_COOKIE[i]} ]]; then
                bench_row "${T_NAME[i]}" "${T_URL[i]}" "${T_PID[i]}" -H "Cookie: ${T_COOKIE[i]}"
            else
                bench_row "${T_NAME[i]}" "${T_URL[i]}" "${T_PID[i]}"
            fi
        done
    done

    loads+=("$(cut -d' ' -f1 /proc/loadavg) (end)")
    if has_rows session && [[ $BENCH_SKIP_SSOGATE != 1 ]]; then session_row; fi

    # ---- report -------------------------------------------------------------
    local stamp table out_file more_tables=""
    stamp=$(date +%Y-%m-%d-%H%M%S)
    table=""
    if has_rows get; then table=$(print_table); fi
    mkdir -p "$OUT_DIR"
    out_file="$OUT_DIR/results-$stamp.md"
    local envs
    envs=$(env | grep -E '^(BENCH_[A-Z_]+|SSOGATE_WORKERS)=' | sort | tr '\n' ' ')
    python3 - "$WORK/meta.json" "$stamp" "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)" \
        "${envs}bash bench/run.sh" "${loads[*]}" "$("$NGINX" -v 2>&1)" <<'PY'
import json, os, platform, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
out, stamp, git, cmd, loads, nginx = sys.argv[1:7]
json.dump({"date": stamp, "git": git, "command": cmd.strip(), "loadavg": loads,
           "host": f"{platform.system()} {platform.release()}, {os.cpu_count()} x {cpu}", "nginx": nginx},
          open(out, "w"))
PY
    more_tables=$(python3 "$REPO/bench/report.py" --rows "$WORK/rows.tsv" --more "$WORK/more.jsonl" \
        --meta "$WORK/meta.json" --json "$OUT_DIR/results-$stamp.json") || die "bench/report.py failed"
    python3 "$REPO/bench/chart.py" "$OUT_DIR/results-$stamp.json" "$OUT_DIR/results-$stamp.svg" ||
        die "bench/chart.py failed"
    local goals
    goals=$(python3 "$REPO/bench/report.py" --summary "$OUT_DIR/results-$stamp.json") ||
        die "bench/report.py --summary failed"
    # Against the newest run kept in bench/results (the README's): which rows moved beyond the noise.
    local since
    since=$(python3 "$REPO/bench/compare.py" --newest-in "$REPO/bench/results" "$OUT_DIR/results-$stamp.json") ||
        die "bench/compare.py failed"
    {
        echo "# ssogate benchmark $stamp"
        echo
        if [[ -n $BENCH_SERVER_CPUS$BENCH_WRK_CPUS ]]; then
            echo "- host: $(uname -srm), $(nproc --all) CPUs; servers on CPUs ${BENCH_SERVER_CPUS:-any}, wrk on CPUs ${BENCH_WRK_CPUS:-any}"
        else
            echo "- host: $(uname -srm), $(nproc) CPUs (wrk and servers share them)"
        fi
        local rev
        if rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
            git -C "$REPO" diff --quiet HEAD -- . ':!bench/out' 2>/dev/null || rev="$rev (plus uncommitted changes)"
        else
            rev="no commit yet"
        fi
        echo "- git: $rev"
        echo "- wrk: -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d${BENCH_SECONDS}s --latency (after ${BENCH_WARMUP}s warm-up), $BENCH_ROUNDS rounds; medians shown"
        echo "- $("$NGINX" -v 2>&1); ssogate: ${SSOGATE_BIN:-skipped}"
        echo "- CPU-us/req: server process tree utime+stime during the measured run / requests; RSS: VmHWM summed over the tree"
        echo "- load average (1 min) at each round's start: ${loads[*]}"
        echo
        echo "Against the goals (the README's table):"
        echo
        echo "$goals"
        echo
        echo "$since"
        echo
        echo "$table"
        echo
        echo "$more_tables"
    } >"$out_file"
    echo
    echo "$table"
    echo
    echo "$more_tables"
    echo
    echo "$goals"
    echo
    echo "$since"
    log "written to $out_file, $OUT_DIR/results-$stamp.json and $OUT_DIR/results-$stamp.svg"
}

main "$@"

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
#   Output: Markdown table on stdout, also written to bench/out/results-<date>.md
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
events { worker_connections 4096; }
EOF
}

nginx_http_common() { # DIR
    local dir=$1
    cat <<EOF
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
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
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "hello from upstream\n"; }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx upstream "$dir"
    UP_PID=$LAST_PID
    wait_http upstream "http://127.0.0.1:$port/" "$UP_PID" 10 "$dir/error.log"
}

start_nginx_proxy() { # PORT UPSTREAM_PORT [tls] ; sets NGX_PID
    local port=$1 up=$2 tls=${3:-} dir="$WORK/nginx-proxy${3:+-tls}" listen
    listen="listen 127.0.0.1:$port;"
    [[ -n $tls ]] && listen="listen 127.0.0.1:$port ssl; ssl_certificate $WORK/tls/cert.pem; ssl_certificate_key $WORK/tls/key.pem;"
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
    server {
        $listen
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

start_ssogate() { # PORT UPSTREAM_PORT [tls] ; sets SSO_PID
    local port=$1 up=$2 tls=${3:-} dir="$WORK/ssogate${3:+-tls}"
    mkdir -p "$dir"
    cat >"$dir/ssogate.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
${SSOGATE_WORKERS:+workers = $SSOGATE_WORKERS}
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
    ${ON_SERVER_CPUS[@]+"${ON_SERVER_CPUS[@]}"} node "$REPO/tests/support/idp.mjs" --port 0 "${args[@]}" >"$WORK/idp.out" 2>"$WORK/idp.log" &
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

# Apache with Debian's mod_auth_openidc in front of the same upstream, against the same
# provider (its default server-side session cache). start_apache_oidc PORT UPSTREAM_PORT
start_apache_oidc() {
    local port=$1 up=$2 dir="$WORK/apache" m=/usr/lib/apache2/modules
    mkdir -p "$dir"
    chmod 755 "$dir"
    {
        echo "ServerRoot \"$dir\""
        echo "ServerName 127.0.0.1"
        echo "Listen 127.0.0.1:$port"
        echo "PidFile \"$dir/httpd.pid\""
        echo "ErrorLog \"$dir/error.log\""
        echo "LogLevel warn"
        local mod
        for mod in mpm_event authn_core authz_core authz_user proxy proxy_http; do
            echo "LoadModule ${mod}_module $m/mod_${mod}.so"
        done
        echo "LoadModule auth_openidc_module $m/mod_auth_openidc.so"
        echo "User www-data"
        echo "Group www-data"
        echo "KeepAlive On"
        echo "MaxKeepAliveRequests 0"
        echo "OIDCProviderMetadataURL $IDP_ISSUER/.well-known/openid-configuration"
        echo "OIDCClientID basic-client"
        echo "OIDCClientSecret basic-secret"
        echo "OIDCRedirectURI http://127.0.0.1:$port/redirect_uri"
        echo "OIDCCryptoPassphrase bench-passphrase-0123456789"
        echo "OIDCPKCEMethod S256"
        echo "OIDCScope \"openid email profile\""
        echo "<Location />"
        echo "    AuthType openid-connect"
        echo "    Require valid-user"
        echo "</Location>"
        echo "ProxyPass /redirect_uri !"
        echo "ProxyPass / http://127.0.0.1:$up/ keepalive=On"
    } >"$dir/httpd.conf"
    ${ON_SERVER_CPUS[@]+"${ON_SERVER_CPUS[@]}"} /usr/sbin/apache2 -f "$dir/httpd.conf" -DFOREGROUND >"$dir/stdout.log" 2>&1 &
    APACHE_PID=$!
    STARTED_PIDS+=("$APACHE_PID")
    local i code=""
    for i in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/" || true)
        [[ $code == 302 ]] && break
        sleep 0.1
    done
    [[ $code == 302 ]] || { tail -n 20 "$dir/error.log" "$dir/stdout.log" >&2; die "apache did not start"; }
    APACHE_COOKIE=$(python3 "$REPO/bench/sign_in.py" "http://127.0.0.1:$port/" alice 'Passw0rd!' mod_auth_openidc_session) ||
        { tail -n 20 "$dir/error.log" >&2; die "apache: could not sign in"; }
    log "apache mod_auth_openidc: signed in as alice"
}

# A self-signed P-256 certificate for 127.0.0.1 in $WORK/tls (the TLS rows).
make_cert() {
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
# peak RSS over the rounds, and the ratio of req/s against the direct and nginx rows
# (medians), with the range of the per-round ratio against nginx (same round) beside it.
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
direct = med([r["rps"] for r in by.get("direct upstream", [])])
print("| target | req/s | p50 | p99 | vs direct | vs nginx proxy (per-round range) | CPU-us/req | peak RSS MiB | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for name, rs in by.items():
    rps = med([r["rps"] for r in rs])
    # HTTPS rows against the HTTPS nginx proxy, the others against the plain one.
    base = nginx_tls if name.endswith(", TLS") else nginx
    base_med = med(list(base.values()))
    per_round = sorted(r["rps"] / base[r["round"]] for r in rs if base.get(r["round"]))
    vs_proxy = "n/a" if not base_med else f"{rps / base_med:.2f}"
    if len(per_round) > 1:
        vs_proxy += f" ({per_round[0]:.2f}-{per_round[-1]:.2f})"
    vs_direct = "n/a" if not direct else f"{rps / direct:.2f}"
    cpu = med([r["cpu"] for r in rs])
    rss = [float(r["rss"]) for r in rs if r["rss"] not in ("n/a", "")]
    errs = sorted({r["err"] for r in rs if r["err"] != "0"})
    print(f"| {name} | {rps:.0f} | {ms(med([r['p50'] for r in rs]))} | {ms(med([r['p99'] for r in rs]))} | "
          f"{vs_direct} | {vs_proxy} | {'n/a' if cpu is None else f'{cpu:.1f}'} | "
          f"{'n/a' if not rss else f'{max(rss):.1f}'} | {'; '.join(errs) or 0} |")
PY
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

    local ports PORT_UP PORT_NGX PORT_SSO PORT_COOKIE PORT_MEM PORT_REDIS_GW PORT_REDIS PORT_APACHE
    ports=$(free_ports 11)
    read -r PORT_UP PORT_NGX PORT_SSO PORT_COOKIE PORT_MEM PORT_REDIS_GW PORT_REDIS PORT_APACHE \
        PORT_NGX_TLS PORT_SSO_TLS PORT_COOKIE_TLS <<<"$ports"
    log "ports: upstream=$PORT_UP nginx-proxy=$PORT_NGX ssogate=$PORT_SSO; temp dir $WORK"

    start_upstream "$PORT_UP"
    start_nginx_proxy "$PORT_NGX" "$PORT_UP"
    if [[ $BENCH_SKIP_SSOGATE != 1 ]]; then start_ssogate "$PORT_SSO" "$PORT_UP"; fi

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
                "https://127.0.0.1:$PORT_COOKIE_TLS/oauth2/callback"
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
                start_apache_oidc "$PORT_APACHE" "$PORT_UP"
                add_target "apache mod_auth_openidc signed-in" "http://127.0.0.1:$PORT_APACHE/" "$APACHE_PID" "$APACHE_COOKIE"
            else
                log "no apache2 + libapache2-mod-auth-openidc: no mod_auth_openidc row (apt-get install apache2 libapache2-mod-auth-openidc)"
            fi
        fi
    fi

    # HTTPS rows last: their own nginx and ssogate, TLS-terminating, same upstream.
    if [[ $BENCH_TLS == 1 ]]; then
        make_cert
        start_nginx_proxy "$PORT_NGX_TLS" "$PORT_UP" tls
        add_target "nginx proxy, TLS" "https://127.0.0.1:$PORT_NGX_TLS/" "$NGX_PID"
        if [[ $BENCH_SKIP_SSOGATE != 1 ]]; then
            start_ssogate "$PORT_SSO_TLS" "$PORT_UP" tls
            add_target "ssogate public, TLS" "https://127.0.0.1:$PORT_SSO_TLS/" "$SSO_PID"
            if [[ ${BENCH_SKIP_SIGNED_IN:-0} != 1 ]]; then
                start_ssogate_signed_in "signed-in-cookie-tls" "$PORT_COOKIE_TLS" "$PORT_UP" cookie "" tls
                add_target "ssogate signed-in, cookie store, TLS" "https://127.0.0.1:$PORT_COOKIE_TLS/" \
                    "$SIGNED_PID" "$SESSION_COOKIE"
            fi
        fi
    fi

    # ---- rows: every target once per round, so slow drifts of the machine hit all alike ----
    : >"$WORK/rows.tsv"
    local i
    for ((ROUND = 1; ROUND <= BENCH_ROUNDS; ROUND++)); do
        log "round $ROUND of $BENCH_ROUNDS"
        for i in "${!T_NAME[@]}"; do
            if [[ -n ${T_COOKIE[i]} ]]; then
                bench_row "${T_NAME[i]}" "${T_URL[i]}" "${T_PID[i]}" -H "Cookie: ${T_COOKIE[i]}"
            else
                bench_row "${T_NAME[i]}" "${T_URL[i]}" "${T_PID[i]}"
            fi
        done
    done

    # ---- report -------------------------------------------------------------
    local stamp table out_file
    stamp=$(date +%Y-%m-%d-%H%M%S)
    table=$(print_table)
    mkdir -p "$OUT_DIR"
    out_file="$OUT_DIR/results-$stamp.md"
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
        echo
        echo "$table"
    } >"$out_file"
    echo
    echo "$table"
    echo
    log "written to $out_file"
}

main "$@"

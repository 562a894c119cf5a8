#!/usr/bin/env bash
# Instructions per proxied request on ssogate's public route, counted by callgrind: unlike
# requests/s, the count is the same whatever else the machine is doing, so two binaries can be
# compared on a busy machine (an earlier commit's against this one's, say).
#
#   bash bench/callgrind.sh [SSOGATE_BIN...]      default: target/release/ssogate
#   CG_SECONDS=4 CG_CONNECTIONS=8                 the wrk run measured (one wrk thread)
#
# For each binary: ssogate (`workers = 1`, log level warn) under `valgrind --tool=callgrind`
# in front of an nginx `return 200` upstream; one run with `wrk -t1 -cN -dS`, one idle run
# (start, ping, stop); the difference of their totals divided by wrk's request count is
# printed. Needs valgrind, wrk and nginx (apt-get installs wrk and nginx-light if missing,
# as bench/run.sh does). A measurement, never a test: it fails only when it cannot measure.
set -euo pipefail

CG_SECONDS=${CG_SECONDS:-4}
CG_CONNECTIONS=${CG_CONNECTIONS:-8}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $# -gt 0 ]] || set -- "$REPO/target/release/ssogate"

log() { printf '[callgrind] %s\n' "$*" >&2; }
die() { printf '[callgrind] ERROR: %s\n' "$*" >&2; exit 1; }

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v valgrind >/dev/null || missing+=(valgrind)
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$1 did not answer"
}

UP_PORT=$(free_port)
mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
error_log $TMP/nginx/logs/error.log warn;
pid $TMP/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP_PORT; location / { return 200 "hello from upstream\n"; } }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"

# Total instructions of one ssogate process: with `load`, under wrk; without, idle.
measure() {
  local bin=$1 load=$2 port out pid requests=0
  port=$(free_port)
  out="$TMP/callgrind.$RANDOM.out"
  cat >"$TMP/ssogate.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
workers = 1
[[routes]]
path_prefix = "/"
upstream = "http://127.0.0.1:$UP_PORT"
public = true
[logging]
level = "warn"
EOF
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve --config "$TMP/ssogate.toml" \
    >/dev/null 2>"$TMP/valgrind.log" &
  pid=$!
  wait_http "http://127.0.0.1:$port/oauth2/ping"
  if [[ $load == yes ]]; then
    requests=$(wrk -t1 -c"$CG_CONNECTIONS" -d"${CG_SECONDS}s" "http://127.0.0.1:$port/" |
      awk '/requests in/ {print $1}')
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  local total
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
  [[ -n $total ]] || die "no totals in $out (see $TMP/valgrind.log)"
  echo "$total $requests"
}

printf '| binary | requests | instructions per request |\n|---|---:|---:|\n'
for bin in "$@"; do
  [[ -x $bin ]] || die "$bin is not an executable"
  read -r busy requests < <(measure "$bin" yes)
  read -r idle _ < <(measure "$bin" no)
  [[ $requests -gt 0 ]] || die "wrk made no requests"
  per=$(python3 -c "print(f'{($busy - $idle) / $requests / 1000:.2f}k')")
  log "$bin: $busy - $idle instructions over $requests requests"
  printf '| %s | %s | %s |\n' "$bin" "$requests" "$per"
done

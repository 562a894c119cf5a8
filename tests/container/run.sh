#!/usr/bin/env bash
# The container image, built and run for real: a Docker daemon of its own (Debian's docker.io,
# overlay2 storage (vfs where the kernel cannot mount overlayfs), no iptables, no bridge,
# its own data root and socket in a temp directory under target/,
# stopped by its PID), base images made with debootstrap (tests/container/base-images.sh; no
# registry), the whole Dockerfile built, and its runtime stage run as deploy/kubernetes runs it:
# read-only root, uid 65532, every capability dropped, the sidecar overlay's ssogate.toml and
# the secrets mounted as files (the Secret's symlink layout), on the host's loopback.
#
# It signs a user in through the test identity provider (tests/support/idp.mjs) and reaches
# an upstream; rotates secret files the way Kubernetes does and sees them used; `docker stop`
# drains a request in flight with none failed. Prints the image size, the start time to
# /oauth2/ready and how long it all took.
#   Usage (root): tests/container/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
started=$(date +%s.%N)

# ------------------------------------------------------------------------ parts
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need[*]}"
  apt-get update -qq
  # policy-rc.d: the package must not start a system-wide daemon of its own.
  policy_added=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d
fi
# Debian's client talks to Debian's daemon and builds with the classic builder; another
# docker on the PATH (say /usr/local/bin) may be newer and want buildx.
docker_cli=$(command -v /usr/bin/docker || command -v docker)
dockerd_bin=$(command -v /usr/sbin/dockerd || command -v dockerd)

cache=$(tests/container/base-images.sh)
rust_version=$(rustc --version | awk '{print $2}')
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

# Under target/, beside the build: the disk that has room for images (a small /tmp does not).
mkdir -p target
work=$(mktemp -d "$root/target/container-work.XXXXXX")
chmod 755 "$work"
dockerd_pid= idp_pid= upstream_pid=
cleanup() {
  set +e
  if [ -n "$dockerd_pid" ]; then
    "$docker_cli" rm -f ssogate-under-test >/dev/null 2>&1
    kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$dockerd_pid" 2>/dev/null && kill -9 "$dockerd_pid"
  fi
  [ -z "$idp_pid" ] || kill "$idp_pid" 2>/dev/null
  [ -z "$upstream_pid" ] || kill "$upstream_pid" 2>/dev/null
  # The data root goes, all of it (with vfs it holds a full copy of every layer).
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -n "$dockerd_pid" ]; then
    echo "--- container log (last 30 lines):" >&2
    "$docker_cli" logs ssogate-under-test 2>&1 | tail -n 30 >&2
  fi
  exit 1
}
ok() { echo "ok - $*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ------------------------------------------------------------------------ the daemon
# overlay2 shares the layers below each build step; vfs copies the whole tree for every step
# and every container (a release build's stage is then tens of GB: a CI machine with less
# room failed there). vfs only where this kernel cannot mount overlayfs on this disk.
storage=vfs
mkdir -p "$work/probe/lower" "$work/probe/upper" "$work/probe/work" "$work/probe/merged"
if mount -t overlay overlay \
  -o "lowerdir=$work/probe/lower,upperdir=$work/probe/upper,workdir=$work/probe/work" \
  "$work/probe/merged" 2>/dev/null; then
  umount "$work/probe/merged" && storage=overlay2
fi
rm -rf "$work/probe"
echo "== dockerd ($storage, no iptables, no bridge) in $work; free: $(df -h --output=avail "$work" | tail -n1 | tr -d ' ')"
"$dockerd_bin" --storage-driver "$storage" --iptables=false --ip6tables=false --bridge=none \
  --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
  --host "unix://$work/docker.sock" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
export DOCKER_HOST="unix://$work/docker.sock" DOCKER_BUILDKIT=0
for _ in $(seq 300); do "$docker_cli" version >/dev/null 2>&1 && break; sleep 0.1; done
"$docker_cli" version >/dev/null 2>&1 || { tail -n 20 "$work/dockerd.log" >&2; fail "dockerd did not start"; }

"$docker_cli" import "$cache/runtime.tar" ssogate-test/runtime:bookworm >/dev/null
"$docker_cli" import \
  --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  "$cache/build-rust-$rust_version.tar" ssogate-test/build:rust >/dev/null

# ------------------------------------------------------------------------ the image
echo "== docker build (the whole Dockerfile; a release build, some minutes)"
build_started=$(now)
"$docker_cli" build --network host \
  --build-arg BUILD_IMAGE=ssogate-test/build:rust \
  --build-arg RUNTIME_IMAGE=ssogate-test/runtime:bookworm \
  --build-arg VERSION="$version" \
  -t ssogate:test . >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; fail "docker build failed"; }
build_seconds=$(elapsed "$build_started")
ok "docker build in ${build_seconds} s"

image_bytes=$("$docker_cli" image inspect -f '{{.Size}}' ssogate:test)
inspect() { "$docker_cli" image inspect -f "$1" ssogate:test; }
[ "$(inspect '{{.Config.User}}')" = "65532:65532" ] || fail "image user is $(inspect '{{.Config.User}}')"
[ "$(inspect '{{json .Config.Entrypoint}}')" = '["ssogate"]' ] || fail "entrypoint $(inspect '{{json .Config.Entrypoint}}')"
[ "$(inspect '{{json .Config.Cmd}}')" = '["serve","--config","/etc/ssogate/ssogate.toml"]' ] || fail "cmd $(inspect '{{json .Config.Cmd}}')"
[ "$(inspect '{{index .Config.Labels "org.opencontainers.image.version"}}')" = "$version" ] || fail "version label"
[ "$(inspect '{{index .Config.Labels "org.opencontainers.image.licenses"}}')" = "Apache-2.0" ] || fail "licence label"
inspect '{{json .Config.ExposedPorts}}' | grep -q '"4180/tcp"' || fail "port 4180 not exposed"
ok "image: user 65532, ENTRYPOINT ssogate, CMD serve, port 4180, OCI labels; $((image_bytes / 1024 / 1024)) MiB"

locked=(--read-only --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges --network host)
out=$("$docker_cli" run --rm "${locked[@]}" ssogate:test --version) || fail "ssogate --version in the image"
[ "$out" = "ssogate $version" ] || fail "--version says $out"
ok "the binary runs read-only as 65532 with no capabilities ($out)"

# ------------------------------------------------------------------------ the parts around it
python3 tests/container/upstream.py >"$work/upstream.port" &
upstream_pid=$!
for _ in $(seq 100); do [ -s "$work/upstream.port" ] && break; sleep 0.1; done
upstream_port=$(head -n1 "$work/upstream.port")

gw_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
metrics_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
gw=http://127.0.0.1:$gw_port
node tests/support/idp.mjs --port 0 --redirect-uri "$gw/oauth2/callback" \
  --logout-uri "$gw/oauth2/signed_out" >"$work/idp.out" 2>"$work/idp.err" &
idp_pid=$!
for _ in $(seq 200); do [ -s "$work/idp.out" ] && break; sleep 0.1; done
issuer=$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' "$work/idp.out")
[ -n "$issuer" ] || fail "the test identity provider did not start: $(tail -n 5 "$work/idp.err")"

# The sidecar overlay's ssogate.toml as the ConfigMap holds it, the app's address made this
# test's upstream (routes live only in the file); the rest through SSOGATE_* variables.
mkdir -p "$work/config"
sed -n '/ssogate.toml: |/,$p' deploy/kubernetes/sidecar/configmap.yaml | tail -n +2 | sed 's/^    //' \
  | sed "s|^upstream = \"http://127.0.0.1:8080\"|upstream = \"http://127.0.0.1:$upstream_port\"|" >"$work/config/ssogate.toml"
grep -q "127.0.0.1:$upstream_port" "$work/config/ssogate.toml" || fail "the sidecar config's upstream line changed"

# The Secret as the kubelet mounts it: files are links through ..data to a timestamped
# directory, and an update swaps ..data in one rename. Readable by the pod's fsGroup (65532).
secrets=$work/secrets
secret_version() { # NAME CLIENT_SECRET COOKIE_SECRET: a new version, made current atomically
  mkdir -p "$secrets/$1"
  printf '%s' "$2" >"$secrets/$1/client-secret"
  printf '%s' "$3" >"$secrets/$1/cookie-secret"
  chgrp -R 65532 "$secrets/$1" && chmod 0750 "$secrets/$1" && chmod 0440 "$secrets/$1"/*
  ln -sfn "$1" "$secrets/..data_tmp" && mv -T "$secrets/..data_tmp" "$secrets/..data"
}
mkdir -p "$secrets" && chgrp 65532 "$secrets" && chmod 0750 "$secrets"
secret_a=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
secret_b=ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=
secret_version ..2026_01 basic-secret "$secret_a"
ln -s ..data/client-secret "$secrets/client-secret"
ln -s ..data/cookie-secret "$secrets/cookie-secret"

# ------------------------------------------------------------------------ start
run_started=$(now)
"$docker_cli" run -d --name ssogate-under-test "${locked[@]}" \
  -v "$work/config:/etc/ssogate:ro" -v "$secrets:/run/secrets/ssogate:ro" \
  -e SSOGATE_SERVER__LISTEN="127.0.0.1:$gw_port" -e SSOGATE_SERVER__PUBLIC_URL="$gw" \
  -e SSOGATE_METRICS__LISTEN="127.0.0.1:$metrics_port" \
  -e SSOGATE_SERVER__SHUTDOWN_DELAY=2s -e SSOGATE_SERVER__SECRET_POLL_INTERVAL=1s \
  -e SSOGATE_PROVIDER__USER_POOL_ID=eu-central-1_TestPool1 -e SSOGATE_PROVIDER__ISSUER_URL="$issuer" \
  -e SSOGATE_PROVIDER__DOMAIN="$issuer" -e SSOGATE_PROVIDER__CLIENT_ID=basic-client \
  ssogate:test >/dev/null
for _ in $(seq 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$gw/oauth2/ready")" = 200 ] && break
  sleep 0.05
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$gw/oauth2/ready")" = 200 ] || fail "/oauth2/ready never said 200"
ready_seconds=$(elapsed "$run_started")
ok "docker run to /oauth2/ready 200 in ${ready_seconds} s"

# The image's HEALTHCHECK asks port 4180; this test's gateway listens on a free port, so the
# same command is run in the container against that one (Docker's --health-cmd would need a
# shell, which the image does not have).
[ "$(inspect '{{json .Config.Healthcheck.Test}}')" = '["CMD","ssogate","health","--url","http://127.0.0.1:4180/oauth2/ping"]' ] \
  || fail "HEALTHCHECK is $(inspect '{{json .Config.Healthcheck.Test}}')"
"$docker_cli" exec ssogate-under-test ssogate health --url "$gw/oauth2/ping" || fail "ssogate health against the gateway"
if "$docker_cli" exec ssogate-under-test ssogate health --url "http://127.0.0.1:$metrics_port/nothing-here" 2>/dev/null; then
  fail "ssogate health passed a 404"
fi
ok "HEALTHCHECK runs ssogate health: exit 0 on /oauth2/ping, 1 on a 404"
curl -sf "http://127.0.0.1:$metrics_port/metrics" | grep -q '^ssogate_' || fail "no metrics on the metrics listener"
ok "metrics on their own listener"

# ------------------------------------------------------------------------ sign in
# sign_in JAR USER: a browser's way through the gateway and the provider's login form. Prints
# the HTTP status of the page finally shown; its body is in $work/page.
sign_in() {
  local jar=$1 action
  rm -f "$jar"
  curl -s -L -b "$jar" -c "$jar" -o "$work/page" -H 'Accept: text/html' "$gw/hello" >/dev/null
  action=$(grep -o '<form[^>]*action="[^"]*"' "$work/page" | sed 's/.*action="//; s/"$//; s/&amp;/\&/g')
  [ -n "$action" ] || fail "no login form on the way to sign in: $(head -c 300 "$work/page")"
  case $action in /*) action=${issuer%/*}$action ;; esac # the provider's page names its own paths
  curl -s -L -b "$jar" -c "$jar" -o "$work/page" -w '%{http_code}' \
    --data-urlencode "username=$2" --data-urlencode "password=Passw0rd!" "$action"
}
status=$(sign_in "$work/alice" alice)
[ "$status" = 200 ] || fail "alice's sign-in ended in $status: $(head -c 300 "$work/page")"
grep -q '"x-forwarded-user": "alice"' "$work/page" || fail "the upstream did not see alice: $(cat "$work/page")"
grep -q '"path": "/hello"' "$work/page" || fail "not back at /hello: $(cat "$work/page")"
ok "alice signs in through the test provider and the upstream sees X-Forwarded-User: alice"

# ------------------------------------------------------------------------ rotated secrets
wait_log() { # TEXT [N]: the container has logged it N times (default once) within 15 s
  for _ in $(seq 150); do
    [ "$("$docker_cli" logs ssogate-under-test 2>&1 | grep -c "$1")" -ge "${2:-1}" ] && return
    sleep 0.1
  done
  fail "the container never logged \"$1\" (${2:-1} times)"
}
secret_version ..2026_02 basic-secret "$secret_b"
wait_log "session secret changed"
[ "$(curl -s -o /dev/null -w '%{http_code}' -b "$work/alice" "$gw/still")" = 200 ] || fail "alice's session ended with the rotation"
status=$(sign_in "$work/bob" bob)
[ "$status" = 200 ] && grep -q '"x-forwarded-user": "bob"' "$work/page" || fail "bob's sign-in after the rotation: $status"
ok "a rotated cookie secret is picked up; alice's session goes on, bob signs in"

secret_version ..2026_03 rotated-but-wrong "$secret_b"
wait_log "provider client secret changed"
status=$(sign_in "$work/carol" carol)
[ "$status" = 500 ] && grep -q invalid_client "$work/page" || fail "a wrong rotated client secret was not used ($status)"
secret_version ..2026_04 basic-secret "$secret_b"
wait_log "provider client secret changed" 2
status=$(sign_in "$work/alice2" alice)
[ "$status" = 200 ] || fail "sign-in after the client secret came back: $status $(head -c 600 "$work/page")"
ok "a rotated client secret is used at the next code exchange (wrong: 500 invalid_client; right again: 200)"
"$docker_cli" logs ssogate-under-test 2>&1 | grep -q -e rotated-but-wrong -e "$secret_b" && fail "a secret reached the logs"
ok "no secret in the logs"

# ------------------------------------------------------------------------ drain on docker stop
curl -s -o "$work/slow" -w '%{http_code}' -b "$work/alice" "$gw/slow" >"$work/slow.status" &
slow_pid=$!
sleep 0.5
stop_started=$(now)
"$docker_cli" stop -t 30 ssogate-under-test >/dev/null &
stop_pid=$!
sleep 0.5
# During shutdown_delay the gateway still serves, and says it is going.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$gw/oauth2/ready")" = 503 ] || fail "/oauth2/ready is not 503 while stopping"
[ "$(curl -s -o /dev/null -w '%{http_code}' -b "$work/bob" "$gw/during-delay")" = 200 ] || fail "a request during shutdown_delay failed"
wait "$slow_pid" || true
wait "$stop_pid" || fail "docker stop failed"
stop_seconds=$(elapsed "$stop_started")
[ "$(cat "$work/slow.status")" = 200 ] && grep -q '"path": "/slow"' "$work/slow" \
  || fail "the request in flight at docker stop failed: $(cat "$work/slow.status") $(cat "$work/slow")"
[ "$("$docker_cli" inspect -f '{{.State.ExitCode}}' ssogate-under-test)" = 0 ] || fail "exit code $("$docker_cli" inspect -f '{{.State.ExitCode}}' ssogate-under-test)"
awk -v s="$stop_seconds" 'BEGIN { exit !(s < 2 + 20) }' || fail "docker stop took ${stop_seconds} s, beyond shutdown_delay + drain_timeout"
ok "docker stop: /ready 503 and still serving during shutdown_delay, the in-flight request answered 200, exit 0, in ${stop_seconds} s"

echo "figures: image $((image_bytes / 1024 / 1024)) MiB ($image_bytes bytes); build ${build_seconds} s; $storage data root $(du -sh "$work/data" 2>/dev/null | cut -f1);" \
  "start to /oauth2/ready ${ready_seconds} s; docker stop ${stop_seconds} s; whole test $(elapsed "$started") s"

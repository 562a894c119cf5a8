#!/usr/bin/env bash
# The deploy checks: deploy/kubernetes rendered, validated against the Kubernetes schemas
# (kubernetes-validate, offline) and cross-checked against the ssogate binary (check.py), then
# checkov on the rendered manifests and on the Dockerfile. The tools are pinned in
# requirements.txt and installed once into target/deploy-checks-venv.
#   Usage: tests/deploy/run.sh [SSOGATE_BINARY]   (default target/debug/ssogate, built if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=${1:-target/debug/ssogate}
[ -x "$binary" ] || cargo build --quiet --bin ssogate
venv=target/deploy-checks-venv
stamp=$venv/.requirements
if ! cmp -s tests/deploy/requirements.txt "$stamp" 2>/dev/null; then
  echo "== installing the deploy checks' tools (pip, pinned)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt
  cp tests/deploy/requirements.txt "$stamp"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$venv/bin/python" tests/deploy/check.py "$binary" "$out"

# checkov skips, each for a reason that holds for an example meant to be copied:
skips=(
  # The default namespace: the examples are applied into the namespace the user chooses
  # (`kubectl apply -n`, or `namespace:` in their own kustomization), so none is named.
  CKV_K8S_21
  # Image digests and pull policy Always: the images are placeholders the user replaces with
  # their own build (deploy/README.md says to pin a digest); IfNotPresent with a digest is as
  # safe as Always and needs no registry at every start.
  CKV_K8S_43
  CKV_K8S_15
  # Liveness and readiness probes for the sidecar overlay's app container: they are the app's
  # own, and it listens on 127.0.0.1 where the kubelet's httpGet cannot reach; ssogate's
  # probes (checked above) are on the pod's port.
  CKV_K8S_8
  CKV_K8S_9
)
skip_list=$(IFS=,; echo "${skips[*]}")
echo "== checkov: deploy/kubernetes (rendered), skipping ${skip_list}"
"$venv/bin/checkov" --skip-download --quiet --compact --framework kubernetes \
  --skip-check "$skip_list" -f "$out/sidecar.yaml" -f "$out/gateway.yaml"
echo "== checkov: Dockerfile"
"$venv/bin/checkov" --skip-download --quiet --compact --framework dockerfile -f Dockerfile
echo "ok - deploy checks"

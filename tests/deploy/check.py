"""Checks deploy/kubernetes against the Kubernetes schemas and against the ssogate binary.

Renders each overlay (a kustomize subset: resources, and patches merged the strategic way:
maps by key, lists of named items by name, which is all the overlays use), then:
  - every object validates (strict: unknown fields are errors) against the schemas of the
    last three Kubernetes minor versions kubernetes-validate knows, offline;
  - each ConfigMap's ssogate.toml passes `ssogate check-config`, and `ssogate serve` with it
    answers the probe paths on the port the probes name (and /metrics on the metrics port);
  - the securityContext runs as the Dockerfile's user, locked down; args are the image's CMD;
  - the grace period covers shutdown_delay + drain_timeout, and readiness notices the 503
    within shutdown_delay; every named port a Service, probe, policy or monitor uses exists.
Writes each overlay's rendered manifests to OUT_DIR for checkov.

Usage: python check.py SSOGATE_BINARY OUT_DIR
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import kubernetes_validate
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KUBE = os.path.join(ROOT, "deploy", "kubernetes")
OVERLAYS = ["sidecar", "gateway"]
# Kinds that are not Kubernetes' own: no schema in kubernetes-validate; checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor"}

failures = []


def fail(where, what):
    failures.append(f"{where}: {what}")


# ------------------------------------------------------------------ rendering (kustomize subset)

def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if (isinstance(base, list) and isinstance(patch, list)
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        # As kustomize does: items new to the list come first, in the patch's order.
        out = list(base)
        new = []
        for item in patch:
            at = next((n for n, b in enumerate(out) if b["name"] == item["name"]), None)
            if at is None:
                new.append(item)
            else:
                out[at] = merge(out[at], item)
        return new + out
    return patch


def render(directory):
    kust = load_docs(os.path.join(directory, "kustomization.yaml"))[0]
    known = {"apiVersion", "kind", "resources", "patches"}
    if set(kust) - known:
        raise SystemExit(f"{directory}: kustomization uses {set(kust) - known}, which check.py does not render")
    objects = []
    for res in kust.get("resources", []):
        path = os.path.join(directory, res)
        objects += render(path) if os.path.isdir(path) else load_docs(path)
    for p in kust.get("patches", []):
        for patch in load_docs(os.path.join(directory, p["path"])):
            key = (patch["kind"], patch["metadata"]["name"])
            at = [n for n, o in enumerate(objects) if (o["kind"], o["metadata"]["name"]) == key]
            if len(at) != 1:
                raise SystemExit(f"{directory}/{p['path']}: patches {key}, found {len(at)} such objects")
            objects[at[0]] = merge(objects[at[0]], patch)
    return objects


# ------------------------------------------------------------------ small readers

def seconds(text):
    """A humantime duration as ssogate's config writes them ("10s", "1m", "500ms")."""
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)", text):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def dockerfile():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = f.read()
    last_stage = text[text.rindex("\nFROM "):]
    user = re.search(r"^USER (\d+)", last_stage, re.M).group(1)
    cmd = json.loads(re.search(r"^CMD (\[.*\])", last_stage, re.M).group(1))
    exposed = [int(p) for p in re.search(r"^EXPOSE (.*)$", last_stage, re.M).group(1).split()]
    return int(user), cmd, exposed


def port_of(listen):
    return int(listen.rsplit(":", 1)[1])


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


# ------------------------------------------------------------------ checks

def validate_schemas(name, objects):
    versions = sorted({kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()},
                      key=lambda v: tuple(int(x) for x in v.split(".")))[-3:]
    for obj in objects:
        where = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in CUSTOM_KINDS:
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(obj, v + ".0", strict=True)
            except kubernetes_validate.ValidationError as e:
                fail(where, f"invalid for Kubernetes {v}: {e.message} at {'.'.join(map(str, e.path))}")
            except kubernetes_validate.SchemaNotFoundError as e:
                fail(where, f"no schema for Kubernetes {v}: {e}")
    return versions


def pod_of(objects):
    dep = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "ssogate")
    return dep, dep["spec"]["template"]["spec"]


def check_security(name, pod, uid):
    ctx = pod["securityContext"]
    if ctx.get("runAsUser") != uid or not ctx.get("runAsNonRoot"):
        fail(name, f"pod securityContext must run as the image's user {uid}, non-root: {ctx}")
    if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail(name, "pod seccompProfile must be RuntimeDefault")
    for c in pod["containers"]:
        s = c.get("securityContext", {})
        if c["name"] == "ssogate" and s.get("runAsUser", uid) != uid:
            fail(name, f"container ssogate runs as {s.get('runAsUser')}, the image's user is {uid}")
        wanted = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "runAsNonRoot": True}
        for k, v in wanted.items():
            if s.get(k) != v:
                fail(name, f"container {c['name']}: securityContext.{k} must be {v}")
        if s.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(name, f"container {c['name']}: capabilities must drop ALL")


def check_config_and_probes(name, objects, binary, cmd):
    dep, pod = pod_of(objects)
    gw = next(c for c in pod["containers"] if c["name"] == "ssogate")
    if gw.get("args") != cmd:
        fail(name, f"ssogate args {gw.get('args')} are not the image's CMD {cmd}")
    mounts = {m["name"]: m["mountPath"] for m in gw["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    cm_vol = next(n for n, v in volumes.items() if "configMap" in v)
    secret_vol = next(n for n, v in volumes.items() if "secret" in v)
    config_path = cmd[cmd.index("--config") + 1]
    if os.path.dirname(config_path) != mounts[cm_vol]:
        fail(name, f"--config {config_path} is not in the ConfigMap's mount {mounts[cm_vol]}")
    cm = next(o for o in objects if o["kind"] == "ConfigMap"
              and o["metadata"]["name"] == volumes[cm_vol]["configMap"]["name"])
    toml_text = cm["data"][os.path.basename(config_path)]
    secret_dir = mounts[secret_vol]
    for key, path in re.findall(r"^\s*(\w+_file)\s*=\s*\"([^\"]+)\"", toml_text, re.M):
        if os.path.dirname(path) != secret_dir:
            fail(name, f"{key} = {path} is not in the Secret's mount {secret_dir}")

    listen = re.search(r'^listen\s*=\s*"([^"]+)"', toml_text, re.M).group(1)
    metrics = re.search(r'^\[metrics\]\s*\nlisten\s*=\s*"([^"]+)"', toml_text, re.M)
    ports = {p["name"]: p["containerPort"] for p in gw["ports"]}
    if ports.get("http") != port_of(listen):
        fail(name, f"containerPort http {ports.get('http')} is not server.listen's port {port_of(listen)}")
    if metrics and ports.get("metrics") != port_of(metrics.group(1)):
        fail(name, f"containerPort metrics {ports.get('metrics')} is not metrics.listen's port")

    grace = pod["terminationGracePeriodSeconds"]
    delay = seconds(re.search(r'^shutdown_delay\s*=\s*"([^"]+)"', toml_text, re.M).group(1))
    drain_m = re.search(r'^drain_timeout\s*=\s*"([^"]+)"', toml_text, re.M)
    drain = seconds(drain_m.group(1)) if drain_m else 30.0
    if grace < delay + drain:
        fail(name, f"terminationGracePeriodSeconds {grace} < shutdown_delay {delay} + drain_timeout {drain}")
    rp = gw["readinessProbe"]
    noticed = rp.get("periodSeconds", 10) * rp.get("failureThreshold", 3)
    if noticed > delay:
        fail(name, f"readiness notices the 503 after up to {noticed} s, longer than shutdown_delay {delay} s")
    for c in pod["containers"]:
        pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
        if c["name"] != "ssogate" and pre is not None and not (delay <= pre < grace):
            fail(name, f"container {c['name']} preStop sleep {pre} s must cover shutdown_delay {delay} s within the grace period")

    with tempfile.TemporaryDirectory() as tmp:
        for f in ("client-secret", "cookie-secret"):
            with open(os.path.join(tmp, f), "w") as out:
                out.write("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")
        local = toml_text.replace(secret_dir + "/", tmp + "/")
        cfg = os.path.join(tmp, "ssogate.toml")
        with open(cfg, "w") as out:
            out.write(local)
        r = subprocess.run([binary, "check-config", "--config", cfg], capture_output=True, text=True)
        if r.returncode != 0:
            fail(name, f"ssogate check-config refuses the ConfigMap's TOML:\n{r.stderr}")
            return
        # Serve it on loopback: the provider and Redis are pointed at a closed loopback port, so
        # nothing leaves the machine; /ready then says 503 "starting", which shows it exists.
        http, mport = free_port(), free_port()
        env = dict(os.environ, SSOGATE_SERVER__LISTEN=f"127.0.0.1:{http}",
                   SSOGATE_METRICS__LISTEN=f"127.0.0.1:{mport}",
                   SSOGATE_PROVIDER__ISSUER_URL="http://127.0.0.1:9/pool",
                   SSOGATE_SESSION__REDIS_URL="redis://127.0.0.1:9/0")
        proc = subprocess.Popen([binary, "serve", "--config", cfg], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{http}"
            for _ in range(100):
                if get(base + "/")[0] is not None:
                    break
                time.sleep(0.1)
            for probe, want in (("startupProbe", {200}), ("livenessProbe", {200}), ("readinessProbe", {200, 503})):
                path = gw[probe]["httpGet"]["path"]
                port = gw[probe]["httpGet"]["port"]
                if port not in ports:
                    fail(name, f"{probe} names port {port}, which the container does not have")
                status, body = get(base + path)
                if status not in want or (status == 503 and "starting" not in body):
                    fail(name, f"{probe} {path}: ssogate answered {status} {body[:100]!r}")
            if metrics:
                status, body = get(f"http://127.0.0.1:{mport}/metrics")
                if status != 200 or "ssogate_" not in body:
                    fail(name, f"/metrics on the metrics listener answered {status}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_references(name, objects):
    """Named ports and names that one object uses and another must have."""
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    container_ports = {}
    for dep in by_kind.get("Deployment", {}).values():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        if dep["spec"]["selector"]["matchLabels"].items() > labels.items():
            fail(name, f"Deployment {dep['metadata']['name']}: selector does not match its pod labels")
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for p in c.get("ports", []):
                container_ports.setdefault(tuple(sorted(labels.items())), set()).add(p["name"])

    def pods_ports(selector):
        return set().union(*[v for k, v in container_ports.items() if selector.items() <= dict(k).items()] or [set()])

    for svc in by_kind.get("Service", {}).values():
        have = pods_ports(svc["spec"]["selector"])
        for p in svc["spec"]["ports"]:
            if p["targetPort"] not in have:
                fail(name, f"Service {svc['metadata']['name']}: targetPort {p['targetPort']} is no pod's port")
    for sm in by_kind.get("ServiceMonitor", {}).values():
        svcs = [s for s in by_kind["Service"].values()
                if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"].get("labels", {}).items()]
        if len(svcs) != 1:
            fail(name, f"ServiceMonitor selects {len(svcs)} Services")
        for ep in sm["spec"]["endpoints"]:
            if not any(ep["port"] == p["name"] for s in svcs for p in s["spec"]["ports"]):
                fail(name, f"ServiceMonitor port {ep['port']} is no port of the selected Service")
    for ing in by_kind.get("Ingress", {}).values():
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                b = path["backend"]["service"]
                svc = by_kind["Service"].get(b["name"])
                if not svc or not any(p["name"] == b["port"].get("name") for p in svc["spec"]["ports"]):
                    fail(name, f"Ingress backend {b} is no Service port")
    for pol in by_kind.get("NetworkPolicy", {}).values():
        have = pods_ports(pol["spec"]["podSelector"]["matchLabels"])
        for rule in pol["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                if p["port"] not in have:
                    fail(name, f"NetworkPolicy {pol['metadata']['name']}: port {p['port']} is no port of its pods")
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        dep = by_kind["Deployment"]["ssogate"]
        if pdb["spec"]["minAvailable"] >= dep["spec"].get("replicas", 1):
            fail(name, "the PodDisruptionBudget would block every voluntary eviction")


def main():
    binary, out_dir = sys.argv[1], sys.argv[2]
    uid, cmd, exposed = dockerfile()
    os.makedirs(out_dir, exist_ok=True)
    for name in OVERLAYS:
        before = len(failures)
        objects = render(os.path.join(KUBE, name))
        with open(os.path.join(out_dir, f"{name}.yaml"), "w") as f:
            yaml.safe_dump_all(objects, f, sort_keys=False)
        versions = validate_schemas(name, objects)
        _, pod = pod_of(objects)
        check_security(name, pod, uid)
        gw = next(c for c in pod["containers"] if c["name"] == "ssogate")
        for p in gw["ports"]:
            if p["containerPort"] not in exposed:
                fail(name, f"containerPort {p['containerPort']} is not EXPOSEd by the Dockerfile")
        check_config_and_probes(name, objects, binary, cmd)
        check_references(name, objects)
        if len(failures) == before:
            print(f"ok - deploy/kubernetes/{name}: {len(objects)} objects, schemas {', '.join(versions)}, cross-checks against {os.path.basename(binary)}")
    if failures:
        print("\n".join("FAIL: " + f for f in failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks that deploy/kubernetes/ and deploy/Dockerfile agree with each other and with the pgmux
config they mount, without a cluster: ports, probe paths, mounts, selectors, the drain timeline
and the security settings. Prints what a live check needs, one item per line:
  probe PATH          an HTTP path a probe asks on the metrics port
  scrape PATH         the path the ServiceMonitor scrapes
  member JSON         a top-level member of the mounted config ("key": value), other than the
                      address, auth and database settings a local run replaces
Exit status 1 with one line per disagreement on stderr.
Usage: kubernetes_check.py PROJECT_DIR
"""
import json
import os
import re
import sys

import yaml

root = sys.argv[1]
kdir = os.path.join(root, "deploy", "kubernetes")
problems = []


def fail(message):
    problems.append(message)


def seconds(duration):
    m = re.fullmatch(r"(\d+)(ms|s|min|h)?", str(duration))
    if not m:
        fail(f"cannot read the duration {duration!r}")
        return 0
    scale = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, None: 1}[m.group(2)]
    return int(m.group(1)) * scale


docs = {}
for name in sorted(os.listdir(kdir)):
    if not name.endswith(".yaml"):
        continue
    with open(os.path.join(kdir, name)) as f:
        for doc in yaml.safe_load_all(f):
            if doc:
                docs.setdefault(doc["kind"], []).append(doc)
for kind in ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "Secret"]:
    if len(docs.get(kind, [])) != 1:
        fail(f"expected one {kind}, found {len(docs.get(kind, []))}")
if problems:
    sys.exit("\n".join(problems))

configmap, deployment, service = docs["ConfigMap"][0], docs["Deployment"][0], docs["Service"][0]
pdb, monitor, secret = docs["PodDisruptionBudget"][0], docs["ServiceMonitor"][0], docs["Secret"][0]
pod = deployment["spec"]["template"]
spec = pod["spec"]
labels = pod["metadata"]["labels"]
container = spec["containers"][0]
ports = {p["name"]: p["containerPort"] for p in container["ports"]}

# The config the pods mount.
volumes = {v["name"]: v for v in spec["volumes"]}
mounts = {m["name"]: m for m in container["volumeMounts"]}
config_path = container["args"][container["args"].index("--config") + 1]
config_volume = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == configmap["metadata"]["name"]]
if len(config_volume) != 1:
    fail("the Deployment mounts the ConfigMap once")
    sys.exit("\n".join(problems))
mount_dir = mounts[config_volume[0]]["mountPath"]
key = os.path.relpath(config_path, mount_dir)
if key not in configmap["data"]:
    fail(f"--config {config_path} is not a key of the ConfigMap mounted at {mount_dir}")
    sys.exit("\n".join(problems))
config = json.loads(configmap["data"][key])

listen = config.get("listen", {})
if listen.get("host") != "0.0.0.0":
    fail("pgmux must listen on 0.0.0.0 in a pod, not " + str(listen.get("host")))
if ports.get("postgres") != listen.get("port", 6432):
    fail(f"container port postgres {ports.get('postgres')} != listen.port {listen.get('port', 6432)}")
metrics = (config.get("metrics") or {}).get("listen", "")
if not metrics:
    fail("the probes need metrics.listen")
else:
    host, _, port = metrics.rpartition(":")
    if host != "0.0.0.0":
        fail(f"metrics.listen {metrics} is not reachable by the kubelet")
    if ports.get("metrics") != int(port):
        fail(f"container port metrics {ports.get('metrics')} != metrics.listen port {port}")

# Probes: on the metrics port, the paths pgmux answers.
probe_paths = []
for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
    get = container.get(probe, {}).get("httpGet", {})
    if get.get("path") != path:
        fail(f"{probe} should ask {path}, asks {get.get('path')}")
    if get.get("port") not in ("metrics", ports.get("metrics")):
        fail(f"{probe} should ask the metrics port, asks {get.get('port')}")
    probe_paths.append(get.get("path"))

# The drain timeline: preStop, then drain_delay, then shutdown_timeout, all within the grace.
pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
pre_stop_s = seconds(pre_stop[-1]) if pre_stop and pre_stop[0].endswith("sleep") else 0
drain = seconds(config.get("drain_delay", "0"))
shutdown = seconds(config.get("shutdown_timeout", "30s"))
grace = spec.get("terminationGracePeriodSeconds", 30)
if grace < pre_stop_s + drain + shutdown:
    fail(f"terminationGracePeriodSeconds {grace} < preStop {pre_stop_s} + drain_delay {drain} + shutdown_timeout {shutdown}")
readiness = container["readinessProbe"]
noticed = readiness.get("periodSeconds", 10) * readiness.get("failureThreshold", 3)
if noticed > pre_stop_s + drain:
    fail(f"the readiness probe needs {noticed}s to see the drain, but clients are taken only {pre_stop_s + drain}s")

# Security.
pod_security = spec.get("securityContext", {})
security = container.get("securityContext", {})
if not pod_security.get("runAsNonRoot") or not pod_security.get("runAsUser"):
    fail("pods must run as a non-root user")
if not security.get("readOnlyRootFilesystem"):
    fail("the root filesystem must be read-only")
if security.get("allowPrivilegeEscalation", True):
    fail("allowPrivilegeEscalation must be false")

# Files the config names live in mounted volumes.
secret_volume = [n for n, v in volumes.items() if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]]
secret_dir = mounts[secret_volume[0]]["mountPath"] if len(secret_volume) == 1 else None
named = [config.get("auth", {}).get("users_file", "")]
for db in config.get("databases", {}).values():
    m = re.search(r"passfile=(\S+)", db.get("dsn", ""))
    if m:
        named.append(m.group(1))
for path in filter(None, named):
    if secret_dir is None or os.path.dirname(path) != secret_dir:
        fail(f"{path} is not in the mounted Secret ({secret_dir})")
    elif os.path.basename(path) not in secret.get("stringData", {}):
        fail(f"{path} is not a key of the Secret")

# Selectors.
def selects(selector, labels):
    return selector and all(labels.get(k) == v for k, v in selector.items())

if not selects(deployment["spec"]["selector"]["matchLabels"], labels):
    fail("the Deployment's selector does not match its pods")
if not selects(service["spec"]["selector"], labels):
    fail("the Service does not select the pods")
if service["spec"].get("sessionAffinity") != "ClientIP":
    fail("the Service needs sessionAffinity ClientIP: a client's cancel request must reach its pod")
for p in service["spec"]["ports"]:
    if p["targetPort"] not in ports:
        fail(f"Service port {p['name']} targets {p['targetPort']}, not a container port")
if not selects(pdb["spec"]["selector"]["matchLabels"], labels):
    fail("the PodDisruptionBudget does not select the pods")
if not selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]):
    fail("the ServiceMonitor does not select the Service")
service_ports = {p["name"] for p in service["spec"]["ports"]}
scrape_paths = []
for e in monitor["spec"]["endpoints"]:
    if e["port"] not in service_ports:
        fail(f"the ServiceMonitor scrapes port {e['port']}, which the Service does not have")
    scrape_paths.append(e.get("path", "/metrics"))

# The image.
with open(os.path.join(root, "deploy", "Dockerfile")) as f:
    dockerfile = f.read()
if "deploy/install-deps" not in dockerfile:
    fail("the Dockerfile should install what deploy/install-deps installs")
user = re.findall(r"^USER\s+(\d+)", dockerfile, re.M)
if not user or int(user[-1]) != pod_security.get("runAsUser"):
    fail(f"the image's USER {user} is not the pods' runAsUser {pod_security.get('runAsUser')}")
exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", dockerfile, re.M) for p in line.split()}
if set(ports.values()) - exposed:
    fail(f"the image exposes {sorted(exposed)}, the pods use {sorted(ports.values())}")
cmd = re.findall(r"^CMD\s+(\[.*\])", dockerfile, re.M)
if not cmd or json.loads(cmd[-1]) != container["args"]:
    fail(f"the image's CMD {cmd} differs from the Deployment's args {container['args']}")

if problems:
    sys.exit("\n".join(problems))
for path in probe_paths:
    print("probe", path)
for path in scrape_paths:
    print("scrape", path)
for k, v in config.items():
    if k not in ("listen", "metrics", "auth", "databases", "pool_defaults"):
        print("member", json.dumps({k: v})[1:-1])

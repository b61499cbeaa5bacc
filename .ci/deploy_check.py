"""The YAML-level checks of .ci/deploy-check: every deploy file parses, and
the files agree with each other and with what Baton reads (ports, probe
paths, secrets, the NATS users' password variables). Baton's configs
themselves are loaded by tests/deploy_config.rs."""

import json
import re
import sys
from pathlib import Path

import yaml

DEPLOY = Path("deploy")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


# The password variables accounts.conf reads from nats-server's environment.
accounts = (DEPLOY / "nats/accounts.conf").read_text()
nats_vars = set(re.findall(r"password: \$(\w+)", accounts))
check(nats_vars == {"BATON_NATS_PASSWORD", "BATON_RUNNER_PASSWORD",
                    "BATON_PAGER_PASSWORD", "BATON_OPERATOR_PASSWORD"},
      f"accounts.conf password variables: {sorted(nats_vars)}")

# --- Dockerfile: what the runtime stage copies exists and is not ignored --
ignored = [l.strip().rstrip("/") for l in Path(".dockerignore").read_text().splitlines()
           if l.strip() and not l.startswith("#")]
for line in Path("Dockerfile").read_text().splitlines():
    if line.startswith("COPY ") and "--from=" not in line:
        for src in line.split()[1:-1]:
            check(Path(src).exists(), f"Dockerfile: COPY {src} missing")
            check(not any(src == i or src.startswith(i + "/") for i in ignored),
                  f"Dockerfile: COPY {src} is in .dockerignore")
check("\nUSER 10001:10001\n" in Path("Dockerfile").read_text(), "Dockerfile: non-root USER")

# --- compose -------------------------------------------------------------
compose = load(DEPLOY / "compose.yaml")
services = compose["services"]
check(set(services) == {"nats-1", "nats-2", "nats-3", "baton-1", "baton-2",
                        "prometheus", "alertmanager", "grafana"},
      f"compose services: {sorted(services)}")
for name, svc in services.items():
    for vol in svc.get("volumes", []):
        src = vol.split(":")[0]
        if src.startswith("."):
            check((DEPLOY / src).exists(), f"compose {name}: {src} missing")
for n in (1, 2, 3):
    svc = services[f"nats-{n}"]
    env = svc["environment"]
    check(env.get("NATS_SERVER_NAME") == f"nats-{n}", f"nats-{n}: server name")
    check(nats_vars <= set(env), f"nats-{n}: missing {nats_vars - set(env)}")
    check(svc["command"] == ["-c", "/etc/nats/cluster.conf"], f"nats-{n}: command")
    check(any(v.endswith(":/data") for v in svc["volumes"]), f"nats-{n}: store volume")
    check(re.match(r"nats:2\.(1\d|[2-9]\d)", svc["image"]) is not None,
          f"nats-{n}: image ≥ 2.10 for sync_interval")
for n in (1, 2):
    svc = services[f"baton-{n}"]
    env = svc["environment"]
    check({"BATON_NATS_PASSWORD", "BATON_HTTP_TOKENS"} <= set(env), f"baton-{n}: env")
    check(any(v.endswith(":/etc/baton/baton.toml:ro") for v in svc["volumes"]),
          f"baton-{n}: config mount")
    check(any(p.endswith(":9464") for p in svc["ports"]), f"baton-{n}: port 9464")
    check(set(svc["depends_on"]) == {"nats-1", "nats-2", "nats-3"}, f"baton-{n}: depends_on")
# Every ${VAR:?…} compose needs is in the example env file.
used = set(re.findall(r"\$\{(\w+)", (DEPLOY / "compose.yaml").read_text()))
used |= {s["environment"] for s in compose.get("secrets", {}).values()}
example = {l.split("=")[0] for l in (DEPLOY / "compose.env.example").read_text().splitlines()
           if l and not l.startswith("#")}
check(used <= example, f"compose.env.example lacks {used - example}")
check(compose["secrets"]["baton_http_token"]["environment"] == "BATON_HTTP_TOKEN", "secret")
check("baton_http_token" in services["alertmanager"]["secrets"], "alertmanager secret")

prom = load(DEPLOY / "compose/prometheus.yml")
targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
check(targets == ["baton-1:9464", "baton-2:9464"], f"prometheus targets {targets}")
check(prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"],
      "prometheus → alertmanager")
am = load(DEPLOY / "compose/alertmanager.yml")
urls = [w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])]
check(urls == [f"http://baton-{n}:9464/v1/alertmanager/compose" for n in (1, 2)], f"{urls}")
for r in am["receivers"]:
    for w in r.get("webhook_configs", []):
        check(w["http_config"]["authorization"]["credentials_file"] == "/run/secrets/baton_http_token",
              "alertmanager token file")
ds = load(DEPLOY / "compose/grafana/provisioning/datasources/prometheus.yml")
check(ds["datasources"][0]["url"] == "http://prometheus:9090", "grafana datasource")
dash = load(DEPLOY / "compose/grafana/provisioning/dashboards/baton.yml")
check(dash["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards", "dashboards path")
json.loads((DEPLOY / "grafana-baton.json").read_text())

# --- Kubernetes ----------------------------------------------------------
k8s = DEPLOY / "k8s"
kust = load(k8s / "kustomization.yaml")
for res in kust["resources"]:
    check((k8s / res).exists(), f"kustomization: {res} missing")
check(kust["configMapGenerator"][0]["files"] == ["baton.toml"], "configmap from baton.toml")
docs = {}
for f in sorted(k8s.glob("*.yaml")):
    for d in load_all(f):
        if "kind" in d and d.get("apiVersion", "").startswith("kustomize"):
            continue
        if "kind" in d:
            docs[d["kind"]] = d
dep = docs["Deployment"]
spec = dep["spec"]["template"]["spec"]
c = spec["containers"][0]
check(dep["spec"]["replicas"] == 2, "2 replicas")
check(spec["securityContext"]["runAsNonRoot"] is True, "runAsNonRoot")
check(c["securityContext"]["readOnlyRootFilesystem"] is True, "readOnlyRootFilesystem")
check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness /healthz")
check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness /readyz")
check(c["ports"][0]["containerPort"] == 9464, "port 9464")
check(set(c["resources"]) == {"requests", "limits"}, "resources")
check(c["envFrom"][0]["secretRef"]["name"] == docs["Secret"]["metadata"]["name"], "secret name")
check("BATON_NATS_PASSWORD" in docs["Secret"]["stringData"], "secret: nats password")
empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
check(any(m["name"] in empty for m in c["volumeMounts"]), "a writable emptyDir")
check(docs["Service"]["spec"]["ports"][0]["targetPort"] == "http", "service port")
check(docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1, "pdb")
check(docs["ServiceMonitor"]["spec"]["endpoints"][0]["path"] == "/metrics", "servicemonitor")
for kind in ("Service", "PodDisruptionBudget", "ServiceMonitor"):
    d = docs[kind]
    sel = d["spec"]["selector"]
    sel = sel.get("matchLabels", sel)
    check(sel == dep["spec"]["selector"]["matchLabels"], f"{kind} selects the pods")

values = load(k8s / "nats-values.yaml")
cfg = values["config"]
check(cfg["cluster"]["enabled"] is True and cfg["cluster"]["replicas"] == 3, "helm: cluster of 3")
js = cfg["jetstream"]
check(js["enabled"] and js["fileStore"]["enabled"] and not js["memoryStore"]["enabled"], "helm: file store")
check(js["merge"] == {"sync_interval": "always"}, "helm: sync_interval always")
check(cfg["merge"] == {"00$include": "accounts.conf"}, "helm: accounts.conf included")
check(set(values["container"]["env"]) == nats_vars, "helm: the users' passwords")

if failures:
    for f in failures:
        print(f"deploy-check: {f}", file=sys.stderr)
    sys.exit(1)

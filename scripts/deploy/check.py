#!/usr/bin/env python3
"""Checks of the Dockerfile and of helm/playgate, run by scripts/check-deploy.

No container engine, no cluster and no helm binary: Helm's Go SDK
(helm-python-sdk) lints and renders the chart, kubernetes-validate checks every
rendered manifest against the Kubernetes OpenAPI schemas, hadolint and a parse
of the Dockerfile check the image recipe, and the playgate binary itself is
the single source of truth for what the chart and the image may run:

  * Dockerfile: hadolint; multi-stage; dependency layer (Cargo.toml/lock and a
    build) before the sources; every cargo command has --release --locked and
    is the same one CI runs (this script runs it to get the binary); runtime
    stage is not the builder, non-root numeric USER, EXPOSE 8080, HEALTHCHECK
    `playgate healthcheck`, ENTRYPOINT ["playgate"], CMD ["serve"];
    .dockerignore keeps target/ and .git out; the builder's Rust release is
    the one CI uses.
  * Chart: strict lint (defaults and every option on); rendering with pure
    defaults fails with a clear message (PostgreSQL is external);
    renders of several value sets validated for the chart's oldest and the
    newest Kubernetes version (strict: unknown fields rejected), CRD kinds
    (ServiceMonitor) checked by hand; kinds present; replicas; hardened
    securityContext of every pod; probes on the routes the binary serves;
    resources; terminationGracePeriodSeconds vs. the binary's 25 s shutdown;
    DATABASE_URL / bootstrap admin / OME secret from Secrets (chart Secret or
    existingSecret); every environment variable the chart sets is one the
    binary reads (`playgate --help`) and every one it reads is reachable from
    values; checksum annotations change with config and secrets; migration
    Job is a pre-install,pre-upgrade hook; Service port `http` 8080;
    NetworkPolicy, ServiceMonitor, Grafana dashboard ConfigMap (valid JSON,
    equal to dashboards/playgate.json, PromQL parsed and using only SPEC §7
    metrics and labels); NOTES.txt; values.schema.json rejects wrong types.
  * Live, against PostgreSQL: the Job's command migrates a fresh database; the
    Deployment's command with the ConfigMap rendered from every option starts;
    the image's HEALTHCHECK command reports ready; every probe path answers
    200; SIGTERM ends the server well within terminationGracePeriodSeconds.

Prints one line per check and `check-deploy: N passed, M failed` last.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import promql_parser
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "playgate"
RELEASE, NAMESPACE = "pg", "streaming"
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest
# schema set kubernetes-validate ships.
_OLDEST = re.search(r'kubeVersion: ">=(\d+\.\d+\.\d+)', (CHART / "Chart.yaml").read_text())
KUBE_VERSIONS = [_OLDEST.group(1) if _OLDEST else "1.30.0", kubernetes_validate.latest_version()]
CRD_KINDS = {"ServiceMonitor"}
# Labels Prometheus adds to every scraped series (ServiceMonitor targets).
TARGET_LABELS = {"namespace", "pod", "instance", "job", "service", "container", "endpoint"}
# Used only when ../shared/SPEC.md is not beside the repository.
SPEC7_FALLBACK = {
    "playgate_decisions_total": {"dialect", "result", "reason"},
    "playgate_decision_duration_seconds": {"dialect"},
    "playgate_sessions_started_total": {"stream"},
    "playgate_watch_seconds_total": {"stream"},
    "playgate_viewers": {"stream"},
    "playgate_active_sessions": set(),
    "playgate_users": set(),
    "playgate_db_pool_connections": {"state"},
    "playgate_build_info": {"version"},
    "playgate_viewers_by_country": {"country"},
}


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []
        self.section_name = ""

    def section(self, name: str) -> None:
        self.section_name = name
        print(f"\n== {name}")

    def ok(self, name: str, condition: bool, detail: str = "") -> bool:
        if condition:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed.append(f"{self.section_name}: {name}")
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        return bool(condition)

    def info(self, text: str) -> None:
        print(f"     {text}")


C = Checks()


# --------------------------------------------------------------------------
# helpers


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render(values: dict) -> tuple[list[dict], str]:
    """Renders like `helm install`; returns the manifests and NOTES.txt."""
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs, notes = [], ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", None)
                if doc["metadata"]["annotations"] is None:
                    del doc["metadata"]["annotations"]
                doc["_template"] = path
                docs.append(doc)
    return docs, notes


def find(docs: list[dict], kind: str, hook: bool | None = None) -> list[dict]:
    out = []
    for d in docs:
        if d.get("kind") != kind:
            continue
        is_hook = "helm.sh/hook" in (d["metadata"].get("annotations") or {})
        if hook is None or hook == is_hook:
            out.append(d)
    return out


def one(docs: list[dict], kind: str, hook: bool | None = None) -> dict:
    found = find(docs, kind, hook)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def spec_metrics() -> dict[str, set[str]]:
    for spec in (ROOT.parent / "shared" / "SPEC.md", Path("/work/shared/SPEC.md")):
        if spec.is_file():
            text = spec.read_text()
            match = re.search(r"^## 7\..*?(?=^## 8\.)", text, re.S | re.M)
            if match:
                metrics: dict[str, set[str]] = {}
                for name, labels in re.findall(r"`(playgate_[a-z_]+)(?:\{([^}]*)\})?`", match.group(0)):
                    metrics[name] = {l.strip() for l in labels.split(",") if l.strip()}
                # Later sections add metrics of their own, always written
                # with their labels (`playgate_viewers_by_country{country}`).
                for name, labels in re.findall(r"`(playgate_[a-z_]+)\{([^}]*)\}`", text):
                    metrics.setdefault(name, {l.strip() for l in labels.split(",") if l.strip()})
                C.info(f"SPEC §7 metrics from {spec}: {', '.join(sorted(metrics))}")
                return metrics
    C.info("SPEC.md not found beside the repository: using the §7 list built into this script")
    return SPEC7_FALLBACK


# --------------------------------------------------------------------------
# Dockerfile


def dockerfile_checks() -> dict:
    C.section("Dockerfile (static)")
    path = ROOT / "Dockerfile"
    hadolint = Path(sys.executable).parent / "hadolint"
    result = run([str(hadolint), "--failure-threshold", "info", str(path)])
    C.ok("hadolint reports nothing", result.returncode == 0, result.stdout + result.stderr)

    parser = DockerfileParser(path=str(path))
    instructions = parser.structure
    stages: list[list[dict]] = []
    for ins in instructions:
        if ins["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    C.ok("multi-stage (a build stage and a runtime stage)", len(stages) >= 2, f"{len(stages)} stage(s)")
    build, runtime = stages[0], stages[-1]
    build_from = build[0]["value"]
    runtime_from = runtime[0]["value"]
    C.ok("build stage is a Rust image", build_from.split()[0].startswith("rust:"), build_from)
    C.ok("runtime image is not the Rust toolchain", "rust:" not in runtime_from.split()[0], runtime_from)

    # Dependency layer: Cargo.toml + Cargo.lock copied and built before src/.
    def index_of(pred) -> int:
        return next((i for i, ins in enumerate(build) if pred(ins)), -1)

    copy_manifest = index_of(lambda i: i["instruction"] == "COPY" and "Cargo.lock" in i["value"] and "src" not in i["value"].split())
    copy_src = index_of(lambda i: i["instruction"] == "COPY" and i["value"].split()[0] == "src")
    first_build = index_of(lambda i: i["instruction"] == "RUN" and "cargo build" in i["value"])
    C.ok(
        "dependencies are built in their own layer, before the sources are copied",
        -1 < copy_manifest < first_build < copy_src,
        f"COPY Cargo.lock at {copy_manifest}, first cargo build at {first_build}, COPY src at {copy_src}",
    )
    cargo_commands = []
    for ins in build:
        if ins["instruction"] == "RUN":
            for part in re.split(r"&&|;", ins["value"]):
                part = part.strip()
                if part.startswith("cargo "):
                    cargo_commands.append(part)
    C.ok("every cargo command of the image is `--release --locked`",
         bool(cargo_commands) and all("--release" in c.split() and "--locked" in c.split() for c in cargo_commands),
         str(cargo_commands))
    C.ok("the dependency layer and the final build run the same cargo command",
         len(set(cargo_commands)) == 1, str(cargo_commands))
    C.ok("sql/ is copied into the build stage (migrations are embedded)",
         any(i["instruction"] == "COPY" and i["value"].split()[0] == "sql" for i in build))

    # CI's cargo commands use --locked too: the image builds the lock file CI tested.
    ci_text = (ROOT / ".ci" / "run").read_text() + (ROOT / "scripts" / "test").read_text()
    ci_cargo = [l.strip() for l in ci_text.splitlines() if re.match(r"\s*cargo (build|test|clippy)", l)]
    C.ok("CI's cargo build/test/clippy commands are --locked like the image's",
         bool(ci_cargo) and all("--locked" in c for c in ci_cargo), str(ci_cargo))
    rust_arg = next((i["value"] for i in instructions if i["instruction"] == "ARG" and i["value"].startswith("RUST_VERSION=")), "")
    rustc = run(["rustc", "--version"]).stdout.split()
    ci_rust = ".".join(rustc[1].split(".")[:2]) if len(rustc) > 1 else "?"
    C.ok(f"the builder's Rust ({rust_arg or 'unpinned'}) is CI's rustc {ci_rust}",
         rust_arg.split("=", 1)[-1] == ci_rust)

    def runtime_one(name: str) -> str:
        values = [i["value"] for i in runtime if i["instruction"] == name]
        return values[-1] if values else ""

    user = runtime_one("USER")
    uid = user.split(":")[0]
    C.ok("runtime USER is a fixed non-root numeric UID", uid.isdigit() and int(uid) > 0, repr(user))
    C.ok("EXPOSE 8080", "8080" in runtime_one("EXPOSE").replace("/tcp", "").split())
    health = runtime_one("HEALTHCHECK")
    health_cmd = json.loads(health.split("CMD", 1)[1]) if "CMD" in health else []
    C.ok('HEALTHCHECK runs ["playgate", "healthcheck"] (no curl)', health_cmd == ["playgate", "healthcheck"], health)
    entrypoint = json.loads(runtime_one("ENTRYPOINT") or "null")
    cmd = json.loads(runtime_one("CMD") or "null")
    C.ok('ENTRYPOINT ["playgate"]', entrypoint == ["playgate"], str(entrypoint))
    C.ok('CMD ["serve"]', cmd == ["serve"], str(cmd))
    copied = [i["value"] for i in runtime if i["instruction"] == "COPY"]
    C.ok("the binary lands on the PATH as /usr/local/bin/playgate",
         any(c.split()[-1] == "/usr/local/bin/playgate" and "--from=" in c for c in copied), str(copied))
    C.ok("nothing but the binary is copied into the runtime image (no sql/, no sources)",
         all("--from=" in c for c in copied), str(copied))

    ignore = [l.strip().rstrip("/") for l in (ROOT / ".dockerignore").read_text().splitlines()
              if l.strip() and not l.startswith("#")]
    C.ok(".dockerignore keeps target/ and .git out", "target" in ignore and ".git" in ignore, str(ignore))
    for needed in ("Cargo.toml", "Cargo.lock", "src", "sql"):
        C.ok(f".dockerignore keeps {needed} in the context", needed not in ignore)
    return {"cargo": cargo_commands[0] if cargo_commands else "", "uid": int(uid) if uid.isdigit() else -1,
            "healthcheck": health_cmd, "entrypoint": entrypoint or [], "cmd": cmd or [],
            "binary_src": next((c.split()[-2] for c in copied if "--from=" in c), "")}


# --------------------------------------------------------------------------
# the binary: built with the Dockerfile's command


def build_binary(docker: dict) -> Path | None:
    C.section("playgate binary (built with the Dockerfile's cargo command)")
    override = os.environ.get("PLAYGATE_BIN")
    if override:
        C.info(f"PLAYGATE_BIN={override}: not building")
        binary = Path(override)
    else:
        command = shlex.split(docker["cargo"])
        C.info("running: " + " ".join(command))
        started = time.monotonic()
        result = subprocess.run(command, cwd=ROOT)
        C.ok(f"`{docker['cargo']}` succeeds ({time.monotonic() - started:.0f} s)", result.returncode == 0)
        binary = ROOT / "target" / "release" / "playgate"
    if not C.ok(f"binary {binary} exists", binary.is_file()):
        return None
    return binary


def binary_env_vars(binary: Path) -> set[str]:
    text = run([str(binary), "--help"]).stdout + run([str(binary), "serve", "--help"]).stdout
    names = set(re.findall(r"\[env: ([A-Z0-9_]+)", text))
    main_rs = (ROOT / "src" / "main.rs").read_text()
    if "env_logger::Env::default()" in main_rs:
        names.add("RUST_LOG")  # env_logger's default filter variable
    return names


def shutdown_timeout_secs() -> int:
    match = re.search(r"SHUTDOWN_TIMEOUT_SECS: u64 = (\d+)", (ROOT / "src" / "app.rs").read_text())
    return int(match.group(1)) if match else 25


# --------------------------------------------------------------------------
# chart


def lint_checks(default_values: dict, full_values: dict) -> None:
    C.section("helm lint --strict (Helm SDK " + helm.helm_sdk_version() + ")")
    for label, values in (("defaults", default_values), ("every option on", full_values)):
        for kube in KUBE_VERSIONS:
            report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version="v" + kube)
            bad = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
            for m in report["messages"]:
                if m["severity"] < 2:
                    C.info(f"lint info ({label}): {m['path']}: {m['error']}")
            C.ok(f"lint, {label}, Kubernetes {kube}: no warning or error", not bad, json.dumps(bad))


def schema_checks(default_values: dict, full_values: dict) -> None:
    C.section("values.schema.json")
    with helm.Chart.load(str(CHART)) as chart:
        C.ok("the chart ships a schema", chart.schema is not None)
        for label, values in (("ci/default-values.yaml", default_values), ("ci/full-values.yaml", full_values)):
            try:
                chart.validate_schema(values)
                C.ok(f"{label} is accepted", True)
            except helm.HelmError as e:
                C.ok(f"{label} is accepted", False, str(e))
        wrong = [
            ({"replicaCount": "two"}, "replicaCount"),
            ({"replicaCount": 0}, "replicaCount"),
            ({"containerPort": "8080"}, "containerPort"),
            ({"service": {"port": "http"}}, "port"),
            ({"service": {"externalTrafficPolicy": "local"}}, "externalTrafficPolicy"),
            ({"config": {"sessionDuration": "60s"}}, "sessionDuration"),
            ({"config": {"limitPolicy": "oldest"}}, "limitPolicy"),
            ({"config": {"onDbError": True}}, "onDbError"),
            ({"config": {"hookNetworks": "10.0.0.0/8"}}, "hookNetworks"),
            ({"config": {"forwardAuthIpHeader": "X-Real-IP:"}}, "forwardAuthIpHeader"),
            ({"config": {"hlsContinuation": "cookie"}}, "hlsContinuation"),
            ({"viewerCookie": {"secret": "too-short"}}, "secret"),
            ({"config": {"sessionDuraton": 60}}, "sessionDuraton"),
            ({"database": {"url": "mysql://x"}}, "url"),
            ({"database": {"listenUrl": "db-rw:5432"}}, "listenUrl"),
            ({"database": {"statsUrl": "mysql://replica"}}, "statsUrl"),
            ({"database": {"rootCertificate": {"mountPath": "certs"}}}, "mountPath"),
            ({"database": {"rootCertificate": {"secret": "db-ca"}}}, "secret"),
            ({"config": {"dbPrepared": "off"}}, "dbPrepared"),
            ({"config": {"geoipCountryDb": "GeoLite2-Country.mmdb"}}, "geoipCountryDb"),
            ({"autoscaling": {"enabled": "yes"}}, "enabled"),
            ({"networkPolicy": {"streamerCIDRs": ["not a cidr"]}}, "streamerCIDRs"),
            ({"metrics": {"serviceMonitor": {"interval": 30}}}, "interval"),
            ({"replicas": 2}, "replicas"),
            ({"terminationGracePeriodSeconds": 10}, "terminationGracePeriodSeconds"),
        ]
        for override, key in wrong:
            values = deep_merge(default_values, override)
            try:
                chart.validate_schema(values)
                C.ok(f"schema rejects {json.dumps(override)}", False, "accepted")
            except helm.HelmError as e:
                C.ok(f"schema rejects {json.dumps(override)}", key in str(e), str(e))
    # `helm lint` (what an operator runs) reports it too.
    report = helm.lint(str(CHART), deep_merge(default_values, {"replicaCount": "two"}), strict=True)
    text = json.dumps(report)
    C.ok('helm lint with replicaCount: "two" fails on the schema',
         any(m["severity"] >= 3 for m in report["messages"]) and "replicaCount" in text, text)


def validate_manifests(label: str, docs: list[dict]) -> None:
    for kube in KUBE_VERSIONS:
        problems = []
        for d in docs:
            if d["kind"] in CRD_KINDS:
                continue
            body = {k: v for k, v in d.items() if k != "_template"}
            try:
                kubernetes_validate.validate(body, kube, strict=True)
            except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError,
                    kubernetes_validate.InvalidSchemaError) as e:
                problems.append(f"{d['kind']}/{d['metadata'].get('name')}: {getattr(e, 'message', e)}")
        kinds = sorted({d["kind"] for d in docs if d["kind"] not in CRD_KINDS})
        C.ok(f"{label}: {len(docs) - len(find(docs, 'ServiceMonitor'))} manifests valid for Kubernetes {kube} "
             f"(strict; {', '.join(kinds)})", not problems, "; ".join(problems))


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]))
        elif d["kind"] == "Pod":
            out.append((f"Pod/{d['metadata']['name']}", d["spec"]))
    return out


def security_checks(label: str, docs: list[dict], uid: int) -> None:
    for name, spec in pod_specs(docs):
        pod_sc = spec.get("securityContext") or {}
        for container in spec["containers"]:
            sc = container.get("securityContext") or {}
            merged = {**pod_sc, **sc}
            problems = []
            if merged.get("runAsNonRoot") is not True:
                problems.append("runAsNonRoot")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append("readOnlyRootFilesystem")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append("allowPrivilegeEscalation")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append("capabilities.drop ALL")
            if (merged.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append("seccompProfile RuntimeDefault")
            if not (container.get("resources") or {}).get("limits") or not (container.get("resources") or {}).get("requests"):
                problems.append("resources requests and limits")
            if "playgate" in container["image"] and merged.get("runAsUser") != uid:
                problems.append(f"runAsUser {merged.get('runAsUser')} != the image's USER {uid}")
            C.ok(f"{label}: {name} container {container['name']}: non-root, read-only root, no privilege "
                 f"escalation, capabilities dropped, seccomp RuntimeDefault, requests and limits",
                 not problems, ", ".join(problems))


def container_env_names(docs: list[dict], container: dict) -> tuple[set[str], dict[str, str]]:
    """Names the container gets (env and envFrom ConfigMaps/Secrets), and the
    plain values of the ConfigMap ones."""
    names, values = set(), {}
    for e in container.get("env") or []:
        names.add(e["name"])
        if "value" in e:
            values[e["name"]] = e["value"]
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            cm = [d for d in find(docs, "ConfigMap") if d["metadata"]["name"] == source["configMapRef"]["name"]]
            if cm:
                names |= set(cm[0]["data"])
                values.update(cm[0]["data"])
            else:
                names.add(f"<missing ConfigMap {source['configMapRef']['name']}>")
        if "secretRef" in source:
            names.add(f"<whole Secret {source['secretRef']['name']}>")
    return names, values


def secret_ref_check(label: str, docs: list[dict], container: dict, var: str, secret: str, key: str) -> None:
    ref = next(((e.get("valueFrom") or {}).get("secretKeyRef") for e in container.get("env") or [] if e["name"] == var), None)
    ok = ref == {"name": secret, "key": key}
    rendered = [d for d in find(docs, "Secret") if d["metadata"]["name"] == secret]
    if rendered:  # a Secret of the chart: it must hold the key
        ok = ok and key in (rendered[0].get("data") or {})
    C.ok(f"{label}: {var} comes from Secret {secret} key {key}", ok, json.dumps(ref))


def chart_checks(binary_vars: set[str], docker: dict, default_values: dict, full_values: dict) -> dict:
    C.section("helm template: defaults")
    try:
        render({})
        C.ok("rendering without database.url/existingSecret fails", False, "it rendered")
    except helm.HelmError as e:
        C.ok("rendering without database.url/existingSecret fails with a message naming both",
             "database.url" in str(e) and "database.existingSecret" in str(e), str(e))

    docs, notes = render(default_values)
    full = f"{RELEASE}-playgate"
    validate_manifests("defaults", docs)
    kinds = {d["kind"] for d in docs}
    for kind in ("Deployment", "Service", "ConfigMap", "Secret", "Job", "HorizontalPodAutoscaler",
                 "PodDisruptionBudget", "ServiceAccount", "Pod"):
        C.ok(f"defaults render a {kind}", kind in kinds)
    for kind in ("ServiceMonitor", "NetworkPolicy", "Ingress"):
        C.ok(f"defaults render no {kind} (optional)", kind not in kinds)
    C.ok("defaults render no dashboard ConfigMap (optional)",
         not [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")])
    security_checks("defaults", docs, docker["uid"])

    deploy = one(docs, "Deployment")
    spec = deploy["spec"]["template"]["spec"]
    container = spec["containers"][0]
    hpa = one(docs, "HorizontalPodAutoscaler")
    C.ok("HPA on by default: minReplicas 2, the Deployment leaves replicas to it",
         hpa["spec"]["minReplicas"] == 2 and "replicas" not in deploy["spec"]
         and hpa["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"], json.dumps(hpa["spec"]))
    no_hpa, _ = render(deep_merge(default_values, {"autoscaling": {"enabled": False}}))
    C.ok("without the HPA the Deployment has 2 replicas",
         one(no_hpa, "Deployment")["spec"].get("replicas") == 2 and not find(no_hpa, "HorizontalPodAutoscaler"))
    pdb = one(docs, "PodDisruptionBudget")
    C.ok("PodDisruptionBudget keeps 1 pod and selects the Deployment's pods",
         pdb["spec"].get("minAvailable") == 1
         and pdb["spec"]["selector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"])
    C.ok("rolling update never drops below capacity (maxUnavailable 0)",
         deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0)

    # Service and ports.
    service = one(docs, "Service")
    port = service["spec"]["ports"][0]
    C.ok("Service port is named http, 8080, to the container port http",
         port["name"] == "http" and port["port"] == 8080 and port["targetPort"] == "http"
         and any(p["name"] == "http" and p["containerPort"] == 8080 for p in container["ports"]), json.dumps(port))
    C.ok("Service selects the Deployment's pods",
         service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"])

    # Probes.
    probes = {kind: container.get(kind) for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    C.ok("liveness probe: GET /healthz on port http",
         (probes["livenessProbe"] or {}).get("httpGet") == {"path": "/healthz", "port": "http"})
    C.ok("readiness probe: GET /readyz on port http",
         (probes["readinessProbe"] or {}).get("httpGet") == {"path": "/readyz", "port": "http"})
    probe_paths = sorted({p["httpGet"]["path"] for p in probes.values() if p and "httpGet" in p})

    # Graceful shutdown.
    grace = spec.get("terminationGracePeriodSeconds", 30)
    pre_stop = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
    shutdown = shutdown_timeout_secs()
    C.ok(f"terminationGracePeriodSeconds {grace} ≥ preStop sleep {pre_stop} + the binary's shutdown "
         f"timeout {shutdown} s + 5 s", grace >= pre_stop + shutdown + 5)

    # Environment: DATABASE_URL from the chart Secret; the rest from values.
    secret_ref_check("defaults", docs, container, "DATABASE_URL", full, "DATABASE_URL")
    names, cm_values = container_env_names(docs, container)
    C.ok("defaults: every variable the container gets is one the binary reads",
         names <= binary_vars, f"unknown: {sorted(names - binary_vars)}")
    secret = one(docs, "Secret", hook=False)
    C.ok("defaults: the chart Secret holds only DATABASE_URL", set(secret["data"]) == {"DATABASE_URL"})
    C.ok("defaults: prepared statements on, no listen or stats URL, no certificate volume",
         cm_values.get("PLAYGATE_DB_PREPARED") == "on"
         and not names & {"PLAYGATE_LISTEN_DATABASE_URL", "PLAYGATE_STATS_DATABASE_URL"}
         and not spec.get("volumes") and not container.get("volumeMounts"))

    # Checksums roll the pods.
    annotations = deploy["spec"]["template"]["metadata"].get("annotations") or {}
    C.ok("pod template has checksum/config and checksum/secret annotations",
         re.fullmatch(r"[0-9a-f]{64}", annotations.get("checksum/config", "")) is not None
         and re.fullmatch(r"[0-9a-f]{64}", annotations.get("checksum/secret", "")) is not None)
    changed_cfg, _ = render(deep_merge(default_values, {"config": {"sessionDuration": 30}}))
    changed_sec, _ = render(deep_merge(default_values, {"database": {"url": "postgres://other@db/playgate"}}))
    a_cfg = one(changed_cfg, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    a_sec = one(changed_sec, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    C.ok("changing a config value changes checksum/config (and not checksum/secret)",
         a_cfg["checksum/config"] != annotations["checksum/config"]
         and a_cfg["checksum/secret"] == annotations["checksum/secret"])
    C.ok("changing database.url changes checksum/secret",
         a_sec["checksum/secret"] != annotations["checksum/secret"])

    # Migration Job.
    job = one(docs, "Job")
    hook = job["metadata"]["annotations"]
    C.ok("migration Job is a pre-install,pre-upgrade hook",
         set(hook.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"}, json.dumps(hook))
    C.ok("migration Job is replaced on the next run (before-hook-creation)",
         "before-hook-creation" in hook.get("helm.sh/hook-delete-policy", ""))
    job_container = job["spec"]["template"]["spec"]["containers"][0]
    C.ok("migration Job runs `playgate migrate` with the chart's image",
         job_container.get("args") == ["migrate"] and "command" not in job_container
         and job_container["image"] == container["image"])
    hook_secret = one(docs, "Secret", hook=True)
    C.ok("its DATABASE_URL is in a hook Secret created before it (the release's Secret does not exist yet)",
         int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(hook.get("helm.sh/hook-weight", "0"))
         and "pre-install" in hook_secret["metadata"]["annotations"]["helm.sh/hook"])
    secret_ref_check("defaults", docs, job_container, "DATABASE_URL", hook_secret["metadata"]["name"], "DATABASE_URL")
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    C.ok("the Job's pod is not selected by the Service or the PDB",
         not all(job_labels.get(k) == v for k, v in service["spec"]["selector"].items()))
    C.ok("the Job does not use the chart's ServiceAccount (not created yet at pre-install)",
         "serviceAccountName" not in job["spec"]["template"]["spec"])
    C.ok("with migrations in a Job, the pods start with `serve --no-migrate`",
         container.get("args") == ["serve", "--no-migrate"], str(container.get("args")))
    no_job, _ = render(deep_merge(default_values, {"migrations": {"enabled": False}}))
    C.ok("migrations.enabled=false: no Job, the pods run `serve` (migrating at start)",
         not find(no_job, "Job") and one(no_job, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"] == ["serve"])

    # NOTES.txt
    svc_url = f"http://{full}.{NAMESPACE}.svc:8080"
    C.ok("NOTES.txt tells how to reach the service and the streamer hook URL",
         f"{svc_url}/hook/flussonic" in notes and "port-forward" in notes and f"{svc_url}/hook/astra" in notes, notes[:400])
    C.ok("NOTES.txt warns that hooks are open without hookNetworks or a NetworkPolicy", "WARNING" in notes)
    # The binary trusts only loopback's client-address header: the chart names
    # the pod networks an ingress controller calls forward-auth from.
    defaults_cm = next(d for d in find(docs, "ConfigMap") if d["metadata"]["name"] == full)
    C.ok("defaults trust the private (pod) networks as proxies for forward-auth",
         "10.0.0.0/8" in defaults_cm["data"].get("PLAYGATE_TRUSTED_PROXIES", ""),
         json.dumps(defaults_cm["data"]))

    # ---------------------------------------------------------------- full
    C.section("helm template: every option on (ci/full-values.yaml)")
    fdocs, fnotes = render(full_values)
    validate_manifests("every option on", fdocs)
    security_checks("every option on", fdocs, docker["uid"])
    fkinds = {d["kind"] for d in fdocs}
    for kind in ("ServiceMonitor", "NetworkPolicy", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"):
        C.ok(f"renders a {kind}", kind in fkinds)
    fdeploy = one(fdocs, "Deployment")
    fcontainer = fdeploy["spec"]["template"]["spec"]["containers"][0]
    names, cm_values = container_env_names(fdocs, fcontainer)
    C.ok("every variable the container gets is one the binary reads",
         names <= binary_vars, f"unknown: {sorted(names - binary_vars)}")
    C.ok("every variable the binary reads is reachable from values",
         binary_vars <= names, f"not settable: {sorted(binary_vars - names)}")
    expected = {
        "PLAYGATE_SESSION_DURATION": "30", "PLAYGATE_SESSION_GRACE": "15", "PLAYGATE_LIMIT_POLICY": "kick_oldest",
        "PLAYGATE_SESSION_COMMIT": "async",
        "PLAYGATE_ON_DB_ERROR": "allow", "PLAYGATE_TRUSTED_PROXIES": "10.0.0.0/8,fd00::/8",
        "PLAYGATE_HOOK_NETWORKS": "10.42.0.0/16,203.0.113.0/24",
        "PLAYGATE_FORWARD_AUTH_URI_HEADER": "X-Forwarded-Uri", "PLAYGATE_FORWARD_AUTH_IP_HEADER": "X-Forwarded-For",
        "PLAYGATE_HLS_CONTINUATION": "strict",
        "PLAYGATE_MINISTRA_URL": "http://portal.example.com/stalker_portal", "PLAYGATE_HISTORY_DAYS": "30",
        "PLAYGATE_METRICS_MAX_STREAMS": "500", "PLAYGATE_DB_POOL_SIZE": "8", "PLAYGATE_SWEEP_INTERVAL": "5",
        "PLAYGATE_STATS_INTERVAL": "7", "PLAYGATE_DB_TIMEOUT_MS": "1500", "PLAYGATE_OUTAGE_GRACE": "120", "PLAYGATE_AUTH_FAILURE_LIMIT": "10", "PLAYGATE_AUTH_FAILURE_WINDOW": "30",
        "RUST_LOG": "info,playgate=debug", "PLAYGATE_LISTEN": "0.0.0.0:8080", "PLAYGATE_DB_PREPARED": "off",
        "PLAYGATE_GEOIP_COUNTRY_DB": "/var/lib/geoip/GeoLite2-Country.mmdb",
        "PLAYGATE_GEOIP_ASN_DB": "/var/lib/geoip/GeoLite2-ASN.mmdb",
        "PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL": "true",
        "PLAYGATE_WEBHOOK_NETWORKS": "10.0.0.0/8,192.0.2.0/24",
        "PLAYGATE_STREAMER_CALL_RETRY": "120",
    }
    wrong = {k: (cm_values.get(k), v) for k, v in expected.items() if cm_values.get(k) != v}
    C.ok("each config value lands in its variable", not wrong, json.dumps(wrong))
    secret_ref_check("existingSecret", fdocs, fcontainer, "DATABASE_URL", "playgate-db", "url")
    secret_ref_check("existingSecret", fdocs, fcontainer, "PLAYGATE_BOOTSTRAP_ADMIN", "playgate-admin", "login-password")
    secret_ref_check("chart Secret", fdocs, fcontainer, "PLAYGATE_OME_SECRET", full, "PLAYGATE_OME_SECRET")
    secret_ref_check("existingSecret", fdocs, fcontainer, "PLAYGATE_VIEWER_COOKIE_SECRET", "playgate-cookie", "key")
    secret_ref_check("existingSecret", fdocs, fcontainer, "PLAYGATE_LISTEN_DATABASE_URL", "playgate-db", "listen-url")
    secret_ref_check("existingSecret", fdocs, fcontainer, "PLAYGATE_STATS_DATABASE_URL", "playgate-db", "stats-url")
    fjob = one(fdocs, "Job")
    fjob_container = fjob["spec"]["template"]["spec"]["containers"][0]
    secret_ref_check("existingSecret", fdocs, fjob_container, "DATABASE_URL", "playgate-db", "url")
    secret_ref_check("the Job migrates through the direct connection", fdocs, fjob_container,
                     "PLAYGATE_LISTEN_DATABASE_URL", "playgate-db", "listen-url")
    C.ok("the Job gets no statistics URL", not any(e["name"] == "PLAYGATE_STATS_DATABASE_URL"
                                                  for e in fjob_container.get("env") or []))
    # The server's CA from a Secret, mounted read-only where sslrootcert names it.
    for label, pod_spec, c in (("Deployment", fdeploy["spec"]["template"]["spec"], fcontainer),
                               ("Job", fjob["spec"]["template"]["spec"], fjob_container)):
        volume = next((v for v in pod_spec.get("volumes") or [] if v["name"] == "postgres-ca"), {})
        mount = next((m for m in c.get("volumeMounts") or [] if m["name"] == "postgres-ca"), {})
        C.ok(f"{label}: database.rootCertificate mounts Secret playgate-db-ca key ca.crt read-only "
             "at /etc/playgate/postgres-ca/ca.crt",
             volume.get("secret") == {"secretName": "playgate-db-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
             and mount.get("mountPath") == "/etc/playgate/postgres-ca" and mount.get("readOnly") is True,
             json.dumps([volume, mount]))
    # The URLs of SPEC §13 from values: several hosts, a pooler and its direct connection, a replica.
    topology = {"database": {
        "url": "postgres://app:pw@pooler.db.svc:5432,db2:5432/playgate?target_session_attrs=read-write",
        "listenUrl": "postgres://app:pw@db-rw.db.svc:5432/playgate?sslmode=verify-full",
        "statsUrl": "postgres://app:pw@db-ro.db.svc:5432/playgate"}}
    tdocs, _ = render(deep_merge(default_values, topology))
    validate_manifests("listen and stats URLs", tdocs)
    tsecret = one(tdocs, "Secret", hook=False)["data"]
    C.ok("database.url, listenUrl and statsUrl are stored in the chart Secret",
         {k: base64.b64decode(v).decode() for k, v in tsecret.items()} == {
             "DATABASE_URL": topology["database"]["url"],
             "PLAYGATE_LISTEN_DATABASE_URL": topology["database"]["listenUrl"],
             "PLAYGATE_STATS_DATABASE_URL": topology["database"]["statsUrl"]})
    tcontainer = one(tdocs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    for var in ("DATABASE_URL", "PLAYGATE_LISTEN_DATABASE_URL", "PLAYGATE_STATS_DATABASE_URL"):
        secret_ref_check("listen and stats URLs", tdocs, tcontainer, var, full, var)
    thook = one(tdocs, "Secret", hook=True)
    C.ok("the migration Job's hook Secret holds DATABASE_URL and the listen URL",
         set(thook["data"]) == {"DATABASE_URL", "PLAYGATE_LISTEN_DATABASE_URL"})
    secret_ref_check("listen and stats URLs", tdocs, one(tdocs, "Job")["spec"]["template"]["spec"]["containers"][0],
                     "PLAYGATE_LISTEN_DATABASE_URL", thook["metadata"]["name"], "PLAYGATE_LISTEN_DATABASE_URL")
    C.ok("with database.existingSecret there is no hook Secret and no DATABASE_URL in the chart Secret",
         not find(fdocs, "Secret", hook=True)
         and "DATABASE_URL" not in (one(fdocs, "Secret", hook=False).get("data") or {}))
    # bootstrap admin from values → the chart Secret, as login:password
    admin_docs, _ = render(deep_merge(default_values, {"bootstrapAdmin": {"login": "admin", "password": "s3cret"}}))
    admin_secret = one(admin_docs, "Secret", hook=False)
    C.ok("bootstrapAdmin.login/password → PLAYGATE_BOOTSTRAP_ADMIN=login:password in the chart Secret",
         base64.b64decode(admin_secret["data"].get("PLAYGATE_BOOTSTRAP_ADMIN", "")).decode() == "admin:s3cret")
    secret_ref_check("chart Secret", admin_docs, one(admin_docs, "Deployment")["spec"]["template"]["spec"]["containers"][0],
                     "PLAYGATE_BOOTSTRAP_ADMIN", full, "PLAYGATE_BOOTSTRAP_ADMIN")
    C.ok("no secret value is written into the ConfigMap or the pod spec",
         "s3cret" not in json.dumps([d for d in admin_docs if d["kind"] != "Secret"])
         and "ome-shared-secret" not in json.dumps([d for d in fdocs if d["kind"] != "Secret"]))

    sm = one(fdocs, "ServiceMonitor")
    endpoint = sm["spec"]["endpoints"][0]
    C.ok("ServiceMonitor: monitoring.coreos.com/v1, scrapes /metrics on port http of the Service",
         sm["apiVersion"] == "monitoring.coreos.com/v1" and endpoint["port"] == "http" and endpoint["path"] == "/metrics"
         and sm["spec"]["selector"]["matchLabels"].items() <= one(fdocs, "Service")["metadata"]["labels"].items()
         and sm["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
         and sm["metadata"]["labels"].get("release") == "kube-prometheus-stack", json.dumps(sm["spec"]))
    np = one(fdocs, "NetworkPolicy")
    rules = np["spec"]["ingress"]
    froms = json.dumps(rules)
    C.ok("NetworkPolicy: only ingress, to the playgate pods, on port http",
         np["spec"]["policyTypes"] == ["Ingress"]
         and np["spec"]["podSelector"]["matchLabels"] == fdeploy["spec"]["selector"]["matchLabels"]
         and all(r["ports"] == [{"port": "http", "protocol": "TCP"}] for r in rules))
    C.ok("NetworkPolicy: hooks from the streamer namespaces and CIDRs, metrics from the monitoring namespace",
         '"streaming"' in froms and '"ingress-nginx"' in froms and "203.0.113.0/24" in froms
         and '"kubernetes.io/metadata.name": "monitoring"' in froms, froms)
    C.ok("LoadBalancer Service keeps client addresses (externalTrafficPolicy Local)",
         one(fdocs, "Service")["spec"].get("externalTrafficPolicy") == "Local"
         and one(fdocs, "Service")["spec"]["type"] == "LoadBalancer")
    ingress = one(fdocs, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    C.ok("Ingress routes to the Service port", backend == {"name": full, "port": {"number": 8080}})
    C.ok("NOTES.txt mentions the ServiceMonitor and the dashboard", "ServiceMonitor" in fnotes and "dashboard" in fnotes)
    return {"probe_paths": probe_paths, "grace": grace, "full_docs": fdocs, "deploy_args": fcontainer["args"],
            "job_args": fjob["spec"]["template"]["spec"]["containers"][0]["args"], "cm_values": cm_values,
            "default_deploy_args": container["args"]}


def promql_facts(expr: str) -> dict:
    # Grafana's variables are not PromQL: give them values before parsing.
    text = re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)
    tree = promql_parser.parse(text)
    facts = {"metrics": set(), "unnamed": 0, "labels": set(), "funcs": set(), "matchers": set()}

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                facts["metrics"].add(node.name)
            else:
                facts["unnamed"] += 1
            for m in node.matchers.matchers:
                facts["labels"].add(m.name)
                facts["matchers"].add((m.name, m.value))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            facts["labels"].update(node.modifier.labels)
        elif isinstance(node, promql_parser.Call):
            facts["funcs"].add(node.func.name)
        return True

    promql_parser.walk(tree, visit)
    return facts


def dashboard_checks(fdocs: list[dict], spec7: dict[str, set[str]]) -> None:
    C.section("Grafana dashboard (helm/playgate/dashboards/playgate.json)")
    cms = [d for d in find(fdocs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    if not C.ok("grafanaDashboard.enabled renders one dashboard ConfigMap", len(cms) == 1):
        return
    cm = cms[0]
    C.ok("it carries the sidecar label grafana_dashboard=\"1\" and goes to the given namespace",
         cm["metadata"]["labels"].get("grafana_dashboard") == "1" and cm["metadata"]["namespace"] == "monitoring")
    try:
        dashboard = json.loads(cm["data"]["playgate.json"])
        C.ok("its playgate.json is valid JSON", True)
    except (KeyError, json.JSONDecodeError) as e:
        C.ok("its playgate.json is valid JSON", False, str(e))
        return
    C.ok("it is dashboards/playgate.json unchanged",
         dashboard == json.loads((CHART / "dashboards" / "playgate.json").read_text()))
    C.ok("dashboard has a uid, a title and a Prometheus data source variable",
         dashboard.get("uid") == "playgate" and dashboard.get("title")
         and any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in dashboard["templating"]["list"]))

    allowed_metrics = set(spec7)
    for name, labels in spec7.items():
        if name.endswith("_seconds") and "duration" in name:  # histogram series
            allowed_metrics |= {name + "_bucket", name + "_sum", name + "_count"}
    allowed_labels = set().union(*spec7.values()) | {"le"} | TARGET_LABELS

    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query.get("query", ""))
            C.ok(f"variable ${var['name']}: label_values over a SPEC §7 metric and label",
                 bool(m) and m.group(1) in allowed_metrics and m.group(2) in allowed_labels, query.get("query"))
    used: set[str] = set()
    problems = []
    facts_all = []
    for title, expr in exprs:
        try:
            facts = promql_facts(expr)
        except Exception as e:  # noqa: BLE001 - the parser raises plain exceptions
            problems.append(f"{title}: does not parse: {e}: {expr}")
            continue
        facts_all.append((expr, facts))
        used |= facts["metrics"]
        if not facts["metrics"] or facts["unnamed"]:
            problems.append(f"{title}: a selector without a metric name: {expr}")
        if facts["metrics"] - allowed_metrics:
            problems.append(f"{title}: not SPEC §7 metrics: {sorted(facts['metrics'] - allowed_metrics)}")
        if facts["labels"] - allowed_labels:
            problems.append(f"{title}: not SPEC §7 labels: {sorted(facts['labels'] - allowed_labels)}")
    C.ok(f"all {len(exprs)} PromQL expressions parse and use only SPEC §7 metric names and labels",
         not problems and bool(exprs), "; ".join(problems))
    C.info("metrics used: " + ", ".join(sorted(used)))

    def has(pred) -> bool:
        return any(pred(f) for _, f in facts_all)

    C.ok("panel: viewers per stream (playgate_viewers by stream, max across replicas)",
         has(lambda f: "playgate_viewers" in f["metrics"] and "stream" in f["labels"]))
    C.ok("panel: viewers by country (playgate_viewers_by_country by country, max across replicas)",
         has(lambda f: "playgate_viewers_by_country" in f["metrics"] and "country" in f["labels"]))
    C.ok("panel: plays (playgate_sessions_started_total rate)",
         has(lambda f: "playgate_sessions_started_total" in f["metrics"] and "rate" in f["funcs"]))
    C.ok("panel: denials by reason (playgate_decisions_total{result=\"deny\"} by reason)",
         has(lambda f: "playgate_decisions_total" in f["metrics"] and "reason" in f["labels"]
             and ("result", "deny") in f["matchers"]))
    C.ok("panel: decision latency percentiles (histogram_quantile over _bucket by le)",
         has(lambda f: "histogram_quantile" in f["funcs"] and "playgate_decision_duration_seconds_bucket" in f["metrics"]
             and "le" in f["labels"]))
    C.ok("panel: watch hours (playgate_watch_seconds_total increase / 3600)",
         any("playgate_watch_seconds_total" in f["metrics"] and "increase" in f["funcs"] and "/ 3600" in e
             for e, f in facts_all))


# --------------------------------------------------------------------------
# live: the binary runs what the chart and the image run


def live_checks(binary: Path, docker: dict, chart: dict) -> None:
    C.section("live: the chart's and the image's commands, run by the binary against PostgreSQL")
    commands = []
    for args in (docker["entrypoint"][1:] + docker["cmd"], chart["deploy_args"], chart["default_deploy_args"],
                 chart["job_args"], docker["healthcheck"][1:]):
        if args not in commands:
            commands.append(args)
    for args in commands:
        # clap rejects unknown subcommands and flags even with --help.
        result = run([str(binary), *args, "--help"])
        C.ok(f"the binary accepts `playgate {' '.join(args)}`", result.returncode == 0, result.stderr)

    ensure = ROOT / "scripts" / "ensure-postgres"
    result = run([str(ensure)]) if ensure.exists() else None
    if not C.ok("PostgreSQL is up (scripts/ensure-postgres)", result is not None and result.returncode == 0,
                result.stderr if result else "no scripts/ensure-postgres"):
        return
    server = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
    database = f"playgate_check_deploy_{os.getpid()}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYGATE_") and k != "DATABASE_URL"}
    env.update(chart["cm_values"])  # the ConfigMap rendered with every option on
    # The chart's GeoIP paths are in a volume only a cluster has: the country
    # file of scripts/install-test-deps stands in when present; an ASN file
    # there is none of, so that one is left unset.
    env.pop("PLAYGATE_GEOIP_ASN_DB", None)
    geoip_country = ROOT / "target" / "geoip-test-db" / "package" / "geolite2-country.mmdb"
    if geoip_country.is_file():
        env["PLAYGATE_GEOIP_COUNTRY_DB"] = str(geoip_country)
    else:
        C.info(f"{geoip_country} is missing: the live check starts without GeoIP")
        env.pop("PLAYGATE_GEOIP_COUNTRY_DB", None)
    env.update({
        "DATABASE_URL": f"{server}/{database}",
        "PLAYGATE_LISTEN": f"127.0.0.1:{port}",  # a free port instead of 0.0.0.0:8080
        "PLAYGATE_BOOTSTRAP_ADMIN": "check-admin:check-password",
        "PLAYGATE_OME_SECRET": "check-ome-secret",
        "PLAYGATE_VIEWER_COOKIE_SECRET": "check-viewer-cookie-secret-of-32-characters",
    })
    process = None
    try:
        result = run([str(binary), *chart["job_args"]], env=env, timeout=120)
        C.ok(f"the Job's `playgate {' '.join(chart['job_args'])}` migrates a fresh database",
             result.returncode == 0, result.stderr[-2000:])
        log = open(ROOT / "target" / "check-deploy-serve.log", "w")
        process = subprocess.Popen([str(binary), *chart["deploy_args"]], env=env, stdout=log, stderr=subprocess.STDOUT)
        ready = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            check = run([str(binary), *docker["healthcheck"][1:]], env=env, timeout=10)
            if check.returncode == 0:
                ready = True
                break
            time.sleep(0.5)
        C.ok(f"the Deployment's `playgate {' '.join(chart['deploy_args'])}` starts with every chart setting, "
             f"and the image's HEALTHCHECK `{' '.join(docker['healthcheck'])}` reports ready", ready,
             (ROOT / "target" / "check-deploy-serve.log").read_text()[-2000:])
        for path in chart["probe_paths"]:
            status, body = http_get(f"http://127.0.0.1:{port}{path}")
            C.ok(f"probe path {path} answers 200 from the real server", status == 200, f"{status} {body[:200]}")
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        C.ok("ServiceMonitor path /metrics answers 200 with playgate_ metrics",
             status == 200 and "playgate_" in body, f"{status}")
        exposed = set(re.findall(r"^# TYPE (playgate_\w+)", body, re.M))
        C.info("metric families the binary exposes now: " + ", ".join(sorted(exposed)))
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=chart["grace"])
        except subprocess.TimeoutExpired:
            code = None
        elapsed = time.monotonic() - started
        C.ok(f"SIGTERM: exit 0 after {elapsed:.1f} s, within terminationGracePeriodSeconds {chart['grace']}",
             code == 0, f"exit code {code}")
    finally:
        if process and process.poll() is None:
            process.kill()
            process.wait()
        drop = run(["psql", f"{server}/postgres", "-qAtc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"])
        if drop.returncode != 0:
            C.info(f"could not drop {database}: {drop.stderr.strip()}")


# --------------------------------------------------------------------------


def main() -> int:
    print(f"check-deploy: helm SDK {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__}), "
          f"kubernetes-validate {kubernetes_validate.version.__version__ if hasattr(kubernetes_validate.version, '__version__') else ''}"
          f" (Kubernetes {', '.join(KUBE_VERSIONS)}), promql-parser, hadolint")
    spec7 = spec_metrics()
    default_values = load_yaml(CHART / "ci" / "default-values.yaml")
    full_values = load_yaml(CHART / "ci" / "full-values.yaml")

    docker = dockerfile_checks()
    binary = build_binary(docker)
    binary_vars = binary_env_vars(binary) if binary else set()
    if binary:
        C.info("variables the binary reads (--help): " + ", ".join(sorted(binary_vars)))
    lint_checks(default_values, full_values)
    schema_checks(default_values, full_values)
    try:
        chart = chart_checks(binary_vars, docker, default_values, full_values)
    except (AssertionError, KeyError, helm.HelmError) as e:
        C.ok("chart renders and has the expected shape", False, f"{type(e).__name__}: {e}")
        chart = None
    if chart:
        dashboard_checks(chart["full_docs"], spec7)
        if binary:
            live_checks(binary, docker, chart)

    print()
    for failure in C.failed:
        print(f"failed: {failure}")
    print(f"check-deploy: {C.passed} passed, {len(C.failed)} failed")
    return 1 if C.failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The Helm chart (deploy/helm/mediamesh): lints, renders for each kind of cluster, every manifest valid for
Kubernetes, and in step with the catalog of model services and with docker-compose.

No cluster is needed: `helm lint` / `helm template` render offline and `kubernetes-validate` carries the
Kubernetes JSON schemas. `make helm` (a dependency of `make test`) puts helm in .tools/bin when none is on the PATH.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from shared.catalog import GATEWAY_PORT, SERVICES
from tests.support.processes import REPO
from tests.support.settings_reference import all_env_names, rows

CHART = REPO / "deploy" / "helm" / "mediamesh"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
VALUES_FILES = [None, *CI_VALUES]  # None: the chart's defaults
RELEASE = "mediamesh"  # the release name the docs use; objects are named mediamesh-<component>
KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
Manifest = dict[str, Any]


def helm_binary() -> str:
    found = shutil.which("helm") or next((str(p) for p in [REPO / ".tools" / "bin" / "helm"] if p.exists()), None)
    if found is None:
        pytest.fail("helm is not installed: `make helm` (tools/fetch-helm.sh) puts it in .tools/bin")
    return found


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120)


@cache
def render(values: Path | None = None, *overrides: str) -> tuple[Manifest, ...]:
    args = ["template", RELEASE, str(CHART), "--namespace", "media"]
    args += ["-f", str(values)] if values else []
    for override in overrides:
        args += ["--set", override]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def values_id(values: Path | None) -> str:
    return values.name.removesuffix("-values.yaml") if values else "defaults"


def find(manifests: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} rendered"
    return matches[0]


def pod_templates(manifests: tuple[Manifest, ...]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in {"Deployment", "StatefulSet", "Job"}]


def container(workload: Manifest) -> Manifest:
    return workload["spec"]["template"]["spec"]["containers"][0]


def env_of(workload: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload).get("env", [])}


def chart_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_helm_lint_accepts_each_values_file(values: Path | None) -> None:
    result = helm("lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_every_rendered_manifest_is_valid_kubernetes(values: Path | None) -> None:
    for manifest in render(values):
        if manifest["apiVersion"] == "monitoring.coreos.com/v1":  # a CRD: not in the Kubernetes schemas
            assert manifest["kind"] == "ServiceMonitor" and manifest["spec"]["endpoints"]
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_there_are_three_kinds_of_cluster_to_render_for() -> None:
    assert {values_id(v) for v in CI_VALUES} == {"workstation", "three-gpu-nodes", "external-db"}


def test_values_mirror_the_catalog() -> None:
    """Adding a service to shared/catalog.py without adding it to the chart fails here."""
    services = chart_values()["modelServices"]
    assert set(services) == set(SERVICES)
    for name, spec in SERVICES.items():
        assert services[name]["enabled"] is True
        assert services[name]["port"] == spec.port, name
        assert services[name]["hubId"] == spec.hub_id, name


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_every_catalog_service_runs_with_its_port_probes_model_and_gpu(values: Path | None) -> None:
    manifests = render(values)
    for name, spec in SERVICES.items():
        deployment = find(manifests, "Deployment", f"mediamesh-{name}")
        assert deployment["spec"]["replicas"] == 1  # the gateway budgets each service as one model
        main = container(deployment)
        assert main["image"].endswith(f"/{name}:latest")
        assert main["ports"] == [{"name": "http", "containerPort": spec.port}]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert main[probe]["httpGet"] == {"path": "/health", "port": "http"}, (name, probe)
        env = env_of(deployment)
        assert env[f"{name.upper()}_PORT"] == str(spec.port) and env[f"{name.upper()}_HOST"] == "0.0.0.0"
        assert env[f"{name.upper()}_MODEL_PATH"] == f"/models/{name}"
        assert env["MEDIAMESH_NODE"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}  # its per-device budget's node
        mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
        assert mounts["/models"]["readOnly"] is True
        gpus = main["resources"].get("limits", {}).get("nvidia.com/gpu", 0)
        assert gpus == 1 or env.get(f"{name.upper()}_DEVICE") == "cpu", f"{name}: neither a GPU nor the CPU"
        service = find(manifests, "Service", f"mediamesh-{name}")
        assert service["spec"]["ports"] == [{"name": "http", "port": spec.port, "targetPort": "http"}]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(spec.port) and annotations["prometheus.io/path"] == "/metrics"


def test_gpu_services_land_on_gpu_nodes_by_default_and_where_the_values_say() -> None:
    for name in SERVICES:
        pod = find(render(), "Deployment", f"mediamesh-{name}")["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    three = render(CHART / "ci" / "three-gpu-nodes-values.yaml")
    placed = {m["metadata"]["name"]: m["spec"]["template"]["spec"].get("nodeSelector", {})
              for m in three if m["kind"] == "Deployment"}
    assert placed["mediamesh-blip2"] == {"kubernetes.io/hostname": "gpu-1"}
    assert placed["mediamesh-llm"] == {"kubernetes.io/hostname": "gpu-2"}
    assert placed["mediamesh-detector"] == {}
    detector = find(three, "Deployment", "mediamesh-detector")
    assert "nvidia.com/gpu" not in container(detector)["resources"].get("limits", {})
    assert env_of(detector)["DETECTOR_DEVICE"] == "cpu"
    # a second cnn under its own name: its own Deployment and Service, the cnn image and model, routed as a model
    second = find(three, "Deployment", "mediamesh-cnn-b")
    assert container(second)["image"].endswith("/cnn:latest") and env_of(second)["CNN_NAME"] == "cnn-b"
    gateway = env_of(find(three, "Deployment", "mediamesh-gateway"))
    assert json.loads(gateway["GATEWAY_SERVICES"])["cnn-b"] == {"url": "http://mediamesh-cnn-b:8004", "kind": "cnn"}
    assert json.loads(gateway["GATEWAY_DEVICE_BUDGETS"]) == {
        "gpu-3/GPU-5d2e1c3a-0000-4000-8000-000000000003": 16_000_000_000}
    assert gateway["GATEWAY_BUDGET_BYTES"] == "24000000000"
    assert "GATEWAY_DEVICE_BUDGETS" not in env_of(find(render(), "Deployment", "mediamesh-gateway"))


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_the_gateway_routes_to_every_enabled_service_and_the_worker_to_the_gateway(values: Path | None) -> None:
    manifests = render(values)
    gateway = find(manifests, "Deployment", "mediamesh-gateway")
    registry = json.loads(env_of(gateway)["GATEWAY_SERVICES"])
    for name, spec in SERVICES.items():
        assert registry[name] == {"url": f"http://mediamesh-{name}:{spec.port}", "kind": name}
    assert container(gateway)["ports"] == [{"name": "http", "containerPort": GATEWAY_PORT}]
    assert container(gateway)["readinessProbe"]["httpGet"]["path"] == "/health"
    worker = find(manifests, "Deployment", "mediamesh-worker")
    assert env_of(worker)["GATEWAY_URL"] == f"http://mediamesh-gateway:{GATEWAY_PORT}"
    # migrations run once, in their Job, never raced by several replicas
    assert env_of(gateway)["GATEWAY_MIGRATE_ON_START"] == env_of(worker)["WORKER_MIGRATE_ON_START"] == "false"
    migrate = [m for m in manifests if m["kind"] == "Job" and m["metadata"]["name"].startswith("mediamesh-migrate")]
    assert len(migrate) == 1 and "upgrade" in " ".join(container(migrate[0])["command"])


def test_gateway_replicas_come_with_a_disruption_budget() -> None:
    manifests = render(CHART / "ci" / "three-gpu-nodes-values.yaml")
    assert find(manifests, "Deployment", "mediamesh-gateway")["spec"]["replicas"] == 3
    assert find(manifests, "Deployment", "mediamesh-worker")["spec"]["replicas"] == 3
    budget = find(manifests, "PodDisruptionBudget", "mediamesh-gateway")["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    workstation = render(CHART / "ci" / "workstation-values.yaml")
    assert not [m for m in workstation if m["kind"] == "PodDisruptionBudget"]  # one gateway: nothing to keep up


def selects(policy: Manifest, labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_only_the_gateway_is_reachable_from_outside_the_namespace(values: Path | None) -> None:
    manifests = render(values)
    policies = [m for m in manifests if m["kind"] == "NetworkPolicy"]
    extra_scrapers = (yaml.safe_load(values.read_text()) if values else {}).get("networkPolicy", {}).get(
        "scrapeFrom", [])
    for workload in pod_templates(manifests):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if selects(p, labels)]
        assert mine, f"{workload['metadata']['name']} is selected by no NetworkPolicy (open to all)"
        rules = [rule for p in mine for rule in p["spec"].get("ingress", [])]
        if labels["app.kubernetes.io/component"] == "gateway":
            assert any(rule["ports"] == [{"port": "http", "protocol": "TCP"}] for rule in rules)
            continue
        for rule in rules:
            assert rule.get("from"), f"{workload['metadata']['name']}: a rule open to every source"
            for peer in rule["from"]:
                from_this_release = set(peer) == {"podSelector"} and \
                    peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE
                assert from_this_release or peer in extra_scrapers, (workload["metadata"]["name"], peer)
    # what each part may be reached from, by default
    model_services = find(render(), "NetworkPolicy", "mediamesh-model-services")["spec"]["ingress"]
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in model_services[0]["from"]] == [
        "gateway"]


def test_external_databases_render_no_statefulsets_and_come_from_secrets() -> None:
    manifests = render(CHART / "ci" / "external-db-values.yaml")
    assert not [m for m in manifests if m["kind"] == "StatefulSet"]
    assert not [m["metadata"]["name"] for m in manifests if m["kind"] == "Service"
                and m["metadata"]["name"] in {"mediamesh-postgres", "mediamesh-redis"}]
    secret = find(manifests, "Secret", "mediamesh-secrets")["stringData"]
    assert secret["database-url"] == "postgresql+psycopg://mediamesh:s3cret@db.example.org:5432/mediamesh"
    assert "api-key" not in secret and "redis-url" not in secret and "postgres-password" not in secret
    for name in ("mediamesh-gateway", "mediamesh-worker"):
        env = env_of(find(manifests, "Deployment", name))
        assert env["DATABASE_URL"] == {"secretKeyRef": {"name": "mediamesh-secrets", "key": "database-url"}}
        assert env["REDIS_URL"] == {"secretKeyRef": {"name": "mediamesh-redis", "key": "url"}}
        assert env["GATEWAY_API_KEY"] == {"secretKeyRef": {"name": "mediamesh-api", "key": "key"}}
    assert not [m for m in manifests if m["kind"] == "PersistentVolumeClaim"
                and m["metadata"]["name"] == "mediamesh-models"]
    claims = {v["persistentVolumeClaim"]["claimName"] for m in manifests if m["kind"] == "Deployment"
              for v in m["spec"]["template"]["spec"].get("volumes", []) if "persistentVolumeClaim" in v}
    assert "mediamesh-models" in claims  # the existing claim, by its name


def test_external_mode_without_a_url_says_what_is_missing() -> None:
    result = helm("template", RELEASE, str(CHART), "--set", "postgres.enabled=false")
    assert result.returncode != 0 and "postgres.external.url" in result.stderr


def test_in_chart_databases_and_generated_secrets() -> None:
    manifests = render()
    postgres = find(manifests, "StatefulSet", "mediamesh-postgres")
    assert container(postgres)["image"].startswith("pgvector/pgvector:")
    assert env_of(postgres)["POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "mediamesh-secrets", "key": "postgres-password"}}
    redis = find(manifests, "StatefulSet", "mediamesh-redis")
    assert "--appendonly" in container(redis)["args"]
    secret = find(manifests, "Secret", "mediamesh-secrets")["stringData"]
    password = secret["postgres-password"]
    assert len(password) == 32 and len(secret["api-key"]) == 32
    assert secret["database-url"] == f"postgresql+psycopg://mediamesh:{password}@mediamesh-postgres:5432/mediamesh"
    assert secret["redis-url"] == "redis://mediamesh-redis:6379/0"
    # the password is never written into a pod spec
    for workload in pod_templates(manifests):
        assert password not in json.dumps(workload), workload["metadata"]["name"]
    given = render(None, "postgres.password=chosen", "gateway.apiKey=my-key")
    given_secret = find(given, "Secret", "mediamesh-secrets")["stringData"]
    assert given_secret["postgres-password"] == "chosen" and given_secret["api-key"] == "my-key"


def test_models_are_pulled_once_by_a_job_into_the_volume_the_services_mount() -> None:
    manifests = render()
    pull = [m for m in manifests if m["kind"] == "Job" and m["metadata"]["name"].startswith("mediamesh-models-pull")]
    assert len(pull) == 1
    command = container(pull[0])["command"]
    assert command[:6] == ["mediamesh", "models", "pull", "--missing-only", "--dest", "/models"]
    assert sorted(command[7::2]) == sorted(SERVICES) and set(command[6::2]) == {"--only"}
    env = env_of(pull[0])
    for name, spec in SERVICES.items():
        assert env[f"MEDIAMESH_{name.upper()}_MODEL_ID"] == spec.hub_id
        deployment = find(manifests, "Deployment", f"mediamesh-{name}")
        wait = deployment["spec"]["template"]["spec"]["initContainers"][0]
        assert f"/models/{name}" in wait["command"][-1]
    assert find(manifests, "PersistentVolumeClaim", "mediamesh-models")["spec"]["accessModes"] == ["ReadWriteOnce"]
    three = render(CHART / "ci" / "three-gpu-nodes-values.yaml")
    assert find(three, "PersistentVolumeClaim", "mediamesh-models")["spec"]["accessModes"] == ["ReadWriteMany"]


def sharing_config(manifests: tuple[Manifest, ...]) -> dict[str, Any] | None:
    maps = [m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "mediamesh-gpu-sharing"]
    return yaml.safe_load(maps[0]["data"]["mediamesh"]) if maps else None


def test_gpu_sharing_renders_the_device_plugin_config_for_time_slicing_or_mps() -> None:
    assert sharing_config(render()) is None
    workstation = sharing_config(render(CHART / "ci" / "workstation-values.yaml"))
    assert workstation == {"version": "v1", "sharing": {"timeSlicing": {
        "renameByDefault": False, "failRequestsGreaterThanOne": True,
        "resources": [{"name": "nvidia.com/gpu", "replicas": 8}]}}}
    three = render(CHART / "ci" / "three-gpu-nodes-values.yaml")
    assert sharing_config(three) == {"version": "v1", "sharing": {"mps": {
        "renameByDefault": False, "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
    assert find(three, "ConfigMap", "mediamesh-gpu-sharing")["metadata"]["namespace"] == "gpu-operator"
    wrong = helm("template", RELEASE, str(CHART), "--set", "gpuSharing.mode=mig")
    assert wrong.returncode != 0 and "gpuSharing.mode must be none, timeSlicing or mps" in wrong.stderr


def test_metrics_are_scraped_by_annotations_or_a_service_monitor() -> None:
    manifests = render()
    for name, port in {"mediamesh-gateway": GATEWAY_PORT, "mediamesh-worker": 8010}.items():
        annotations = find(manifests, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(port)
    assert not [m for m in manifests if m["kind"] == "ServiceMonitor"]
    monitor = find(render(CHART / "ci" / "three-gpu-nodes-values.yaml"), "ServiceMonitor", "mediamesh")
    components = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    assert set(components) == {"gateway", "worker", "cnn-b", *SERVICES}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def settings_env_names() -> set[str]:
    """Every variable a settings class of the mesh reads, with each catalog service's own class."""
    names = all_env_names()
    for spec in SERVICES.values():
        module = importlib.import_module(f"services.{spec.name}.settings")
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, BaseSettings) and \
                    cls.model_config.get("env_prefix") == spec.env_prefix:
                names |= {name for name, _, _ in rows(cls)}
    return names


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_every_variable_the_chart_sets_is_one_the_code_reads(values: Path | None) -> None:
    known = settings_env_names() | {"HF_HOME", "HF_TOKEN"}  # read by huggingface_hub in the models Job
    for workload in pod_templates(render(values)):
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] in {"postgres", "redis"}:
            continue  # the images' own variables
        unknown = set(env_of(workload)) - known
        assert not unknown, f"{workload['metadata']['name']} sets {unknown}, which nothing reads"


def test_compose_and_chart_agree_with_the_catalog() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    chart = render()
    compose_registry = json.loads(compose["gateway"]["environment"]["GATEWAY_SERVICES"])
    chart_registry = json.loads(env_of(find(chart, "Deployment", "mediamesh-gateway"))["GATEWAY_SERVICES"])
    assert set(compose_registry) == set(chart_registry) == set(SERVICES)
    for name, spec in SERVICES.items():
        deployment = find(chart, "Deployment", f"mediamesh-{name}")
        compose_port = int(compose_registry[name]["url"].rsplit(":", 1)[1])
        assert compose_port == container(deployment)["ports"][0]["containerPort"] == spec.port, name
        compose_health = " ".join(compose[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{spec.port}/health" in compose_health
        assert container(deployment)["livenessProbe"]["httpGet"]["path"] == "/health"
        model_path = f"{spec.env_prefix}MODEL_PATH"
        assert compose[name]["environment"][model_path] == env_of(deployment)[model_path] == f"/models/{name}"
        assert compose[name]["image"].split(":")[0] == container(deployment)["image"].split(":")[0]
        compose_hub_id = compose["models"]["environment"][f"MEDIAMESH_{name.upper()}_MODEL_ID"]
        assert compose_hub_id.endswith(f":-{spec.hub_id}}}"), name
        assert chart_values()["modelServices"][name]["hubId"] == spec.hub_id

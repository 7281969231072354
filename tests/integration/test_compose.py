"""The compose files: valid for `docker-compose config`, and shaped the way the brief asks.

No Docker engine is needed: `docker-compose config` only parses, interpolates and validates.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.catalog import SERVICES
from tests.support.processes import REPO
from worker.settings import WorkerSettings

BASE = REPO / "docker-compose.yml"
CPU = REPO / "docker-compose.cpu.yml"
MODEL_SERVICES = set(SERVICES)
ONE_SHOT_JOBS = {"models"}  # runs to completion before the model services start


class ComposeLoader(yaml.SafeLoader):
    """PyYAML plus compose v2's `!reset` tag (drop the base file's value)."""


RESET = object()
ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)


def load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=ComposeLoader)  # noqa: S506 - SafeLoader subclass


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(BASE)


def docker_compose(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: `make system-deps` (apt-get install docker-compose)")
    return subprocess.run(["docker-compose", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin"})


def test_docker_compose_config_accepts_the_file() -> None:
    result = docker_compose("-f", str(BASE), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_accepts_the_cpu_override_apart_from_reset(tmp_path: Path) -> None:
    """compose v1 cannot parse `!reset` (v2.24+ can), so check everything else the override sets."""
    stripped = tmp_path / "docker-compose.cpu.yml"
    stripped.write_text("\n".join(line for line in CPU.read_text().splitlines() if "!reset" not in line))
    result = docker_compose("-f", str(BASE), "-f", str(stripped), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_every_service_is_there_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == MODEL_SERVICES | {"postgres", "redis", "gateway", "worker"} | ONE_SHOT_JOBS
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and service["healthcheck"].get("disable") is not True, f"{name} has no healthcheck"
    for name in MODEL_SERVICES:
        port = SERVICES[name].port
        assert f"http://127.0.0.1:{port}/health" in " ".join(services[name]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert "--appendonly" in services["redis"]["command"]


def test_every_build_context_has_its_dockerfile(compose: dict[str, Any]) -> None:
    built = {name: s["build"] for name, s in compose["services"].items() if "build" in s}
    assert MODEL_SERVICES | {"gateway"} <= set(built)
    for name, build in built.items():
        dockerfile = (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).resolve()
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
    # one Dockerfile for every model service: torch by build argument, then only that service's extra
    text = (REPO / "services" / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX_URL=" in text and '--index-url "${TORCH_INDEX_URL}"' in text
    assert "ARG EXTRAS=${SERVICE}" in text and 'pip install -e ".[${EXTRAS}]"' in text
    assert "COPY services/${SERVICE}/ services/${SERVICE}/" in text and "--host 0.0.0.0" in text
    assert not list((REPO / "services").glob("*/Dockerfile"))
    for name in MODEL_SERVICES:
        assert built[name]["dockerfile"] == "services/Dockerfile" and built[name]["args"]["SERVICE"] == name
        assert compose["services"][name]["environment"][f"{name.upper()}_MODEL_PATH"] == f"/models/{name}"
    assert compose["services"]["worker"]["image"] == compose["services"]["gateway"]["image"]


def test_gpu_services_reserve_a_gpu_and_the_cpu_override_drops_it(compose: dict[str, Any]) -> None:
    cpu = load(CPU)["services"]
    for name in MODEL_SERVICES:
        devices = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
        assert cpu[name]["deploy"] is RESET
        assert cpu[name]["build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu")
        assert cpu[name]["environment"][f"{name.upper()}_DEVICE"] == "cpu"
    for name in set(compose["services"]) - MODEL_SERVICES:
        assert "deploy" not in compose["services"][name]


def test_only_the_gateway_publishes_a_port_and_models_stay_internal(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert [name for name, s in services.items() if s.get("ports")] == ["gateway"]
    assert services["gateway"]["ports"] == ["${GATEWAY_PUBLISH:-8000}:8000"]
    assert compose["networks"]["internal"]["internal"] is True
    for name in MODEL_SERVICES | {"postgres", "redis", "worker"}:
        assert services[name]["networks"] == ["internal"], name
    assert set(services["gateway"]["networks"]) == {"internal", "public"}


def test_depends_on_waits_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    gateway = services["gateway"]["depends_on"]
    assert set(gateway) == MODEL_SERVICES | {"postgres", "redis"}
    assert services["worker"]["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT_JOBS else "service_healthy"
            assert condition == {"condition": expected}, f"{name} → {dependency}"


def test_models_cache_and_settings_come_from_the_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in MODEL_SERVICES:
        volumes = services[name]["volumes"]
        assert "hf-cache:/cache/huggingface" in volumes and "${MEDIAMESH_MODELS_VOLUME:-models}:/models" in volumes
    assert services["blip2"]["environment"]["BLIP2_QUANTIZATION"] == "${BLIP2_QUANTIZATION:-8bit}"
    assert services["llm"]["environment"]["LLM_QUANTIZATION"] == "${LLM_QUANTIZATION:-4bit}"
    gateway = services["gateway"]["environment"]
    assert gateway["GATEWAY_BUDGET_BYTES"] == "${GATEWAY_BUDGET_BYTES:-6442450944}"  # the 6 GiB of the brief
    registry = json.loads(gateway["GATEWAY_SERVICES"])
    assert registry == {n: {"url": f"http://{n}:{SERVICES[n].port}", "kind": n} for n in SERVICES}
    for name in MODEL_SERVICES:
        assert services["models"]["environment"][f"MEDIAMESH_{name.upper()}_MODEL_ID"].startswith(
            f"${{{name.upper()}_MODEL_ID:-{SERVICES[name].hub_id}}}"[:-1])
    assert {"pgdata", "redisdata", "models", "hf-cache"} <= set(compose["volumes"])


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".cache", "tests"} <= ignored


def test_prometheus_config_scrapes_every_process() -> None:
    config = yaml.safe_load((REPO / "docs" / "prometheus.yml").read_text())
    targets = {label["service"]: target for job in config["scrape_configs"] for group in job["static_configs"]
               for target, label in [(group["targets"][0], group["labels"])]}
    expected = {name: f"127.0.0.1:{spec.port}" for name, spec in SERVICES.items()}
    expected |= {"gateway": "127.0.0.1:8000", "worker": f"127.0.0.1:{WorkerSettings().metrics_port}"}
    assert targets == expected
    assert all(job["metrics_path"] == "/metrics" for job in config["scrape_configs"])


GATEWAY_IMAGE_PROBE = """
import importlib.abc, sys
class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ("torch", "transformers", "ctranslate2", "faster_whisper") or (
                name.startswith("services.") and name != "shared.catalog"):
            raise ImportError(f"{name} is not installed in the gateway image")
        return None
sys.meta_path.insert(0, NotInTheImage())
import gateway.app, worker.runner, mediamesh.cli.main
gateway.app.create_app
"""


def test_the_gateway_image_runs_without_torch_or_service_code() -> None:
    """gateway/Dockerfile installs only the `gateway` extra and copies only shared/catalog.py."""
    result = subprocess.run([sys.executable, "-c", GATEWAY_IMAGE_PROBE], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dockerfile = (REPO / "gateway" / "Dockerfile").read_text()
    assert 'pip install -e ".[gateway]"' in dockerfile and "torch" not in dockerfile.split("FROM", 1)[1].lower()

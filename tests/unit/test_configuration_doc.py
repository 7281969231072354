"""docs/configuration.md names every environment variable the settings classes read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.catalog import SERVICES
from tests.support.processes import REPO
from tests.support.settings_reference import BASE_CLASSES, SETTINGS, all_env_names, load


def test_every_settings_class_is_covered() -> None:
    """A new settings class in the tree (any BaseSettings descendant) must be in the reference and so in the doc."""
    bases: dict[str, set[str]] = {}
    for folder in ("shared", "services", "storage", "gateway", "worker", "mediamesh"):
        for source in (REPO / folder).rglob("*.py"):
            for name, base in re.findall(r"^class (\w+)\((\w+)\)", source.read_text(), re.M):
                bases.setdefault(name, set()).add(base)
    settings, grew = {"BaseSettings"}, True
    while grew:
        found = {name for name, parents in bases.items() if parents & settings}
        grew, settings = not found <= settings, settings | found
    listed = {path.split(":")[1] for _, path in SETTINGS}
    only_bases = {"BaseSettings", "ServiceSettings", *BASE_CLASSES}  # never read on their own
    assert settings - only_bases <= listed, sorted(settings - only_bases - listed)


def test_every_variable_is_documented() -> None:
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (REPO / "docs" / "configuration.md").read_text()))
    missing = sorted(all_env_names() - documented)
    assert not missing, f"add to docs/configuration.md (python -m tests.support.settings_reference): {missing}"


def test_the_readme_names_every_variable() -> None:
    readme = (REPO / "README.md").read_text()
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    for prefix in (spec.env_prefix for spec in SERVICES.values()):  # the kit's shared ones, written `<P>NAME`
        named |= {prefix + name for name in re.findall(r"`<P>([A-Z0-9_]+)`", readme)}
    missing = sorted(all_env_names() - named)
    assert not missing, f"add to the README's configuration table: {missing}"


def test_the_readme_keeps_the_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make up      # install into .venv" in readme and "make test    # install the dev extras" in readme


def test_every_variable_is_read_in_one_place() -> None:
    """Two classes binding one variable drift apart; shared variables live in shared/config.py's models."""
    from tests.support.settings_reference import rows

    readers: dict[str, list[str]] = {}
    for _, path in SETTINGS:
        for name, _, _ in rows(load(path)):
            readers.setdefault(name, []).append(path)
    assert {name: paths for name, paths in readers.items() if len(paths) > 1} == {}


def test_the_command_reads_the_shared_unprefixed_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mediamesh.settings import CommandSettings

    monkeypatch.setenv("MEDIAMESH_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/mesh")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("GATEWAY_URL", "http://gw:9000")
    settings = CommandSettings()
    assert settings.home.home == tmp_path and settings.gateway.url == "http://gw:9000"
    assert (settings.connections.database_url, settings.connections.redis_url) == (
        "postgresql://db/mesh", "redis://cache:6379/0")


def test_the_gateway_and_the_worker_share_one_connection_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import GatewaySettings
    from worker.settings import WorkerSettings

    monkeypatch.setenv("MEDIAMESH_MEDIA_DIR", "/srv/media")
    monkeypatch.setenv("MEDIAMESH_QUEUE", "mesh:test")
    monkeypatch.setenv("GATEWAY_API_KEY", "s3cret")
    gateway, worker = GatewaySettings(), WorkerSettings()
    assert gateway.connections == worker.connections
    assert worker.connections.resolved_media_dir() == Path("/srv/media")
    assert worker.connections.queue_name == "mesh:test"
    assert gateway.api_key is not None and gateway.api_key.get_secret_value() == "s3cret"
    assert worker.gateway.auth_headers() == {"Authorization": "Bearer s3cret"}


def test_the_readme_names_no_variable_that_does_not_exist() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    named = {name for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", table) if not name.endswith("_")}  # not prefixes
    for prefix in ("CNN_", "CLIP_", "BLIP2_", "WHISPER_", "LLM_", "DETECTOR_"):
        named |= {prefix + name for name in re.findall(r"`<P>([A-Z0-9_]+)`", table)}
    doc = (REPO / "docs" / "configuration.md").read_text()
    compose_only = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", doc.split("## Docker compose only", 1)[1]))
    read_by_libraries = {"HF_TOKEN"}  # huggingface_hub reads it itself
    stale = sorted(named - all_env_names() - compose_only - read_by_libraries)
    assert not stale, f"the README names variables nothing reads: {stale}"

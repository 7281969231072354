"""`mediamesh up`: start the whole mesh as local processes; Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mediamesh.launcher.children import run_until_stopped
from mediamesh.launcher.infra import Infrastructure, InfrastructureUnavailable
from mediamesh.launcher.plan import MeshPlan, PlanOptions, plan_mesh
from mediamesh.launcher.ports import PortsInUse, check_ports
from mediamesh.launcher.supervisor import StopFlag, Supervisor
from mediamesh.settings import CommandSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
console = Console()

OnlyOption = Annotated[list[str] | None, typer.Option(
    "--only", help="Start only these model services, comma-separated (e.g. cnn,clip).")]
PortOption = Annotated[list[str] | None, typer.Option(
    "--port", help="Override a port: NAME=PORT (gateway, cnn, clip, blip2, whisper, llm, detector); repeatable.")]


def up(
    only: OnlyOption = None,
    port: PortOption = None,
    home: Annotated[Path | None, typer.Option(help="State folder; default MEDIAMESH_HOME or ~/.mediamesh.")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on; default 127.0.0.1.")] = None,
    worker: Annotated[bool, typer.Option(help="Start the ingest worker.")] = True,
    gateway_: Annotated[bool, typer.Option("--gateway/--no-gateway", help="Start the gateway.")] = True,
    wait: Annotated[float | None, typer.Option(help="Seconds to wait for every process to be up.")] = None,
) -> None:
    """Start Postgres, Redis, the model services, the gateway and the worker; Ctrl-C stops them all."""
    settings = CommandSettings()
    state_home = (home or settings.home.home).expanduser().resolve()
    listen = host or settings.launcher.host
    try:
        plan = plan_mesh(PlanOptions(home=state_home, host=listen, only=_split(only), gateway=gateway_,
                                     worker=worker, ports=_parse_ports(port)))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if not plan.processes:
        console.print("[red]nothing to start[/]: none of the requested processes is in this tree")
        raise typer.Exit(1)
    try:
        check_ports(listen, plan.ports())
    except PortsInUse as exc:
        console.print(f"[red]{exc}[/]", markup=True, highlight=False)
        raise typer.Exit(1) from None
    raise typer.Exit(_run(plan, settings, state_home, listen, wait or settings.launcher.health_timeout_s))


def _run(plan: MeshPlan, settings: CommandSettings, home: Path, host: str, wait_s: float) -> int:
    """Everything from here on stops cleanly on Ctrl-C / SIGTERM / SIGHUP, whenever it arrives.

    The signal handlers only raise a flag that the loops check: an exception thrown from a handler
    could land between fork and bookkeeping inside Popen and leave an untracked child running.
    """
    stop = StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    infra = Infrastructure(home, settings.connections.database_url, settings.connections.redis_url)
    supervisor: Supervisor | None = None
    try:
        if not _ensure_models(plan, home / "models", home / "logs", stop):
            return 0 if stop.requested else 1
        env = _child_env({"MEDIAMESH_HOME": str(home)})
        if plan.needs_infrastructure and not stop.requested:
            env.update(_start_infrastructure(infra))
        if not stop.requested:
            supervisor = Supervisor(plan, host=host, log_dir=home / "logs", env=env, cwd=PROJECT_ROOT,
                                    console=console, max_restarts=settings.launcher.max_restarts,
                                    stop_timeout_s=settings.launcher.stop_timeout_s, should_stop=lambda: stop.requested)
            _supervise(supervisor, home, wait_s)
    except InfrastructureUnavailable as exc:
        console.print(f"[red]{exc}[/]")
        return 0 if stop.requested else 1
    finally:
        console.print(f"\nstopping ({stop.signal_name or 'error'})…")
        if supervisor is not None:
            supervisor.stop()
        for error in infra.stop():
            console.print(f"[red]{error}[/]")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("mediamesh stopped; no process left running.")
    return 0


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.setdefault("HF_HUB_OFFLINE", "1")  # models are built or loaded from MEDIAMESH_HOME/models, never the hub
    return env


def _start_infrastructure(infra: Infrastructure) -> dict[str, str]:
    with console.status("starting Postgres and Redis…"):
        env = infra.start()
    for name, where in infra.describe():
        console.print(f"{name}: {where}")
    return env


def _supervise(supervisor: Supervisor, home: Path, wait_s: float) -> None:
    supervisor.start_all()
    all_up = supervisor.wait_until_up(wait_s)
    if not supervisor.should_stop():
        gateway = next((c.spec.base_url(supervisor.host) for c in supervisor.children if c.name == "gateway"), None)
        _announce(all_up, home, wait_s, gateway)
        supervisor.supervise()


def _announce(all_up: bool, home: Path, wait_s: float, gateway_url: str | None) -> None:
    if all_up:
        console.print("[bold green]mediamesh is up.[/]" + (f" Gateway: {gateway_url}" if gateway_url else ""))
    else:
        console.print(f"[yellow]not everything is up after {wait_s:.0f}s[/]; the launcher keeps trying "
                      "and restarts what dies.")
    console.print(f"Logs: {home / 'logs'}   Health: mediamesh health   Press Ctrl-C to stop everything.")


def _ensure_models(plan: MeshPlan, models: Path, log_dir: Path, stop: StopFlag) -> bool:
    """Build the tiny offline models of the services about to start that have no model yet.

    In a child process: the launcher itself never imports torch, and the builders' chatter goes to a log.
    False if the build failed or was interrupted.
    """
    missing = [p.name for p in plan.processes
               if p.name not in ("gateway", "worker") and not _has_model(models / p.name)]
    buildable = [name for name in missing if _has_tiny_builder(name)]
    for name in sorted(set(missing) - set(buildable)):
        console.print(f"[yellow]{name}: no model in {models / name} and no tiny builder; it will start unloaded[/]")
    if not buildable:
        return True
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "models-tiny.log"
    argv = [sys.executable, "-c", "from mediamesh.cli.main import app; app()", "models", "tiny", "--dest", str(models)]
    argv += [arg for name in buildable for arg in ("--only", name)]
    with console.status(f"no models yet: building tiny offline models for {', '.join(buildable)} (log: {log})…"):
        code = run_until_stopped(argv, log, PROJECT_ROOT, _child_env({}), lambda: stop.requested)
    if code != 0:
        if not stop.requested:
            console.print(f"[red]building the tiny models failed (exit {code}); see {log}[/]")
        return False
    for name in buildable:
        console.print(f"built tiny (random-weight) model {name} in {models / name}; "
                      "`mediamesh models pull` gets the real one")
    return True


def _has_model(folder: Path) -> bool:
    return folder.exists() and (folder.is_file() or any(folder.iterdir()))


def _has_tiny_builder(name: str) -> bool:
    return (PROJECT_ROOT / "services" / name / "tiny.py").is_file()


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _parse_ports(values: list[str] | None) -> dict[str, int]:
    ports = {}
    for value in values or []:
        name, sep, number = value.partition("=")
        if not sep or not number.isdigit() or not 0 < int(number) < 65536:
            raise typer.BadParameter(f"--port {value!r}: expected NAME=PORT, e.g. --port gateway=18000")
        ports[name.strip()] = int(number)
    return ports

"""`mediamesh health`: the gateway's `/v1/health` as a table; the exit code says ok (0), degraded (1), down (2)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mediamesh.settings import CommandSettings
from shared.client import GatewayClient, GatewayError
from shared.schemas.gateway import HealthReport

EXIT_CODES = {"ok": 0, "degraded": 1, "down": 2}
STATUS_STYLE = {"ok": "green", "up": "green", "degraded": "yellow", "down": "red"}
console = Console()


def health(
    url: Annotated[str | None, typer.Option(help="Gateway URL; default GATEWAY_URL or http://127.0.0.1:8000.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the gateway.")] = 10.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the raw JSON report.")] = False,
) -> None:
    """Show the health of every service, Postgres and Redis; exit 0 ok, 1 degraded, 2 down/unreachable."""
    with CommandSettings().gateway_client(url, timeout) as client:
        try:
            started = time.perf_counter()
            report = client.health()  # a degraded or down gateway answers 503 with the same body
            latency_ms = (time.perf_counter() - started) * 1000
        except GatewayError as exc:
            console.print(f"[red]down[/]: cannot get a health report from {client.base_url}/v1/health ({exc}). "
                          "Is the mesh running? Start it with `mediamesh up`.")
            raise typer.Exit(2) from None
        memory = _fetch_memory(client)
    if json_output:
        console.print_json(report.model_dump_json())
    else:
        console.print(render(report, memory, latency_ms))
    raise typer.Exit(EXIT_CODES[report.status])


def _fetch_memory(client: GatewayClient) -> dict[str, int]:
    """Bytes each model holds in the budget, from `/v1/models`; empty if the gateway cannot say."""
    try:
        report = client.models()
    except GatewayError:
        return {}
    return {m.id: m.reserved_bytes or (m.footprint_bytes or 0) for m in report.data}


def render(report: HealthReport, memory: dict[str, int], latency_ms: float) -> Table:
    style = STATUS_STYLE[report.status]
    table = Table("name", "kind", "state", "model", "memory", "latency", "detail",
                  title=f"mediamesh: [{style}]{report.status}[/] (gateway answered in {latency_ms:.0f} ms)")
    for service in report.services:
        latency = getattr(service, "latency_ms", None)
        table.add_row(service.name, service.kind, _styled(service.status), service.model_state or "-",
                      _bytes(memory.get(service.name)), "-" if latency is None else f"{latency:.0f} ms",
                      service.error or service.url)
    for dep in report.dependencies:
        latency = "-" if dep.latency_ms is None else f"{dep.latency_ms:.0f} ms"
        table.add_row(dep.name, "dependency", _styled(dep.status), "-", "-", latency, dep.detail or "")
    if report.warnings:  # degraded though everything is up: the watchdog, the GPU reconciliation
        table.caption = "\n".join(f"[yellow]warning:[/] {warning}" for warning in report.warnings)
    return table


def _styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _bytes(value: int | None) -> str:
    if not value:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:,.1f} {unit}" if unit == "GiB" else f"{value / size:,.0f} {unit}"
    return f"{value} B"

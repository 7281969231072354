"""`mediamesh health` shows why the mesh is degraded when every service is up (watchdog, GPU reconciliation)."""

from __future__ import annotations

import io

from rich.console import Console

from mediamesh.cli.health import render
from shared.schemas.gateway import HealthReport, ServiceHealth


def test_the_table_shows_the_reports_warnings() -> None:
    warning = "service 'llm' has 1 inference(s) running past its limit (the longest for 95s); its memory stays counted"
    report = HealthReport(status="degraded", warnings=[warning], services=[
        ServiceHealth(name="llm", kind="llm", url="http://127.0.0.1:8003", status="up", model_state="loaded",
                      overdue=1)])
    out = io.StringIO()
    Console(file=out, width=400).print(render(report, {}, 3.0))
    shown = " ".join(out.getvalue().split())  # the caption wraps at the table's width
    assert "mediamesh: degraded" in shown and f"warning: {warning}" in shown

"""`mediamesh reembed`: move every embedded item into the space of the clip model now running (a
gateway job, `POST /v1/reembed`), following its progress. Run it after changing the clip model (e.g.
`mediamesh models pull`): until it completes, search answers similar-item queries from the previous
complete space and says so."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from mediamesh.cli.ingest import UrlOption
from mediamesh.settings import CommandSettings
from shared.client import GatewayClient, GatewayError

console = Console()
FINAL = ("done", "failed", "cancelled")


def reembed(
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to follow it with --wait.")] = 24 * 3600.0,
    url: UrlOption = None,
) -> None:
    """Re-embed every item with the clip service's current model (resumable; one job at a time)."""
    with CommandSettings().gateway_client(url, 60.0) as client:
        try:
            accepted = client.request("POST", "/v1/reembed")
        except GatewayError as exc:
            console.print(f"[red]{exc.reason}[/red]")
            raise typer.Exit(2) from exc
        job_id = accepted["job_id"]
        verb = "already running" if accepted["already_running"] else "queued"
        console.print(f"re-embed {verb}: job {job_id} (GET /v1/jobs/{job_id})")
        if not wait:
            return
        job = _follow(client, job_id, timeout)
    result = job.get("result") or {}
    if job["state"] != "done":
        console.print(f"[red]re-embed {job['state']}[/red]: {job.get('error') or 'still running'}")
        raise typer.Exit(1)
    space = result.get("space")
    if space is None:
        console.print("nothing to re-embed: no item has an embedding yet")
        return
    console.print(f"{result['items']} of {result['embedded']} items are in {space['model']} "
                  f"({space['dim']}-d); search uses it now")
    for media_id, why in (result.get("failed") or {}).items():
        console.print(f"[yellow]not re-embedded[/yellow] {media_id}: {why}")


def _follow(client: GatewayClient, job_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("re-embedding", total=1.0)
        while True:
            job = client.job(job_id)
            progress.update(task, completed=job["progress"], description=job.get("stage") or job["state"])
            if job["state"] in FINAL or time.monotonic() > deadline:
                return job
            time.sleep(1.0)

"""`mediamesh ingest PATH…` (files and folders; skips what is stored; optionally waits for the jobs)
and `mediamesh search "…"` (a table of results). Both talk to the gateway's HTTP API."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mediamesh.settings import CommandSettings
from shared.client import GatewayClient, GatewayError, GatewayNoAnswer

console = Console()
UrlOption = Annotated[str | None, typer.Option("--url", help="Gateway URL; default GATEWAY_URL or :8000.")]


def _client(url: str | None, timeout: float = 120.0) -> GatewayClient:
    return CommandSettings().gateway_client(url, timeout)


def collect_files(paths: list[Path]) -> list[Path]:
    """Files as given, folders walked recursively (hidden files and folders skipped), each once, sorted."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                if item.is_file() and not any(p.startswith(".") for p in item.relative_to(path).parts):
                    found[item.resolve()] = None
        elif path.is_file():
            found[path.resolve()] = None
        else:
            raise typer.BadParameter(f"{path} does not exist")
    return list(found)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def _upload_all(client: GatewayClient, files: list[Path]) -> tuple[dict[str, str], int, list[tuple[Path, str]]]:
    """Upload what is not stored yet; the gateway not answering stops it (GatewayUnreachable)."""
    jobs: dict[str, str] = {}
    skipped, rejected = 0, []
    with _progress() as progress:
        task = progress.add_task("uploading", total=len(files))
        for path in files:
            try:
                if client.media_by_sha256(_sha256(path)) is not None:
                    skipped += 1
                else:
                    with path.open("rb") as handle:
                        jobs[client.upload_media(path.name, handle)["job_id"]] = str(path)
            except GatewayNoAnswer:
                raise
            except GatewayError as exc:
                rejected.append((path, f"{exc.status_code}: {exc.detail}"))
            progress.advance(task)
    return jobs, skipped, rejected


def _wait_all(client: GatewayClient, jobs: dict[str, str], timeout_s: float) -> dict[str, dict]:
    final: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    with _progress() as progress:
        task = progress.add_task("processing", total=len(jobs))
        while len(final) < len(jobs) and time.monotonic() < deadline:
            for job_id in [j for j in jobs if j not in final]:
                job = client.job(job_id)
                if job["state"] in ("done", "failed"):
                    final[job_id] = job
                    progress.advance(task)
            time.sleep(0.5)
    return final


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (walked recursively).")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until every job is done or failed.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the jobs with --wait.")] = 3600.0,
    url: UrlOption = None,
) -> None:
    """Upload images, audio, video and JSON; what is already stored (same sha256) is skipped."""
    files = collect_files(paths)
    with _client(url) as client:
        try:
            jobs, skipped, rejected = _upload_all(client, files)
        except GatewayError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        for path, reason in rejected:
            console.print(f"[yellow]rejected[/yellow] {path}: {reason}")
        console.print(f"{len(jobs)} queued, {skipped} already stored, {len(rejected)} rejected")
        if wait and jobs:
            final = _wait_all(client, jobs, timeout)
            failed = [job for job in final.values() if job["state"] == "failed"]
            degraded = [job for job in final.values() if (job.get("result") or {}).get("status") == "degraded"]
            for job in failed:
                console.print(f"[red]failed[/red] {jobs[job['id']]}: {job['error']}")
            console.print(f"{len(final) - len(failed)} done ({len(degraded)} degraded), {len(failed)} failed, "
                          f"{len(jobs) - len(final)} still running")
            if failed or len(final) < len(jobs):
                raise typer.Exit(1)
    if rejected:
        raise typer.Exit(1)


def search(
    query: Annotated[str, typer.Argument(help="What to look for, in words.")],
    kind: Annotated[str | None, typer.Option(help="image | audio | video | json")] = None,
    label: Annotated[str | None, typer.Option(help="Only items the cascade gave this label.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 10,
    url: UrlOption = None,
) -> None:
    """Search by meaning (CLIP) and by words (transcripts, captions); print a table."""
    with _client(url, timeout=60.0) as client:
        try:
            answer = client.search(q=query, kind=kind, label=label, limit=limit)
        except GatewayNoAnswer as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        except GatewayError as exc:
            console.print(f"[red]{exc.status_code}: {exc.detail}[/red]")
            raise typer.Exit(1) from exc
    table = Table(title=f"search: {query}")
    for column in ("#", "score", "match", "kind", "label", "media id", "snippet"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(answer["results"], start=1):
        snippet = (hit.get("snippet") or "").replace("<b>", "[bold]").replace("</b>", "[/bold]")
        if hit.get("start_s") is not None:  # a transcript match: where its segment starts
            snippet = f"@{hit['start_s']:.1f}s {snippet}"
        table.add_row(str(rank), f"{hit['score']:.3f}", hit["match"], hit["kind"], hit.get("label") or "",
                      hit["media_id"], snippet)
    console.print(table)
    for reason in answer.get("degraded", []):
        console.print(f"[yellow]degraded:[/yellow] {reason}")

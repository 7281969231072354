"""`mediamesh calibrate FOLDER --target "recall:pit>=0.99" --target "escalation<=0.30"`.

FOLDER holds one sub-folder per label. Every image runs once through the running gateway's
cascade with every stage (`mode=always`); the recorded stage scores are replayed through the
configured cascade (mediamesh/calibration.py) to fit the stages' temperatures and search the
routing thresholds and the decision policy on one split; the held-out split confirms the
choice. The curves are printed and saved (and drawn, with `--plot`); `--apply` puts the whole variant to the gateway.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from mediamesh.calibration import Point, Record, Target, Tuned, measure, split, tune
from mediamesh.cli.plot import plot
from mediamesh.settings import CommandSettings
from shared.cascade.config import CascadeVariant
from shared.client import GatewayClient, GatewayError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"}
console = Console()


def labelled_images(folder: Path) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder; give one sub-folder of images per label")
    found = [(d.name, f) for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
             for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise typer.BadParameter(f"no images under {folder}/<label>/ (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def collect(client: GatewayClient, images: list[tuple[str, Path]], variant: str, stages: int) -> list[Record]:
    """One `mode=always` pass: every stage's raw scores per image (a failed stage records none)."""
    records = []
    for label, path in track(images, description="classifying", console=console):
        answer = client.classify_file(path.read_bytes(), path.name, mode="always", variant=variant)
        raw = [{s.label: s.score for s in stage.top_k} if stage.status == "ok" else {}
               for stage in answer.trace.stages]
        records.append(Record(label, raw + [{}] * (stages - len(raw)), answer.trace.stages[0].entropy))
    return records


def frontier(points: list[Point], cost: str, gain: str) -> list[Point]:
    """The points no other beats on both: less `cost` and more `gain` (recall of the target label
    when `gain` is `recall:LABEL`)."""
    def value(p: Point, name: str) -> float:
        return p.recall.get(name[7:], 0.0) if name.startswith("recall:") else p.value(name)
    best: dict[float, Point] = {}
    for p in points:
        key = round(value(p, cost), 6)
        if key not in best or value(p, gain) > value(best[key], gain):
            best[key] = p
    kept, top = [], -1.0
    for key in sorted(best):
        if value(best[key], gain) > top:
            kept.append(best[key])
            top = value(best[key], gain)
    return kept


def show(title: str, points: list[Point], chosen: Point | None) -> None:
    if not points:
        return
    labels = sorted(points[0].recall)[:6]
    table = Table("settings", "accuracy", "escalated", "review", "calls/image",
                  *(f"recall {la}" for la in labels), title=title)
    for p in points:
        style = "bold green" if chosen is not None and p.settings.items() <= chosen.settings.items() else None
        table.add_row(json.dumps(p.settings), f"{p.accuracy:.3f}", f"{p.escalation:.3f}", f"{p.review:.3f}",
                      " + ".join(f"{c:.2f}" for c in p.calls), *(f"{p.recall[la]:.3f}" for la in labels), style=style)
    console.print(table)


def draw(path: Path, tuned: Tuned, gain: str) -> Path:
    def y(p: Point) -> float:
        return p.recall.get(gain[7:], 0.0) if gain.startswith("recall:") else p.accuracy
    chosen = tuned.chosen
    return plot(path, [(p.escalation, p.accuracy) for p in frontier(tuned.routing, "escalation", "accuracy")],
                [(p.review, y(p)) for p in frontier(tuned.decision, "review", gain)],
                (chosen.escalation, chosen.accuracy) if chosen else None,
                (chosen.review, y(chosen)) if chosen and tuned.decision else None, gain)


def save(tuned: Tuned, targets: list[Target], checks: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "curve.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["curve", "settings", "accuracy", "escalation", "review", "calls", "recall"])
        for name, points in (("routing", tuned.routing), ("decision", tuned.decision)):
            for p in points:
                writer.writerow([name, json.dumps(p.settings), p.accuracy, p.escalation, p.review,
                                 json.dumps(p.calls), json.dumps(p.recall)])
    result = {"targets": [str(t) for t in targets], "temperatures": tuned.temperatures,
              "chosen": asdict(tuned.chosen) if tuned.chosen else None,
              "variant": tuned.variant.model_dump(mode="json") if tuned.variant else None, **checks}
    (out / "calibration.json").write_text(json.dumps(result, indent=2))


def check(variant: CascadeVariant, records: list[Record], targets: list[Target]) -> dict[str, Any]:
    point = measure(variant, records, {})
    return {"images": len(records), "met": all(t.met(point) for t in targets), **asdict(point)}


def report(name: str, result: dict[str, Any]) -> None:
    colour = "green" if result["met"] else "red"
    console.print(f"{name}: {result['images']} images, accuracy {result['accuracy']:.3f}, "
                  f"escalated {result['escalation']:.1%}, review {result['review']:.1%}, "
                  f"recall {result['recall']} — [{colour}]targets {'met' if result['met'] else 'missed'}[/]")


def calibrate(
    folder: Annotated[Path, typer.Argument(help="One sub-folder of images per label.")],
    target: Annotated[list[str], typer.Option(help='e.g. "recall:pit>=0.99", "escalation<=0.30", "review<=0.05".')],
    variant: Annotated[str | None, typer.Option(help="Cascade variant to calibrate; default the first.")] = None,
    holdout: Annotated[float, typer.Option(help="Share of each label's images held out to confirm.")] = 0.3,
    steps: Annotated[int, typer.Option(min=2, max=100, help="Threshold grid steps (0.05 at 20).")] = 20,
    out: Annotated[Path, typer.Option(help="Where curve.csv and calibration.json go.")] = Path("calibration"),
    apply_it: Annotated[bool, typer.Option("--apply", help="PUT the calibrated variant to the gateway.")] = False,
    url: Annotated[str | None, typer.Option(help="Gateway URL; default GATEWAY_URL or :8000.")] = None,
    plot_to: Annotated[Path | None, typer.Option("--plot", help="Also draw the curves to this PNG.")] = None,
) -> None:
    """Fit temperatures, routing thresholds and the decision policy for targets on labelled images."""
    try:
        targets = [Target.parse(t) for t in target]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    images = labelled_images(folder)
    with CommandSettings().gateway_client(url) as client:
        try:
            _run(client, images, targets, variant, holdout, steps, out, apply_it, plot_to)
        except GatewayError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from exc


def _run(client: GatewayClient, images: list[tuple[str, Path]], targets: list[Target], variant: str | None,
         holdout: float, steps: int, out: Path, apply_it: bool, plot_to: Path | None) -> None:
    config = client.cascade_config()
    name = variant or next(iter(config["variants"]))
    if name not in config["variants"]:
        raise typer.BadParameter(f"unknown variant '{name}'; variants: {sorted(config['variants'])}")
    current = CascadeVariant.model_validate(config["variants"][name])
    tune_on, held = split(collect(client, images, name, len(current.stages)), holdout)
    if not held or not tune_on:
        raise typer.BadParameter(f"{len(images)} images cannot be split {1 - holdout:.0%}/{holdout:.0%}; add images")
    tuned = tune(current, tune_on, targets, steps)
    show("routing: accuracy vs escalation (temperatures fitted)", frontier(tuned.routing, "escalation", "accuracy"),
         tuned.chosen)
    gain = next((f"recall:{t.label}" for t in targets if t.metric == "recall"), "accuracy")
    show(f"decision: {gain} vs review", frontier(tuned.decision, "review", gain), tuned.chosen)
    if plot_to is not None:
        console.print(f"plotted {draw(plot_to, tuned, gain)}")
    if tuned.variant is None:
        save(tuned, targets, {}, out)
        console.print(f"[red]no setting meets {', '.join(map(str, targets))} on the tuning split[/]")
        raise typer.Exit(1)
    checks = {"tuned_on": check(tuned.variant, tune_on, targets), "held_out": check(tuned.variant, held, targets)}
    save(tuned, targets, checks, out)
    console.print(f"temperatures {tuned.temperatures}; saved {out / 'curve.csv'} and {out / 'calibration.json'}")
    report("tuned on", checks["tuned_on"])
    report("held out", checks["held_out"])
    if not checks["held_out"]["met"]:
        console.print("[red]the held-out split does not confirm the targets; not applied[/]")
        raise typer.Exit(1)
    if apply_it:
        config["variants"][name] = tuned.variant.model_dump(mode="json")
        client.put_cascade_config(config)
        console.print(f"applied to variant '{name}'")

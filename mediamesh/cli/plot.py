"""The calibration trade-off curves as a PNG, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

PANEL, MARGIN = 360, 48
Series = list[tuple[float, float]]


def _panel(draw: ImageDraw.ImageDraw, left: int, title: str, axes: tuple[str, str], points: Series,
           chosen: tuple[float, float] | None) -> None:
    """One panel: x and y in [0, 1], the frontier as a line, the chosen point in green."""
    x0, y0, size = left + MARGIN, MARGIN, PANEL - 2 * MARGIN
    draw.rectangle([x0, y0, x0 + size, y0 + size], outline="black")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        draw.text((x0 + tick * size - 8, y0 + size + 4), f"{tick:g}", fill="black")
        draw.text((x0 - 28, y0 + (1 - tick) * size - 6), f"{tick:g}", fill="black")
    draw.text((x0, 16), title, fill="black")
    draw.text((x0 + size // 2 - 30, y0 + size + 18), axes[0], fill="black")
    draw.text((left + 4, y0 - 16), axes[1], fill="black")

    def at(x: float, y: float) -> tuple[float, float]:
        return x0 + x * size, y0 + (1 - y) * size

    line = [at(x, y) for x, y in sorted(points)]
    if len(line) > 1:
        draw.line(line, fill="navy", width=2)
    for px, py in line:
        draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill="navy")
    if chosen is not None:
        cx, cy = at(*chosen)
        draw.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], outline="green", width=3)


def plot(path: Path, routing: Series, decision: Series, chosen_routing: tuple[float, float] | None,
         chosen_decision: tuple[float, float] | None, gain: str) -> Path:
    """routing: (escalation, accuracy) points; decision: (review, gain) points."""
    image = Image.new("RGB", (2 * PANEL, PANEL), "white")
    draw = ImageDraw.Draw(image)
    _panel(draw, 0, "routing", ("escalated", "accuracy"), routing, chosen_routing)
    _panel(draw, PANEL, "decision", ("review", gain), decision, chosen_decision)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG")
    return path

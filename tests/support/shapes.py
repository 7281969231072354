"""A labelled folder of coloured shapes for `mediamesh train-head`: separable by colour and form, with
random size, place, background and a little colour noise, so no two images are alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = {"red_circle": ((220, 40, 40), "circle"), "blue_square": ((40, 60, 220), "square"),
          "green_triangle": ((40, 190, 60), "triangle")}


def draw(colour: tuple[int, int, int], form: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(0, 80, 3))
    image = Image.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    side = int(rng.integers(size // 3, size * 2 // 3))
    x, y = (int(v) for v in rng.integers(0, size - side, 2))
    fill = tuple(int(np.clip(v + rng.integers(-30, 30), 0, 255)) for v in colour)
    if form == "circle":
        pen.ellipse([x, y, x + side, y + side], fill=fill)
    elif form == "square":
        pen.rectangle([x, y, x + side, y + side], fill=fill)
    else:
        pen.polygon([(x, y + side), (x + side, y + side), (x + side // 2, y)], fill=fill)
    return image


def shape_folder(root: Path, per_label: dict[str, int], seed: int = 0) -> Path:
    """root/<label>/<n>.png for each label of SHAPES, `per_label[label]` images each."""
    rng = np.random.default_rng(seed)
    for label, count in per_label.items():
        colour, form = SHAPES[label]
        (root / label).mkdir(parents=True, exist_ok=True)
        for n in range(count):
            draw(colour, form, rng).save(root / label / f"{n:03d}.png")
    return root

"""Labels and preprocessing of a classifier, read from `mediamesh.json` beside its weights.

Falls back to a Hugging Face folder's `config.json` (id2label) and `preprocessor_config.json`.
Preprocessing is PIL + numpy (no torchvision); getting it right (ImageNet mean/std versus raw
0-255 input) is what makes a fine-tuned CNN accurate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CONFIG_FILE = "mediamesh.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Resize (shortest edge, or warp to a square), centre-crop, scale and normalise to CHW float32."""

    image_size: int = 224
    resize_shortest: int | None = 256
    scale: float = 1 / 255
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resample: int = Image.Resampling.BILINEAR

    def __call__(self, image: Image.Image) -> np.ndarray:
        image = image.convert("RGB")
        if self.resize_shortest is None:
            image = image.resize((self.image_size, self.image_size), self.resample)
        else:
            image = _centre_crop(_resize_shortest(image, self.resize_shortest, self.resample), self.image_size)
        scaled = np.asarray(image, dtype=np.float32) * np.float32(self.scale)
        normalised = (scaled - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "resize_shortest": self.resize_shortest, "scale": self.scale,
                "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class ClassifierConfig:
    labels: list[str]
    preprocessing: Preprocessing
    files: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)  # file name → digest, checked on load


def _resize_shortest(image: Image.Image, shortest: int, resample: int) -> Image.Image:
    width, height = image.size
    ratio = shortest / min(width, height)
    return image.resize((max(1, round(width * ratio)), max(1, round(height * ratio))), resample)


def _centre_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width < size or height < size:
        image = image.resize((max(width, size), max(height, size)), Image.Resampling.BILINEAR)
        width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def normalisation(spec: str | dict[str, Any]) -> dict[str, Any]:
    """`imagenet`, `raw_0_255` (pixels as 0-255 floats), `unit` (0-1), or {"mean": [...], "std": [...]}."""
    match spec:
        case "imagenet":
            return {"scale": 1 / 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        case "raw_0_255":
            return {"scale": 1.0, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
        case "unit":
            return {"scale": 1 / 255, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
        case {"mean": list() as mean, "std": list() as std}:
            scale = spec.get("scale", 1 / 255) if isinstance(spec, dict) else 1 / 255
            return {"scale": float(scale), "mean": tuple(mean), "std": tuple(std)}
    raise ValueError(f"unknown normalization {spec!r}; use imagenet, raw_0_255, unit or {{mean, std}}")


def from_mediamesh(raw: dict[str, Any]) -> ClassifierConfig:
    labels = raw.get("labels")
    if not isinstance(labels, list) or not labels:
        raise ValueError(f"{CONFIG_FILE} needs a non-empty 'labels' list")
    size = int(raw.get("image_size", 224))
    resize = raw.get("resize_shortest", round(size / 0.875))
    preprocessing = Preprocessing(
        image_size=size, resize_shortest=None if resize is None else int(resize),
        resample=int(raw.get("resample", Image.Resampling.BILINEAR)),
        **normalisation(raw.get("normalization", "imagenet")),
    )
    return ClassifierConfig([str(label) for label in labels], preprocessing, dict(raw.get("files", {})),
                            dict(raw.get("sha256", {})))


def from_hf_processor(raw: dict[str, Any]) -> Preprocessing:
    """The common HF processors: ConvNext-style (size + crop_pct), CLIP/ViT-style (crop_size), plain resize."""
    size = raw.get("size", 224)
    crop = raw.get("crop_size")
    if isinstance(crop, dict) and raw.get("do_center_crop", True):
        image_size = int(crop.get("height", 224))
        resize: int | None = int(size.get("shortest_edge", image_size)) if isinstance(size, dict) else int(size)
    elif isinstance(size, dict) and "height" in size:
        image_size, resize = int(size["height"]), None
    else:
        image_size = int(size["shortest_edge"]) if isinstance(size, dict) else int(size)
        crop_pct = raw.get("crop_pct")
        resize = round(image_size / crop_pct) if crop_pct and image_size < 384 else None
    scale = float(raw.get("rescale_factor", 1 / 255)) if raw.get("do_rescale", True) else 1.0
    normalise = raw.get("do_normalize", True)
    mean = tuple(raw.get("image_mean", IMAGENET_MEAN)) if normalise else (0.0, 0.0, 0.0)
    std = tuple(raw.get("image_std", IMAGENET_STD)) if normalise else (1.0, 1.0, 1.0)
    return Preprocessing(image_size=image_size, resize_shortest=resize, scale=scale, mean=mean, std=std,
                         resample=int(raw.get("resample", Image.Resampling.BILINEAR)))


def load_classifier_config(folder: Path) -> ClassifierConfig:
    """`mediamesh.json` if present, else the HF `config.json` labels and `preprocessor_config.json`."""
    own = folder / CONFIG_FILE
    if own.exists():
        return from_mediamesh(json.loads(own.read_text()))
    hf_config = folder / "config.json"
    if not hf_config.exists():
        raise FileNotFoundError(
            f"no {CONFIG_FILE} or config.json in {folder}; write {CONFIG_FILE} with the labels and preprocessing"
        )
    id2label = json.loads(hf_config.read_text()).get("id2label") or {}
    labels = [str(id2label[key]) for key in sorted(id2label, key=int)]
    if not labels:
        raise ValueError(f"{hf_config} has no id2label; add a {CONFIG_FILE} with the labels")
    processor = folder / "preprocessor_config.json"
    preprocessing = from_hf_processor(json.loads(processor.read_text())) if processor.exists() else Preprocessing()
    return ClassifierConfig(labels, preprocessing)

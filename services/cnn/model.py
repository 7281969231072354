"""The cnn service's model: labels + preprocessing + one runtime; probabilities, top-k, entropy, margin."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from services.cnn.preprocessing import ClassifierConfig, load_classifier_config
from services.cnn.runtimes import ClassifierRuntime, open_runtime, resolve_weights
from services.cnn.settings import CnnSettings
from shared.kit.served_model import ServedModel
from shared.schemas.cnn import Classification
from shared.schemas.common import LabelScore


class CnnModel(ServedModel):
    settings: CnnSettings

    def __init__(self, settings: CnnSettings) -> None:
        super().__init__(settings)
        self.config: ClassifierConfig | None = None
        self.runtime: ClassifierRuntime | None = None
        self.weights: Path | None = None

    @property
    def folder(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent

    def load(self) -> None:
        if self.device.type == "cpu":
            torch.set_flush_denormal(True)  # denormal floats make CPU convolutions many times slower
        config = load_classifier_config(self.folder)
        fmt, weights = resolve_weights(self.path, self.settings.format, config.files)
        check_digest(weights, config.sha256)
        runtime = open_runtime(fmt, weights, self.device, self.dtype)
        size = config.preprocessing.image_size
        width = runtime.logits(np.zeros((1, 3, size, size), np.float32)).shape[-1]
        if width != len(config.labels):
            raise ValueError(f"{weights.name} gives {width} scores but the config lists {len(config.labels)} labels")
        self.config, self.runtime, self.weights = config, runtime, weights

    def unload(self) -> None:
        self.config = self.runtime = self.weights = None

    def modules(self) -> list[torch.nn.Module]:
        return self.runtime.modules() if self.runtime is not None else []

    def extra_bytes(self) -> int:
        return self.runtime.extra_bytes() if self.runtime is not None else 0

    def weight_files(self) -> list[Path]:
        """Only the weights of the format that will load, not every format in the folder."""
        try:
            files = load_classifier_config(self.folder).files
            fmt, weights = resolve_weights(self.path, self.settings.format, files)
        except (OSError, ValueError):
            return super().weight_files()
        if fmt == "hf":
            return sorted(f for f in weights.iterdir() if f.suffix in (".safetensors", ".bin"))
        return [weights]

    def estimate_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.weight_files())

    def describe(self) -> dict[str, Any]:
        if self.config is None or self.runtime is None:
            return {}
        return {"format": self.runtime.format, "weights": str(self.weights), "labels": self.config.labels,
                "preprocessing": self.config.preprocessing.describe(), "max_batch_size": self.settings.max_batch_size}

    @property
    def labels(self) -> list[str]:
        if self.config is None:
            raise RuntimeError("model is not loaded")
        return self.config.labels

    def preprocess(self, images: list[Image.Image]) -> list[np.ndarray]:
        if self.config is None:
            raise RuntimeError("model is not loaded")
        return [self.config.preprocessing(image) for image in images]

    def probabilities(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """One batch through the runtime → one probability vector per image (softmax in float64)."""
        if self.runtime is None:
            raise RuntimeError("model is not loaded")
        logits = self.runtime.logits(np.stack(arrays)).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return list(exp / exp.sum(axis=1, keepdims=True))


def check_digest(weights: Path, pinned: dict[str, str]) -> None:
    """A weights file `mediamesh.json` pins must have that sha256: a corrupt or swapped file is refused."""
    expected = pinned.get(weights.name)
    if expected is None:
        return
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ValueError(f"{weights.name} has sha256 {digest.hexdigest()}, but {weights.parent / 'mediamesh.json'} "
                         f"pins {expected}; rebuild the folder (python -m services.cnn.lite)")


def summarise(probs: np.ndarray, labels: list[str], top_k: int) -> Classification:
    """Top-k labels, Shannon entropy (nats) of the whole distribution, and top-1 minus top-2."""
    order = np.argsort(-probs, kind="stable")
    entropy = float(-(probs * np.log(np.clip(probs, 1e-300, None))).sum())
    margin = float(probs[order[0]] - probs[order[1]]) if len(order) > 1 else float(probs[order[0]])
    top = [LabelScore(label=labels[i], score=float(probs[i])) for i in order[:top_k]]
    return Classification(top_k=top, entropy=entropy, margin=margin)

"""The model services: ports, apps, the real model each pulls and the tiny one built offline.

The one place that names them; the launcher, the gateway's default registry, the models
command and the compose tests all read it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Marker files in a model folder: written by `mediamesh models tiny` / `models pull`, read by the services.
TINY_MARKER = "TINY_RANDOM_WEIGHTS"
HUB_MARKER = "HUB_MODEL"


def model_identity(folder: Path) -> str:
    """What a service reports as its model, so vectors of different models are never mixed up: the hub
    repository it was pulled from, `tiny-random/<folder>` for random test weights, else the folder's name."""
    if (folder / TINY_MARKER).exists():
        return f"tiny-random/{folder.name}"
    marker = folder / HUB_MARKER
    if marker.is_file():
        lines = marker.read_text().splitlines()
        if lines and lines[0].strip():
            return lines[0].strip()
    return folder.name


class TinyBuilder(Protocol):
    def __call__(self, dest: Path) -> Path: ...


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    hub_id: str
    description: str

    @property
    def app_factory(self) -> str:
        return f"services.{self.name}.app:create_app"

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"

    def tiny_builder(self) -> TinyBuilder:
        """`services/<name>/tiny.py: build(dest)`, imported only when asked (it needs torch)."""
        return importlib.import_module(f"services.{self.name}.tiny").build


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("blip2", 8001, "Salesforce/blip2-opt-2.7b", "captions, VQA, cluster names"),
        ServiceSpec("whisper", 8002, "Systran/faster-whisper-base", "speech to text"),
        ServiceSpec("llm", 8003, "microsoft/Phi-3.5-mini-instruct", "JSON analysis, cluster enrichment, chat"),
        ServiceSpec("cnn", 8004, "microsoft/resnet-50", "fast image classifier (your fine-tuned CNN)"),
        ServiceSpec("clip", 8005, "openai/clip-vit-base-patch32", "image/text embeddings, zero-shot"),
        ServiceSpec("detector", 8006, "PekingU/rtdetr_r18vd", "object boxes (RT-DETR; OWLv2 for text queries)"),
    )
}

GATEWAY_PORT = 8000

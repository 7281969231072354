"""The one class a model service implements: load, unload and what to measure."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch

from shared.catalog import TINY_MARKER, model_identity
from shared.config import ServiceSettings
from shared.kit.memory import (
    cuda_bytes,
    module_bytes,
    read_ahead,
    resolve_device,
    resolve_dtype,
    weight_file_bytes,
    weight_files,
)


class ServedModel(ABC):
    """A model behind the service kit.

    `load` and `unload` are blocking and run on the kit's inference thread; the kit
    guarantees they never overlap and that no task runs during `unload`.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.path: Path = settings.resolved_model_path()
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def unload(self) -> None:
        """Drop every reference to weights; the kit collects garbage and empties the CUDA cache."""

    def modules(self) -> list[torch.nn.Module]:
        """Torch modules whose parameters count as this model's memory on the CPU."""
        return []

    def extra_bytes(self) -> int:
        """Memory held outside torch modules (ONNX Runtime, CTranslate2): override where it applies."""
        return 0

    def measure_bytes(self) -> tuple[int, int]:
        """(bytes in use, bytes reserved): torch's allocator on CUDA, parameters and buffers on the CPU."""
        if self.device.type == "cuda":
            allocated, reserved = cuda_bytes(self.device)
            return allocated + self.extra_bytes(), reserved
        used = module_bytes(self.modules()) + self.extra_bytes()
        return used, used

    def estimate_bytes(self) -> int:
        return weight_file_bytes(self.path)

    def weight_files(self) -> list[Path]:
        """The files `load` reads; a folder holding several formats overrides this with the one it loads."""
        return weight_files(self.path)

    def read_weights_ahead(self) -> None:
        """Called by the kit just before `load`: one sequential read of the weight files."""
        read_ahead(self.weight_files())

    def is_tiny(self) -> bool:
        """Random-weight test models carry a marker file written by `mediamesh models tiny`."""
        folder = self.path if self.path.is_dir() else self.path.parent
        return (folder / TINY_MARKER).exists()

    def identity(self) -> str:
        """The model as answers name it (`shared.catalog.model_identity`): hub id, `tiny-random/…` or folder."""
        return model_identity(self.path if self.path.is_dir() else self.path.parent)

    @property
    def quantization(self) -> str:
        """What `/v1/model` reports: the service's quantization setting where it has one."""
        return str(getattr(self.settings, "quantization", "none"))

    def describe(self) -> dict[str, Any]:
        """Service-specific facts for `/v1/model` (`details`): labels, backend, embedding size..."""
        return {}

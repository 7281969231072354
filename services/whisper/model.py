"""The whisper service's ServedModel: picks a backend, loads it, measures it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import torch

from services.whisper.backends import (
    FasterWhisperBackend,
    OpenAIWhisperBackend,
    TranscriptionBackend,
)
from services.whisper.settings import WhisperSettings
from services.whisper.tiny import OPENAI_TINY_CHECKPOINT, REAL_WEIGHTS_MARKER
from shared.kit.served_model import ServedModel


class WhisperModel(ServedModel):
    settings: WhisperSettings

    def __init__(self, settings: WhisperSettings) -> None:
        super().__init__(settings)
        self.backend: TranscriptionBackend | None = None
        self._languages: frozenset[str] = frozenset()
        self._native_bytes = 0  # CTranslate2 memory, invisible to torch; measured at load

    @property
    def weights_file(self) -> Path:
        if self.settings.backend == "faster":
            return self.path / "model.bin"
        checkpoint = Path(self.settings.openai_checkpoint).expanduser()
        return checkpoint if checkpoint.is_absolute() else self.path / checkpoint

    def load(self) -> None:
        if not self.weights_file.is_file():
            raise FileNotFoundError(
                f"{self.weights_file} is missing; run `mediamesh models tiny --only whisper` (real base weights "
                "for faster-whisper, a tiny openai-whisper checkpoint) or set WHISPER_MODEL_PATH"
            )
        if self.settings.backend == "openai":
            self.backend = OpenAIWhisperBackend(self.weights_file, device=self.device, fp16=self.dtype == torch.float16)
        else:
            self.backend = self._load_faster()
        self._languages = self.backend.languages()

    def _load_faster(self) -> FasterWhisperBackend:
        import faster_whisper  # noqa: F401  (imported before measuring, so the library itself is not counted)

        before = self._native_memory()
        backend = FasterWhisperBackend(
            self.path, device=self.device.type, compute_type=self.settings.ct2_compute_type(self.device),
            cpu_threads=self.settings.cpu_threads,
        )
        measured = self._native_memory() - before
        # The C++ allocator keeps freed pages, so a reload can show almost no growth: never report less than
        # the first measurement, nor less than the weights themselves take in the chosen compute type.
        floor = self.weights_file.stat().st_size // (2 if "int8" in backend.compute_type else 1)
        self._native_bytes = max(measured, self._native_bytes, floor)
        return backend

    def _native_memory(self) -> int:
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            return total - free
        return psutil.Process().memory_info().rss

    def unload(self) -> None:
        self.backend = None

    def modules(self) -> list[torch.nn.Module]:
        return self.backend.modules() if self.backend is not None else []

    def extra_bytes(self) -> int:
        return self._native_bytes if isinstance(self.backend, FasterWhisperBackend) else 0

    def estimate_bytes(self) -> int:
        return self.weights_file.stat().st_size if self.weights_file.is_file() else 0

    def is_tiny(self) -> bool:
        """The faster-whisper base weights are real even in the folder `models tiny` marks; the .pt is not."""
        if self.settings.backend == "openai":
            return self.weights_file.name == OPENAI_TINY_CHECKPOINT or super().is_tiny()
        return not (self.path / REAL_WEIGHTS_MARKER).exists() and super().is_tiny()

    def require(self) -> TranscriptionBackend:
        if self.backend is None:
            raise RuntimeError("whisper backend used while unloaded")  # the lifecycle prevents this
        return self.backend

    def languages(self) -> frozenset[str]:
        return self._languages

    def label(self) -> str:
        """What answered, for the `model` field of responses: backend and weights."""
        if self.settings.backend == "openai":
            return f"openai-whisper:{self.weights_file.stem}"
        return f"faster-whisper:{self.path.name}"

    def describe(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "backend": self.backend.name if self.backend else self.settings.backend,
            "weights": str(self.weights_file),
            "beam_size": self.settings.beam_size,
            "languages": len(self._languages),
        }
        if isinstance(self.backend, FasterWhisperBackend):
            details["compute_type"] = self.backend.compute_type
        return details

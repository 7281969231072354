"""The three runtimes a classifier can come in, behind one small protocol (logits from a CHW batch).

transformers and onnxruntime are imported with the module (at process start), not in `load`, so
that a load's seconds are the weights' and not the libraries'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
import torch
from transformers import AutoModelForImageClassification

HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
TORCHSCRIPT_SUFFIXES = (".ts", ".pt", ".pth", ".torchscript")


class ClassifierRuntime(Protocol):
    format: str

    def logits(self, batch: np.ndarray) -> np.ndarray: ...

    def modules(self) -> list[torch.nn.Module]: ...

    def extra_bytes(self) -> int: ...


class TorchRuntime:
    """An HF image-classification model or a TorchScript module: both are torch modules."""

    def __init__(self, fmt: str, module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
        self.format = fmt
        self.module = module.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = device, dtype

    def logits(self, batch: np.ndarray) -> np.ndarray:
        if self.device.type == "cpu":
            torch.set_flush_denormal(True)  # a per-thread CPU flag: set it on the thread that runs inference
        with torch.inference_mode():
            output = self.module(torch.from_numpy(batch).to(self.device, self.dtype))
            logits = output if isinstance(output, torch.Tensor) else output.logits
            return logits.float().cpu().numpy()

    def modules(self) -> list[torch.nn.Module]:
        return [self.module]

    def extra_bytes(self) -> int:
        return 0


class OnnxRuntime:
    """ONNX Runtime holds its weights outside torch, so its memory is reported as the model file's size."""

    format = "onnx"

    def __init__(self, file: Path, device: torch.device) -> None:
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(file), providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.file_bytes = file.stat().st_size

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: batch.astype(np.float32)})[0])

    def modules(self) -> list[torch.nn.Module]:
        return []

    def extra_bytes(self) -> int:
        return self.file_bytes


def resolve_weights(path: Path, requested: str, files: dict[str, str]) -> tuple[str, Path]:
    """(format, weights path) for a file, or for a folder that may hold all three formats."""
    if path.is_file():
        fmt = "onnx" if path.suffix == ".onnx" else "torchscript" if path.suffix in TORCHSCRIPT_SUFFIXES else None
        if fmt is None:
            raise ValueError(f"{path.name}: not a .onnx or TorchScript ({', '.join(TORCHSCRIPT_SUFFIXES)}) file")
        if requested not in ("auto", fmt):
            raise ValueError(f"CNN_FORMAT={requested} but {path.name} is a {fmt} file")
        return fmt, path
    if not path.is_dir():
        raise FileNotFoundError(f"model path {path} does not exist; build one with `mediamesh models tiny`")
    candidates = {
        "hf": path if (path / "config.json").exists() and any((path / w).exists() for w in HF_WEIGHTS) else None,
        "torchscript": _existing(path / files.get("torchscript", "model.ts")),
        "onnx": _existing(path / files.get("onnx", "model.onnx")),
    }
    if requested != "auto":
        found = candidates[requested]
        if found is None:
            raise FileNotFoundError(f"CNN_FORMAT={requested} but {path} holds no {requested} weights")
        return requested, found
    for fmt, found in candidates.items():
        if found is not None:
            return fmt, found
    raise FileNotFoundError(f"{path} holds no HF weights, model.ts or model.onnx")


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def open_runtime(fmt: str, weights: Path, device: torch.device, dtype: torch.dtype) -> ClassifierRuntime:
    match fmt:
        case "hf":
            module = AutoModelForImageClassification.from_pretrained(weights, dtype=dtype)
            return TorchRuntime(fmt, module, device, dtype)
        case "torchscript":
            return TorchRuntime(fmt, torch.jit.load(str(weights), map_location=device), device, dtype)
        case "onnx":
            return OnnxRuntime(weights, device)
    raise ValueError(f"unknown weight format {fmt!r}; use hf, torchscript or onnx")

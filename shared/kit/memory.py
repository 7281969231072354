"""Measuring what a model holds in memory, and estimating it from its weight files."""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Iterable
from pathlib import Path

import torch

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".ts", ".ckpt", ".gguf")


def module_bytes(modules: Iterable[torch.nn.Module]) -> int:
    """Parameter and buffer bytes, each storage counted once (tied weights share one)."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.is_sparse:  # e.g. openai-whisper's alignment_heads buffer has no single storage
                total += sum(t.numel() * t.element_size() for t in (tensor._indices(), tensor._values()))
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key in seen or key == 0:
                continue
            seen.add(key)
            total += storage.nbytes()
    return total


def cuda_bytes(device: torch.device | str | None = None) -> tuple[int, int]:
    """(allocated, reserved) bytes of torch's CUDA allocator; (0, 0) without CUDA."""
    if not torch.cuda.is_available():
        return 0, 0
    return torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device)


def release_memory() -> None:
    """Collect dropped tensors, give freed heap pages back to the OS, hand cached CUDA blocks to the driver."""
    gc.collect()
    _trim_heap()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def _trim_heap() -> None:
    # glibc keeps freed small and medium blocks (CTranslate2's weights, tokenizers...) in the process
    # heap, so without a trim an unloaded model still shows in RSS. Other C libraries have no such call.
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def weight_files(path: Path) -> list[Path]:
    """The weight files of a model folder, or the one file a model is."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def weight_file_bytes(path: Path) -> int:
    """Bytes of the weight files: the estimate of a model's size before its first load."""
    return sum(p.stat().st_size for p in weight_files(path))


def read_ahead(files: Iterable[Path], chunk_bytes: int = 16 * 1024 * 1024) -> None:
    """Read files start to end in large chunks so that they sit in the page cache.

    Loaders that memory-map weights (safetensors via transformers, CTranslate2) otherwise fault
    them in page by page, which on a cold cache took over twice as long as one sequential read.
    """
    buffer = bytearray(chunk_bytes)
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested (device=cuda) but torch sees no GPU; set device=cpu or auto")
    return torch.device(requested)


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, requested)

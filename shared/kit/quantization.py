"""Hugging Face models on the kit: `from_pretrained` arguments (device, dtype, bitsandbytes 8/4-bit)
and the memory a folder will take once loaded that way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from shared.config import QuantizationSettings
from shared.kit.memory import weight_file_bytes


class QuantizationUnavailable(RuntimeError):
    """Quantization was asked for where it cannot run (no CUDA, or bitsandbytes missing)."""


def pretrained_kwargs(settings: QuantizationSettings, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Keyword arguments for `from_pretrained`: plain dtype on CPU/CUDA, or a `BitsAndBytesConfig`."""
    if settings.quantization == "none":
        return {"dtype": dtype}
    prefix = settings.model_config.get("env_prefix", "")
    if device.type != "cuda":
        raise QuantizationUnavailable(
            f"{prefix}QUANTIZATION={settings.quantization} needs a CUDA GPU (bitsandbytes), but the model runs on "
            f"{device.type}; set {prefix}QUANTIZATION=none to run unquantized on the CPU"
        )
    try:
        import bitsandbytes  # noqa: F401  (transformers imports it lazily; fail early with a clear message)
    except ImportError as exc:
        raise QuantizationUnavailable(
            f"{prefix}QUANTIZATION={settings.quantization} needs bitsandbytes: pip install 'mediamesh[gpu]'"
        ) from exc
    from transformers import BitsAndBytesConfig

    if settings.quantization == "8bit":
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True
        )
    return {"quantization_config": config, "dtype": dtype, "device_map": {"": device.index or 0}}


def place(model: torch.nn.Module, settings: QuantizationSettings, device: torch.device) -> torch.nn.Module:
    """Move an unquantized model to its device (bitsandbytes models are placed by `device_map`)."""
    if settings.quantization == "none":
        model = model.to(device)
    return model.eval()


# Bytes per parameter once loaded: bitsandbytes keeps some layers (lm_head, norms) unquantized,
# so 8-bit lands a little above 1 byte and nf4 (with double quantization) a little above half.
QUANTIZED_BYTES_PER_PARAM = {"8bit": 1.05, "4bit": 0.6}


def estimated_loaded_bytes(folder: Path, quantization: str, dtype: torch.dtype) -> int:
    """What a Hugging Face folder will take once loaded: its weight files rescaled from the dtype
    they are stored in (config.json) to the dtype or quantization it loads with. The gateway's
    budget uses this before the first load (e.g. Phi-3.5's 7.6 GB of bf16 files load as ~2.3 GB in 4-bit)."""
    stored = weight_file_bytes(folder)
    params = stored / _stored_element_size(folder)
    per_param = QUANTIZED_BYTES_PER_PARAM.get(quantization, dtype.itemsize)
    return int(params * per_param)


def _stored_element_size(folder: Path) -> int:
    config = folder / "config.json"
    try:
        fields = json.loads(config.read_text())
    except (OSError, ValueError):
        return 4  # no readable config: assume float32 files, the largest common case
    name = fields.get("dtype") or fields.get("torch_dtype")
    stored = getattr(torch, str(name), None)
    return stored.itemsize if isinstance(stored, torch.dtype) else 4

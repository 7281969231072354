"""`from_pretrained` arguments for a Hugging Face model: device, dtype, bitsandbytes 8/4-bit."""

from __future__ import annotations

from typing import Any

import torch

from shared.settings import ServiceSettings


class QuantizationUnavailable(RuntimeError):
    """Quantization was asked for where it cannot run (no CUDA, or bitsandbytes missing)."""


def pretrained_kwargs(settings: ServiceSettings, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
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


def place(model: torch.nn.Module, settings: ServiceSettings, device: torch.device) -> torch.nn.Module:
    """Move an unquantized model to its device (bitsandbytes models are placed by `device_map`)."""
    if settings.quantization == "none":
        model = model.to(device)
    return model.eval()

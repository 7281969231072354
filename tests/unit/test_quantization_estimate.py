"""Load-size estimates before the first load: stored dtype → loaded dtype or bitsandbytes quantization."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from shared.config import QuantizationSettings
from shared.kit.quantization import QuantizationUnavailable, estimated_loaded_bytes, pretrained_kwargs


@pytest.fixture
def bf16_folder(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "bfloat16"}))
    (tmp_path / "model-00001.safetensors").write_bytes(b"\0" * 1000)
    (tmp_path / "model-00002.safetensors").write_bytes(b"\0" * 1000)
    (tmp_path / "tokenizer.json").write_text("{}")  # not a weight file
    return tmp_path


@pytest.mark.parametrize(
    ("quantization", "dtype", "expected"),
    [("none", torch.float32, 4000), ("none", torch.float16, 2000), ("8bit", torch.float16, 1050),
     ("4bit", torch.float16, 600)],
)
def test_estimate_rescales_stored_weights(bf16_folder: Path, quantization: str, dtype: torch.dtype,
                                          expected: int) -> None:
    assert estimated_loaded_bytes(bf16_folder, quantization, dtype) == expected


def test_estimate_without_config_assumes_float32(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 400)
    assert estimated_loaded_bytes(tmp_path, "none", torch.float16) == 200


def test_quantization_on_cpu_is_refused_with_the_fix() -> None:
    class Settings(QuantizationSettings):
        model_config = {"env_prefix": "DEMO_"}  # type: ignore[assignment]

    with pytest.raises(QuantizationUnavailable, match="DEMO_QUANTIZATION=none"):
        pretrained_kwargs(Settings(quantization="4bit"), torch.device("cpu"), torch.float32)
    assert pretrained_kwargs(Settings(), torch.device("cpu"), torch.float32) == {"dtype": torch.float32}

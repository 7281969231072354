"""On a CUDA GPU: tiny BLIP-2 and Phi-3 load in 8-bit and 4-bit (bitsandbytes) and in fp16, answer,
and give their memory back on unload, as torch's CUDA allocator measures it. Skipped without a GPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from services.blip2.model import Blip2Model, Blip2Settings
from services.llm.decoding import SamplingParams
from services.llm.model import LlmModel, LlmSettings
from shared.kit.memory import release_memory
from shared.kit.served_model import ServedModel

pytestmark = pytest.mark.gpu


def _blip2(path: Path, quantization: str) -> ServedModel:
    return Blip2Model(Blip2Settings(model_path=path, device="cuda", quantization=quantization, max_new_tokens=8))


def _llm(path: Path, quantization: str) -> ServedModel:
    return LlmModel(LlmSettings(model_path=path, device="cuda", quantization=quantization))


def _answer(model: ServedModel) -> str:
    if isinstance(model, Blip2Model):
        return model.generate([Image.new("RGB", (64, 48), (200, 30, 30))], "Question: what? Answer:")[0].text
    assert isinstance(model, LlmModel)
    ids = model.chat_ids([{"role": "user", "content": "Name a colour."}])
    return model.complete(ids, SamplingParams(max_new_tokens=8, temperature=0)).text


@pytest.mark.parametrize("quantization", ["8bit", "4bit", "none"])
@pytest.mark.parametrize(("service", "make"), [("blip2", _blip2), ("llm", _llm)], ids=["blip2", "llm"])
def test_quantized_load_answers_and_unload_frees_cuda_memory(
    tiny_model: Callable[[str], Path], service: str, make: Callable[[Path, str], ServedModel], quantization: str,
) -> None:
    if quantization != "none":
        pytest.importorskip("bitsandbytes", reason="8/4-bit needs bitsandbytes: pip install 'mediamesh[gpu]'")
    release_memory()
    baseline = torch.cuda.memory_allocated()
    model = make(tiny_model(service), quantization)
    model.load()
    loaded = torch.cuda.memory_allocated() - baseline
    assert loaded > 0
    assert model.measure_bytes()[0] >= loaded
    assert isinstance(_answer(model), str)
    model.unload()
    release_memory()
    left = torch.cuda.memory_allocated() - baseline
    print(f"{service} {quantization}: {loaded} bytes on CUDA after load, {left} after unload")
    assert left <= 0.05 * loaded

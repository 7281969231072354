"""A tiny random-weight ResNet classifier, built offline, in all three formats the cnn service loads."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import ResNetConfig, ResNetForImageClassification

from services.cnn.preprocessing import CONFIG_FILE

LABELS = ["abyssinian", "bengal", "maine_coon", "persian", "siamese"]
IMAGE_SIZE = 64
SEED = 1234


class LogitsOnly(torch.nn.Module):
    """TorchScript and ONNX want a plain tensor out, not a ModelOutput."""

    def __init__(self, model: ResNetForImageClassification) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def tiny_config() -> ResNetConfig:
    return ResNetConfig(  # type: ignore[call-arg]  # num_labels/id2label go to PretrainedConfig
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
    )


def build(dest: Path) -> Path:
    """HF folder + `model.ts` + `model.onnx` + `mediamesh.json` (labels and preprocessing) in dest."""
    torch.manual_seed(SEED)
    model = ResNetForImageClassification(tiny_config()).eval()
    with torch.no_grad():  # a peaked head, so different images get clearly different top-1 labels
        model.classifier[-1].weight.mul_(20.0)
    model.save_pretrained(dest)
    export_formats(model, dest, IMAGE_SIZE)
    (dest / CONFIG_FILE).write_text(json.dumps({
        "labels": LABELS,
        "image_size": IMAGE_SIZE,
        "resize_shortest": 73,
        "normalization": "imagenet",
        "files": {"torchscript": "model.ts", "onnx": "model.onnx"},
    }, indent=2))
    return dest


def export_formats(model: ResNetForImageClassification, dest: Path, image_size: int) -> None:
    """Export the same weights to TorchScript (`model.ts`) and ONNX (`model.onnx`, dynamic batch)."""
    wrapper = LogitsOnly(model).eval()
    example = torch.rand(1, 3, image_size, image_size)
    with torch.no_grad():
        torch.jit.trace(wrapper, example).save(str(dest / "model.ts"))
        torch.onnx.export(
            wrapper, (example,), str(dest / "model.onnx"), input_names=["pixel_values"], output_names=["logits"],
            dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
        )

"""The detector service's model: RT-DETR (closed vocabulary: its own labels, COCO for the default) or
OWLv2 (open vocabulary: boxes for text queries), whichever the folder holds.

Both load with plain transformers (RT-DETR's ResNet backbone is transformers' own, not timm's), and
their image processors run on PIL, so neither needs torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForObjectDetection,
    Owlv2ForObjectDetection,
    Owlv2Processor,
)

from services.detector.settings import DetectorSettings
from shared.kit.served_model import ServedModel


@dataclass(frozen=True)
class Found:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, inside the image


class DetectorModel(ServedModel):
    """Loads a detection folder (the tiny RT-DETR, `PekingU/rtdetr_r18vd` or an OWLv2) with `from_pretrained`."""

    settings: DetectorSettings

    def __init__(self, settings: DetectorSettings) -> None:
        super().__init__(settings)
        self.model: Any = None
        self.processor: Any = None
        self.architecture = ""
        self.labels: list[str] = []

    @property
    def open_vocabulary(self) -> bool:
        return self.architecture == "owlv2"

    def load(self) -> None:
        if self.device.type == "cpu":
            torch.set_flush_denormal(True)
        config = AutoConfig.from_pretrained(self.path)
        if config.model_type == "owlv2":
            model: Any = Owlv2ForObjectDetection.from_pretrained(self.path, dtype=self.dtype)
            self.processor = Owlv2Processor.from_pretrained(self.path)
            self.labels = []
        else:
            model = AutoModelForObjectDetection.from_pretrained(self.path, dtype=self.dtype)
            self.processor = AutoImageProcessor.from_pretrained(self.path)
            self.labels = [str(config.id2label[i]) for i in sorted(config.id2label)]
        self.model = model.to(self.device).eval()
        self.architecture = str(config.model_type)

    def unload(self) -> None:
        self.model = self.processor = None
        self.labels = []

    def modules(self) -> list[torch.nn.Module]:
        return [self.model] if self.model is not None else []

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "open_vocabulary": self.open_vocabulary,
                "labels": len(self.labels) if self.labels else None,
                "default_score_threshold": self.settings.score_threshold}

    def detect(self, images: list[Image.Image], queries: list[str] | None, threshold: float,
               max_boxes: int) -> list[list[Found]]:
        """Per image, its boxes at or above `threshold`, highest score first, at most `max_boxes`."""
        if self.model is None:
            raise RuntimeError("model is not loaded")
        with torch.inference_mode():
            if self.open_vocabulary:
                found = self._owlv2(images, queries or self.settings.default_queries, threshold)
            else:
                found = self._closed(images, threshold)
        if queries and not self.open_vocabulary:
            wanted = {q.strip().lower() for q in queries}
            found = [[f for f in per_image if f.label.lower() in wanted] for per_image in found]
        return [sorted(per_image, key=lambda f: -f.score)[:max_boxes] for per_image in found]

    def _closed(self, images: list[Image.Image], threshold: float) -> list[list[Found]]:
        inputs = self.processor(images=images, return_tensors="pt").to(self.device)
        outputs = self.model(pixel_values=inputs["pixel_values"].to(self.dtype))
        sizes = [(image.height, image.width) for image in images]
        results = self.processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=sizes)
        return [_found(result, [self.labels[int(i)] for i in result["labels"]], image)
                for result, image in zip(results, images, strict=True)]

    def _owlv2(self, images: list[Image.Image], queries: list[str], threshold: float) -> list[list[Found]]:
        text = [list(queries)] * len(images)
        # OWL's text tower reads a fixed 16 tokens: pad every phrase to it, cut longer ones
        inputs = self.processor(text=text, images=images, padding="max_length", truncation=True,
                                return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        outputs = self.model(**inputs)
        # OWLv2 pads each image to a square at the bottom and right: its boxes are relative to that square
        sizes = [(max(image.size), max(image.size)) for image in images]
        results = self.processor.post_process_grounded_object_detection(
            outputs, threshold=threshold, target_sizes=sizes, text_labels=text)
        kept = [suppress_overlaps(result, self.settings.nms_iou) for result in results]
        return [_found(result, [queries[int(i)] for i in result["labels"]], image)
                for result, image in zip(kept, images, strict=True)]


def suppress_overlaps(result: dict[str, torch.Tensor], max_iou: float) -> dict[str, torch.Tensor]:
    """Greedy non-maximum suppression per label (`boxes`, `scores`, `labels` as post-processing gives them):
    highest score first, a box overlapping a kept box of its label by more than `max_iou` is dropped."""
    boxes, scores, labels = result["boxes"].float(), result["scores"], result["labels"]
    if max_iou >= 1.0 or len(scores) < 2:
        return result
    # boxes of different labels are moved apart, so that they never overlap (the batched-NMS trick)
    shifted = boxes + (labels.to(boxes.dtype) * (boxes.max() - boxes.min() + 1))[:, None]
    area = (shifted[:, 2] - shifted[:, 0]).clamp(min=0) * (shifted[:, 3] - shifted[:, 1]).clamp(min=0)
    top_left = torch.maximum(shifted[:, None, :2], shifted[None, :, :2])
    bottom_right = torch.minimum(shifted[:, None, 2:], shifted[None, :, 2:])
    overlap = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    iou = overlap / (area[:, None] + area[None, :] - overlap).clamp(min=1e-9)
    dropped = torch.zeros(len(scores), dtype=torch.bool)
    keep = []
    for index in scores.argsort(descending=True).tolist():
        if not dropped[index]:
            keep.append(index)
            dropped |= iou[index] > max_iou
    chosen = torch.tensor(keep, dtype=torch.long)
    return {"boxes": result["boxes"][chosen], "scores": scores[chosen], "labels": labels[chosen]}


def _found(result: dict[str, torch.Tensor], labels: list[str], image: Image.Image) -> list[Found]:
    """Boxes clamped to the image; a box left with no area (wholly outside it) is dropped."""
    width, height = image.size
    found = []
    for label, score, box in zip(labels, result["scores"].tolist(), result["boxes"].tolist(), strict=True):
        x0, y0 = min(max(box[0], 0.0), width), min(max(box[1], 0.0), height)
        x1, y1 = min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)
        if x1 > x0 and y1 > y0:
            found.append(Found(label, float(score), (x0, y0, x1, y1)))
    return found

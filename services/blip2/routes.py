"""blip2 task routes: analyse an image, answer a question about it, name a cluster of images."""

from __future__ import annotations

import time

from fastapi import APIRouter
from PIL import Image

from services.blip2 import analysis
from services.blip2.model import Blip2Model
from shared.imaging import decode_image_base64
from shared.kit.service import LifecycleDep
from shared.schemas.blip2 import (
    AnalyzeImageRequest,
    AnalyzeImageResponse,
    LabelClusterRequest,
    LabelClusterResponse,
    VqaRequest,
    VqaResponse,
)

router = APIRouter(tags=["blip2"])


def _decode(data: str, model: Blip2Model, name: str = "image") -> Image.Image:
    return decode_image_base64(data, max_pixels=model.settings.max_image_pixels, name=name)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def analyze(model: Blip2Model, image: Image.Image, tasks: set[str]) -> dict[str, object]:
    """Blocking: every requested task on one image (runs on the inference thread)."""
    result: dict[str, object] = {}
    if "caption" in tasks:
        result["caption"] = model.generate([image], analysis.CAPTION_PROMPT)[0].text
    if "objects" in tasks:
        answer = model.generate([image], analysis.OBJECTS_PROMPT)[0]
        result["objects"] = analysis.objects_from_answer(answer, model.settings.max_objects)
    if "scene" in tasks:
        indoor, outdoor = model.score_options([image], analysis.SCENE_PROMPT, analysis.SCENE_OPTIONS)[0]
        result["scene_type"] = "indoor" if indoor >= outdoor else "outdoor"
        result["scene_confidence"] = round(max(indoor, outdoor), 4)
        result["orientation"] = analysis.orientation(image)
    if "colors" in tasks:
        result["dominant_colors"] = analysis.dominant_colors(image, model.settings.num_colors)
    return result


@router.post("/analyze-image")
async def analyze_image(body: AnalyzeImageRequest, lifecycle: LifecycleDep) -> AnalyzeImageResponse:
    started = time.perf_counter()
    async with lifecycle.use() as model:
        image = _decode(body.image, model)
        result = await lifecycle.run(analyze, model, image, set(body.tasks))
    return AnalyzeImageResponse(**result, processing_time_ms=_elapsed_ms(started))  # type: ignore[arg-type]


@router.post("/v1/vqa")
async def vqa(body: VqaRequest, lifecycle: LifecycleDep) -> VqaResponse:
    started = time.perf_counter()
    async with lifecycle.use() as model:
        image = _decode(body.image, model)
        answers = await lifecycle.run(model.generate, [image], f"Question: {body.question} Answer:")
    return VqaResponse(answer=answers[0].text, processing_time_ms=_elapsed_ms(started))


def label_cluster_blocking(model: Blip2Model, images: list[Image.Image]) -> dict[str, object]:
    captions = [g.text for g in model.generate(images, analysis.CAPTION_PROMPT)]
    subjects = [g.text for g in model.generate(images, "Question: What is the main subject of this picture? Answer:")]
    scores = model.score_options(images, analysis.CATEGORY_PROMPT, analysis.CATEGORIES)
    mean = [sum(column) / len(images) for column in zip(*scores, strict=True)]
    best = max(range(len(mean)), key=mean.__getitem__)
    category = analysis.CATEGORIES[best]
    name, description, tags = analysis.cluster_label(captions, subjects, category)
    return {"cluster_name": name, "description": description, "tags": tags,
            "primary_category": category, "confidence": round(mean[best], 4)}


@router.post("/label-cluster")
async def label_cluster(body: LabelClusterRequest, lifecycle: LifecycleDep) -> LabelClusterResponse:
    started = time.perf_counter()
    async with lifecycle.use() as model:
        images = [_decode(data, model, f"images[{i}]") for i, data in enumerate(body.images)]
        result = await lifecycle.run(label_cluster_blocking, model, images)
    if body.cluster_size > 1:
        result["description"] = f"{result['description']} ({body.cluster_size} items)"
    return LabelClusterResponse(**result, processing_time_ms=_elapsed_ms(started))  # type: ignore[arg-type]

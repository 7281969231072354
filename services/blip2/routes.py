"""blip2 tasks: analyse an image, answer a question about it, name a cluster of images.

Images are decoded by the `decode` hooks, on a worker thread; the model runs in `predict`.
"""

from __future__ import annotations

from PIL import Image

from services.blip2 import analysis
from services.blip2.model import Blip2Model, Generated
from shared.imaging import decode_image_base64
from shared.kit.tasks import TaskRouter
from shared.schemas.blip2 import (
    AnalyzeImageRequest,
    AnalyzeImageResponse,
    LabelClusterRequest,
    LabelClusterResponse,
    ScoreOptionsRequest,
    ScoreOptionsResponse,
    VqaRequest,
    VqaResponse,
)
from shared.schemas.common import LabelScore

router = TaskRouter(tags=["blip2"])


def decode_image(model: Blip2Model, body: AnalyzeImageRequest | VqaRequest | ScoreOptionsRequest) -> Image.Image:
    return decode_image_base64(body.image, max_pixels=model.settings.max_image_pixels, name="image")


def decode_images(model: Blip2Model, body: LabelClusterRequest) -> list[Image.Image]:
    limit = model.settings.max_image_pixels
    return [decode_image_base64(data, max_pixels=limit, name=f"images[{i}]") for i, data in enumerate(body.images)]


def analyze(model: Blip2Model, body: AnalyzeImageRequest, image: Image.Image) -> dict[str, object]:
    """Every requested task on one image."""
    tasks, result = set(body.tasks), dict[str, object]()
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


def answer_question(model: Blip2Model, body: VqaRequest, image: Image.Image) -> Generated:
    return model.generate([image], f"Question: {body.question} Answer:")[0]


def score_answers(model: Blip2Model, body: ScoreOptionsRequest, image: Image.Image) -> ScoreOptionsResponse:
    prompt = f"Question: {body.question} Answer:"
    probs = model.score_options([image], prompt, body.options)[0]
    ranked = sorted(zip(body.options, probs, strict=True), key=lambda item: -item[1])
    answer = model.generate([image], prompt)[0].text if body.answer else None
    return ScoreOptionsResponse(scores=[LabelScore(label=o, score=p) for o, p in ranked], answer=answer)


def name_cluster(model: Blip2Model, body: LabelClusterRequest, images: list[Image.Image]) -> dict[str, object]:
    captions = [g.text for g in model.generate(images, analysis.CAPTION_PROMPT)]
    subjects = [g.text for g in model.generate(images, "Question: What is the main subject of this picture? Answer:")]
    scores = model.score_options(images, analysis.CATEGORY_PROMPT, analysis.CATEGORIES)
    mean = [sum(column) / len(images) for column in zip(*scores, strict=True)]
    best = max(range(len(mean)), key=mean.__getitem__)
    category = analysis.CATEGORIES[best]
    name, description, tags = analysis.cluster_label(captions, subjects, category)
    if body.cluster_size > 1:
        description = f"{description} ({body.cluster_size} items)"
    return {"cluster_name": name, "description": description, "tags": tags,
            "primary_category": category, "confidence": round(mean[best], 4)}


@router.task("/v1/analyze-image", decode=decode_image, predict=analyze, aliases=["/analyze-image"])
def analyze_image(model: Blip2Model, body: AnalyzeImageRequest, result: dict[str, object]) -> AnalyzeImageResponse:
    """Caption, objects, scene, orientation and dominant colours of one image (the `tasks` asked for)."""
    return AnalyzeImageResponse.model_validate(result)


@router.task("/v1/vqa", decode=decode_image, predict=answer_question)
def vqa(model: Blip2Model, body: VqaRequest, answer: Generated) -> VqaResponse:
    """A short answer to a question about one image."""
    return VqaResponse(answer=answer.text)


@router.task("/v1/score-options", decode=decode_image, predict=score_answers)
def score_options(model: Blip2Model, body: ScoreOptionsRequest, result: ScoreOptionsResponse) -> ScoreOptionsResponse:
    """A probability over `options` as answers to `question` (each option's mean token log-likelihood,
    softmaxed), and with `answer: true` the free-text answer too."""
    return result


@router.task("/v1/label-cluster", decode=decode_images, predict=name_cluster, aliases=["/label-cluster"])
def label_cluster(model: Blip2Model, body: LabelClusterRequest, result: dict[str, object]) -> LabelClusterResponse:
    """A name, description, tags and category for a cluster of images."""
    return LabelClusterResponse.model_validate(result)

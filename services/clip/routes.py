"""clip tasks: image and text embeddings and zero-shot scores, dynamically batched."""

from __future__ import annotations

import numpy as np

from services.clip.label_cache import LabelKey
from services.clip.model import ClipModel, ImagePayload
from shared.http.errors import BadInput
from shared.kit.batching import Batch
from shared.kit.tasks import TaskRouter
from shared.schemas.clip import (
    EmbedResponse,
    ImageEmbedRequest,
    TextEmbedRequest,
    ZeroShotRequest,
    ZeroShotResponse,
    ZeroShotResult,
)
from shared.schemas.common import LabelScore

router = TaskRouter(tags=["clip"])
# Images are decoded inside the batch, on the inference thread (see `ClipModel.embed_payloads`): decoded
# on worker threads instead, 16 concurrent decodes beside torch's own threads made batching slower here.
IMAGES = Batch(ClipModel.embed_payloads, name="clip images")
TEXTS = Batch(ClipModel.embed_texts, name="clip texts")


def image_payloads(model: ClipModel, body: ImageEmbedRequest | ZeroShotRequest) -> list[ImagePayload]:
    return [ImagePayload(f"images[{i}]", data) for i, data in enumerate(body.images)]


def texts(model: ClipModel, body: TextEmbedRequest) -> list[str]:
    return body.texts


def check_labels(body: ZeroShotRequest) -> LabelKey:
    prompts = body.prompts()
    missing = sorted({t for templates in prompts for t in templates if "{}" not in t})
    if missing:
        raise BadInput(f"template(s) {missing} have no '{{}}' where the label goes, e.g. 'a photo of a {{}}.'")
    unknown = sorted(set(body.label_templates) - set(body.labels))
    if unknown:
        raise BadInput(f"label_templates name label(s) {unknown} that are not in labels")
    cleaned = [label.strip() for label in body.labels]
    empty = [i for i, label in enumerate(cleaned) if not label]
    if empty:
        raise BadInput(f"labels {empty} are empty; every label needs some text")
    if len(set(cleaned)) != len(cleaned):
        raise BadInput("labels contain duplicates; each label may appear once")
    return tuple(cleaned), tuple(tuple(templates) for templates in prompts)


def zero_shot_inputs(model: ClipModel, body: ZeroShotRequest) -> list[ImagePayload]:
    check_labels(body)  # a 422 before any image is embedded
    return image_payloads(model, body)


def zero_shot_scores(
    model: ClipModel, body: ZeroShotRequest, images: list[np.ndarray]
) -> tuple[LabelKey, np.ndarray]:
    """Softmax over the labels' prompt embeddings (each the mean over its templates), per image; cached."""
    key = check_labels(body)
    prompts = model.label_embeddings(key).astype(np.float64)
    logits = model.logit_scale * np.stack(images).astype(np.float64) @ prompts.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return key, probs / probs.sum(axis=1, keepdims=True)


def embedded(model: ClipModel, vectors: list[np.ndarray]) -> EmbedResponse:
    return EmbedResponse(model=model.identity(), dim=model.dim, weights_sha256=model.weights_sha256,
                         embeddings=[v.tolist() for v in vectors])


@router.task("/v1/embed/image", decode=image_payloads, batch=IMAGES)
def embed_image(model: ClipModel, body: ImageEmbedRequest, vectors: list[np.ndarray]) -> EmbedResponse:
    """L2-normalised image embeddings, one per image, in input order."""
    return embedded(model, vectors)


@router.task("/v1/embed/text", decode=texts, batch=TEXTS)
def embed_text(model: ClipModel, body: TextEmbedRequest, vectors: list[np.ndarray]) -> EmbedResponse:
    """L2-normalised text embeddings (truncated to the model's context), one per text."""
    return embedded(model, vectors)


@router.task("/v1/zero-shot", decode=zero_shot_inputs, batch=IMAGES, predict=zero_shot_scores)
def zero_shot(model: ClipModel, body: ZeroShotRequest, scores: tuple[LabelKey, np.ndarray]) -> ZeroShotResponse:
    """Softmax over the labels, each prompted by `template` or the ensemble `templates` (or its own
    `label_templates`): a label's text embedding is the normalised mean over its prompts."""
    (labels, _), probs = scores
    results = [ZeroShotResult(scores=[LabelScore(label=labels[i], score=float(row[i]))
                                      for i in np.argsort(-row, kind="stable")]) for row in probs]
    return ZeroShotResponse(model=model.identity(), results=results)

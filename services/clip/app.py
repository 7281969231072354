"""clip service app: the kit's contract plus image/text embeddings and zero-shot (dynamically batched)."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import Counter

from services.clip.label_cache import LabelKey
from services.clip.model import ClipModel, ImagePayload
from services.clip.settings import ClipSettings
from shared.http.errors import BadInput, ServiceError
from shared.kit.lifecycle import ModelLifecycle
from shared.kit.service import LifecycleDep, create_service_app
from shared.schemas.clip import (
    EmbedResponse,
    ImageEmbedRequest,
    TextEmbedRequest,
    ZeroShotRequest,
    ZeroShotResponse,
    ZeroShotResult,
)
from shared.schemas.common import LabelScore

router = APIRouter(tags=["clip"])


async def image_embeddings(
    lifecycle: ModelLifecycle[ClipModel], request: Request, images: list[str]
) -> list[np.ndarray]:
    """Embed through the batcher, which also decodes and preprocesses (see `ClipModel.embed_payloads`)."""
    named = [ImagePayload(f"images[{i}]", data) for i, data in enumerate(images)]
    results = await request.app.state.image_batcher.submit_many(named)
    for result in results:
        if isinstance(result, ServiceError):
            raise result
    return results


def check_labels(labels: list[str], template: str) -> LabelKey:
    if "{}" not in template:
        raise BadInput(f"template {template!r} has no '{{}}' where the label goes, e.g. 'a photo of a {{}}.'")
    cleaned = [label.strip() for label in labels]
    empty = [i for i, label in enumerate(cleaned) if not label]
    if empty:
        raise BadInput(f"labels {empty} are empty; every label needs some text")
    if len(set(cleaned)) != len(cleaned):
        raise BadInput("labels contain duplicates; each label may appear once")
    return tuple(cleaned), template


async def label_embeddings(lifecycle: ModelLifecycle[ClipModel], request: Request, key: LabelKey) -> np.ndarray:
    """The prompts' text embeddings, from the LRU cache when this (labels, template) was seen before."""
    cache = lifecycle.model.label_cache
    cached = cache.get(key)
    request.app.state.label_cache_lookups.labels("hit" if cached is not None else "miss").inc()
    if cached is not None:
        return cached
    labels, template = key
    prompts = [template.replace("{}", label) for label in labels]
    embeddings = np.stack(await request.app.state.text_batcher.submit_many(prompts))
    cache.put(key, embeddings)
    return embeddings


def ranked(probs: np.ndarray, labels: tuple[str, ...]) -> list[LabelScore]:
    return [LabelScore(label=labels[i], score=float(probs[i])) for i in np.argsort(-probs, kind="stable")]


@router.post("/v1/embed/image")
async def embed_image(body: ImageEmbedRequest, lifecycle: LifecycleDep, request: Request) -> EmbedResponse:
    """L2-normalised image embeddings, one per image, in input order."""
    started = time.perf_counter()
    async with lifecycle.use():
        vectors = await image_embeddings(lifecycle, request, body.images)
        dim = lifecycle.model.dim
    return EmbedResponse(model=lifecycle.model.path.name, dim=dim, embeddings=[v.tolist() for v in vectors],
                         processing_time_ms=(time.perf_counter() - started) * 1000)


@router.post("/v1/embed/text")
async def embed_text(body: TextEmbedRequest, lifecycle: LifecycleDep, request: Request) -> EmbedResponse:
    """L2-normalised text embeddings (truncated to the model's context), one per text."""
    started = time.perf_counter()
    async with lifecycle.use():
        vectors = await request.app.state.text_batcher.submit_many(body.texts)
        dim = lifecycle.model.dim
    return EmbedResponse(model=lifecycle.model.path.name, dim=dim, embeddings=[v.tolist() for v in vectors],
                         processing_time_ms=(time.perf_counter() - started) * 1000)


@router.post("/v1/zero-shot")
async def zero_shot(body: ZeroShotRequest, lifecycle: LifecycleDep, request: Request) -> ZeroShotResponse:
    """Softmax over `template` filled with each label, per image; label prompts are cached."""
    started = time.perf_counter()
    key = check_labels(body.labels, body.template)
    async with lifecycle.use():
        images = np.stack(await image_embeddings(lifecycle, request, body.images))
        texts = await label_embeddings(lifecycle, request, key)
        scale = lifecycle.model.logit_scale
    logits = scale * images.astype(np.float64) @ texts.astype(np.float64).T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    results = [ZeroShotResult(scores=ranked(row, key[0])) for row in probs]
    return ZeroShotResponse(model=lifecycle.model.path.name, results=results,
                            processing_time_ms=(time.perf_counter() - started) * 1000)


def create_app() -> FastAPI:
    settings = ClipSettings()
    app = create_service_app(settings, lambda _: ClipModel(settings), [router], title="mediamesh clip")
    lifecycle = app.state.lifecycle
    wait_s = settings.batch_timeout_ms / 1000
    # max_batch_size=1 turns batching off: every image and text runs on its own.
    app.state.image_batcher = lifecycle.batched(
        lambda payloads: lifecycle.model.embed_payloads(payloads), max_batch_size=settings.max_batch_size,
        max_wait_s=wait_s,
    )
    app.state.text_batcher = lifecycle.batched(
        lambda texts: lifecycle.model.embed_texts(texts), max_batch_size=settings.max_batch_size, max_wait_s=wait_s
    )
    app.state.label_cache_lookups = Counter(
        "mediamesh_clip_label_cache_lookups_total", "Zero-shot label-prompt cache lookups", ["result"],
        registry=app.state.metrics.registry,
    )
    return app

"""Image → cascade classification, CLIP embedding, BLIP-2 analysis (each stage independent of the others),
then the detector's objects (which also give BLIP-2's named objects their boxes)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from storage.repositories.image_results import FoundObjects, ImageResults
from storage.spaces import SpaceIdentity
from worker.model_client import StageFailed
from worker.pipelines import objects
from worker.pipelines.context import Outcome, PipelineContext


def analyse_image(ctx: PipelineContext, media_id: str, data: bytes, span: tuple[float, float] = (0.0, 1.0)) -> Outcome:
    """Run the stages on one image and store what succeeded; a failed stage becomes a reason."""
    results, outcome = image_results(ctx, data, span)
    ctx.media.save_image_results(media_id, results)
    return outcome


def image_results(ctx: PipelineContext, data: bytes, span: tuple[float, float] = (0.0, 1.0)
                  ) -> tuple[ImageResults, Outcome]:
    """The three stages (each independent of the others), then the objects, on one image, nothing stored."""
    image_b64 = base64.b64encode(data).decode("ascii")
    outcome = Outcome()
    start, width = span[0], span[1] - span[0]
    results: dict[str, Any] = {}
    stages: tuple[tuple[str, Callable[[], Any]], ...] = (
        ("classification", lambda: ctx.models.classify(image_b64)),
        ("embedding", lambda: _embed(ctx, image_b64)),
        ("analysis", lambda: ctx.models.analyze_image(image_b64)),
    )
    if not ctx.settings.image_analysis:  # WORKER_IMAGE_ANALYSIS=false: no BLIP-2 caption per image
        stages = tuple(stage for stage in stages if stage[0] != "analysis")
    if objects.wanted(ctx):  # after the others: it reuses the cascade's objects and boxes BLIP-2's
        stages = (*stages, ("objects", lambda: _objects(ctx, image_b64, results)))
    for index, (name, run) in enumerate(stages):
        ctx.report(start + width * index / len(stages), name)
        try:
            results[name] = run()
            outcome.computed.append(name)
        except StageFailed as exc:
            outcome.reasons.append(exc.reason)
    return ImageResults(**results), outcome


def _objects(ctx: PipelineContext, image_b64: str, results: dict[str, Any]) -> FoundObjects:
    found, open_vocabulary = objects.find_objects(ctx, image_b64, results.get("classification"))
    if results.get("analysis") is not None:
        results["analysis"] = objects.with_boxes(ctx, image_b64, results["analysis"], found, open_vocabulary)
    return found


def _embed(ctx: PipelineContext, image_b64: str) -> tuple[SpaceIdentity, list[float]]:
    """The vector and its space (model, weights hash, dimension), as the clip service names them."""
    answer = ctx.models.embed_image(image_b64)
    vector = answer.embeddings[0]
    if len(vector) != answer.dim:
        raise StageFailed("clip", f"embedding has {len(vector)} dimensions; the answer says {answer.dim}")
    return SpaceIdentity.of(answer.model, answer.dim, answer.weights_sha256), vector

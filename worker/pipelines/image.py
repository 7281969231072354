"""Image → cascade classification, CLIP embedding, BLIP-2 analysis (each stage independent of the others)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from storage.models import EMBEDDING_DIM
from storage.repositories.media import ImageResults
from worker.model_client import StageFailed
from worker.pipelines.context import Outcome, PipelineContext


def analyse_image(ctx: PipelineContext, media_id: str, data: bytes, span: tuple[float, float] = (0.0, 1.0)) -> Outcome:
    """Run the three stages on one image and store what succeeded; a failed stage becomes a reason."""
    image_b64 = base64.b64encode(data).decode("ascii")
    outcome = Outcome()
    start, width = span[0], span[1] - span[0]
    results: dict[str, Any] = {}
    stages: tuple[tuple[str, Callable[[], Any]], ...] = (
        ("classification", lambda: ctx.models.classify(image_b64)),
        ("embedding", lambda: _embed(ctx, image_b64)),
        ("analysis", lambda: ctx.models.analyze_image(image_b64)),
    )
    for index, (name, run) in enumerate(stages):
        ctx.report(start + width * index / len(stages), name)
        try:
            results[name] = run()
            outcome.computed.append(name)
        except StageFailed as exc:
            outcome.reasons.append(exc.reason)
    ctx.media.save_image_results(media_id, ImageResults(**results))
    return outcome


def _embed(ctx: PipelineContext, image_b64: str) -> tuple[str, list[float]]:
    answer = ctx.models.embed_image(image_b64)
    vector = answer.embeddings[0]
    if len(vector) != EMBEDDING_DIM:
        raise StageFailed("clip", f"embedding has {len(vector)} dimensions; the database stores {EMBEDDING_DIM}")
    return answer.model, vector

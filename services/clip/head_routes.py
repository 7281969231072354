"""Trained heads (`mediamesh train-head`) on CLIP image embeddings: `POST /v1/classify` with a head,
`GET /v1/heads` to list them."""

from __future__ import annotations

import numpy as np
from fastapi import Request

from services.clip.model import ClipModel, ImagePayload
from services.clip.routes import IMAGES
from shared.heads import LinearHead
from shared.kit.tasks import TaskRouter
from shared.schemas.clip import ZeroShotResult
from shared.schemas.common import LabelScore
from shared.schemas.heads import HeadClassifyRequest, HeadClassifyResponse, HeadsReport

head_router = TaskRouter(tags=["clip heads"])


def head_inputs(model: ClipModel, body: HeadClassifyRequest) -> list[ImagePayload]:
    """404 for an unknown head and 409 for one of another embedding space, before any image is embedded."""
    model.heads.load(body.head).check_space(model.space())
    return [ImagePayload(f"images[{i}]", data) for i, data in enumerate(body.images)]


def head_scores(model: ClipModel, body: HeadClassifyRequest, images: list[np.ndarray]) -> tuple[LinearHead, np.ndarray]:
    head = model.heads.load(body.head)  # again: a newer version may have been published since the check
    head.check_space(model.space())
    return head, head.probabilities(np.stack(images))


@head_router.task("/v1/classify", decode=head_inputs, batch=IMAGES, predict=head_scores)
def classify_with_head(
    model: ClipModel, body: HeadClassifyRequest, scored: tuple[LinearHead, np.ndarray]
) -> HeadClassifyResponse:
    """A trained head's softmax over its own labels, per image (404: no such head; 409: the head was
    trained on another model's embeddings)."""
    head, probs = scored
    labels = head.info.labels
    results = [ZeroShotResult(scores=[LabelScore(label=labels[i], score=float(row[i]))
                                      for i in np.argsort(-row, kind="stable")]) for row in probs]
    return HeadClassifyResponse(model=model.identity(), head=head.info.ref, labels=labels, results=results)


@head_router.get("/v1/heads", response_model=HeadsReport)
def list_heads(request: Request) -> HeadsReport:
    """Every trained head in the heads folder with its held-out metrics; reading it loads no model."""
    model: ClipModel = request.app.state.lifecycle.model
    return HeadsReport(service_model=model.identity(), heads=model.heads.list())

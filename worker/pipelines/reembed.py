"""Re-embed: every embedded item into the space of the clip service's current model (`POST /v1/reembed`).

Resumable: what is done is what the space holds, so a retried or re-delivered job carries on where the
last one stopped. The space turns `complete` when no item is left; until then search answers from the
previous complete space (`storage.spaces.choose`). Should the clip model change while the job runs, the
job follows it into the new model's space.
"""

from __future__ import annotations

import base64
from typing import Any

from shared.client import GatewayError
from storage.spaces import Space, SpaceIdentity, SpaceRepository
from worker.model_client import StageFailed
from worker.pipelines.context import PipelineContext

BATCH = 16
FAILURES_SHOWN = 20


def reembed(ctx: PipelineContext, params: dict[str, Any]) -> dict[str, Any]:
    spaces = SpaceRepository(ctx.media.db)
    batch = int(params.get("batch") or BATCH)
    failed: dict[str, str] = {}  # media id -> why clip refused it (such items keep only their old vectors)
    space: Space | None = None  # the current model's, known from its first answer
    held_before = 0  # what the space held when this job first saw it
    ctx.report(0.0, "asking clip for its model")
    while True:
        todo = spaces.missing(space.id, batch, skip=failed) if space else spaces.one_embedded(skip=failed)
        if not todo:
            break
        identity, vectors = _embed(ctx, todo, failed)
        if identity is None:
            continue
        if space is None or space.identity != identity:  # the first answer, or the model swapped mid-job
            space = spaces.register(identity)
            held_before = spaces.coverage(space.id)[0]
        spaces.save(space, vectors)
        done, total = spaces.coverage(space.id)
        ctx.report(done / max(total, 1), f"re-embedding into {space.identity.describe()}: {done}/{total} items")
    if space is None:
        return {"space": None, "reembedded": 0, "failed": _shown(failed), "failed_count": len(failed)}
    spaces.mark_complete(space.id)
    done, total = spaces.coverage(space.id)
    return {"space": {**space.public(), "state": "complete"}, "items": done, "embedded": total,
            "reembedded": done - held_before, "failed": _shown(failed), "failed_count": len(failed)}


def _embed(ctx: PipelineContext, todo: list[tuple[str, str]],
           failed: dict[str, str]) -> tuple[SpaceIdentity | None, dict[str, list[float]]]:
    """The batch's vectors and their space; an image clip refuses is recorded in `failed` and left out.
    Clip being down or busy is not the images' fault: it fails the attempt, and the job is retried."""
    images: dict[str, str] = {}
    for media_id, sha256 in todo:
        try:
            images[media_id] = base64.b64encode(ctx.store.read(sha256)).decode("ascii")
        except OSError as exc:
            failed[media_id] = f"stored file unreadable: {exc}"
    if not images:
        return None, {}
    try:
        answer = ctx.models.embed_images(list(images.values()))
        pairs = zip(images, answer.embeddings, strict=True)
        return SpaceIdentity.of(answer.model, answer.dim, answer.weights_sha256), dict(pairs)
    except StageFailed as exc:
        if len(images) == 1:
            failed[next(iter(images))] = _refusal(exc)
            return None, {}
    identity: SpaceIdentity | None = None
    vectors: dict[str, list[float]] = {}
    for media_id, image in images.items():  # one by one: find the image clip refuses
        try:
            answer = ctx.models.embed_images([image])
        except StageFailed as exc:
            failed[media_id] = _refusal(exc)
            continue
        this = SpaceIdentity.of(answer.model, answer.dim, answer.weights_sha256)
        if identity is not None and this != identity:  # the model changed meanwhile: the rest in a later batch
            break
        identity, vectors[media_id] = this, answer.embeddings[0]
    return identity, vectors


def _refusal(exc: StageFailed) -> str:
    """Why clip refused the image; re-raised when the fault is clip's (down, busy, failing), not the image's."""
    cause = exc.__cause__
    status = cause.status_code if isinstance(cause, GatewayError) else None
    if status is None or status >= 500 or status in (408, 429):
        raise exc
    return exc.reason


def _shown(failed: dict[str, str]) -> dict[str, str]:
    return dict(list(failed.items())[:FAILURES_SHOWN])

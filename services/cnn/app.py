"""cnn service app: the kit's contract plus `POST /v1/classify` (dynamically batched)."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool

from services.cnn.model import CnnModel, summarise
from services.cnn.settings import CnnSettings
from shared.imaging import decode_image_base64
from shared.kit.service import LifecycleDep, create_service_app
from shared.schemas.cnn import ClassifyRequest, ClassifyResponse

router = APIRouter(tags=["cnn"])


def decode_all(images: list[str], max_pixels: int) -> list[Image.Image]:
    return [decode_image_base64(data, max_pixels=max_pixels, name=f"images[{i}]") for i, data in enumerate(images)]


def prepare(model: CnnModel, images: list[str]) -> list[np.ndarray]:
    """Decode and preprocess in one worker-thread hop (each hop costs latency at batch 1)."""
    return model.preprocess(decode_all(images, model.settings.max_image_pixels))


@router.post("/v1/classify")
async def classify(body: ClassifyRequest, lifecycle: LifecycleDep, request: Request) -> ClassifyResponse:
    """Classify one image or a batch: top-k labels with probabilities, entropy and margin."""
    started = time.perf_counter()
    model: CnnModel = lifecycle.model
    async with lifecycle.use():
        # Decoding and preprocessing are blocking: a worker thread, never the event loop.
        arrays = await run_in_threadpool(prepare, model, body.images)
        probabilities = await request.app.state.batcher.submit_many(arrays)
        labels = model.labels
    return ClassifyResponse(
        model=model.path.name,
        results=[summarise(p, labels, body.top_k) for p in probabilities],
        processing_time_ms=(time.perf_counter() - started) * 1000,
    )


def create_app() -> FastAPI:
    settings = CnnSettings()
    app = create_service_app(settings, lambda _: CnnModel(settings), [router], title="mediamesh cnn")
    lifecycle = app.state.lifecycle
    # max_batch_size=1 turns batching off: every image runs on its own.
    app.state.batcher = lifecycle.batched(
        lambda arrays: lifecycle.model.probabilities(arrays),
        max_batch_size=settings.max_batch_size, max_wait_s=settings.batch_timeout_ms / 1000,
    )
    return app

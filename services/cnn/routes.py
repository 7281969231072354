"""cnn task: `POST /v1/classify`, decoded on a worker thread, dynamically batched."""

from __future__ import annotations

import numpy as np

from services.cnn.model import CnnModel, summarise
from shared.imaging import decode_image_base64
from shared.kit.batching import Batch
from shared.kit.tasks import TaskRouter
from shared.schemas.cnn import ClassifyRequest, CnnClassifyResponse

router = TaskRouter(tags=["cnn"])
PROBABILITIES = Batch(CnnModel.probabilities, name="cnn probabilities")


def decode(model: CnnModel, body: ClassifyRequest) -> list[np.ndarray]:
    """Decode and preprocess in one worker-thread hop (each hop costs latency at batch 1)."""
    limit = model.settings.max_image_pixels
    images = [decode_image_base64(data, max_pixels=limit, name=f"images[{i}]") for i, data in enumerate(body.images)]
    return model.preprocess(images)


@router.task("/v1/classify", decode=decode, batch=PROBABILITIES)
def classify(model: CnnModel, body: ClassifyRequest, probabilities: list[np.ndarray]) -> CnnClassifyResponse:
    """Classify one image or a batch: top-k labels with probabilities, entropy and margin."""
    labels = model.labels
    return CnnClassifyResponse(model=model.path.name, results=[summarise(p, labels, body.top_k) for p in probabilities])

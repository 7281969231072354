"""detector task: `POST /v1/detect`, decoded on a worker thread, one forward pass per request."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from services.detector.model import DetectorModel, Found
from shared.http.errors import BadInput
from shared.imaging import decode_image_base64
from shared.kit.tasks import TaskRouter
from shared.schemas.detector import Box, DetectedObject, DetectRequest, DetectResponse, ImageDetections

router = TaskRouter(tags=["detector"])


@dataclass(frozen=True)
class Decoded:
    images: list[Image.Image]
    queries: list[str] | None


def decode(model: DetectorModel, body: DetectRequest) -> Decoded:
    """Check the queries against the model before decoding any image, then decode the images."""
    queries = None if body.queries is None else [q.strip() for q in body.queries]
    if queries is not None:
        if not queries or any(not q for q in queries):
            raise BadInput("queries must be non-empty phrases, e.g. [\"dog\", \"a damaged drain\"]; "
                           "leave `queries` out to detect everything the model knows")
        if not model.open_vocabulary:
            known = {label.lower() for label in model.labels}
            unknown = [q for q in queries if q.lower() not in known]
            if unknown:
                sample = ", ".join(model.labels[:12]) + (", …" if len(model.labels) > 12 else "")
                raise BadInput(f"{model.identity()} is a closed-vocabulary detector ({len(model.labels)} labels: "
                               f"{sample}) and has no label for {unknown}; query only its labels, or serve an "
                               "open-vocabulary model (OWLv2) to detect free-text phrases")
    limit = model.settings.max_image_pixels
    images = [decode_image_base64(data, max_pixels=limit, name=f"images[{i}]") for i, data in enumerate(body.images)]
    return Decoded(images, queries)


def predict(model: DetectorModel, body: DetectRequest, decoded: Decoded) -> list[tuple[Image.Image, list[Found]]]:
    threshold = model.settings.score_threshold if body.score_threshold is None else body.score_threshold
    found = model.detect(decoded.images, decoded.queries, threshold, body.max_boxes)
    return list(zip(decoded.images, found, strict=True))


@router.task("/v1/detect", decode=decode, predict=predict)
def detect(model: DetectorModel, body: DetectRequest, found: list[tuple[Image.Image, list[Found]]]) -> DetectResponse:
    """Boxes (pixels and normalised), labels and scores per image; an image with nothing found has an
    empty `objects` list. `queries` name what to find (see the request's field)."""
    return DetectResponse(model=model.identity(), open_vocabulary=model.open_vocabulary,
                          results=[detections(image.width, image.height, objects) for image, objects in found])


def detections(width: int, height: int, found: list[Found]) -> ImageDetections:
    objects = [DetectedObject(label=f.label, score=round(f.score, 6),
                              box=Box(x0=round(x0, 2), y0=round(y0, 2), x1=round(x1, 2), y1=round(y1, 2)),
                              box_normalized=Box(x0=round(x0 / width, 6), y0=round(y0 / height, 6),
                                                 x1=round(x1 / width, 6), y1=round(y1 / height, 6)))
               for f in found for x0, y0, x1, y1 in [f.box]]
    return ImageDetections(width=width, height=height, objects=objects)

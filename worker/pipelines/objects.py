"""An image's objects: from the cascade's detection stage when it ran (each with its crop's
classification), else straight from the detector; optionally each crop's CLIP embedding; and BLIP-2's
named objects given the detector's boxes for them."""

from __future__ import annotations

import re

from shared.imaging import crop_box, decode_image_base64, encode_image_base64
from shared.schemas.blip2 import AnalyzeImageResponse
from shared.schemas.detector import Box
from shared.schemas.gateway import ClassifyResponse, ObjectAnswer
from storage.repositories.image_results import FoundObjects
from worker.model_client import StageFailed
from worker.pipelines.context import PipelineContext

DETECTOR = "detector"
CROP_MARGIN = 0.1
# BLIP-2 names things in everyday words; the default detector uses COCO's names
SYNONYMS = {"people": "person", "man": "person", "men": "person", "woman": "person", "women": "person",
            "child": "person", "children": "person", "boy": "person", "girl": "person", "kitten": "cat",
            "puppy": "dog", "sofa": "couch", "television": "tv", "motorbike": "motorcycle", "plane": "airplane",
            "table": "dining table", "phone": "cell phone", "mobile phone": "cell phone", "plant": "potted plant"}
LEADING = re.compile(r"^(a|an|the|some|several|many|two|three|four|five|\d+)\s+")


def wanted(ctx: PipelineContext) -> bool:
    """Object detection is on and the gateway has a detector service."""
    return ctx.settings.object_detection and ctx.models.has_service(DETECTOR) is True


def find_objects(ctx: PipelineContext, image_b64: str, cascade: ClassifyResponse | None) -> tuple[FoundObjects, bool]:
    """The objects, and whether the detector is open-vocabulary (unknown, so False, when the cascade found them)."""
    detection = cascade.trace.detection if cascade is not None else None
    open_vocabulary = False
    if cascade is not None and cascade.objects is not None and detection is not None and detection.status == "ok":
        found = FoundObjects(detection.service, cascade.objects[: ctx.settings.max_objects])
    else:
        answer = ctx.models.detect(image_b64)
        objects = [ObjectAnswer(label=o.label, score=o.score, box=o.box, box_normalized=o.box_normalized)
                   for o in answer.results[0].objects[: ctx.settings.max_objects]]
        found, open_vocabulary = FoundObjects(answer.model, objects), answer.open_vocabulary
    if ctx.settings.object_embeddings and found.objects:
        found = _with_embeddings(ctx, image_b64, found)
    return found, open_vocabulary


def _with_embeddings(ctx: PipelineContext, image_b64: str, found: FoundObjects) -> FoundObjects:
    image = decode_image_base64(image_b64, max_pixels=10**9)  # the upload was checked; this is its own copy
    crops = [encode_image_base64(crop_box(image, (o.box.x0, o.box.y0, o.box.x1, o.box.y1), CROP_MARGIN))
             for o in found.objects]
    answer = ctx.models.embed_images(crops)
    if len(answer.embeddings) != len(crops):
        raise StageFailed("clip", f"{len(answer.embeddings)} embeddings for {len(crops)} object crops")
    return FoundObjects(found.detector, found.objects, list(answer.embeddings), answer.model)


def name_key(name: str) -> str:
    """"Two Dogs" → "dog": lower case, no leading article or count, singular, COCO's word."""
    key = LEADING.sub("", name.strip().lower()).strip()
    key = SYNONYMS.get(key, key)
    if key in SYNONYMS.values() or not key.endswith("s") or key.endswith(("ss", "us")):
        return key
    singular = key[:-2] if key.endswith(("ses", "xes", "ches", "shes")) else key[:-1]
    return SYNONYMS.get(singular, singular)


def with_boxes(ctx: PipelineContext, image_b64: str, analysis: AnalyzeImageResponse, found: FoundObjects,
               open_vocabulary: bool) -> AnalyzeImageResponse:
    """BLIP-2's objects with the boxes of the detector's objects of the same name. An open-vocabulary
    detector is asked for BLIP-2's names themselves; a closed one's labels are matched to them."""
    if not analysis.objects:
        return analysis
    boxes: dict[str, list[Box]] = {}
    names = [obj.name for obj in analysis.objects]
    answer = ctx.models.detect(image_b64, queries=names) if open_vocabulary else None
    pairs = ([(o.label, o.box) for o in answer.results[0].objects] if answer is not None
             else [(o.label, o.box) for o in found.objects])
    for label, box in pairs:
        boxes.setdefault(name_key(label), []).append(box)
    objects = [obj.model_copy(update={"boxes": boxes.get(name_key(obj.name), [])}) for obj in analysis.objects]
    return analysis.model_copy(update={"objects": objects})

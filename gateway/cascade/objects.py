"""The detection stage: the detector finds the objects, each box is cropped with a margin and
classified on its own by the per-object stages (each one's `escalate` decides whether the next
runs), and every object's answer comes back with its box. A detector that fails leaves the
whole-image answer alone: the trace says `failed` and `objects` is empty.
"""

from __future__ import annotations

import asyncio
import time

from starlette.concurrency import run_in_threadpool

from gateway.cascade.stages import ServiceCall, run_stage
from shared.cascade.config import DecisionPolicy, DetectionStage, StageConfig
from shared.cascade.routing import Fusion, decide, offered, settle
from shared.cascade.scoring import ranked, readable
from shared.http.errors import ServiceError
from shared.imaging import crop_box, decode_image_base64, encode_image_base64
from shared.schemas.detector import DetectedObject, DetectResponse
from shared.schemas.gateway import DetectionTrace, ObjectAnswer, ObjectClassification, ObjectTrace, StageTrace

DETECT_PATH = "/v1/detect"
MAX_BOXES = 300  # ask for all the detector's boxes, so the trace can say how many the cap left out

Detected = tuple[list[ObjectAnswer], DetectionTrace]


async def detect_objects(config: DetectionStage, image: str, call: ServiceCall, *,
                         max_pixels: int) -> Detected:
    started = time.perf_counter()
    payload: dict[str, object] = {"images": [image], "score_threshold": config.score_threshold,
                                  "max_boxes": MAX_BOXES}
    if config.queries:
        payload["queries"] = config.queries
    try:
        found = DetectResponse.model_validate(await call(config.service, DETECT_PATH, payload)).results[0].objects
    except ServiceError as exc:
        return [], DetectionTrace(service=config.service, status="failed", ms=_ms(started), error=exc.detail)
    kept = found[: config.max_objects]
    crops = await run_in_threadpool(crop_objects, image, kept, config, max_pixels)
    classified = await asyncio.gather(*(_classify(config, obj, crop, call) for obj, crop in zip(kept, crops,
                                                                                                 strict=True)))
    answers = [ObjectAnswer(label=obj.label, score=obj.score, box=obj.box, box_normalized=obj.box_normalized,
                            classification=classification) for obj, (classification, _) in zip(kept, classified,
                                                                                                strict=True)]
    trace = DetectionTrace(service=config.service, status="ok", ms=_ms(started), found=len(found),
                           objects=[object_trace for _, object_trace in classified])
    return answers, trace


def crop_objects(image: str, objects: list[DetectedObject], config: DetectionStage,
                 max_pixels: int) -> list[tuple[str, tuple[int, int]] | str]:
    """Per object its crop (base64 PNG and size), or why it is not classified."""
    if not objects:
        return []
    decoded = decode_image_base64(image, max_pixels=max_pixels)
    crops: list[tuple[str, tuple[int, int]] | str] = []
    for obj in objects:
        width, height = obj.box.width, obj.box.height
        if min(width, height) < config.min_crop_pixels:
            crops.append(f"box {width:.1f}x{height:.1f} px is smaller than min_crop_pixels "
                         f"{config.min_crop_pixels}; not classified")
            continue
        crop = crop_box(decoded, (obj.box.x0, obj.box.y0, obj.box.x1, obj.box.y1), config.margin)
        crops.append((encode_image_base64(crop), crop.size))
    return crops


async def _classify(config: DetectionStage, obj: DetectedObject, crop: tuple[str, tuple[int, int]] | str,
                    call: ServiceCall) -> tuple[ObjectClassification | None, ObjectTrace]:
    if isinstance(crop, str):
        return None, ObjectTrace(label=obj.label, box=obj.box, status="skipped", reason=crop)
    image, size = crop
    fusion, traces = Fusion(), []
    for index, stage in enumerate(config.stages):
        t0 = time.perf_counter()
        used, candidates = _prompted(config, stage, obj.label, fusion.fused)
        try:
            result = await run_stage(used, image, candidates, call)
        except ServiceError as exc:
            traces.append(StageTrace(stage=stage.kind, service=stage.service, status="failed", ms=_ms(t0),
                                     error=exc.detail, reason="stage failed; kept the last answer"))
            break
        fusion.add(stage, result.scores)
        last = index == len(config.stages) - 1
        step = None if last else decide(stage.escalate, fusion.fused)
        traces.append(StageTrace(
            stage=stage.kind, service=stage.service, status="ok", top_k=ranked(result.scores),
            fused=ranked(fusion.fused, stage.top_k), ms=_ms(t0), answer=result.answer, entropy=result.entropy,
            decision="final" if step is None else ("escalate" if step.escalate else "stop"),
            reason="last stage" if step is None else step.reason, temperature=stage.temperature))
        if step is not None and not step.escalate:
            break
    if not fusion.fused:
        return None, ObjectTrace(label=obj.label, box=obj.box, status="failed", stages=traces, crop=size,
                                 reason="no object stage gave scores")
    verdict = settle(DecisionPolicy(), fusion.fused)
    classification = ObjectClassification(label=verdict.label, confidence=round(verdict.confidence, 6),
                                          top_k=ranked(fusion.fused, 5))
    return classification, ObjectTrace(label=obj.label, box=obj.box, status="ok", stages=traces, crop=size,
                                       reason=verdict.rule)


def _prompted(config: DetectionStage, stage: StageConfig, label: str,
              fused: dict[str, float]) -> tuple[StageConfig, list[str]]:
    """With `conditions`, a clip stage scores them in the object's prompt ("a photo of a damaged drain.")."""
    if config.conditions and stage.kind == "clip":
        prompt = config.condition_prompt(readable(label))
        return stage.model_copy(update={"template": prompt, "templates": [], "label_templates": {}}), \
            list(config.conditions)
    return stage, offered(stage, fused)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)

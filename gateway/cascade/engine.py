"""Runs one image through a cascade variant and records the trace.

Stage 1 (a cnn) proposes labels; each later stage scores those candidates; each stage's scores
are tempered and fused with the stages' weights; after each stage the routing (shared with
`mediamesh calibrate`) stops, goes on, or jumps to the last stage; the decision policy then
answers a label or `review`. A later stage that fails does not fail the request: the answer
comes from the last good fusion, and the trace says `degraded`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.cascade.objects import Detected, detect_objects
from gateway.cascade.stages import ServiceCall, StageResult, run_stage
from shared.cascade.config import CascadeVariant, StageConfig
from shared.cascade.routing import Fusion, Step, offered, route, settle
from shared.cascade.scoring import ranked
from shared.http.errors import ServiceError
from shared.schemas.gateway import CascadeTrace, ClassifyResponse, StageTrace

log = logging.getLogger("mediamesh.cascade")


class CascadeEngine:
    def __init__(self, call: ServiceCall, *, max_image_pixels: int = 40_000_000) -> None:
        self.call = call
        self.max_image_pixels = max_image_pixels  # for the detection stage's crops

    async def classify(
        self, image: str, variant: CascadeVariant, *, variant_name: str, request_id: str, mode: str = "auto"
    ) -> ClassifyResponse:
        started = time.perf_counter()
        # the detection stage runs beside the whole-image stages: its objects come with the answer
        detection = None if variant.detection is None else asyncio.create_task(
            detect_objects(variant.detection, image, self.call, max_pixels=self.max_image_pixels))
        try:
            return await self._classify(image, variant, variant_name, request_id, mode, started, detection)
        finally:
            if detection is not None and not detection.done():
                detection.cancel()

    async def _classify(self, image: str, variant: CascadeVariant, variant_name: str, request_id: str, mode: str,
                        started: float, detection: asyncio.Task[Detected] | None) -> ClassifyResponse:
        traces: list[StageTrace] = []
        fusion = Fusion()
        degraded = False
        index: int | None = 0
        while index is not None:
            stage = variant.stages[index]
            t0 = time.perf_counter()
            try:
                result = await run_stage(stage, image, offered(stage, fusion.fused, mode), self.call)
            except ServiceError as exc:
                if index == 0:
                    raise  # nothing to fall back on: the caller gets the service's error
                degraded = True
                traces.append(StageTrace(stage=stage.kind, service=stage.service, status="failed", answer=None,
                                         ms=_ms(t0), error=exc.detail, reason="stage failed; kept the last answer"))
                break
            fusion.add(stage, result.scores)
            entropy = result.entropy if index == 0 and stage.temperature == 1 else None
            step = route(variant, index, fusion.fused, entropy, mode)
            traces.append(_trace(stage, result, fusion.fused, step, t0))
            index = step.next_index
        verdict = settle(variant.decision, fusion.fused)
        objects, detection_trace = (None, None) if detection is None else await detection
        trace = CascadeTrace(variant=variant_name, stages=traces, degraded=degraded, total_ms=_ms(started),
                             rule=verdict.rule, detection=detection_trace)
        return ClassifyResponse(label=verdict.label, confidence=round(verdict.confidence, 6),
                                decision=verdict.decision, top_k=ranked(fusion.fused, 5), variant=variant_name,
                                request_id=request_id, trace=trace, objects=objects)


def _trace(stage: StageConfig, result: StageResult, fused: dict[str, float], step: Step, t0: float) -> StageTrace:
    reason = step.reason if result.scores else f"{step.reason}; the stage gave no scores"
    return StageTrace(stage=stage.kind, service=stage.service, status="ok", top_k=ranked(result.scores),
                      fused=ranked(fused, stage.top_k), ms=_ms(t0), answer=result.answer, entropy=result.entropy,
                      decision=step.decision, reason=reason, temperature=stage.temperature)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)

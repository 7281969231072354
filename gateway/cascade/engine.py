"""Runs one image through a cascade variant and records the trace.

Stage 1 (a cnn) proposes labels; each later stage scores those candidates; the scores are
fused with the stages' weights; after each stage the strategy decides whether to go on. A
later stage that fails does not fail the request: the answer is the last good fusion, and the
trace says `degraded`.
"""

from __future__ import annotations

import logging
import time

from gateway.cascade.config import CascadeVariant
from gateway.cascade.fusion import fuse, ranked
from gateway.cascade.stages import ServiceCall, run_stage
from gateway.cascade.strategy import Decision, decide
from shared.http.errors import ServiceError
from shared.schemas.gateway import CascadeTrace, ClassifyResponse, StageTrace

log = logging.getLogger("mediamesh.cascade")


class CascadeEngine:
    def __init__(self, call: ServiceCall) -> None:
        self.call = call

    async def classify(
        self, image: str, variant: CascadeVariant, *, variant_name: str, request_id: str, mode: str = "auto"
    ) -> ClassifyResponse:
        started = time.perf_counter()
        traces: list[StageTrace] = []
        stage_scores: list[dict[str, float]] = []
        weights: list[float] = []
        fused: dict[str, float] = {}
        degraded = False
        for index, stage in enumerate(variant.stages):
            candidates = [s.label for s in ranked(fused)]
            t0 = time.perf_counter()
            try:
                result = await run_stage(stage, image, candidates, self.call)
            except ServiceError as exc:
                if index == 0:
                    raise  # nothing to fall back on: the caller gets the service's error
                degraded = True
                traces.append(StageTrace(stage=stage.kind, service=stage.service, status="failed", answer=None,
                                         ms=_ms(t0), error=exc.detail, reason="stage failed; kept the last answer"))
                break
            if result.scores:
                stage_scores.append(result.scores)
                weights.append(stage.weight)
                fused = fuse(stage_scores, weights) if sum(weights) > 0 else result.scores
            last = index == len(variant.stages) - 1
            decision = self._decide(variant, index, fused, result.entropy if index == 0 else None, mode, last)
            traces.append(StageTrace(
                stage=stage.kind, service=stage.service, status="ok", top_k=ranked(result.scores, stage.top_k),
                fused=ranked(fused, stage.top_k), ms=_ms(t0), answer=result.answer, entropy=result.entropy,
                decision="final" if last else ("escalate" if decision.escalate else "stop"),
                reason=decision.reason if result.scores else f"{decision.reason}; the answer matched no candidate",
            ))
            if not decision.escalate:
                break
        top = ranked(fused)
        trace = CascadeTrace(variant=variant_name, stages=traces, degraded=degraded, total_ms=_ms(started))
        return ClassifyResponse(label=top[0].label, confidence=top[0].score, top_k=top[:5], variant=variant_name,
                                request_id=request_id, trace=trace)

    @staticmethod
    def _decide(
        variant: CascadeVariant, index: int, fused: dict[str, float], entropy: float | None, mode: str, last: bool
    ) -> Decision:
        if last:
            return Decision(False, "last stage")
        if mode == "always":
            return Decision(True, "mode=always runs every stage")
        if mode == "never":
            return Decision(False, "mode=never stops after the first stage")
        return decide(variant.stages[index].escalate, fused, entropy)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)

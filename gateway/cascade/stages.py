"""One cascade stage per service kind: the call it makes and the scores it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.cascade.config import STAGE_PATHS, StageConfig
from gateway.cascade.fusion import match_answer, readable
from shared.http.errors import ServiceError
from shared.schemas.blip2 import VqaResponse
from shared.schemas.clip import ZeroShotResponse
from shared.schemas.cnn import CnnClassifyResponse

# (service name, path, JSON payload) → JSON answer; the gateway passes its budgeted dispatcher
ServiceCall = Callable[[str, str, dict[str, object]], Awaitable[dict[str, object]]]


class CascadeStageError(ServiceError):
    """A cascade stage that cannot run with what it was given (the gateway's error, 502)."""

    status_code = 502


@dataclass
class StageResult:
    scores: dict[str, float]
    entropy: float | None = None
    answer: str | None = None


async def run_stage(stage: StageConfig, image: str, candidates: list[str], call: ServiceCall) -> StageResult:
    path = STAGE_PATHS[stage.kind]
    match stage.kind:
        case "cnn":
            raw = await call(stage.service, path, {"images": [image], "top_k": stage.top_k})
            result = CnnClassifyResponse.model_validate(raw).results[0]
            return StageResult({s.label: s.score for s in result.top_k}, entropy=result.entropy)
        case "clip":
            offered = candidates[: stage.top_k]
            if len(offered) < 2:
                raise CascadeStageError(f"clip re-ranking needs at least 2 candidate labels, got {offered}")
            prompts = {readable(label): label for label in offered}
            raw = await call(stage.service, path, {"images": [image], "labels": list(prompts),
                                                   "template": stage.template})
            scores = ZeroShotResponse.model_validate(raw).results[0].scores
            return StageResult({prompts.get(s.label, s.label): s.score for s in scores})
        case "blip2":
            offered = candidates[: stage.top_k]
            question = stage.question.format(options=", ".join(readable(label) for label in offered))
            raw = await call(stage.service, path, {"image": image, "question": question})
            answer = VqaResponse.model_validate(raw).answer
            label = match_answer(answer, offered)
            return StageResult({label: 1.0} if label else {}, answer=answer)
    raise CascadeStageError(f"unknown stage kind {stage.kind}")  # unreachable: the config is validated

"""One cascade stage per service kind: the call it makes and the distribution over the candidates
it returns (cnn: its softmax top-k; clip: zero-shot over prompt ensembles; blip2: score-options;
clip_head: a trained head's softmax over its own labels)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.cascade.config import STAGE_PATHS, StageConfig
from shared.cascade.scoring import readable
from shared.http.errors import ServiceError
from shared.schemas.blip2 import ScoreOptionsResponse
from shared.schemas.clip import ZeroShotResponse
from shared.schemas.cnn import CnnClassifyResponse
from shared.schemas.heads import HeadClassifyResponse

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
    if stage.kind == "cnn":
        raw = await call(stage.service, path, {"images": [image], "top_k": stage.top_k})
        result = CnnClassifyResponse.model_validate(raw).results[0]
        return StageResult({s.label: s.score for s in result.top_k}, entropy=result.entropy)
    if stage.kind == "clip_head":  # a trained head answers over its own labels
        raw = await call(stage.service, path, {"images": [image], "head": stage.head})
        head_scores = HeadClassifyResponse.model_validate(raw).results[0].scores[: stage.top_k]
        return StageResult({s.label: s.score for s in head_scores})
    if len(candidates) < 2:
        raise CascadeStageError(f"{stage.kind} needs at least 2 candidate labels to choose among, got {candidates}")
    prompts = {readable(label): label for label in candidates}
    if stage.kind == "clip":
        label_templates = {readable(la): ts for la, ts in stage.label_templates.items() if la in candidates}
        raw = await call(stage.service, path, {"images": [image], "labels": list(prompts),
                                               "templates": stage.prompt_templates(),
                                               "label_templates": label_templates})
        scores = ZeroShotResponse.model_validate(raw).results[0].scores
        return StageResult({prompts.get(s.label, s.label): s.score for s in scores})
    question = stage.question.replace("{options}", ", ".join(prompts))
    raw = await call(stage.service, path, {"image": image, "question": question, "options": list(prompts),
                                           "answer": True})
    answer = ScoreOptionsResponse.model_validate(raw)
    return StageResult({prompts.get(s.label, s.label): s.score for s in answer.scores}, answer=answer.answer)

"""The classify-results aggregate: each cascade answer per variant and, from feedback, its true label."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update

from shared.schemas.gateway import ClassifyResponse
from storage.db import Database
from storage.models import ClassifyResult


@dataclass(frozen=True)
class Outcome:
    """What the A/B report needs of one stored answer."""

    variant: str
    label: str | None
    decision: str
    truth: str | None
    stage_calls: int
    escalated: bool
    total_ms: float


class ClassifyResultRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, answer: ClassifyResponse) -> None:
        stages = answer.trace.stages
        summary = {"stages": [{"service": s.service, "decision": s.decision, "status": s.status} for s in stages],
                   "rule": answer.trace.rule, "degraded": answer.trace.degraded}
        with self.db.session() as session:
            session.add(ClassifyResult(
                request_id=answer.request_id, variant=answer.variant, label=answer.label,
                confidence=answer.confidence, decision=answer.decision, stage_calls=len(stages),
                escalated=len(stages) > 1, total_ms=answer.trace.total_ms, trace=summary))

    def give_truth(self, request_id: str, truth: str) -> int:
        """Set the true label on every stored answer to this request; how many there were."""
        with self.db.session() as session:
            done = session.execute(update(ClassifyResult).where(ClassifyResult.request_id == request_id)
                                   .values(truth=truth, feedback_at=func.now()))
            return int(done.rowcount or 0)  # type: ignore[attr-defined]

    def outcomes(self, variant: str | None = None) -> list[Outcome]:
        query = select(ClassifyResult.variant, ClassifyResult.label, ClassifyResult.decision, ClassifyResult.truth,
                       ClassifyResult.stage_calls, ClassifyResult.escalated, ClassifyResult.total_ms)
        if variant is not None:
            query = query.where(ClassifyResult.variant == variant)
        with self.db.session() as session:
            return [Outcome(*row) for row in session.execute(query.order_by(ClassifyResult.id))]

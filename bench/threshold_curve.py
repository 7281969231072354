"""The digits benchmark's first-stage threshold sweep (an in-process two-CNN stand-in).

`mediamesh calibrate` replays the real cascade instead (mediamesh/calibration.py). Each sample
records the first stage's answer and confidence and the answer the cascade gives when it
escalates. Sweeping the threshold gives, per threshold, the accuracy, the share
escalated and each class's recall; targets (`recall:pit>=0.99`, `escalation<=0.30`,
`accuracy>=0.95`) pick one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mediamesh.calibration import Target  # the same target syntax as `mediamesh calibrate`


@dataclass(frozen=True)
class Sample:
    truth: str
    first_label: str
    first_confidence: float
    escalated_label: str


@dataclass
class CurvePoint:
    threshold: float
    accuracy: float
    escalation: float
    recall: dict[str, float] = field(default_factory=dict)

    def value(self, metric: str, label: str | None = None) -> float:
        if metric == "recall":
            return self.recall.get(label or "", 0.0)
        return self.accuracy if metric == "accuracy" else self.escalation


def default_thresholds(steps: int = 100) -> list[float]:
    return [round(i / steps, 4) for i in range(steps + 1)]


def evaluate(samples: Sequence[Sample], threshold: float) -> CurvePoint:
    """Escalate when the first stage's confidence is below the threshold (the threshold strategy)."""
    if not samples:
        raise ValueError("no samples to calibrate on")
    correct = escalated = 0
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for s in samples:
        up = s.first_confidence < threshold
        answer = s.escalated_label if up else s.first_label
        escalated += up
        correct += answer == s.truth
        totals[s.truth] = totals.get(s.truth, 0) + 1
        hits[s.truth] = hits.get(s.truth, 0) + (answer == s.truth)
    n = len(samples)
    recall = {label: hits[label] / totals[label] for label in sorted(totals)}
    return CurvePoint(threshold, correct / n, escalated / n, recall)


def curve(samples: Sequence[Sample], thresholds: Sequence[float] | None = None) -> list[CurvePoint]:
    return [evaluate(samples, t) for t in (thresholds or default_thresholds())]


def choose(points: Sequence[CurvePoint], targets: Sequence[Target]) -> CurvePoint | None:
    """The point meeting every target: the least escalation when a quality target (accuracy or
    recall) is given, else the best accuracy; None when no threshold meets them all."""
    feasible = [p for p in points if all(t.met(p) for t in targets)]
    if not feasible:
        return None
    if any(t.metric in ("accuracy", "recall") for t in targets):
        return min(feasible, key=lambda p: (p.escalation, -p.accuracy, p.threshold))
    return max(feasible, key=lambda p: (p.accuracy, -p.escalation, -p.threshold))

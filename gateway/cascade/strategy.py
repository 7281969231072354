"""Escalation strategies: decide, from the scores fused so far, whether the next stage runs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.cascade.config import EscalationStrategy


@dataclass(frozen=True)
class Decision:
    escalate: bool
    reason: str


def entropy(scores: dict[str, float]) -> float:
    """Shannon entropy (nats) of the scores renormalised to a distribution."""
    total = sum(scores.values())
    if total <= 0:
        return 0.0
    return -sum(p / total * math.log(p / total) for p in scores.values() if p > 0)


def decide(strategy: EscalationStrategy, scores: dict[str, float], entropy_nats: float | None = None) -> Decision:
    """`scores`: label → probability (highest first is not required)."""
    if not scores:
        return Decision(True, "no scores to judge")
    label, top = max(scores.items(), key=lambda item: item[1])
    if label in strategy.always_escalate:
        return Decision(True, f"'{label}' is a class that always escalates")
    match strategy.kind:
        case "threshold":
            limit = strategy.class_thresholds.get(label, strategy.threshold)
            which = f"'{label}' threshold" if label in strategy.class_thresholds else "threshold"
            if top < limit:
                return Decision(True, f"top-1 '{label}' {top:.3f} < {which} {limit:.3f}")
            return Decision(False, f"top-1 '{label}' {top:.3f} >= {which} {limit:.3f}")
        case "interval":
            positive = strategy.positive_label or ""
            p = scores.get(positive, 0.0)
            interval = f"uncertain interval [{strategy.low}, {strategy.high})"
            if strategy.low <= p < strategy.high:
                return Decision(True, f"p('{positive}') {p:.3f} in {interval}")
            return Decision(False, f"p('{positive}') {p:.3f} outside {interval}")
        case "entropy":
            h = entropy(scores) if entropy_nats is None else entropy_nats
            if h > strategy.max_entropy:
                return Decision(True, f"entropy {h:.3f} nats > {strategy.max_entropy}")
            return Decision(False, f"entropy {h:.3f} nats <= {strategy.max_entropy}")
    raise ValueError(f"unknown strategy {strategy.kind}")  # unreachable: the config is validated

"""Routing after each stage (stop, next stage, or jump to the last) and the decision after fusion.

Pure functions of the configuration and the scores: the gateway's engine runs them on live
stage answers, `mediamesh calibrate` on recorded ones (`replay`), so both decide alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from shared.cascade.config import (
    OWN_LABEL_KINDS,
    CascadeVariant,
    DecisionPolicy,
    EscalationStrategy,
    StageConfig,
)
from shared.cascade.scoring import fuse, ordered, restrict, temper


@dataclass(frozen=True)
class Decision:
    escalate: bool
    reason: str
    jump: bool = False


@dataclass(frozen=True)
class Step:
    next_index: int | None
    decision: Literal["escalate", "jump", "stop", "final"]
    reason: str


@dataclass(frozen=True)
class Verdict:
    label: str | None
    confidence: float
    decision: Literal["answer", "review"]
    rule: str


def entropy(scores: dict[str, float]) -> float:
    """Shannon entropy (nats) of the scores renormalised to a distribution."""
    total = sum(scores.values())
    if total <= 0:
        return 0.0
    return -sum(p / total * math.log(p / total) for p in scores.values() if p > 0)


def decide(strategy: EscalationStrategy, scores: dict[str, float], entropy_nats: float | None = None) -> Decision:
    """`scores`: label → probability. Escalate or stop; `jump` when top-1 is below `jump_below`."""
    decision = _strategy(strategy, scores, entropy_nats)
    if decision.escalate and strategy.jump_below is not None and scores:
        label, top = max(scores.items(), key=lambda item: item[1])
        if top < strategy.jump_below:
            return Decision(True, f"{decision.reason}; top-1 '{label}' {top:.3f} < jump_below "
                                  f"{strategy.jump_below:.3f}", jump=True)
    return decision


def _strategy(strategy: EscalationStrategy, scores: dict[str, float], entropy_nats: float | None) -> Decision:
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


def route(variant: CascadeVariant, index: int, fused: dict[str, float], entropy_nats: float | None,
          mode: str = "auto") -> Step:
    """Where an image goes after stage `index`."""
    if index == len(variant.stages) - 1:
        return Step(None, "final", "last stage")
    if mode == "always":
        return Step(index + 1, "escalate", "mode=always runs every stage")
    if mode == "never":
        return Step(None, "stop", "mode=never stops after the first stage")
    decision = decide(variant.stages[index].escalate, fused, entropy_nats)
    if not decision.escalate:
        return Step(None, "stop", decision.reason)
    last = variant.last_index()
    if decision.jump and last > index + 1:
        return Step(last, "jump", decision.reason)
    return Step(index + 1, "escalate", decision.reason)


def offered(stage: StageConfig, fused: dict[str, float], mode: str = "auto") -> list[str]:
    """The candidates a later stage scores: the fused top-k; with mode=always every candidate, so
    that calibration can replay any route from the recorded scores (see `restrict`)."""
    labels = ordered(fused)
    return labels if mode == "always" else labels[: stage.top_k]


@dataclass
class Fusion:
    """The scores fused over the stages run so far (each tempered by its stage's temperature)."""

    stage_scores: list[dict[str, float]] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    fused: dict[str, float] = field(default_factory=dict)

    def add(self, stage: StageConfig, raw: dict[str, float]) -> dict[str, float]:
        scores = temper(raw, stage.temperature)
        if scores:
            self.stage_scores.append(scores)
            self.weights.append(stage.weight)
            self.fused = fuse(self.stage_scores, self.weights) if sum(self.weights) > 0 else scores
        return scores


def settle(policy: DecisionPolicy, fused: dict[str, float]) -> Verdict:
    """The answer from the fused scores: class thresholds first, then the abstain band, then top-1."""
    scores = _biased(fused, policy.class_bias)
    if not scores:
        return Verdict(None, 0.0, "review", "no stage gave scores")
    order = ordered(scores)
    for label in order:
        limit = policy.class_thresholds.get(label)
        if limit is not None and scores[label] >= limit:
            return Verdict(label, scores[label], "answer",
                           f"p('{label}') {scores[label]:.3f} >= class threshold {limit:.3f}")
    for label in order:
        band = policy.review_thresholds.get(label)
        if band is not None and scores[label] >= band:
            return Verdict(None, scores[order[0]], "review", f"p('{label}') {scores[label]:.3f} in review band "
                           f"[{band:.3f}, {policy.class_thresholds[label]:.3f})")
    free = [label for label in order if label not in policy.class_thresholds]
    if not free:
        return Verdict(None, scores[order[0]], "review", "no class met its decision threshold")
    label, p = free[0], scores[free[0]]
    if policy.review_below is not None and p < policy.review_below:
        return Verdict(None, p, "review", f"top-1 '{label}' {p:.3f} < review_below {policy.review_below:.3f}")
    return Verdict(label, p, "answer", "top-1 after class bias" if policy.class_bias else "top-1")


def _biased(scores: dict[str, float], bias: dict[str, float]) -> dict[str, float]:
    if not bias:
        return dict(scores)
    shifted = {label: p * math.exp(bias.get(label, 0.0)) for label, p in scores.items()}
    total = sum(shifted.values())
    return {label: p / total for label, p in shifted.items()} if total > 0 else shifted


@dataclass(frozen=True)
class Replay:
    stages: list[int]
    fused: dict[str, float]
    verdict: Verdict


def replay(variant: CascadeVariant, recorded: list[dict[str, float]], first_entropy: float | None = None) -> Replay:
    """The cascade on one image's recorded raw stage scores (a `mode=always` trace): the route the
    gateway would take, the stages it would call, and its answer."""
    fusion, index, run = Fusion(), 0, []
    next_index: int | None = 0
    while next_index is not None:
        index = next_index
        stage = variant.stages[index]
        # a cnn (or a trained head) scores its own labels whatever it is offered; clip and blip2 score the
        # offered candidates
        own = stage.kind in OWN_LABEL_KINDS
        raw = recorded[index] if own else restrict(recorded[index], offered(stage, fusion.fused))
        fusion.add(stage, raw)
        run.append(index)
        entropy_nats = first_entropy if index == 0 and stage.temperature == 1 else None
        next_index = route(variant, index, fusion.fused, entropy_nats).next_index
    return Replay(run, fusion.fused, settle(variant.decision, fusion.fused))

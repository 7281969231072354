"""Calibrating the cascade on a labelled set by replaying it, exactly as the gateway runs it.

One collection pass (`mode=always`) records every stage's raw scores per image. From those,
`shared.cascade.routing.replay` gives, for any configuration, the stages the gateway would call
and its answer, so each setting is measured without calling a model again:

1. temperatures: per stage, the one minimising the negative log-likelihood of the true labels;
2. routing: every combination of the stages' `threshold`s and the first stage's `jump_below`
   (accuracy, share escalated, stage calls per image) — targets on escalation pick one;
3. decision: for a `recall:LABEL` target, that label's decision threshold and review band
   (recall, share sent to review) — the remaining targets pick one.

Recall counts a review as caught (a person looks at it); accuracy is over the answered images.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.cascade.config import CascadeVariant, DecisionPolicy
from shared.cascade.routing import Replay, replay, settle
from shared.cascade.scoring import nll, temper

TARGET = re.compile(r"^\s*(?:(recall):(?P<label>[^<>=]+?)|(?P<metric>accuracy|escalation|review))\s*"
                    r"(?P<op><=|>=)\s*(?P<value>[0-9]*\.?[0-9]+)\s*$")
TEMPERATURES = [round(0.25 * 1.25**i, 4) for i in range(19)]  # 0.25 … ~14.6, geometric
JUMPS: list[float | None] = [None, 0.2, 0.3, 0.4, 0.5]


@dataclass(frozen=True)
class Record:
    """One labelled image's `mode=always` trace: each stage's raw scores, and the cnn's entropy."""

    truth: str
    stages: list[dict[str, float]]
    entropy: float | None = None


@dataclass
class Point:
    settings: dict[str, Any]
    accuracy: float
    escalation: float
    review: float
    recall: dict[str, float] = field(default_factory=dict)
    calls: list[float] = field(default_factory=list, repr=False)

    def value(self, metric: str, label: str | None = None) -> float:
        if metric == "recall":
            return self.recall.get(label or "", 0.0)
        return float(getattr(self, metric))


@dataclass(frozen=True)
class Target:
    metric: str  # accuracy | escalation | review | recall
    op: str  # <= | >=
    value: float
    label: str | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        match = TARGET.match(text)
        if not match:
            raise ValueError(f"cannot read target {text!r}; write e.g. 'recall:pit>=0.99', 'escalation<=0.30', "
                             "'review<=0.05' or 'accuracy>=0.95'")
        metric = "recall" if match["label"] else match["metric"]
        return cls(metric, match["op"], float(match["value"]), match["label"].strip() if match["label"] else None)

    def met(self, point: Point) -> bool:
        got = point.value(self.metric, self.label)
        return got >= self.value - 1e-12 if self.op == ">=" else got <= self.value + 1e-12

    def __str__(self) -> str:
        name = f"recall:{self.label}" if self.metric == "recall" else self.metric
        return f"{name}{self.op}{self.value:g}"


def measure(variant: CascadeVariant, records: Sequence[Record], settings: dict[str, Any],
            replays: Sequence[Replay] | None = None) -> Point:
    """The variant's accuracy, escalation, review share, recall per class and stage calls per image."""
    if not records:
        raise ValueError("no labelled images to calibrate on")
    outs = replays if replays is not None else [replay(variant, r.stages, r.entropy) for r in records]
    calls = [0] * len(variant.stages)
    correct = answered = escalated = reviewed = 0
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for record, out in zip(records, outs, strict=True):
        for index in out.stages:
            calls[index] += 1
        escalated += len(out.stages) > 1
        review = out.verdict.decision == "review"
        reviewed += review
        answered += not review
        correct += out.verdict.label == record.truth
        totals[record.truth] = totals.get(record.truth, 0) + 1
        hits[record.truth] = hits.get(record.truth, 0) + (review or out.verdict.label == record.truth)
    n = len(records)
    return Point(settings, correct / answered if answered else 0.0, escalated / n, reviewed / n,
                 {label: hits[label] / totals[label] for label in sorted(totals)}, [c / n for c in calls])


def fit_temperatures(variant: CascadeVariant, records: Sequence[Record]) -> list[float]:
    """Per stage, the temperature with the least mean NLL of the true label (1.0 without data)."""
    fitted = []
    for index in range(len(variant.stages)):
        scored = [(r.stages[index], r.truth) for r in records if index < len(r.stages) and r.stages[index]]
        if not scored:
            fitted.append(1.0)
            continue
        fitted.append(min(TEMPERATURES, key=lambda t: (sum(nll(temper(s, t), truth) for s, truth in scored), t)))
    return fitted


def with_settings(variant: CascadeVariant, **changes: Any) -> CascadeVariant:
    """A copy with `temperatures`, `thresholds` (per stage, None keeps it), `jump_below`, `decision`."""
    data = variant.model_dump()
    for stage, t in zip(data["stages"], changes.get("temperatures") or [], strict=False):
        stage["temperature"] = t
    for stage, t in zip(data["stages"], changes.get("thresholds") or [], strict=False):
        if t is not None:
            stage["escalate"]["threshold"] = t
    if "jump_below" in changes:
        data["stages"][0]["escalate"]["jump_below"] = changes["jump_below"]
    if "decision" in changes:
        data["decision"] = changes["decision"]
    return CascadeVariant.model_validate(data)


def grid(steps: int) -> list[float]:
    return [round(i / steps, 4) for i in range(steps + 1)]


def routing_curve(variant: CascadeVariant, records: Sequence[Record], steps: int = 20) -> list[Point]:
    """Every combination of the threshold-strategy stages' thresholds (the first stage on the
    fine grid, later ones on a coarser one) and the first stage's jump_below."""
    axes: list[list[float | None]] = []
    for index, stage in enumerate(variant.stages[:-1]):
        tunable = stage.escalate.kind == "threshold"
        axes.append(list(grid(steps if index == 0 else max(steps // 2, 1))) if tunable else [None])
    points = []
    for thresholds in itertools.product(*axes):
        first = thresholds[0] if thresholds and thresholds[0] is not None else variant.stages[0].escalate.threshold
        for jump in JUMPS if len(variant.stages) > 2 else [None]:
            if jump is not None and jump > first:
                continue
            candidate = with_settings(variant, thresholds=list(thresholds), jump_below=jump)
            settings = {"thresholds": list(thresholds), "jump_below": jump}
            points.append(measure(candidate, records, settings))
    return points


def decision_curve(variant: CascadeVariant, records: Sequence[Record], label: str, steps: int = 20) -> list[Point]:
    """For one label, every decision threshold and review band under it, on the variant's routing."""
    outs = [replay(variant, r.stages, r.entropy) for r in records]
    points = []
    for threshold in grid(steps):
        for band in [None, *(b for b in grid(steps) if b < threshold)]:
            policy = DecisionPolicy(class_thresholds={label: threshold},
                                    review_thresholds={label: band} if band is not None else {})
            settled = [Replay(o.stages, o.fused, settle(policy, o.fused)) for o in outs]
            settings = {"class_threshold": threshold, "review_threshold": band}
            points.append(measure(variant, records, settings, settled))
    return points


def choose(points: Iterable[Point], targets: Sequence[Target]) -> Point | None:
    """The point meeting every target with the best accuracy, then the least review and escalation."""
    feasible = [p for p in points if all(t.met(p) for t in targets)]
    if not feasible:
        return None
    return max(feasible, key=lambda p: (round(p.accuracy, 9), -p.review, -p.escalation))


@dataclass
class Tuned:
    variant: CascadeVariant | None
    temperatures: list[float]
    routing: list[Point]
    decision: list[Point]
    chosen: Point | None


def tune(variant: CascadeVariant, records: Sequence[Record], targets: Sequence[Target], steps: int = 20) -> Tuned:
    """Temperatures, then routing (against the escalation targets; all targets when no recall
    target leaves the decision to tune), then the recall target's decision threshold and band."""
    temperatures = fit_temperatures(variant, records)
    tempered = with_settings(variant, temperatures=temperatures)
    routing = routing_curve(tempered, records, steps)
    recall = [t for t in targets if t.metric == "recall"]
    picked = choose(routing, [t for t in targets if t.metric == "escalation"] if recall else targets)
    if picked is None:
        return Tuned(None, temperatures, routing, [], None)
    routed = with_settings(tempered, thresholds=picked.settings["thresholds"], jump_below=picked.settings["jump_below"])
    if not recall:
        return Tuned(routed, temperatures, routing, [], picked)
    label = recall[0].label or ""
    decision = decision_curve(routed, records, label, steps)
    chosen = choose(decision, targets)
    if chosen is None:
        return Tuned(None, temperatures, routing, decision, None)
    band = chosen.settings["review_threshold"]
    policy = {"class_thresholds": {label: chosen.settings["class_threshold"]},
              "review_thresholds": {label: band} if band is not None else {}}
    chosen.settings = {**picked.settings, **chosen.settings}
    return Tuned(with_settings(routed, decision=policy), temperatures, routing, decision, chosen)


def split(records: Sequence[Record], holdout: float) -> tuple[list[Record], list[Record]]:
    """Per label, every k-th record (k = 1 / holdout) to the held-out split: stable and stratified."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a share between 0 and 1, got {holdout}")
    tune_on: list[Record] = []
    held: list[Record] = []
    seen: dict[str, int] = {}
    for record in records:
        seen[record.truth] = seen.get(record.truth, 0) + 1
        position = seen[record.truth] * holdout
        (held if int(position) > int(position - holdout) else tune_on).append(record)
    return tune_on, held

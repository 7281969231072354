"""Temperatures, seed 000's three routing zones, the decision policy after fusion, bad
configurations, and the replay `mediamesh calibrate` uses deciding exactly as the engine."""

from __future__ import annotations

import itertools
import re

import pytest
from pydantic import ValidationError

from gateway.cascade.engine import CascadeEngine
from shared.cascade.config import CascadeVariant, DecisionPolicy, EscalationStrategy, StageConfig
from shared.cascade.routing import replay, settle
from shared.cascade.scoring import restrict, temper
from tests.unit.test_cascade import FakeServices


def three_stage(cnn: EscalationStrategy, clip_threshold: float = 0.9, **extra: object) -> CascadeVariant:
    return CascadeVariant.model_validate({"stages": [
        StageConfig(kind="cnn", service="cnn", weight=0.5, escalate=cnn),
        StageConfig(kind="clip", service="clip", weight=0.5, top_k=3,
                    escalate=EscalationStrategy(threshold=clip_threshold)),
        StageConfig(kind="blip2", service="blip2", weight=1.0, top_k=2)], **extra})


async def run(v: CascadeVariant, services: FakeServices | None = None, mode: str = "auto"):  # noqa: ANN201
    return await CascadeEngine(services or FakeServices()).classify("aW1n", v, variant_name="a",
                                                                    request_id="r", mode=mode)


def test_temperature_scaling_keeps_t1_and_the_order() -> None:
    scores = {"cat": 0.6, "dog": 0.3, "fox": 0.1}
    assert temper(scores, 1.0) == scores
    roots = {label: p**0.5 for label, p in scores.items()}  # T = 2: p ∝ sqrt(p); nothing was left out
    assert temper(scores, 2.0) == pytest.approx({label: r / sum(roots.values()) for label, r in roots.items()})
    sharp = temper({"cat": 0.5, "dog": 0.3}, 0.5)  # the 0.2 a cnn left out is one more outcome: 0.25, 0.09, 0.04
    assert sharp == pytest.approx({"cat": 0.25 / 0.38, "dog": 0.09 / 0.38})
    assert restrict({"a": 0.5, "b": 0.3, "c": 0.2}, ["b", "c", "z"]) == pytest.approx({"b": 0.6, "c": 0.4})


async def test_below_low_jumps_straight_to_the_last_stage() -> None:
    services = FakeServices()
    zones = EscalationStrategy(threshold=0.9, jump_below=0.65)
    answer = await run(three_stage(zones), services)
    assert [s.stage for s in answer.trace.stages] == ["cnn", "blip2"]
    first = answer.trace.stages[0]
    assert first.decision == "jump" and "0.600 < jump_below 0.650" in first.reason
    assert [call[0] for call in services.calls] == ["cnn", "blip2"]
    # blip2 gets the cnn's top 2: cat, dog; its 0.8/0.1 renormalised over them: dog 0.889, cat 0.111
    assert services.calls[-1][2]["options"] == ["cat", "dog"]
    assert answer.label == "dog" and answer.confidence == pytest.approx((0.15 + 0.8 / 0.9) / 1.5, abs=1e-6)


async def test_between_low_and_high_goes_to_the_next_stage_and_above_high_returns() -> None:
    middle = await run(three_stage(EscalationStrategy(threshold=0.9, jump_below=0.5), clip_threshold=0.4))
    assert [s.decision for s in middle.trace.stages] == ["escalate", "stop"]
    top = await run(three_stage(EscalationStrategy(threshold=0.55, jump_below=0.5)))
    assert [s.decision for s in top.trace.stages] == ["stop"]


async def test_last_stage_names_where_a_jump_lands() -> None:
    answer = await run(three_stage(EscalationStrategy(threshold=0.9, jump_below=0.65), clip_threshold=0.0,
                                   last_stage="clip"))
    assert [s.stage for s in answer.trace.stages] == ["cnn", "clip"]
    assert answer.trace.stages[0].decision == "escalate"  # the next stage is the last: a plain escalation


def test_decision_policy_rules() -> None:
    fused = {"clean": 0.7, "pit": 0.3}
    assert settle(DecisionPolicy(), fused).label == "clean"
    pit = settle(DecisionPolicy(class_thresholds={"pit": 0.25}), fused)
    assert pit.label == "pit" and pit.rule == "p('pit') 0.300 >= class threshold 0.250"
    band = settle(DecisionPolicy(class_thresholds={"pit": 0.5}, review_thresholds={"pit": 0.2}), fused)
    assert band.label is None and band.decision == "review" and "review band [0.200, 0.500)" in band.rule
    below = settle(DecisionPolicy(review_below=0.8), fused)
    assert below.decision == "review" and below.rule == "top-1 'clean' 0.700 < review_below 0.800"
    biased = settle(DecisionPolicy(class_bias={"pit": 2.0}), fused)  # 0.3 e^2 = 2.217 vs 0.7
    assert biased.label == "pit" and biased.confidence == pytest.approx(2.2167 / 2.9167, abs=1e-4)
    assert biased.rule == "top-1 after class bias"
    only = settle(DecisionPolicy(class_thresholds={"pit": 0.9, "clean": 0.9}), fused)
    assert only.decision == "review" and only.rule == "no class met its decision threshold"


async def test_review_answer_carries_the_candidates() -> None:
    v = three_stage(EscalationStrategy(threshold=0.5), decision={"review_below": 0.9})
    answer = await run(v)
    assert answer.label is None and answer.decision == "review" and answer.confidence == 0.6
    assert [s.label for s in answer.top_k] == ["cat", "dog", "fox"] and "review_below" in answer.trace.rule


@pytest.mark.parametrize(("config", "phrase"), [
    ({"escalate": {"threshold": 0.5, "jump_below": 0.7}}, "thresholds out of order"),
    ({"escalate": {"threshold": 0.8, "class_thresholds": {"cat": 0.4}, "jump_below": 0.5}}, "out of order"),
    ({"temperature": 0}, "greater than 0"),
    ({"temperature": -1}, "greater than 0"),
    ({"variant": {"last_stage": "nowhere"}}, "last_stage 'nowhere' is not a later stage"),
    ({"variant": {"labels": ["cat", "dog"], "decision": {"class_thresholds": {"pit": 0.2}}}},
     "unknown label(s) ['pit']"),
    ({"variant": {"labels": ["cat"]}, "escalate": {"always_escalate": ["dog"]}}, "unknown label(s) ['dog']"),
    ({"variant": {"decision": {"class_thresholds": {"pit": 0.3}, "review_thresholds": {"pit": 0.5}}}},
     "must not be above their class thresholds"),
    ({"variant": {"decision": {"review_thresholds": {"pit": 0.5}}}}, "need a class threshold"),
    ({"variant": {"decision": {"class_thresholds": {"pit": 1.5}}}}, "must lie in [0, 1]"),
])
def test_bad_configurations_are_refused_with_a_message(config: dict, phrase: str) -> None:
    cnn = {"kind": "cnn", "service": "cnn", "escalate": config.get("escalate", {})}
    if "temperature" in config:
        cnn["temperature"] = config["temperature"]
    with pytest.raises(ValidationError, match=re.escape(phrase)):
        CascadeVariant.model_validate({"stages": [cnn, {"kind": "clip", "service": "clip"}],
                                       **config.get("variant", {})})


@pytest.mark.parametrize(("high", "low", "clip_threshold", "temperature"),
                         list(itertools.product([0.5, 0.7, 0.95], [None, 0.55, 0.65], [0.3, 0.6], [1.0, 2.5])))
async def test_replay_of_an_always_trace_decides_as_the_engine(high: float, low: float | None,
                                                                clip_threshold: float, temperature: float) -> None:
    if low is not None and low > high:
        return
    v = three_stage(EscalationStrategy(threshold=high, jump_below=low), clip_threshold)
    v.stages[1].temperature = temperature
    v.decision = DecisionPolicy(class_thresholds={"fox": 0.2}, review_thresholds={"fox": 0.1})
    live = await run(v)
    recorded = await run(v, mode="always")
    raw = [{s.label: s.score for s in stage.top_k} for stage in recorded.trace.stages]
    again = replay(v, raw, recorded.trace.stages[0].entropy)
    assert [v.stages[i].kind for i in again.stages] == [s.stage for s in live.trace.stages]
    assert (again.verdict.label, again.verdict.decision, again.verdict.rule) == (live.label, live.decision,
                                                                                 live.trace.rule)
    assert again.verdict.confidence == pytest.approx(live.confidence, abs=1e-5)


async def test_replay_of_a_later_cnn_stage_uses_its_own_scores() -> None:
    v = CascadeVariant(stages=[StageConfig(kind="cnn", service="cnn", escalate=EscalationStrategy(threshold=0.7)),
                               StageConfig(kind="cnn", service="cnn_large", top_k=3)])
    live = await run(v)
    recorded = await run(v, mode="always")
    again = replay(v, [{s.label: s.score for s in st.top_k} for st in recorded.trace.stages])
    assert again.stages == [0, 1] and again.verdict.label == live.label == "cat"
    assert again.verdict.confidence == pytest.approx(live.confidence)

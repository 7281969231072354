"""`mediamesh calibrate`'s math: measuring a configuration by replay, temperatures, the search, splits."""

from __future__ import annotations

import pytest

from mediamesh.calibration import TEMPERATURES, Record, Target, fit_temperatures, measure, split, tune, with_settings
from shared.cascade.config import CascadeVariant

PIT, CLEAN = "pit", "clean"
RECORDS = [  # (truth, cnn, clip)
    Record(PIT, [{PIT: 0.9, CLEAN: 0.1}, {PIT: 0.8, CLEAN: 0.2}]),
    Record(PIT, [{CLEAN: 0.6, PIT: 0.4}, {PIT: 0.7, CLEAN: 0.3}]),
    Record(PIT, [{CLEAN: 0.7, PIT: 0.3}, {CLEAN: 0.6, PIT: 0.4}]),
    Record(CLEAN, [{CLEAN: 0.95, PIT: 0.05}, {CLEAN: 0.9, PIT: 0.1}]),
    Record(CLEAN, [{PIT: 0.55, CLEAN: 0.45}, {CLEAN: 0.8, PIT: 0.2}]),
    Record(CLEAN, [{CLEAN: 0.8, PIT: 0.2}, {CLEAN: 0.7, PIT: 0.3}]),
]


def two_stage(threshold: float = 0.75, **decision: object) -> CascadeVariant:
    return CascadeVariant.model_validate({"stages": [
        {"kind": "cnn", "service": "cnn", "escalate": {"threshold": threshold}},
        {"kind": "clip", "service": "clip"}], "decision": decision})


def test_measure_replays_the_cascade_and_counts_every_stage_call() -> None:
    point = measure(two_stage(0.75), RECORDS, {})
    # stops: the 0.9 pit, the 0.95 and 0.8 cleans; the other three go to clip, and the hard pit
    # (fused clean 0.65) is the one mistake
    assert point.accuracy == pytest.approx(5 / 6) and point.escalation == 0.5 and point.review == 0
    assert point.recall == pytest.approx({CLEAN: 1.0, PIT: 2 / 3}) and point.calls == [1.0, 0.5]
    # a pit decision threshold of 0.35 catches the hard pit (fused 0.35) and costs the 0.375 clean
    policy = measure(two_stage(0.75, class_thresholds={PIT: 0.35}), RECORDS, {})
    assert policy.recall == pytest.approx({CLEAN: 2 / 3, PIT: 1.0}) and policy.accuracy == pytest.approx(5 / 6)
    # a review band [0.3, 0.4) sends both to a person: recall counts a review as caught
    band = measure(two_stage(0.75, class_thresholds={PIT: 0.4}, review_thresholds={PIT: 0.3}), RECORDS, {})
    assert band.review == pytest.approx(2 / 6) and band.recall == {CLEAN: 1.0, PIT: 1.0} and band.accuracy == 1.0


def test_temperatures_minimise_the_nll() -> None:
    right = [Record("a", [{"a": 0.9, "b": 0.1}])] * 4
    assert fit_temperatures(two_stage(), right)[0] == TEMPERATURES[0]  # always right: as sharp as the grid allows
    coin = [Record("a", [{"a": 0.9, "b": 0.1}]), Record("b", [{"a": 0.9, "b": 0.1}])]
    assert fit_temperatures(two_stage(), coin)[0] == TEMPERATURES[-1]  # right half the time: as flat as it goes
    assert fit_temperatures(two_stage(), coin)[1] == 1.0  # no clip scores recorded: left alone


def test_tune_meets_the_targets_and_keeps_the_rest_of_the_configuration() -> None:
    targets = [Target.parse("recall:pit>=0.99"), Target.parse("escalation<=0.5"), Target.parse("review<=0.2")]
    start = with_settings(two_stage(), temperatures=[1.0, 1.0])
    tuned = tune(start, RECORDS, targets, steps=10)
    assert tuned.variant is not None and tuned.chosen is not None
    again = measure(tuned.variant, RECORDS, {})
    assert all(t.met(again) for t in targets)
    assert PIT in tuned.variant.decision.class_thresholds and tuned.variant.stages[0].service == "cnn"
    assert len(tuned.routing) == 11 and tuned.decision
    impossible = tune(start, RECORDS, [Target.parse("accuracy>=1.0"), Target.parse("escalation<=0.0")], steps=10)
    assert impossible.variant is None and impossible.chosen is None


def test_split_is_stratified_and_stable() -> None:
    records = [Record(label, [{label: 1.0}]) for label in ("a", "b") for _ in range(10)]
    tune_on, held = split(records, 0.3)
    assert [r.truth for r in held] == ["a"] * 3 + ["b"] * 3 and len(tune_on) == 14
    assert split(records, 0.3) == (tune_on, held)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split(records, 1.5)


def test_targets() -> None:
    assert Target.parse("review<=0.05") == Target("review", "<=", 0.05)
    assert str(Target.parse(" recall:pit >= 0.99")) == "recall:pit>=0.99"
    with pytest.raises(ValueError, match="cannot read target"):
        Target.parse("recall pit 0.9")

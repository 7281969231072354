"""The A/B report's statistics, with exact expectations."""

from __future__ import annotations

import math

import pytest

from gateway.cascade.report import mean, rate, report
from storage.repositories.classify_results import Outcome


def test_wilson_interval_and_mean_interval() -> None:
    none = rate(0, 10)  # p = 0: the interval still has width, z²/n / (1 + z²/n) on top
    assert (none.value, none.low) == (0.0, 0.0) and none.high == pytest.approx(0.38416 / 1.38416, abs=1e-6)
    half = rate(50, 100)
    assert half.value == 0.5 and half.low == pytest.approx(0.40383, abs=1e-5) and half.high == pytest.approx(
        0.59617, abs=1e-5)
    assert rate(0, 0).high == 1.0 and rate(0, 0).n == 0
    m = mean([1.0, 2.0, 3.0])  # s = 1: 2 ± 1.96 / √3
    assert m.value == 2.0 and m.low == pytest.approx(2 - 1.96 / math.sqrt(3), abs=1e-6) and m.n == 3
    assert mean([4.0]).low == mean([4.0]).high == 4.0


def test_report_per_variant() -> None:
    outcomes = [Outcome("a", "cat", "answer", "dog", 1, False, 10.0),
                Outcome("a", "dog", "answer", "dog", 2, True, 30.0),
                Outcome("a", None, "review", "dog", 3, True, 50.0),
                Outcome("a", "cat", "answer", None, 1, False, 10.0),
                Outcome("b", "dog", "answer", None, 2, True, 20.0)]
    a, b = report(outcomes).variants
    assert (a.variant, a.results, a.with_feedback) == ("a", 4, 3)
    assert a.accuracy is not None and a.accuracy.value == 0.5 and a.accuracy.n == 2  # a review is not scored
    assert a.escalation_rate.value == 0.5 and a.review_rate.value == 0.25
    assert a.stage_calls.value == 1.75 and a.latency_ms.value == 25.0
    assert b.accuracy is None and b.stage_calls.value == 2.0

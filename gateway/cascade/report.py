"""`GET /v1/cascade/report`: per variant accuracy, escalation and review rates and mean cost per image,
each with a 95 % confidence interval, so two variants can be compared (seed 000's A/B plan)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from shared.schemas.gateway import CascadeReport, Estimate, VariantReport
from storage.repositories.classify_results import Outcome

Z = 1.96  # 95 %


def rate(hits: int, n: int) -> Estimate:
    """A proportion with its Wilson score interval (sound at 0, 1 and small n, unlike p ± z·se)."""
    if n == 0:
        return Estimate(value=0.0, low=0.0, high=1.0, n=0)
    p = hits / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return Estimate(value=round(p, 6), low=round(max(0.0, centre - half), 6), high=round(min(1.0, centre + half), 6),
                    n=n)


def mean(values: Sequence[float]) -> Estimate:
    """A mean with the normal interval mean ± z·s/√n (s the sample standard deviation)."""
    n = len(values)
    if n == 0:
        return Estimate(value=0.0, low=0.0, high=0.0, n=0)
    m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = Z * s / math.sqrt(n)
    return Estimate(value=round(m, 6), low=round(m - half, 6), high=round(m + half, 6), n=n)


def variant_report(variant: str, outcomes: Sequence[Outcome]) -> VariantReport:
    judged = [o for o in outcomes if o.truth is not None]
    answered = [o for o in judged if o.decision == "answer"]
    return VariantReport(
        variant=variant, results=len(outcomes), with_feedback=len(judged),
        accuracy=rate(sum(o.label == o.truth for o in answered), len(answered)) if answered else None,
        escalation_rate=rate(sum(o.escalated for o in outcomes), len(outcomes)),
        review_rate=rate(sum(o.decision == "review" for o in outcomes), len(outcomes)),
        stage_calls=mean([o.stage_calls for o in outcomes]), latency_ms=mean([o.total_ms for o in outcomes]))


def report(outcomes: Sequence[Outcome]) -> CascadeReport:
    names = sorted({o.variant for o in outcomes})
    return CascadeReport(variants=[variant_report(name, [o for o in outcomes if o.variant == name])
                                   for name in names])

"""Stage scores: temperature scaling, restriction to candidates, fusion, and label matching."""

from __future__ import annotations

import math
import re

from shared.schemas.common import LabelScore


def temper(scores: dict[str, float], temperature: float) -> dict[str, float]:
    """Temperature scaling on probabilities: p ∝ p^(1/T), i.e. softmax(logits / T).

    A cnn returns only its top-k, so the mass it left out counts as one more outcome while
    scaling and is dropped afterwards: at T = 1 the scores come back unchanged."""
    if temperature == 1 or not scores:
        return dict(scores)
    rest = max(0.0, 1.0 - sum(scores.values()))
    powered = {label: max(p, 1e-12) ** (1 / temperature) for label, p in scores.items()}
    total = sum(powered.values()) + (rest ** (1 / temperature) if rest > 1e-9 else 0.0)
    return {label: p / total for label, p in powered.items()}


def restrict(scores: dict[str, float], labels: list[str]) -> dict[str, float]:
    """A softmax over a subset of its options is the renormalised restriction: how calibration
    replays a stage that was offered more candidates than the replayed route offers."""
    kept = {label: scores[label] for label in labels if label in scores}
    total = sum(kept.values())
    return {label: p / total for label, p in kept.items()} if total > 0 else kept


def fuse(stage_scores: list[dict[str, float]], weights: list[float]) -> dict[str, float]:
    """Weighted mean over the stages run so far; a label a stage did not score counts 0 there."""
    total = sum(weights)
    if total <= 0:
        raise ValueError("the weights of the stages run must not all be 0")
    labels = {label for scores in stage_scores for label in scores}
    return {
        label: sum(w * scores.get(label, 0.0) for scores, w in zip(stage_scores, weights, strict=True)) / total
        for label in labels
    }


def ordered(scores: dict[str, float]) -> list[str]:
    """Labels, highest score first (ties by name, so every run orders them the same)."""
    return [label for label, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))]


def ranked(scores: dict[str, float], k: int | None = None) -> list[LabelScore]:
    return [LabelScore(label=label, score=round(scores[label], 6)) for label in ordered(scores)[:k]]


def nll(scores: dict[str, float], truth: str) -> float:
    """Negative log-likelihood of the true label (a floor for a label the stage gave no mass)."""
    return -math.log(max(scores.get(truth, 0.0), 1e-6))


def readable(label: str) -> str:
    """How a label reads in a prompt: `maine_coon` → `maine coon`."""
    return re.sub(r"[_\-]+", " ", label).strip()


def match_answer(answer: str, labels: list[str]) -> str | None:
    """The label the answer names (whole words, longest match wins), or None."""
    text = f" {re.sub(r'[^a-z0-9]+', ' ', answer.lower())} "
    hits = [label for label in labels if f" {re.sub(r'[^a-z0-9]+', ' ', readable(label).lower()).strip()} " in text]
    return max(hits, key=len) if hits else None

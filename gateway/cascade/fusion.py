"""Fusing the stages' scores, and matching a free-text answer (BLIP-2 VQA) to a label."""

from __future__ import annotations

import re

from shared.schemas.common import LabelScore


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


def ranked(scores: dict[str, float], k: int | None = None) -> list[LabelScore]:
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [LabelScore(label=label, score=round(score, 6)) for label, score in ordered[:k]]


def readable(label: str) -> str:
    """How a label reads in a prompt: `maine_coon` → `maine coon`."""
    return re.sub(r"[_\-]+", " ", label).strip()


def match_answer(answer: str, labels: list[str]) -> str | None:
    """The label the answer names (whole words, longest match wins), or None."""
    text = f" {re.sub(r'[^a-z0-9]+', ' ', answer.lower())} "
    hits = [label for label in labels if f" {re.sub(r'[^a-z0-9]+', ' ', readable(label).lower()).strip()} " in text]
    return max(hits, key=len) if hits else None

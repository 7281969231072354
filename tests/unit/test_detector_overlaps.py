"""OWLv2 answers one object with several overlapping boxes: the detector keeps the best of each."""

from __future__ import annotations

import torch

from services.detector.model import suppress_overlaps


def detections(*rows: tuple[int, float, tuple[float, float, float, float]]) -> dict[str, torch.Tensor]:
    return {"labels": torch.tensor([r[0] for r in rows]), "scores": torch.tensor([r[1] for r in rows]),
            "boxes": torch.tensor([r[2] for r in rows])}


def kept(result: dict[str, torch.Tensor]) -> list[tuple[int, float]]:
    pairs = zip(result["labels"], result["scores"], strict=True)
    return [(int(label), round(float(score), 2)) for label, score in pairs]


def test_overlapping_boxes_of_one_label_collapse_to_the_best_scored() -> None:
    result = detections((0, 0.3, (10, 10, 110, 110)), (0, 0.6, (12, 8, 112, 108)), (0, 0.4, (0, 0, 100, 100)))
    assert kept(suppress_overlaps(result, 0.5)) == [(0, 0.6)]


def test_boxes_of_other_labels_or_apart_are_all_kept() -> None:
    result = detections((0, 0.6, (10, 10, 110, 110)), (1, 0.5, (10, 10, 110, 110)), (0, 0.4, (300, 300, 400, 400)))
    assert kept(suppress_overlaps(result, 0.5)) == [(0, 0.6), (1, 0.5), (0, 0.4)]


def test_an_overlap_under_the_limit_is_kept_and_a_limit_of_one_keeps_everything() -> None:
    result = detections((0, 0.6, (0, 0, 100, 100)), (0, 0.5, (50, 0, 150, 100)))  # IoU 1/3
    assert kept(suppress_overlaps(result, 0.5)) == [(0, 0.6), (0, 0.5)]
    assert kept(suppress_overlaps(result, 0.3)) == [(0, 0.6)]
    assert len(suppress_overlaps(detections((0, 0.6, (0, 0, 9, 9)), (0, 0.5, (0, 0, 9, 9))), 1.0)["scores"]) == 2

"""BLIP-2 names objects in everyday words; the worker matches them to the detector's (COCO) labels."""

from __future__ import annotations

import pytest

from worker.pipelines.objects import name_key


@pytest.mark.parametrize(("name", "key"), [
    ("Two Dogs", "dog"), ("a cat", "cat"), ("people", "person"), ("a woman", "person"), ("the sofa", "couch"),
    ("glass", "glass"), ("a table", "dining table"), ("3 buses", "bus"), ("boxes", "box"), ("two bus", "bus"),
    ("person", "person"),
])
def test_names_reduce_to_the_detectors_word(name: str, key: str) -> None:
    assert name_key(name) == key

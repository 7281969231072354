"""Suite-wide wiring: markers from folders, offline hub, GPU tests skip without CUDA."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda = _cuda_available()
    for item in items:
        folder = Path(str(item.fspath)).relative_to(TESTS).parts[0]
        if folder in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, folder))
        if item.get_closest_marker("gpu") and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none here"))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="session")
def tiny_model():
    """`tiny_model("clip")` → the folder of that service's tiny model, built once and cached."""
    from tests.support.models import tiny_model_dir

    return tiny_model_dir


@pytest.fixture(autouse=True)
def _denormals_back_on() -> Iterator[None]:
    """A model loaded in the test's own process (a loading-code test) turns on torch's flush-denormal flag
    for its thread, which is this one; hypothesis then cannot draw subnormal floats in later tests."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(False)

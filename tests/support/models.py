"""Tiny random-weight models for tests, built once per version of their builder and cached."""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path

from mediamesh.cli.models import TINY_MARKER, build_tiny_models
from tests.support.processes import REPO

CACHE = REPO / ".cache" / "tiny-models"


def tiny_model_dir(name: str) -> Path:
    """The folder of service `name`'s tiny model (`services/<name>/tiny.py`), building it if needed."""
    builder = REPO / "services" / name / "tiny.py"
    digest = hashlib.sha256(builder.read_bytes()).hexdigest()[:12]
    root = CACHE / f"{name}-{digest}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / name / TINY_MARKER).exists():
            build_tiny_models(root, only=[name], force=True)
    return root / name

"""Trained CLIP heads on disk: `<heads dir>/<name>/<version>/` holds `weights.npz` (W, b), `head.json`
(`HeadInfo`) and the training report. `mediamesh train-head` writes them, the clip service reads them.

A version folder appears whole or not at all: it is written under a hidden temporary name in the
same folder and renamed into place, so a reader never sees a half-written head.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.http.errors import BadInput, Conflict, NotFound
from shared.schemas.heads import EmbeddingSpace, HeadInfo

log = logging.getLogger(__name__)
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
INFO_FILE, WEIGHTS_FILE = "head.json", "weights.npz"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadInput(f"head name {name!r} must be 1-64 lower-case letters, digits, '.', '_' or '-', "
                       "starting with a letter or digit")
    return name


@dataclass(frozen=True)
class LinearHead:
    """softmax(W·x + b) over `info.labels`, for L2-normalised embeddings x."""

    info: HeadInfo
    weights: np.ndarray  # (labels, dim)
    bias: np.ndarray  # (labels,)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        logits = embeddings.astype(np.float64) @ self.weights.T.astype(np.float64) + self.bias
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def check_space(self, space: EmbeddingSpace) -> None:
        """409 when the vectors come from another model than the one the head was trained on."""
        if not space.same(self.info.space):
            raise Conflict(f"head '{self.info.ref}' was trained on {self.info.space} embeddings, but this clip "
                           f"service embeds with {space}; train it again on this model with "
                           f"`mediamesh train-head FOLDER --name {self.info.name}`")


class HeadStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        # the clip service applies a head on every call: its arrays are read once per version folder (a
        # folder replaced by hand, after a delete, has a new head.json and is read again)
        self._loaded: dict[Path, tuple[int, LinearHead]] = {}

    def versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / INFO_FILE).is_file())

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if NAME.fullmatch(p.name) and self.versions(p.name))

    def resolve(self, ref: str) -> Path:
        """`name` (its newest version) or `name@version` → the version's folder; 404 saying what exists."""
        name, _, version = ref.partition("@")
        check_name(name)
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none yet"
            raise NotFound(f"no head named '{name}' in {self.root} (heads: {known}); train one with "
                           f"`mediamesh train-head FOLDER --name {name}`")
        if not version:
            return self.root / name / str(versions[-1])
        if not version.isdigit() or int(version) not in versions:
            raise NotFound(f"head '{name}' has no version {version!r}; versions: {versions}")
        return self.root / name / str(int(version))

    def info(self, folder: Path) -> HeadInfo:
        try:
            return HeadInfo.model_validate_json((folder / INFO_FILE).read_text())
        except (OSError, ValueError) as exc:  # ValueError: pydantic's ValidationError
            raise Conflict(f"head {folder.parent.name}@{folder.name} is damaged ({type(exc).__name__}); delete "
                           f"its folder and train it again") from exc

    def load(self, ref: str) -> LinearHead:
        folder = self.resolve(ref)
        stamp = (folder / INFO_FILE).stat().st_mtime_ns
        cached = self._loaded.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        info = self.info(folder)
        try:
            with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as arrays:
                head = LinearHead(info, arrays["W"], arrays["b"])
        except (OSError, ValueError, KeyError) as exc:
            raise Conflict(f"head {info.ref}'s weights are damaged ({type(exc).__name__}); delete its folder and "
                           "train it again") from exc
        self._loaded[folder] = (stamp, head)
        return head

    def list(self) -> list[HeadInfo]:
        """Every readable head, newest version first per name; a damaged one is logged and left out."""
        heads = []
        for name in self.names():
            for version in reversed(self.versions(name)):
                try:
                    heads.append(self.info(self.root / name / str(version)))
                except Conflict as exc:
                    log.warning("%s", exc.detail)
        return heads

    def write(self, info: HeadInfo, weights: np.ndarray, bias: np.ndarray,
              extras: Callable[[Path, HeadInfo], None] = lambda folder, info: None) -> HeadInfo:
        """Save a new version of `info.name` (the next free number; `info.version` is replaced) and
        return its info. `extras(folder, info)` writes the report files into the folder before it
        is published; if anything fails, nothing is left behind."""
        check_name(info.name)
        if weights.shape != (len(info.labels), info.space.dim) or bias.shape != (len(info.labels),):
            raise ValueError(f"weights {weights.shape} and bias {bias.shape} do not fit {len(info.labels)} labels "
                             f"of {info.space.dim}-d embeddings")
        parent = self.root / info.name
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=parent))
        try:
            while True:
                info = info.model_copy(update={"version": max(self.versions(info.name), default=0) + 1})
                np.savez(staging / WEIGHTS_FILE, W=weights.astype(np.float32), b=bias.astype(np.float32))
                (staging / INFO_FILE).write_text(info.model_dump_json(indent=2))
                extras(staging, info)
                try:
                    # rename fails if another writer took this version number meanwhile: take the next one
                    os.rename(staging, parent / str(info.version))
                    return info
                except OSError:
                    if not (parent / str(info.version)).exists():
                        raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

"""Pull the real models from the Hugging Face hub into MEDIAMESH_HOME/models/<service>.

A pull lands in a hidden `.<service>.partial` folder (resumable: run it again after a broken
download) and replaces the service's folder only once it is complete, so a failed pull never
leaves a half model where a working tiny one was.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from mediamesh.settings import HubSettings
from shared.catalog import HUB_MARKER

# Formats no service loads; skipping them saves gigabytes on repos that ship every framework's weights.
IGNORE_PATTERNS = ["*.msgpack", "*.h5", "*.ot", "flax_model*", "tf_model*", "rust_model*", "onnx/*", "*.onnx"]

Downloader = Callable[..., Any]


class HubUnreachable(Exception):
    """No hub to pull from; the message says why and what to do instead."""


def check_hub(settings: HubSettings) -> None:
    """Fail fast, with a clear reason, when the hub cannot be reached (never hang on a dead network)."""
    if settings.hub_offline:
        raise HubUnreachable("HF_HUB_OFFLINE is set, so the Hugging Face hub is not contacted")
    try:
        httpx.head(settings.hub_endpoint, timeout=settings.hub_timeout_s, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise HubUnreachable(f"cannot reach the Hugging Face hub at {settings.hub_endpoint} "
                             f"({type(exc).__name__}: {exc or 'no answer'})") from exc


def ignore_patterns_for(files: list[str]) -> list[str]:
    """What not to download from a repository with these files: other frameworks' weights, and the
    pickled `*.bin` duplicates when safetensors are there (BLIP-2 ships both: 15 GB each)."""
    patterns = list(IGNORE_PATTERNS)
    if any(name.endswith(".safetensors") for name in files):
        patterns.append("*.bin")
    return patterns


def pull_model(repo_id: str, target: Path, *, endpoint: str | None = None,
               download: Downloader | None = None, files: list[str] | None = None) -> Path:
    """Download repo_id into target (replacing what is there) through a resumable partial folder.

    `files`: the repository's file list, when known, to skip duplicate weight formats.
    """
    download = download or _snapshot_download()
    partial = target.parent / f".{target.name}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    download(repo_id=repo_id, local_dir=partial, endpoint=endpoint, ignore_patterns=ignore_patterns_for(files or []))
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # the hub's resume bookkeeping, done with
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    (partial / HUB_MARKER).write_text(f"{repo_id}\npulled from {endpoint or 'the Hugging Face hub'} at {stamp}\n")
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    partial.rename(target)
    return target


def list_repo_files(repo_id: str, endpoint: str) -> list[str]:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint).list_repo_files(repo_id)


def _snapshot_download() -> Downloader:
    from huggingface_hub import snapshot_download  # imported when used; shows the hub's progress bars

    return snapshot_download


def hub_error_message(exc: Exception, repo_id: str) -> str:
    """What went wrong with one pull, said so the user can act on it."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(exc, GatedRepoError):
        return f"{repo_id} is gated: accept its licence on the hub and set HF_TOKEN"
    if isinstance(exc, RepositoryNotFoundError):
        return f"{repo_id} was not found on the hub (check MEDIAMESH_<SERVICE>_MODEL_ID, or HF_TOKEN if private)"
    return f"pulling {repo_id} failed: {type(exc).__name__}: {exc}"


def pulled_from(folder: Path) -> str | None:
    marker = folder / HUB_MARKER
    return marker.read_text().splitlines()[0] if marker.is_file() else None

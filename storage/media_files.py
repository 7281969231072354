"""Content-addressed files: `<root>/<sha[:2]>/<sha[2:4]>/<sha>`. Paths come from the hash, never from input."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class IncomingFile:
    """An upload being written: hashed as it is written, so the whole file is never held in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()
        self._handle = path.open("wb")

    def write(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        """Everything written: flushed to disk, ready to be committed."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @contextmanager
    def incoming(self) -> Iterator[IncomingFile]:
        """A temporary file in the store (same file system, so `commit` is a rename); removed on leaving
        unless it was committed, whatever happened in between."""
        folder = self.root / ".incoming"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix="upload-")
        os.close(fd)
        incoming = IncomingFile(Path(name))
        try:
            yield incoming
        finally:
            incoming.discard()  # after a commit the path is gone already

    def commit(self, incoming: IncomingFile) -> tuple[str, str]:
        """Move a finished upload to its content address; return (sha256, path relative to the root)."""
        sha = incoming.sha256
        target = self.path(sha)
        if target.exists() and target.stat().st_size == incoming.size:
            return sha, self.relative_path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming.path, target)
        return sha, self.relative_path(sha)

    def relative_path(self, sha256: str) -> str:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def path(self, sha256: str) -> Path:
        return self.root / self.relative_path(sha256)

    def put(self, data: bytes) -> tuple[str, str]:
        """Store `data` (atomically, idempotently); return (sha256, path relative to the root)."""
        sha = sha256_of(data)
        target = self.path(sha)
        if target.exists() and target.stat().st_size == len(data):
            return sha, self.relative_path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha, self.relative_path(sha)

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

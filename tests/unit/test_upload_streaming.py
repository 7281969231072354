"""An upload is copied into the media store chunk by chunk while it is hashed: memory stays at about one
chunk whatever the file's size, and a refused upload leaves nothing behind."""

from __future__ import annotations

import hashlib
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from fastapi import UploadFile

from gateway.api.media import CHUNK, copy_capped
from shared.http.errors import PayloadTooLarge
from storage.media_files import MediaStore

SIZE = 24 * CHUNK


def upload_of(size: int) -> UploadFile:
    spooled = tempfile.SpooledTemporaryFile(max_size=CHUNK)  # as Starlette hands over a multipart file
    block = bytes(range(256)) * (CHUNK // 256)
    for _ in range(size // CHUNK):
        spooled.write(block)
    spooled.seek(0)
    return UploadFile(spooled, filename="big.bin")  # type: ignore[arg-type]  # what Starlette passes too


def test_a_large_upload_is_stored_by_hash_with_memory_bounded_by_a_chunk(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    upload = upload_of(SIZE)
    tracemalloc.start()
    try:
        with store.incoming() as incoming:
            copy_capped(upload, incoming, limit=SIZE)
            _, peak = tracemalloc.get_traced_memory()
            sha, relative = store.commit(incoming)
    finally:
        tracemalloc.stop()
    assert peak < 3 * CHUNK, f"peak {peak:,} bytes while copying {SIZE:,}"
    expected = hashlib.sha256((bytes(range(256)) * (CHUNK // 256)) * (SIZE // CHUNK)).hexdigest()
    assert sha == expected and (tmp_path / relative).stat().st_size == SIZE
    assert list((tmp_path / ".incoming").iterdir()) == []


def test_past_the_cap_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    with pytest.raises(PayloadTooLarge, match="GATEWAY_MAX_UPLOAD_BYTES"), store.incoming() as incoming:
        copy_capped(upload_of(4 * CHUNK), incoming, limit=3 * CHUNK)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []

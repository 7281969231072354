"""Thumbnails of stored images, made once per (file, size) and kept on disk beside the media store.

`<root>/<size>/<sha[:2]>/<sha>.jpg`: like the media store, paths come from the content hash, never from
input. Sizes are snapped to a few fixed edges, so a client cannot fill the disk by asking for every size.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image

from shared.imaging import upright  # importing it also registers the HEIC/HEIF opener
from storage.media_files import MediaStore

SIZES = (64, 128, 256, 512, 1024)
QUALITY = 85


def snap_size(size: int) -> int:
    """The smallest fixed edge at least `size` (the largest one past the end)."""
    return next((edge for edge in SIZES if edge >= size), SIZES[-1])


class ThumbnailStore:
    def __init__(self, root: Path, media: MediaStore) -> None:
        self.root = root
        self.media = media

    def path(self, sha256: str, size: int) -> Path:
        relative = self.media.relative_path(sha256)  # validates the hash
        return self.root / str(size) / relative.split("/")[0] / f"{sha256}.jpg"

    def get(self, sha256: str, size: int) -> Path:
        """The JPEG thumbnail (longest edge `size`, snapped) of the stored image `sha256`, made if missing.

        Blocking (decodes the image): call from a worker thread. Two concurrent first requests both make
        it; the rename is atomic, so a reader never sees half a file."""
        size = snap_size(size)
        target = self.path(sha256, size)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as handle:
                _thumbnail(self.media.path(sha256), size).save(handle, "JPEG", quality=QUALITY, optimize=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def delete(self, sha256: str) -> None:
        """Every cached size of this file's thumbnail (the file itself is gone)."""
        for size in SIZES:
            self.path(sha256, size).unlink(missing_ok=True)


def _thumbnail(source: Path, size: int) -> Image.Image:
    with Image.open(source) as opened:
        opened.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, far less memory for big photos
        image = upright(opened)
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            flat = Image.new("RGB", image.size, (255, 255, 255))
            flat.paste(image, mask=image.getchannel("A"))
            return flat
        return image.convert("RGB")

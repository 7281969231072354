"""What an upload is, decided from its bytes (never its name or declared content type).

Images by magic bytes, then a read of all their data (not a full decode); JSON by parsing; audio and
video by probing the container with PyAV and demuxing it to the end, so a truncated file is refused at
the door instead of failing later in the worker.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import av

from shared.exif import PhotoFacts, read_photo_facts
from shared.http.errors import BadInput, PayloadTooLarge, UnsupportedMedia
from shared.imaging import check_image

IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
               b"GIF89a": "image/gif", b"BM": "image/bmp", b"II*\x00": "image/tiff", b"MM\x00*": "image/tiff"}
# ISO base media files (like MP4) whose major brand says still image: HEIC/HEIF and AVIF photos.
IMAGE_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"heim": "image/heic", b"heis": "image/heic",
                b"mif1": "image/heif", b"msf1": "image/heif", b"avif": "image/avif", b"avis": "image/avif"}
# Containers we recognise even when they are too damaged for PyAV to open: refuse those as 422, not 415.
MEDIA_MAGIC = (b"RIFF", b"OggS", b"fLaC", b"ID3", b"\x1a\x45\xdf\xa3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")
AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac",
              "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4", "matroska,webm": "audio/webm", "aac": "audio/aac"}
VIDEO_MIME = {"mov,mp4,m4a,3gp,3g2,mj2": "video/mp4", "matroska,webm": "video/webm", "avi": "video/x-msvideo",
              "mpegts": "video/mp2t", "ogg": "video/ogg"}
SUPPORTED = ("an image (JPEG, PNG, WEBP, GIF, BMP, TIFF, HEIC/HEIF, AVIF), audio (WAV, MP3, FLAC, OGG, M4A), "
             "video (MP4, WEBM, MKV, AVI) or JSON")


@dataclass(frozen=True)
class Detected:
    kind: str
    mime: str
    photo: PhotoFacts = field(default_factory=PhotoFacts)  # an image's EXIF capture time, camera, position


def detect(data: bytes, *, max_image_pixels: int) -> Detected:
    if not data:
        raise BadInput("the file is empty (0 bytes); upload " + SUPPORTED)
    head = data[:16]
    image_mime = _image_mime(head)
    if image_mime is not None:
        _check_complete_image(data, max_image_pixels)
        return Detected("image", image_mime, read_photo_facts(data))
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        return Detected("json", _check_json(data))
    return _probe_av(io.BytesIO(data), head)


def detect_file(path: Path, *, max_image_pixels: int, max_in_memory_bytes: int) -> Detected:
    """`detect` for a file on disk: audio and video are probed from the file, however large; images and
    JSON are read whole to be checked, so they must fit in `max_in_memory_bytes`."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(64)
    if _image_mime(head) is not None or head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        if size > max_in_memory_bytes:
            raise PayloadTooLarge(
                f"images and JSON documents may be at most {max_in_memory_bytes:,} bytes (this one is {size:,}; "
                "GATEWAY_MAX_IN_MEMORY_BYTES): they are decoded whole; shrink or split it"
            )
        return detect(path.read_bytes(), max_image_pixels=max_image_pixels)
    if size == 0:
        raise BadInput("the file is empty (0 bytes); upload " + SUPPORTED)
    return _probe_av(path, head)


def _check_complete_image(data: bytes, max_pixels: int) -> None:
    """Format, size and pixel limit from the header, then all the image data read, so a truncated file is
    refused here and not in the worker. Nothing is kept: a JPEG is decoded at 1/8 scale (its whole stream
    is still read, for a fraction of the full decode), and the orientation and colour conversion a model
    service does are skipped."""
    image = check_image(data, max_pixels=max_pixels, name="the image")
    if image.format == "JPEG":
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadInput(f"the image is damaged or truncated ({exc}); send the complete file") from exc


def _image_mime(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in IMAGE_BRANDS:
        return IMAGE_BRANDS[head[8:12]]
    return next((mime for magic, mime in IMAGE_MAGIC.items() if head.startswith(magic)), None)


def _check_json(data: bytes) -> str:
    try:
        document = json.loads(data.decode("utf-8-sig"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise BadInput(f"the JSON file is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    if _holds_nul(document):
        raise BadInput("the JSON holds a NUL character (\\u0000) in a string or key, which Postgres cannot "
                       "store; remove it")
    return "application/json"


def _refuse_constant(name: str) -> None:
    """Python reads NaN and Infinity, which are not JSON and which Postgres's jsonb refuses."""
    raise BadInput(f"the JSON holds {name}, which is not JSON (write null or a string instead)")


def _holds_nul(document: object) -> bool:
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending += list(value) + list(value.values())
        elif isinstance(value, list):
            pending += value
    return False


def _probe_av(source: io.BytesIO | Path, head: bytes) -> Detected:
    try:
        container = av.open(source if isinstance(source, io.BytesIO) else str(source), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        if head.startswith(MEDIA_MAGIC) or head[4:8] == b"ftyp":
            raise BadInput(f"the audio/video file is damaged or truncated ({exc}); upload the complete file") from exc
        raise UnsupportedMedia(f"not a file type we can process; upload {SUPPORTED}") from exc
    with container:
        videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not videos and not container.streams.audio:
            raise UnsupportedMedia(f"the file has neither sound nor pictures; upload {SUPPORTED}")
        _check_complete(container, videos[0] if videos else container.streams.audio[0])
        fmt = container.format.name
    if videos:
        return Detected("video", VIDEO_MIME.get(fmt, "video/octet-stream"))
    return Detected("audio", AUDIO_MIME.get(fmt, "audio/octet-stream"))


def _check_complete(container: av.container.InputContainer, stream: av.stream.Stream) -> None:
    """Demux (cheap: no decoding) to the end and decode one frame; a truncated file fails one or the other."""
    last_end, decoded = 0.0, False
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                last_end = max(last_end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if not decoded and packet.size:
                decoded = bool(packet.decode()) or decoded
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise BadInput(f"the {stream.type} file is damaged or truncated ({exc}); upload the complete file") from exc
    declared = (container.duration or 0) / av.time_base
    if not decoded:
        raise BadInput(f"no {stream.type} frame could be decoded; the file is damaged or truncated")
    if declared > 1.0 and last_end < 0.9 * declared:
        raise BadInput(
            f"the {stream.type} file is truncated: its data ends at {last_end:.1f}s of a declared {declared:.1f}s"
        )

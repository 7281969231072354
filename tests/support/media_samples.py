"""Real media made on the spot for storage/ingest tests: images (PIL), speech (espeak-ng), video (PyAV)."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

COLORS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 220), "yellow": (230, 220, 20),
          "black": (5, 5, 5), "white": (250, 250, 250)}


def png(color: tuple[int, int, int] | str = "red", size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    rgb = COLORS[color] if isinstance(color, str) else color
    pixels = np.full((size[1], size[0], 3), rgb, dtype=np.int16)
    pixels += np.random.default_rng(seed).integers(-8, 9, pixels.shape, dtype=np.int16)  # distinct files per seed
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def spoken_wav(text: str = "the quarterly report is ready") -> bytes:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install -y espeak-ng")
    with tempfile.TemporaryDirectory() as folder:  # -w, not --stdout: a piped WAV header has no real length
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(path), "-s", "150", text], check=True, capture_output=True)
        return path.read_bytes()


def video_mp4(seconds: float = 3.0, fps: int = 10, with_audio: bool = True, colors: tuple[str, ...] = ("red", "blue"),
              faststart: bool = False) -> bytes:
    """An H.264 (or MPEG-4) MP4 whose colour changes each second, with a 440 Hz tone track."""
    options = {"movflags": "faststart"} if faststart else {}
    with tempfile.TemporaryDirectory() as folder:  # faststart rewrites the file: needs a real path
        path = Path(folder) / "clip.mp4"
        _encode_mp4(path, seconds, fps, with_audio, colors, options)
        return path.read_bytes()


def _encode_mp4(path: Path, seconds: float, fps: int, with_audio: bool, colors: tuple[str, ...],
                options: dict[str, str]) -> None:
    with av.open(str(path), mode="w", format="mp4", options=options) as out:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        video: Any = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=16000) if with_audio else None
        for i in range(int(seconds * fps)):
            rgb = COLORS[colors[int(i / fps) % len(colors)]]
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), rgb, dtype=np.uint8), format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            _write_tone(out, audio, seconds)


def _write_tone(out: Any, audio: Any, seconds: float) -> None:
    rate, chunk = 16000, 1024
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
    for start in range(0, len(samples), chunk):
        part = samples[start:start + chunk]
        frame = av.AudioFrame.from_ndarray(part.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode():
        out.mux(packet)


def json_bytes(document: Any | None = None) -> bytes:
    document = document if document is not None else [
        {"order_id": 1, "customer": "Ada", "total": 12.5, "items": ["pen", "ink"]},
        {"order_id": 2, "customer": "Lin", "total": 3.0, "items": ["paper"]},
    ]
    return json.dumps(document).encode()

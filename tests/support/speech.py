"""Test audio: spoken English from espeak-ng, tones, and the same samples in many containers (PyAV)."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

ESPEAK = shutil.which("espeak-ng")

# container format → (codec, sample format) for `encode`
CODECS = {
    "wav": ("pcm_s16le", "s16"),
    "flac": ("flac", "s16"),
    "mp3": ("libmp3lame", "fltp"),
    "ogg": ("libopus", "flt"),
    "ipod": ("aac", "fltp"),  # m4a
}


def speak(text: str, path: Path) -> Path:
    """A WAV of espeak-ng saying `text` (22.05 kHz mono); skips the test where espeak-ng is missing."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run([ESPEAK, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


def tone(seconds: float, *, rate: int = 44_100, channels: int = 2, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """(channels, samples) float32 sine wave."""
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    wave = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels)


def pcm_wav(mono: np.ndarray, rate: int = 16_000) -> bytes:
    """A 16-bit PCM WAV written by the standard library (works for zero samples too)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(mono, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def read_samples(raw: bytes) -> tuple[np.ndarray, int]:
    """First audio track → ((channels, samples) float32, rate), with PyAV, for transcoding in tests."""
    with av.open(io.BytesIO(raw)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        layout = "mono" if stream.channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks = [f.to_ndarray() for frame in container.decode(stream) for f in resampler.resample(frame)]
    return np.concatenate(chunks, axis=1), rate


def encode(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """(channels, samples) float32 → a file in container `fmt` (wav, flac, mp3, ogg, ipod=m4a)."""
    codec, sample_format = CODECS[fmt]
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    out_rate = 48_000 if codec == "libopus" else rate
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=out_rate, layout=layout)
        _write_audio(container, stream, samples, rate, layout, sample_format)
    return buffer.getvalue()


def _write_audio(container: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray, rate: int,
                 layout: str, sample_format: str) -> None:
    resampler = av.AudioResampler(format=sample_format, layout=layout, rate=stream.rate)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = rate
    frame.pts, frame.time_base = 0, Fraction(1, rate)
    for converted in [*resampler.resample(frame), *resampler.resample(None)]:
        converted.pts = None
        container.mux(stream.encode(converted))
    container.mux(stream.encode(None))


def video_with_audio(samples: np.ndarray, rate: int, *, size: int = 64, fps: int = 5) -> bytes:
    """An mp4 (h264 + aac) of a still coloured frame with `samples` as its sound track."""
    seconds = samples.shape[1] / rate
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=rate, layout=layout)
        still = np.full((size, size, 3), (30, 120, 200), dtype=np.uint8)
        for i in range(max(int(seconds * fps), 1)):
            frame = av.VideoFrame.from_ndarray(still, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        _write_audio(container, audio, samples, rate, layout, "fltp")
    return buffer.getvalue()


def silent_video(seconds: float = 1.0, *, size: int = 64, fps: int = 5) -> bytes:
    """An mp4 with a video track and no audio at all."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.zeros((size, size, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return buffer.getvalue()

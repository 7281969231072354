"""Safe audio decoding: any audio file, or a video's audio track, to 16 kHz mono float32.

Every bad input becomes a 4xx with a message a person can act on: not audio (415), damaged or
truncated (422), empty (422), longer than the limit (413). A well-formed file with no samples,
or with silence only, is not an error: it decodes to an empty (or quiet) array.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from shared.http.errors import BadInput, PayloadTooLarge, UnsupportedMedia

SAMPLE_RATE = 16_000
# A file whose header promises this much more audio than it holds was cut short (wav, flac, mp3 with a
# Xing/Info header...). The slack absorbs encoder padding and rounding of declared durations.
TRUNCATION_SLACK_S = 0.25
TRUNCATION_RATIO = 0.97
# Demuxers we open: audio files and the usual video containers. FFmpeg has hundreds more (playlists,
# image sequences, concat lists that name other files...); none is needed here, so none is reachable.
DEMUXERS = (
    "wav,w64,aiff,au,caf,mp3,flac,ogg,aac,ac3,eac3,amr,wv,ape,"
    "mov,matroska,avi,asf,flv,mpeg,mpegts,mxf,3gp"
)
STREAMED_WAV_SIZE = 0x7FFF0000  # a length this large in a WAV header is a pipe writer's placeholder
SILENCE_PEAK = 1e-3  # about -60 dBFS: below this nothing can be heard, let alone transcribed


class NoAudioTrack(UnsupportedMedia):
    """The file is a valid container (an image, a silent video) without any audio stream."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE Hz, in [-1, 1]
    container: str
    declared_seconds: float | None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def is_silent(self) -> bool:
        """No samples, or none loud enough to hold speech: transcribe to "" without running a model."""
        return self.samples.size == 0 or float(np.max(np.abs(self.samples))) < SILENCE_PEAK


def decode_audio(raw: bytes, *, max_seconds: float, name: str = "audio") -> DecodedAudio:
    """Bytes of an audio or video file → 16 kHz mono float32 samples of its first audio track."""
    if not raw:
        raise BadInput(f"{name} is empty (0 bytes); send an audio or video file")
    try:
        container = av.open(
            io.BytesIO(raw), mode="r", metadata_errors="ignore", options={"format_whitelist": DEMUXERS}
        )
    except av.error.EOFError as exc:  # a format was recognised, then the bytes ran out
        raise BadInput(f"{name} is truncated: it ends inside its own header; send the complete file") from exc
    except av.error.FFmpegError as exc:
        raise UnsupportedMedia(
            f"{name} is not an audio or video file we can read ({_reason(exc)}); "
            "send mp3, wav, m4a, flac, ogg, webm or a video with an audio track"
        ) from exc
    with container:
        if not container.streams.audio:
            kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["nothing"]
            raise NoAudioTrack(
                f"{name} ({container.format.name}) has no audio track, only {', '.join(kinds)}; "
                "send an audio file or a video with sound"
            )
        stream = container.streams.audio[0]
        streamed = container.format.name == "wav" and _is_streamed_wav(raw)
        declared = None if streamed else _declared_seconds(stream.duration, stream.time_base)
        samples = _decode_stream(container, stream, max_seconds=max_seconds, name=name)
        decoded = DecodedAudio(samples=samples, container=container.format.name, declared_seconds=declared)
    _check_complete(decoded, name)
    _check_file_complete(raw, decoded.container, name)
    return decoded


def _decode_stream(container: av.container.InputContainer, stream: av.AudioStream, *, max_seconds: float,
                   name: str) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    max_samples = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)
                total += chunk.size
                if total > max_samples:
                    raise PayloadTooLarge(
                        f"{name} is longer than this service's limit of {max_seconds:,.0f} s; split it first"
                    )
                chunks.append(chunk)
        for out in resampler.resample(None):  # flush what the resampler still holds
            chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise BadInput(f"{name} is damaged or truncated ({_reason(exc)}); send the complete file") from exc
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.clip(np.concatenate(chunks).astype(np.float32, copy=False), -1.0, 1.0)


def _declared_seconds(duration: int | None, time_base: Fraction | None) -> float | None:
    if duration is None or time_base is None or duration <= 0:
        return None
    return float(duration * time_base)


def _check_complete(decoded: DecodedAudio, name: str) -> None:
    declared = decoded.declared_seconds
    if declared is None:
        return
    if decoded.duration_s + TRUNCATION_SLACK_S < TRUNCATION_RATIO * declared:
        raise BadInput(
            f"{name} is truncated: its header promises {declared:.2f} s of audio but only "
            f"{decoded.duration_s:.2f} s could be decoded; send the complete file"
        )


def _check_file_complete(raw: bytes, container: str, name: str) -> None:
    """FFmpeg quietly decodes what is there of a cut wav or ogg file; their own headers tell us it was cut."""
    if container == "wav" and (promised := _wav_data_bytes(raw)) is not None:
        held = len(raw) - promised[0]
        if promised[1] > held:
            raise BadInput(
                f"{name} is truncated: its WAV header promises {promised[1]:,} bytes of samples but the file "
                f"holds {held:,}; send the complete file"
            )
    if container == "ogg" and not _ogg_ends_with_eos(raw):
        raise BadInput(f"{name} is truncated: its last Ogg page does not end the stream; send the complete file")


def _is_streamed_wav(raw: bytes) -> bool:
    """A WAV written to a pipe (`espeak-ng --stdout`, `ffmpeg -f wav -`) carries a placeholder length
    instead of the real one: 0, 0xFFFFFFFF or about 2 GiB. Its header says nothing about truncation."""
    sizes = [struct.unpack_from("<I", raw, 4)[0]] if len(raw) >= 8 else []
    data = raw.find(b"data", 12)
    if data >= 0 and data + 8 <= len(raw):
        sizes.append(struct.unpack_from("<I", raw, data + 4)[0])
    return any(size in (0, 0xFFFFFFFF) or size >= STREAMED_WAV_SIZE for size in sizes)


def _wav_data_bytes(raw: bytes) -> tuple[int, int] | None:
    """(offset of the samples, bytes the `data` chunk declares), or None for streamed/odd WAVs."""
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(raw):
        chunk_id, size = raw[offset:offset + 4], struct.unpack_from("<I", raw, offset + 4)[0]
        if chunk_id == b"data":
            return None if _is_streamed_wav(raw) else (offset + 8, size)
        offset += 8 + size + (size & 1)
    return None


def _ogg_ends_with_eos(raw: bytes) -> bool:
    last_page = raw.rfind(b"OggS")
    if last_page < 0 or last_page + 27 > len(raw):
        return False
    header_type, segments = raw[last_page + 5], raw[last_page + 26]
    table_end = last_page + 27 + segments
    if table_end > len(raw):
        return False
    body = sum(raw[last_page + 27:table_end])
    return bool(header_type & 0x04) and table_end + body <= len(raw)


def _reason(exc: av.error.FFmpegError) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__

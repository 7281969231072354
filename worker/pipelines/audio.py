"""Audio (and a video's sound track) → Whisper transcript with timestamped segments.

The file goes to whisper as a multipart upload streamed from disk, never as base64 in JSON. A video's
sound track is copied out of it first (no re-encoding); a sound file larger than
`WORKER_WHISPER_UPLOAD_BYTES` is re-encoded to what whisper hears anyway — 16 kHz mono — as Opus, so a long
recording fits under the gateway's and whisper's request caps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import av

from worker.model_client import StageFailed
from worker.pipelines.context import Outcome, PipelineContext

WHISPER_RATE = 16_000
OPUS_BIT_RATE = 32_000  # about 14 MB an hour


def transcribe(ctx: PipelineContext, media_id: str, path: Path) -> Outcome:
    """Transcribe an audio file (re-encoded first when it is larger than whisper should be sent)."""
    with tempfile.TemporaryDirectory(prefix="mediamesh-sound-") as folder:
        return _send(ctx, media_id, _small_enough(ctx, path, Path(folder)))


def transcribe_sound_track(ctx: PipelineContext, media_id: str, video: Path) -> Outcome:
    """A video's first audio track, copied into a Matroska file: a fraction of the video's bytes. A track that
    cannot be copied so, or is still too large, is re-encoded instead."""
    with tempfile.TemporaryDirectory(prefix="mediamesh-sound-") as folder:
        track = Path(folder) / "sound.mka"
        try:
            copy_sound_track(video, track)
        except (av.FFmpegError, ValueError, OSError):
            track = video
        return _send(ctx, media_id, _small_enough(ctx, track, Path(folder)))


def _small_enough(ctx: PipelineContext, sound: Path, folder: Path) -> Path:
    if sound.stat().st_size <= ctx.settings.whisper_upload_bytes:
        return sound
    compact = folder / "sound.ogg"
    try:
        encode_for_whisper(sound, compact)
    except (av.FFmpegError, ValueError, OSError):
        return sound  # whisper says what is wrong with it
    return compact


def _send(ctx: PipelineContext, media_id: str, sound: Path) -> Outcome:
    outcome = Outcome()
    try:
        with sound.open("rb") as handle:
            answer = ctx.models.transcribe_file(handle)
    except StageFailed as exc:
        outcome.reasons.append(exc.reason)
        return outcome
    ctx.media.save_transcript(media_id, answer)
    outcome.computed.append("transcript")
    return outcome


def copy_sound_track(video: Path, target: Path) -> None:
    with av.open(str(video)) as source, av.open(str(target), mode="w", format="matroska") as sink:
        stream = source.streams.audio[0]
        copy = sink.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = copy
            sink.mux(packet)


def encode_for_whisper(sound: Path, target: Path) -> None:
    """The first audio track as 16 kHz mono Opus in Ogg, decoded and encoded a frame at a time."""
    with av.open(str(sound)) as source, av.open(str(target), mode="w", format="ogg") as sink:
        encoder = sink.add_stream("libopus", rate=WHISPER_RATE, layout="mono")
        encoder.bit_rate = OPUS_BIT_RATE
        resampler = av.AudioResampler(format="s16", layout="mono", rate=WHISPER_RATE)
        for frame in source.decode(source.streams.audio[0]):
            frame.pts = None
            for out in resampler.resample(frame):
                sink.mux(encoder.encode(out))
        for out in resampler.resample(None):
            sink.mux(encoder.encode(out))
        sink.mux(encoder.encode(None))

"""Audio (and a video's sound track) → Whisper transcript with timestamped segments."""

from __future__ import annotations

import tempfile
from pathlib import Path

import av

from worker.model_client import StageFailed
from worker.pipelines.context import Outcome, PipelineContext


def transcribe(ctx: PipelineContext, media_id: str, path: Path) -> Outcome:
    """Upload the file as it is (multipart, streamed from disk; whisper decodes any audio container)."""
    outcome = Outcome()
    try:
        with path.open("rb") as handle:
            answer = ctx.models.transcribe_file(handle)
    except StageFailed as exc:
        outcome.reasons.append(exc.reason)
        return outcome
    ctx.media.save_transcript(media_id, answer)
    outcome.computed.append("transcript")
    return outcome


def transcribe_sound_track(ctx: PipelineContext, media_id: str, video: Path) -> Outcome:
    """A video's first audio track, copied (not re-encoded) into a Matroska file, is what whisper gets: a
    fraction of the video's bytes. A track that cannot be copied so sends the whole video instead."""
    with tempfile.TemporaryDirectory(prefix="mediamesh-sound-") as folder:
        track = Path(folder) / "sound.mka"
        try:
            copy_sound_track(video, track)
        except (av.FFmpegError, ValueError, OSError):
            track = video
        return transcribe(ctx, media_id, track)


def copy_sound_track(video: Path, target: Path) -> None:
    with av.open(str(video)) as source, av.open(str(target), mode="w", format="matroska") as sink:
        stream = source.streams.audio[0]
        copy = sink.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = copy
            sink.mux(packet)

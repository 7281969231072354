"""Video → a frame every N seconds (PyAV) through the image path, plus the sound track through Whisper.

Frames are found by seeking: each sample decodes from the key frame before its time up to that time, so a
long video costs what its samples cost, not what its length in frames would.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import av

from storage.media_files import sha256_of
from storage.repositories.media import NewMedia
from worker.pipelines.audio import transcribe_sound_track
from worker.pipelines.context import Outcome, PipelineContext
from worker.pipelines.image import analyse_image


@dataclass
class SampledFrames:
    frames: list[tuple[float, bytes]] = field(default_factory=list)  # (time in seconds, PNG)
    has_audio: bool = False
    decoded: int = 0  # frames decoded to find them: the cost


def sample_frames(video: Path, interval_s: float, max_frames: int) -> SampledFrames:
    """PNG frames at t = 0, interval, 2*interval, ... (up to `max_frames`) and whether there is a sound track."""
    sampled = SampledFrames()
    with av.open(str(video), mode="r") as container:
        sampled.has_audio = bool(container.streams.audio)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        target, last_t = 0.0, -1.0
        while len(sampled.frames) < max_frames:
            frame = _first_frame_from(container, stream, target, sampled)
            if frame is None:
                break
            t = float(frame.time) if frame.time is not None else target
            if t > last_t:  # a stream whose times jump (or a too-short GOP index) may land on the same frame
                buffer = io.BytesIO()
                frame.to_image().save(buffer, format="PNG")
                sampled.frames.append((round(t, 3), buffer.getvalue()))
                last_t = t
            target = max(target, t) + interval_s
    return sampled


def _first_frame_from(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                      target: float, sampled: SampledFrames) -> av.VideoFrame | None:
    """The first frame at or after `target` seconds: seek to the key frame before it, decode forward."""
    if stream.time_base is not None and target > 0:
        container.seek(int(target / stream.time_base), stream=stream, backward=True)
    for frame in container.decode(stream):
        sampled.decoded += 1
        if frame.time is None or frame.time + 1e-6 >= target:
            return frame
    return None


def _frame_media(ctx: PipelineContext, video_id: str, png: bytes) -> str:
    """The frame's own media record (content-addressed like any upload), created once."""
    sha = sha256_of(png)
    existing = ctx.media.by_sha256(sha)
    if existing is not None:
        return existing.id
    _, path = ctx.store.put(png)
    return ctx.media.add_frame(video_id, NewMedia(sha256=sha, kind="image", mime="image/png", size=len(png),
                                                  path=path))


def analyse_video(ctx: PipelineContext, media_id: str, video: Path) -> Outcome:
    ctx.report(0.02, "extracting frames")
    sampled = sample_frames(video, ctx.settings.frame_interval_s, ctx.settings.max_frames)
    frames = sampled.frames
    outcome = Outcome()
    linked: list[tuple[float, str]] = []
    share = 0.8 if sampled.has_audio else 0.95
    for index, (t, png) in enumerate(frames):
        frame_id = _frame_media(ctx, media_id, png)
        span = (0.05 + share * index / len(frames), 0.05 + share * (index + 1) / len(frames))
        frame_outcome = analyse_image(ctx, frame_id, png, span)
        ctx.media.set_outcome(frame_id, frame_outcome.reasons)
        outcome.merge(frame_outcome)
        linked.append((t, frame_id))
    ctx.media.save_frames(media_id, linked)
    outcome.computed.append(f"{len(linked)} frames")
    if sampled.has_audio:
        ctx.report(0.85, "transcribing sound track")
        outcome.merge(transcribe_sound_track(ctx, media_id, video))
    return outcome

"""Video → a frame every N seconds (PyAV) through the image path, plus the sound track through Whisper."""

from __future__ import annotations

import io

import av

from storage.media_files import sha256_of
from storage.repositories.media import NewMedia
from worker.pipelines.audio import transcribe
from worker.pipelines.context import Outcome, PipelineContext
from worker.pipelines.image import analyse_image


def sample_frames(data: bytes, interval_s: float, max_frames: int) -> tuple[list[tuple[float, bytes]], bool]:
    """PNG frames at t = 0, interval, 2*interval, ... and whether the file has a sound track."""
    frames: list[tuple[float, bytes]] = []
    with av.open(io.BytesIO(data), mode="r") as container:
        has_audio = bool(container.streams.audio)
        stream = container.streams.video[0]
        next_t = 0.0
        for frame in container.decode(stream):
            t = float(frame.time) if frame.time is not None else next_t
            if t + 1e-6 < next_t:
                continue
            buffer = io.BytesIO()
            frame.to_image().save(buffer, format="PNG")
            frames.append((round(t, 3), buffer.getvalue()))
            next_t = t + interval_s
            if len(frames) >= max_frames:
                break
    return frames, has_audio


def _frame_media(ctx: PipelineContext, video_id: str, png: bytes) -> str:
    """The frame's own media record (content-addressed like any upload), created once."""
    sha = sha256_of(png)
    existing = ctx.media.by_sha256(sha)
    if existing is not None:
        return existing.id
    _, path = ctx.store.put(png)
    return ctx.media.add_frame(video_id, NewMedia(sha256=sha, kind="image", mime="image/png", size=len(png),
                                                  path=path))


def analyse_video(ctx: PipelineContext, media_id: str, data: bytes) -> Outcome:
    ctx.report(0.02, "extracting frames")
    frames, has_audio = sample_frames(data, ctx.settings.frame_interval_s, ctx.settings.max_frames)
    outcome = Outcome()
    linked: list[tuple[float, str]] = []
    share = 0.8 if has_audio else 0.95
    for index, (t, png) in enumerate(frames):
        frame_id = _frame_media(ctx, media_id, png)
        span = (0.05 + share * index / len(frames), 0.05 + share * (index + 1) / len(frames))
        frame_outcome = analyse_image(ctx, frame_id, png, span)
        ctx.media.set_outcome(frame_id, frame_outcome.reasons)
        outcome.merge(frame_outcome)
        linked.append((t, frame_id))
    ctx.media.save_frames(media_id, linked)
    outcome.computed.append(f"{len(linked)} frames")
    if has_audio:
        ctx.report(0.85, "transcribing sound track")
        outcome.merge(transcribe(ctx, media_id, data))
    return outcome

"""Audio (and a video's sound track) → Whisper transcript with timestamped segments."""

from __future__ import annotations

import base64

from worker.model_client import StageFailed
from worker.pipelines.context import Outcome, PipelineContext


def transcribe(ctx: PipelineContext, media_id: str, data: bytes) -> Outcome:
    """Send the file as it is (the whisper service decodes audio and video containers alike)."""
    outcome = Outcome()
    try:
        answer = ctx.models.transcribe(base64.b64encode(data).decode("ascii"))
    except StageFailed as exc:
        outcome.reasons.append(exc.reason)
        return outcome
    ctx.media.save_transcript(media_id, answer)
    outcome.computed.append("transcript")
    return outcome

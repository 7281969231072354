"""Audio (and a video's sound track) → Whisper transcript with timestamped segments."""

from __future__ import annotations

import base64

from storage import repository
from worker.model_client import StageFailed
from worker.pipelines.context import Outcome, PipelineContext


def transcribe(ctx: PipelineContext, media_id: str, data: bytes) -> Outcome:
    """Send the file as it is (the whisper service decodes audio and video containers alike)."""
    outcome = Outcome()
    payload = {"audio": base64.b64encode(data).decode("ascii"), "language": "auto",
               "options": {"timestamps": True}}
    try:
        answer = ctx.models.call("whisper", "transcribe", payload)
    except StageFailed as exc:
        outcome.reasons.append(exc.reason)
        return outcome
    with ctx.db.session() as session:
        repository.save_transcript(session, media_id, answer)
    outcome.computed.append("transcript")
    return outcome

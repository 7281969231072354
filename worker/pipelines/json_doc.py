"""JSON → Phi-3.5 schema analysis (`/analyze-json-schema`); the document itself is stored either way."""

from __future__ import annotations

import json
from typing import Any

from shared.schemas.llm import JsonSchemaAnalysis
from worker.model_client import StageFailed
from worker.pipelines.context import Outcome, PipelineContext

MAX_SAMPLES = 5


def samples_of(document: Any) -> list[Any]:
    """A list of records is sampled; anything else is one sample."""
    if isinstance(document, list) and document:
        return document[:MAX_SAMPLES]
    return [document]


def analyse_json(ctx: PipelineContext, media_id: str, data: bytes) -> Outcome:
    outcome = Outcome()
    document = json.loads(data)
    analysis: JsonSchemaAnalysis | None = None
    ctx.report(0.2, "schema analysis")
    try:
        analysis = ctx.models.analyze_json_schema(samples_of(document))
        outcome.computed.append("schema_analysis")
    except StageFailed as exc:
        outcome.reasons.append(exc.reason)
    ctx.media.save_json_document(media_id, document, analysis)
    return outcome

"""OpenAI-compatible `POST /v1/completions`: the prompt is continued as raw text (no chat template)."""

from __future__ import annotations

import time
import uuid

from services.llm.chat import usage_of
from services.llm.decoding import SamplingParams
from services.llm.model import Completion, LlmModel
from services.llm.routes import check_budget
from shared.kit.tasks import TaskRouter
from shared.schemas.llm import CompletionChoice, CompletionRequest, TextCompletion

router = TaskRouter(tags=["openai"])


def prompt_ids(model: LlmModel, body: CompletionRequest) -> list[int]:
    ids = model.text_ids(body.text())
    check_budget(model, ids, body.max_tokens)
    return ids


def continue_prompt(model: LlmModel, body: CompletionRequest, ids: list[int]) -> Completion:
    return model.complete(ids, SamplingParams(body.max_tokens, body.temperature, body.top_p, tuple(body.stop_list())))


@router.task("/v1/completions", decode=prompt_ids, predict=continue_prompt)
def completions(model: LlmModel, body: CompletionRequest, done: Completion) -> TextCompletion:
    """Continue `prompt`; `usage` counts the prompt's and the completion's tokens."""
    text = body.text() + done.text if body.echo else done.text
    return TextCompletion(
        id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=body.model or model.settings.name,
        choices=[CompletionChoice(text=text, finish_reason=done.finish_reason)],
        usage=usage_of(done),
    )

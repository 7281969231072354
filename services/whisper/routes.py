"""Task routes: `POST /transcribe` (JSON with base64, or a multipart upload), OpenAI's transcriptions and
translations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile as StarletteUpload

from services.whisper.backends import DecodeOptions
from services.whisper.transcription import OPENAI_TRANSCRIBE, TRANSCRIBE, AudioJob, decode_options
from shared.http.errors import BadInput
from shared.kit.service import LifecycleDep
from shared.schemas.whisper import ResponseFormat, TranscribeOptions, TranscribeRequest, TranscribeResponse

router = APIRouter(tags=["whisper"])


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` put in place, so it stands alone inside `openapi_extra`."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        return [resolve(v) for v in node] if isinstance(node, list) else node

    return resolve(schema)


TRANSCRIBE_BODY = {
    "requestBody": {
        "content": {
            "application/json": {"schema": _inline_schema(TranscribeRequest)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "language": {"type": "string", "default": "auto"},
                        "word_level": {"type": "boolean", "default": False},
                        "initial_prompt": {"type": "string"},
                    },
                }
            },
        },
        "required": True,
    }
}


async def transcribe_audio(request: Request, lifecycle: LifecycleDep) -> TranscribeResponse:
    """Transcribe a base64 `audio` (JSON) or an uploaded `file` (multipart): text, language, timed segments."""
    audio: bytes | str  # base64 is decoded by the task's decode hook, off the event loop
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, audio = await _from_form(request)
    else:
        body = _parse_json(await request.body())
        audio = body.audio
    options = decode_options(
        lifecycle.model.settings.beam_size, language=body.language, word_level=body.options.word_level,
        prompt=body.options.initial_prompt, beam_size=body.options.beam_size,
    )
    answer: TranscribeResponse = await TRANSCRIBE.run(lifecycle, AudioJob(audio, options))
    return answer


router.add_api_route("/v1/transcribe", transcribe_audio, methods=["POST"], openapi_extra=TRANSCRIBE_BODY)
router.add_api_route("/transcribe", transcribe_audio, methods=["POST"], openapi_extra=TRANSCRIBE_BODY, deprecated=True)


def _parse_json(raw: bytes) -> TranscribeRequest:
    if not raw:
        raise BadInput("request body is empty; send JSON {\"audio\": \"<base64>\"} or a multipart `file`")
    try:
        return TranscribeRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc


async def _from_form(request: Request) -> tuple[TranscribeRequest, bytes]:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, StarletteUpload):
        raise BadInput("multipart request has no `file` part; upload the audio or video file as `file`")
    raw = await upload.read()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        body = TranscribeRequest(
            audio="-", language=fields.get("language", "auto"),
            options=TranscribeOptions.model_validate(
                {"word_level": fields.get("word_level", "false"), "initial_prompt": fields.get("initial_prompt")}
            ),
        )
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    return body, raw


@router.post("/v1/audio/transcriptions", response_model=None)
async def openai_transcriptions(
    lifecycle: LifecycleDep,
    file: Annotated[UploadFile, File(description="Audio or video file.")],
    model: Annotated[str, Form(description="Accepted for compatibility; this service runs its loaded model.")] = "",
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form(max_length=2000)] = None,
    temperature: Annotated[float | None, Form()] = None,
    response_format: Annotated[str, Form()] = "json",
    timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
    stream: Annotated[bool, Form()] = False,
) -> Response:
    """OpenAI-compatible: the official `openai` client's `audio.transcriptions.create` works unchanged."""
    if stream:
        raise BadInput("stream=true is not supported here; leave it out to get the whole transcript at once")
    granularities = _granularities(timestamp_granularities)
    options = decode_options(
        lifecycle.model.settings.beam_size, language=language, word_level="word" in granularities,
        prompt=prompt, temperature=temperature,
    )
    return await _openai_job(lifecycle, file, options, response_format, granularities)


@router.post("/v1/audio/translations", response_model=None)
async def openai_translations(
    lifecycle: LifecycleDep,
    file: Annotated[UploadFile, File(description="Audio or video file in any language the model knows.")],
    model: Annotated[str, Form(description="Accepted for compatibility; this service runs its loaded model.")] = "",
    prompt: Annotated[str | None, Form(max_length=2000)] = None,
    temperature: Annotated[float | None, Form()] = None,
    response_format: Annotated[str, Form()] = "json",
) -> Response:
    """OpenAI-compatible: Whisper's translate task, speech in any language → English text."""
    options = decode_options(lifecycle.model.settings.beam_size, language=None, word_level=False, prompt=prompt,
                             temperature=temperature, translate=True)
    return await _openai_job(lifecycle, file, options, response_format, set())


async def _openai_job(
    lifecycle: LifecycleDep, file: UploadFile, options: DecodeOptions, response_format: str, granularities: set[str]
) -> Response:
    job = AudioJob(await file.read(), options, name=file.filename or "file",
                   response_format=_response_format(response_format), granularities=frozenset(granularities))
    answer: Response = await OPENAI_TRANSCRIBE.run(lifecycle, job)
    return answer


def _response_format(value: str) -> ResponseFormat:
    try:
        return ResponseFormat(value)
    except ValueError:
        valid = ", ".join(f.value for f in ResponseFormat)
        raise BadInput(f"response_format '{value}' is not supported; use one of: {valid}") from None


def _granularities(values: list[str] | None) -> set[str]:
    chosen = set(values or [])
    unknown = chosen - {"word", "segment"}
    if unknown:
        raise BadInput(f"timestamp_granularities {sorted(unknown)} unknown; use 'word' and/or 'segment'")
    return chosen

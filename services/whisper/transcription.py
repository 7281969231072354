"""One transcription, whichever endpoint asked: the kit's hooks around the backend.

The routes parse their input (JSON or an upload) into an `AudioJob`; `decode` reads the audio on a
worker thread, `predict` runs the backend on the inference thread, and each endpoint's `encode`
shapes the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from services.whisper import formats
from services.whisper.backends import FALLBACK_TEMPERATURES, DecodeOptions, TranscriptionResult
from services.whisper.model import WhisperModel
from shared.audio import DecodedAudio, decode_audio
from shared.http.errors import BadInput
from shared.imaging import decode_base64
from shared.kit.tasks import Task
from shared.schemas.whisper import ResponseFormat, TranscribeResponse


@dataclass(frozen=True)
class AudioJob:
    audio: bytes | str  # an upload's bytes, or the JSON body's base64 (decoded off the event loop)
    options: DecodeOptions
    name: str = "audio"
    response_format: ResponseFormat = ResponseFormat.json
    granularities: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Heard:
    audio: DecodedAudio
    result: TranscriptionResult


def parse_language(language: str | None) -> str | None:
    """'auto', '' or None → detect; otherwise a lower-case code the loaded model is checked against."""
    if language is None or language.strip().lower() in ("", "auto"):
        return None
    return language.strip().lower()


def parse_temperature(temperature: float | None) -> float | tuple[float, ...]:
    """OpenAI's semantics: 0 (the default) starts greedy and raises the temperature when decoding fails."""
    if temperature is None or temperature == 0:
        return FALLBACK_TEMPERATURES
    if not 0 < temperature <= 1:
        raise BadInput(f"temperature must be between 0 and 1, got {temperature}")
    return temperature


def decode_options(
    settings_beam_size: int, *, language: str | None, word_level: bool, prompt: str | None,
    beam_size: int | None = None, temperature: float | None = None, translate: bool = False,
) -> DecodeOptions:
    options = DecodeOptions(
        language=parse_language(language), beam_size=beam_size or settings_beam_size,
        word_timestamps=word_level, initial_prompt=prompt or None, task="translate" if translate else "transcribe",
    )
    return replace(options, temperature=parse_temperature(temperature))


def decode(model: WhisperModel, job: AudioJob) -> DecodedAudio:
    raw = decode_base64(job.audio, what="audio") if isinstance(job.audio, str) else job.audio
    return decode_audio(raw, max_seconds=model.settings.max_audio_seconds, name=job.name)


def predict(model: WhisperModel, job: AudioJob, audio: DecodedAudio) -> Heard:
    language = job.options.language
    if language is not None and language not in model.languages():
        known = ", ".join(sorted(model.languages()))
        raise BadInput(f"language '{language}' is not one this model knows; use 'auto' or one of: {known}")
    if audio.is_silent:
        return Heard(audio, TranscriptionResult(language=language, language_probability=None, segments=[]))
    return Heard(audio, model.require().transcribe(audio.samples, job.options))


def encode_json(model: WhisperModel, job: AudioJob, heard: Heard) -> TranscribeResponse:
    return formats.transcribe_response(heard.result, model=model.label(), duration_s=heard.audio.duration_s,
                                       word_level=job.options.word_timestamps)


def encode_openai(model: WhisperModel, job: AudioJob, heard: Heard) -> Response:
    result = heard.result
    match job.response_format:
        case ResponseFormat.json:
            return JSONResponse(formats.openai_json(result).model_dump())
        case ResponseFormat.text:
            return PlainTextResponse(result.text)
        case ResponseFormat.srt:
            return PlainTextResponse(formats.srt(result))
        case ResponseFormat.vtt:
            return PlainTextResponse(formats.vtt(result), media_type="text/vtt")
    verbose = formats.openai_verbose(
        result, task=job.options.task, duration_s=heard.audio.duration_s,
        with_segments="segment" in job.granularities or not job.granularities, with_words="word" in job.granularities,
    )
    return JSONResponse(verbose.model_dump(exclude_none=True))


TRANSCRIBE = Task(decode=decode, predict=predict, encode=encode_json)
OPENAI_TRANSCRIBE = replace(TRANSCRIBE, encode=encode_openai)

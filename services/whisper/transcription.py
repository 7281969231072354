"""One transcription, whichever endpoint asked: decode off the loop, hold the model, infer on the pool."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from starlette.concurrency import run_in_threadpool

from services.whisper.backends import FALLBACK_TEMPERATURES, DecodeOptions, Transcript
from services.whisper.model import WhisperModel
from shared.audio import DecodedAudio, decode_audio
from shared.http.errors import BadInput
from shared.kit.lifecycle import ModelLifecycle


@dataclass(frozen=True)
class Transcription:
    transcript: Transcript
    audio: DecodedAudio
    model: str
    started: float

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


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


async def transcribe(
    lifecycle: ModelLifecycle[Any], raw: bytes, options: DecodeOptions, *, name: str = "audio"
) -> Transcription:
    started = time.perf_counter()
    model: WhisperModel = lifecycle.model
    settings = model.settings
    audio = await run_in_threadpool(decode_audio, raw, max_seconds=settings.max_audio_seconds, name=name)
    async with lifecycle.use() as held:
        _check_language(held, options.language)
        if audio.is_silent:
            transcript = Transcript(language=options.language, language_probability=None, segments=[])
        else:
            transcript = await lifecycle.run(held.require().transcribe, audio.samples, options)
        label = held.label()
    return Transcription(transcript=transcript, audio=audio, model=label, started=started)


def _check_language(model: WhisperModel, language: str | None) -> None:
    if language is None or language in model.languages():
        return
    known = ", ".join(sorted(model.languages()))
    raise BadInput(f"language '{language}' is not one this model knows; use 'auto' or one of: {known}")


def decode_options(
    settings_beam_size: int, *, language: str | None, word_level: bool, prompt: str | None,
    beam_size: int | None = None, temperature: float | None = None,
) -> DecodeOptions:
    options = DecodeOptions(
        language=parse_language(language), beam_size=beam_size or settings_beam_size,
        word_timestamps=word_level, initial_prompt=prompt or None,
    )
    return replace(options, temperature=parse_temperature(temperature))

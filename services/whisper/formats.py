"""Transcript → the response shapes: the service's own JSON, and OpenAI's json/text/srt/vtt/verbose_json."""

from __future__ import annotations

from functools import cache

from services.whisper.backends import TranscribedSegment, TranscriptionResult
from shared.schemas.whisper import (
    OpenAISegment,
    OpenAITranscription,
    OpenAIVerboseTranscription,
    OpenAIWord,
    Segment,
    TranscribeResponse,
    Word,
)


def transcribe_response(
    transcript: TranscriptionResult, *, model: str, duration_s: float, word_level: bool
) -> TranscribeResponse:
    segments = [
        Segment(
            id=s.id, start=round(s.start, 3), end=round(s.end, 3), text=s.text.strip(),
            words=[Word(word=w.word, start=w.start, end=w.end, probability=w.probability) for w in s.words or []]
            if word_level else None,
        )
        for s in transcript.segments
    ]
    return TranscribeResponse(
        model=model, text=transcript.text, language=transcript.language,
        language_probability=transcript.language_probability, duration_s=round(duration_s, 3),
        segments=segments,
    )


def openai_json(transcript: TranscriptionResult) -> OpenAITranscription:
    return OpenAITranscription(text=transcript.text)


def openai_verbose(
    transcript: TranscriptionResult, *, task: str = "transcribe", duration_s: float, with_segments: bool,
    with_words: bool,
) -> OpenAIVerboseTranscription:
    segments = [_openai_segment(s) for s in transcript.segments] if with_segments else None
    words = None
    if with_words:
        words = [OpenAIWord(word=w.word.strip(), start=w.start, end=w.end)
                 for s in transcript.segments for w in s.words or []]
    return OpenAIVerboseTranscription(
        task=task, language=language_name(transcript.language), duration=round(duration_s, 3), text=transcript.text,
        segments=segments, words=words,
    )


def _openai_segment(s: TranscribedSegment) -> OpenAISegment:
    return OpenAISegment.model_validate(s.model_dump(exclude={"words"}))


def srt(transcript: TranscriptionResult) -> str:
    cues = [
        f"{n}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for n, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(cues)


def vtt(transcript: TranscriptionResult) -> str:
    cues = [f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n" for s in transcript.segments]
    return "WEBVTT\n\n" + "\n".join(cues)


def _timestamp(seconds: float, decimal_marker: str) -> str:
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


@cache
def _language_names() -> dict[str, str]:
    from whisper.tokenizer import LANGUAGES  # openai-whisper's table; imported on first use only

    return dict(LANGUAGES)


def language_name(code: str | None) -> str:
    """'en' → 'english', as OpenAI's verbose_json reports it."""
    if code is None:
        return ""
    return _language_names().get(code, code)

"""whisper service: `POST /transcribe` and the OpenAI-compatible `POST /v1/audio/transcriptions`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from shared.schemas.common import TimedResponse


class TranscribeOptions(BaseModel):
    timestamps: bool = Field(default=True, description="Segment start/end times (always on; seed contract).")
    word_level: bool = Field(default=False, description="Also return each word with its start/end and probability.")
    beam_size: int | None = Field(default=None, ge=1, le=10, description="Beam width; default: the service setting.")
    initial_prompt: str | None = Field(default=None, max_length=2000, description="Primes spelling and style.")


class TranscribeRequest(BaseModel):
    audio: str = Field(min_length=1, description="Base64 audio or video file (mp3, wav, m4a, flac, ogg, mp4...).")
    language: str = Field(default="auto", description="'auto' to detect, or an ISO-639-1 code such as 'en'.")
    options: TranscribeOptions = Field(default_factory=TranscribeOptions)


class Word(BaseModel):
    word: str
    start: float
    end: float
    probability: float


class Segment(BaseModel):
    id: int
    start: float = Field(description="Seconds from the start of the audio.")
    end: float
    text: str
    words: list[Word] | None = Field(default=None, description="Present when word_level was asked for.")


class TranscribeResponse(TimedResponse):
    model: str
    text: str = Field(description="The whole transcript; empty for silent or empty audio.")
    language: str | None = Field(description="ISO-639-1 code; detected when 'auto'; null for empty audio.")
    language_probability: float | None = None
    duration_s: float
    segments: list[Segment]


class ResponseFormat(StrEnum):
    """`response_format` of `POST /v1/audio/transcriptions`, as in OpenAI's API."""

    json = "json"
    text = "text"
    srt = "srt"
    vtt = "vtt"
    verbose_json = "verbose_json"


class OpenAITranscription(BaseModel):
    text: str


class OpenAISegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class OpenAIWord(BaseModel):
    word: str
    start: float
    end: float


class OpenAIVerboseTranscription(BaseModel):
    task: str = "transcribe"
    language: str = Field(description="The language's English name, lower case, as OpenAI returns it.")
    duration: float
    text: str
    segments: list[OpenAISegment] | None = None
    words: list[OpenAIWord] | None = None

"""The two runtimes behind one small Protocol: faster-whisper (CTranslate2) and openai-whisper (torch).

Both receive the same 16 kHz mono float32 samples (decoded once by `shared.audio`), so they
differ only in the model, never in how the file was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from pydantic import ConfigDict

from shared.schemas.whisper import OpenAISegment

# OpenAI's `temperature=0` means "start greedy, and raise the temperature when decoding fails"
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class DecodeOptions:
    language: str | None = None  # None: detect
    beam_size: int = 5
    word_timestamps: bool = False
    initial_prompt: str | None = None
    temperature: float | tuple[float, ...] = FALLBACK_TEMPERATURES
    task: Literal["transcribe", "translate"] = "transcribe"  # translate: any language → English text


@dataclass(frozen=True)
class WordTiming:
    word: str
    start: float
    end: float
    probability: float


class TranscribedSegment(OpenAISegment):
    """OpenAI's segment shape, plus the word timings a backend measured (asked for with `word_level`)."""

    model_config = ConfigDict(frozen=True)

    words: list[WordTiming] | None = None


@dataclass(frozen=True)
class TranscriptionResult:
    language: str | None
    language_probability: float | None
    segments: list[TranscribedSegment]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()


class TranscriptionBackend(Protocol):
    name: str

    def transcribe(self, samples: np.ndarray, options: DecodeOptions) -> TranscriptionResult: ...

    def languages(self) -> frozenset[str]: ...

    def modules(self) -> list[torch.nn.Module]: ...


class FasterWhisperBackend:
    """CTranslate2: int8 on the CPU, float16 / int8_float16 on CUDA."""

    name = "faster-whisper"

    def __init__(self, folder: Path, *, device: str, compute_type: str, cpu_threads: int) -> None:
        from faster_whisper import WhisperModel

        self.compute_type = compute_type
        self.model = WhisperModel(
            str(folder), device=device, compute_type=compute_type, cpu_threads=cpu_threads, local_files_only=True
        )

    def transcribe(self, samples: np.ndarray, options: DecodeOptions) -> TranscriptionResult:
        segments, info = self.model.transcribe(
            samples,
            language=options.language,
            beam_size=options.beam_size,
            word_timestamps=options.word_timestamps,
            initial_prompt=options.initial_prompt,
            temperature=list(options.temperature) if isinstance(options.temperature, tuple) else options.temperature,
            task=options.task,
        )
        return TranscriptionResult(
            language=info.language,
            language_probability=info.language_probability,
            segments=_numbered([_segment(s) for s in segments]),  # the generator decodes as it is read
        )

    def languages(self) -> frozenset[str]:
        return frozenset(self.model.supported_languages)

    def modules(self) -> list[torch.nn.Module]:
        return []


def _numbered(segments: list[TranscribedSegment]) -> list[TranscribedSegment]:
    """Drop segments without words (a window the model heard nothing in) and number the rest from 0."""
    kept = [s for s in segments if s.text.strip()]
    return [s.model_copy(update={"id": i}) for i, s in enumerate(kept)]


def _segment(s: Any) -> TranscribedSegment:
    words = None
    if s.words is not None:
        words = [WordTiming(w.word, w.start, w.end, w.probability) for w in s.words]
    return TranscribedSegment(
        id=0, seek=s.seek, start=s.start, end=s.end, text=s.text, tokens=list(s.tokens),
        temperature=float(s.temperature or 0.0), avg_logprob=s.avg_logprob,
        compression_ratio=s.compression_ratio, no_speech_prob=s.no_speech_prob, words=words,
    )


class OpenAIWhisperBackend:
    """openai-whisper's own torch model, loaded from its `.pt` checkpoint format."""

    name = "openai-whisper"

    def __init__(self, checkpoint: Path, *, device: torch.device, fp16: bool) -> None:
        import whisper

        self.device, self.fp16 = device, fp16
        self.model = whisper.load_model(str(checkpoint), device=device)

    def transcribe(self, samples: np.ndarray, options: DecodeOptions) -> TranscriptionResult:
        import whisper

        result = whisper.transcribe(
            self.model,
            samples,
            language=options.language,
            beam_size=options.beam_size,
            best_of=5,
            word_timestamps=options.word_timestamps,
            initial_prompt=options.initial_prompt,
            temperature=options.temperature,
            task=options.task,
            fp16=self.fp16,
            verbose=None,
        )
        segments = _numbered([_openai_segment(s, options.word_timestamps) for s in result["segments"]])
        return TranscriptionResult(language=result.get("language"), language_probability=None, segments=segments)

    def languages(self) -> frozenset[str]:
        from whisper.tokenizer import LANGUAGES

        return frozenset(LANGUAGES) if self.model.is_multilingual else frozenset({"en"})

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]


def _openai_segment(s: dict[str, Any], with_words: bool) -> TranscribedSegment:
    words = None
    if with_words:
        words = [WordTiming(w["word"], w["start"], w["end"], w["probability"]) for w in s.get("words", [])]
    return TranscribedSegment(
        id=0, seek=int(s["seek"]), start=float(s["start"]), end=float(s["end"]), text=s["text"],
        tokens=list(s["tokens"]), temperature=float(s["temperature"]), avg_logprob=float(s["avg_logprob"]),
        compression_ratio=float(s["compression_ratio"]), no_speech_prob=float(s["no_speech_prob"]), words=words,
    )

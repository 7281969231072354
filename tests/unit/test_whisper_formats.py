"""whisper service pieces without a process: settings validation and the srt/vtt writers."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from services.whisper import formats
from services.whisper.backends import TranscribedSegment, TranscriptionResult
from services.whisper.settings import WhisperSettings


def segment(i: int, start: float, end: float, text: str) -> TranscribedSegment:
    return TranscribedSegment(id=i, seek=0, start=start, end=end, text=text, tokens=[1], temperature=0.0,
                              avg_logprob=-0.1, compression_ratio=1.2, no_speech_prob=0.01, words=None)


TRANSCRIPT = TranscriptionResult(language="en", language_probability=0.9, segments=[
    segment(0, 0.0, 2.5, " Hello there."), segment(1, 2.5, 3723.0456, " An hour later."),
])


def test_srt_cues() -> None:
    assert formats.srt(TRANSCRIPT) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
        "2\n00:00:02,500 --> 01:02:03,046\nAn hour later.\n"
    )


def test_vtt_cues() -> None:
    assert formats.vtt(TRANSCRIPT) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n00:00:02.500 --> 01:02:03.046\nAn hour later.\n"
    )


def test_verbose_json_names_the_language_like_openai() -> None:
    verbose = formats.openai_verbose(TRANSCRIPT, duration_s=3723.1, with_segments=True, with_words=False)
    assert verbose.language == "english" and verbose.text == "Hello there. An hour later."
    assert [s.id for s in verbose.segments or []] == [0, 1] and verbose.words is None


def test_quantization_follows_the_backend() -> None:
    assert WhisperSettings(backend="faster").quantization == "8bit"
    assert WhisperSettings(backend="openai").quantization == "none"
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert WhisperSettings().ct2_compute_type(cpu) == "int8"
    assert WhisperSettings().ct2_compute_type(cuda) == "int8_float16"
    assert WhisperSettings(quantization="none").ct2_compute_type(cuda) == "float16"
    assert WhisperSettings(compute_type="int16").ct2_compute_type(cpu) == "int16"


@pytest.mark.parametrize(("backend", "quantization", "message"), [
    ("openai", "8bit", "openai-whisper runs unquantized"),
    ("faster", "4bit", "no 4-bit mode"),
])
def test_impossible_settings_are_refused(backend: str, quantization: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WhisperSettings(backend=backend, quantization=quantization)

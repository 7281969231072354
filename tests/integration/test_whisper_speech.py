"""Real speech through the whisper service with the REAL faster-whisper base weights.

espeak-ng speaks known English sentences; the service must get them back (word error rate
≤ 15 %), through its own endpoint, the official `openai` client, srt/vtt, other containers and
a video's audio track.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jiwer
import openai
import pytest

from tests.support.processes import ServiceProcess
from tests.support.speech import encode, read_samples, speak, video_with_audio

APP = "services.whisper.app:create_app"
MAX_WER = 0.15
PASSAGE = [
    "The weather is nice today and the children are playing outside.",
    "Please send the quarterly report to the whole team before the end of the week.",
    "We need more coffee and a bigger table for the kitchen.",
    "She opened the window and looked at the garden.",
]
SHORT = PASSAGE[2]
SRT_CUE = re.compile(r"^(\d+)\n(\d{2}:\d{2}:\d{2},\d{3}) --> (\d{2}:\d{2}:\d{2},\d{3})\n(.+)$", re.S)
VTT_CUE = re.compile(r"^(\d{2}:\d{2}:\d{2}\.\d{3}) --> (\d{2}:\d{2}:\d{2}\.\d{3})\n(.+)$", re.S)


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(words(reference), words(hypothesis)))


def seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.fixture(scope="module")
def service(tiny_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("whisper-speech")
    env = {"WHISPER_MODEL_PATH": str(tiny_model("whisper")), "WHISPER_AUTOLOAD": "true"}
    proc = ServiceProcess(APP, env, logs / "whisper.log").start()
    proc.wait_healthy(120, path="/ready")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("spoken")
    return {
        "passage": speak(" ".join(PASSAGE), folder / "passage.wav").read_bytes(),
        "short": speak(SHORT, folder / "short.wav").read_bytes(),
    }


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=300) as c:
        yield c


def test_passage_word_error_rate(client: httpx.Client, audio: dict[str, bytes]) -> None:
    body = {"audio": base64.b64encode(audio["passage"]).decode(), "options": {"word_level": True}}
    answer = client.post("/transcribe", json=body).json()
    assert answer["language"] == "en" and answer["language_probability"] > 0.5
    assert wer(" ".join(PASSAGE), answer["text"]) <= MAX_WER, answer["text"]
    assert client.get("/v1/model").json()["tiny"] is False
    starts = [s["start"] for s in answer["segments"]]
    assert starts == sorted(starts)
    assert all(0 <= s["start"] < s["end"] <= answer["duration_s"] + 0.5 for s in answer["segments"])
    spoken = [w["word"] for s in answer["segments"] for w in s["words"]]
    assert wer(" ".join(PASSAGE), " ".join(spoken)) <= MAX_WER


def test_srt_and_vtt_parse(client: httpx.Client, audio: dict[str, bytes]) -> None:
    def ask(fmt: str) -> str:
        answer = client.post("/v1/audio/transcriptions", files={"file": ("passage.wav", audio["passage"])},
                             data={"model": "whisper-1", "response_format": fmt})
        assert answer.status_code == 200, answer.text
        return answer.text

    srt_cues = [SRT_CUE.match(block) for block in ask("srt").strip().split("\n\n")]
    assert srt_cues and all(srt_cues), "every srt block is `n / start --> end / text`"
    assert [int(c[1]) for c in srt_cues if c] == list(range(1, len(srt_cues) + 1))
    check_cues([(seconds(c[2]), seconds(c[3]), c[4]) for c in srt_cues if c])

    vtt = ask("vtt")
    assert vtt.startswith("WEBVTT\n\n")
    vtt_cues = [VTT_CUE.match(block) for block in vtt.removeprefix("WEBVTT\n\n").strip().split("\n\n")]
    assert vtt_cues and all(vtt_cues), "every vtt block is `start --> end / text`"
    check_cues([(seconds(c[1]), seconds(c[2]), c[3]) for c in vtt_cues if c])


def check_cues(cues: list[tuple[float, float, str]]) -> None:
    assert all(start < end for start, end, _ in cues)
    assert all(a[1] <= b[0] + 1e-3 for a, b in zip(cues, cues[1:], strict=False)), "cues are monotonic"
    assert wer(" ".join(PASSAGE), " ".join(text for _, _, text in cues)) <= MAX_WER


def test_official_openai_client(service: ServiceProcess, audio: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    path.write_bytes(audio["short"])
    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="not-needed", timeout=300)
    with path.open("rb") as f:
        plain = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert wer(SHORT, plain.text) <= MAX_WER, plain.text
    with path.open("rb") as f:
        verbose = client.audio.transcriptions.create(
            model="whisper-1", file=f, language="en", response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert verbose.language == "english" and verbose.duration == pytest.approx(3.5, abs=1.5)
    assert verbose.words and wer(SHORT, " ".join(w.word for w in verbose.words)) <= MAX_WER
    assert verbose.segments and verbose.segments[0].start == 0.0
    with path.open("rb") as f:
        text = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert isinstance(text, str) and wer(SHORT, text) <= MAX_WER


@pytest.mark.parametrize("fmt", ["mp3", "ogg", "flac", "ipod", "video"])
def test_other_containers_and_a_video_track(client: httpx.Client, audio: dict[str, bytes], fmt: str) -> None:
    samples, rate = read_samples(audio["short"])
    raw = video_with_audio(samples, rate) if fmt == "video" else encode(samples, rate, fmt)
    name = {"ipod": "short.m4a", "video": "short.mp4"}.get(fmt, f"short.{fmt}")
    answer = client.post("/transcribe", files={"file": (name, raw)}, data={"language": "en"})
    assert answer.status_code == 200, answer.text
    assert wer(SHORT, answer.json()["text"]) <= MAX_WER, answer.json()["text"]


@pytest.mark.gpu
@pytest.mark.parametrize(("quantization", "compute_type"), [("8bit", "int8_float16"), ("none", "float16")])
def test_cuda_backend_transcribes_and_frees_gpu_memory(
    tiny_model: Callable[[str], Path], tmp_path: Path, audio: dict[str, bytes], quantization: str, compute_type: str
) -> None:
    env = {"WHISPER_MODEL_PATH": str(tiny_model("whisper")), "WHISPER_DEVICE": "cuda",
           "WHISPER_QUANTIZATION": quantization}
    with ServiceProcess(APP, env, tmp_path / "whisper.log") as proc, \
            httpx.Client(base_url=proc.url, timeout=300) as client:
        loaded = client.post("/v1/model/load").json()
        info = client.get("/v1/model").json()
        assert info["device"].startswith("cuda") and info["details"]["compute_type"] == compute_type
        assert loaded["memory_bytes"] > 50_000_000, "CTranslate2's GPU memory is measured at load"
        answer = client.post("/transcribe", files={"file": ("short.wav", audio["short"])}).json()
        assert wer(SHORT, answer["text"]) <= MAX_WER, answer["text"]
        unloaded = client.post("/v1/model/unload").json()
        assert unloaded["freed_bytes"] >= 0.95 * loaded["memory_bytes"] and unloaded["memory_bytes"] == 0

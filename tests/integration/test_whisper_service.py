"""The whisper service over HTTP: contract, both backends, bad input, silence (real processes)."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from PIL import Image

from tests.support.processes import ServiceProcess
from tests.support.speech import encode, pcm_wav, read_samples, speak, tone

APP = "services.whisper.app:create_app"
MAX_REQUEST_BYTES = 3_000_000


def start(models: Path, logs: Path, **env: str) -> ServiceProcess:
    settings = {"WHISPER_MODEL_PATH": str(models), "WHISPER_BEAM_SIZE": "1",
                "WHISPER_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES), **env}
    return ServiceProcess(APP, settings, logs / "whisper.log").start()


@pytest.fixture(scope="module")
def models(tiny_model: Callable[[str], Path]) -> Path:
    return tiny_model("whisper")


@pytest.fixture(scope="module")
def faster(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    proc = start(models, tmp_path_factory.mktemp("whisper-faster"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speak("Hello world.", tmp_path_factory.mktemp("speech") / "hello.wav").read_bytes()


@pytest.fixture
def client(faster: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=faster.url, timeout=120) as c:
        yield c


@pytest.fixture
def loaded(client: httpx.Client) -> httpx.Client:
    assert client.post("/v1/model/load").status_code == 200
    return client


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def rss(proc: ServiceProcess) -> int:
    assert proc.proc is not None
    return int(psutil.Process(proc.proc.pid).memory_info().rss)


def test_load_transcribe_unload_cycle(faster: ServiceProcess, client: httpx.Client, speech: bytes) -> None:
    client.post("/v1/model/unload")
    info = client.get("/v1/model").json()
    assert info["state"] == "unloaded" and info["memory_bytes"] == 0
    assert info["estimated_bytes"] > 100_000_000  # the real base model.bin, ~145 MB

    refused = client.post("/transcribe", json={"audio": b64(speech)})
    assert refused.status_code == 503 and "POST /v1/model/load" in refused.json()["detail"]
    assert "Retry-After" in refused.headers

    loaded = client.post("/v1/model/load").json()
    assert loaded["state"] == "loaded" and loaded["memory_bytes"] > 50_000_000
    info = client.get("/v1/model").json()
    assert info["tiny"] is False, "the faster-whisper base weights are real even in the tiny-built folder"
    assert info["details"]["backend"] == "faster-whisper" and info["details"]["compute_type"] == "int8"
    assert info["quantization"] == "8bit"

    answer = client.post("/transcribe", json={"audio": b64(speech)}).json()
    assert "hello" in answer["text"].lower() and answer["language"] == "en"
    assert answer["segments"] and answer["segments"][0]["words"] is None
    assert answer["duration_s"] == pytest.approx(len(speech) / 2 / 22_050, abs=0.05)

    rss_loaded = rss(faster)
    unloaded = client.post("/v1/model/unload").json()
    assert unloaded["freed_bytes"] >= 0.95 * loaded["memory_bytes"] and unloaded["memory_bytes"] == 0
    assert client.get("/v1/model").json()["memory_bytes"] == 0
    # and the process really gives the memory back (CTranslate2's heap is trimmed on unload)
    assert rss_loaded - rss(faster) >= 0.5 * loaded["memory_bytes"]
    assert client.post("/transcribe", json={"audio": b64(speech)}).status_code == 503
    assert client.post("/v1/model/load").json()["state"] == "loaded"
    assert "hello" in client.post("/transcribe", json={"audio": b64(speech)}).json()["text"].lower()


def test_json_and_multipart_give_the_same_transcript(loaded: httpx.Client, speech: bytes) -> None:
    as_json = loaded.post("/transcribe", json={"audio": b64(speech), "language": "en",
                                               "options": {"word_level": True}}).json()
    as_upload = loaded.post("/transcribe", files={"file": ("hello.wav", speech, "audio/wav")},
                            data={"language": "en", "word_level": "true"}).json()
    assert as_json["text"] == as_upload["text"] and as_json["segments"] == as_upload["segments"]
    words = [w for s in as_json["segments"] for w in s["words"]]
    assert words and all(0 <= w["start"] <= w["end"] <= as_json["duration_s"] + 0.1 for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)


def test_silence_and_empty_audio_give_an_empty_transcript(loaded: httpx.Client) -> None:
    for raw in (pcm_wav(np.zeros(32_000)), pcm_wav(np.zeros(0)), encode(np.zeros((1, 48_000)), 48_000, "flac")):
        answer = loaded.post("/transcribe", json={"audio": b64(raw)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["text"] == "" and answer.json()["segments"] == []
    srt = loaded.post("/v1/audio/transcriptions", files={"file": ("quiet.wav", pcm_wav(np.zeros(16_000)))},
                      data={"model": "whisper-1", "response_format": "srt"})
    assert srt.status_code == 200 and srt.text == ""


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def truncated_wav() -> bytes:
    raw = encode(tone(1.0, channels=1), 44_100, "wav")
    return raw[: len(raw) // 2]


BAD_JSON = [
    ({"audio": b64(b"plain text, no sound at all " * 10)}, 415, "not an audio or video file"),
    ({"audio": b64(png())}, 415, "not an audio or video file"),
    ({"audio": b64(truncated_wav())}, 422, "truncated"),
    ({"audio": "@@not base64@@"}, 422, "not valid base64"),
    ({"audio": ""}, 422, "at least 1 character"),
    ({"audio": b64(pcm_wav(np.zeros(100))), "language": "klingon"}, 422, "not one this model knows"),
    ({"audio": b64(pcm_wav(np.zeros(100))), "options": {"beam_size": 99}}, 422, "less than or equal to 10"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_JSON)
def test_bad_json_input_is_4xx(loaded: httpx.Client, body: dict[str, object], status: int, message: str) -> None:
    answer = loaded.post("/transcribe", json=body)
    assert answer.status_code == status, answer.text
    assert message in str(answer.json()["detail"])


def test_empty_and_malformed_bodies_are_4xx(loaded: httpx.Client) -> None:
    empty = loaded.post("/transcribe", content=b"", headers={"content-type": "application/json"})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    malformed = loaded.post("/transcribe", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    no_file = loaded.post("/transcribe", files={"other": ("x.wav", b"123")})
    assert no_file.status_code == 422 and "`file`" in no_file.json()["detail"]
    empty_file = loaded.post("/v1/audio/transcriptions", files={"file": ("x.wav", b"")}, data={"model": "whisper-1"})
    assert empty_file.status_code == 422 and "empty (0 bytes)" in empty_file.json()["detail"]
    too_big = loaded.post("/transcribe", files={"file": ("big.wav", b"\0" * (MAX_REQUEST_BYTES + 1))})
    assert too_big.status_code == 413


def test_openai_endpoint_refuses_unknown_formats_and_options(loaded: httpx.Client, speech: bytes) -> None:
    def post(**data: str) -> httpx.Response:
        return loaded.post("/v1/audio/transcriptions", files={"file": ("hello.wav", speech)},
                           data={"model": "whisper-1", **data})

    unknown = post(response_format="docx")
    assert unknown.status_code == 422
    assert "json, text, srt, vtt, verbose_json" in unknown.json()["detail"]
    assert post(temperature="1.5").status_code == 422
    assert post(stream="true").status_code == 422
    assert "'sentence'" in post(**{"timestamp_granularities[]": "sentence"}).json()["detail"]
    assert post(response_format="text").text.lower().startswith("hello")


def test_service_keeps_serving_after_bad_input(loaded: httpx.Client, speech: bytes) -> None:
    for _ in range(3):
        loaded.post("/transcribe", json={"audio": b64(truncated_wav())})
    assert loaded.get("/health").json()["state"] == "loaded"
    assert "hello" in loaded.post("/transcribe", json={"audio": b64(speech)}).json()["text"].lower()
    metrics = loaded.get("/metrics").text
    assert 'mediamesh_requests_total{method="POST",route="/transcribe",status="422"}' in metrics


def test_openai_whisper_backend_loads_and_answers(models: Path, tmp_path: Path, speech: bytes) -> None:
    proc = start(models, tmp_path, WHISPER_BACKEND="openai")
    try:
        with httpx.Client(base_url=proc.url, timeout=120) as c:
            assert c.post("/transcribe", json={"audio": b64(speech)}).status_code == 503
            loaded = c.post("/v1/model/load").json()
            assert loaded["state"] == "loaded" and loaded["memory_bytes"] > 1_000_000
            info = c.get("/v1/model").json()
            assert info["tiny"] is True and info["quantization"] == "none"
            assert info["details"]["backend"] == "openai-whisper"
            answer = c.post("/transcribe", json={"audio": b64(speech), "language": "en",
                                                 "options": {"word_level": True}})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            # the tiny checkpoint is built to hear nothing (`<|0.00|>` then end of text): a known answer
            assert body["model"] == "openai-whisper:openai-tiny-random"
            assert body["text"] == "" and body["segments"] == [] and body["language"] == "en"
            assert body["duration_s"] == pytest.approx(len(speech) / 2 / 22_050, abs=0.05)
            detected = c.post("/transcribe", json={"audio": b64(speech)}).json()["language"]
            assert isinstance(detected, str) and 2 <= len(detected) <= 3  # whatever the random encoder hears
            vtt = c.post("/v1/audio/transcriptions", files={"file": ("hello.wav", speech)},
                         data={"model": "whisper-1", "response_format": "vtt", "language": "en"})
            assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
            silent = c.post("/transcribe", json={"audio": b64(pcm_wav(np.zeros(16_000)))}).json()
            assert silent["text"] == "" and silent["segments"] == []
            unloaded = c.post("/v1/model/unload").json()
            assert unloaded["freed_bytes"] >= 0.95 * loaded["memory_bytes"] and unloaded["memory_bytes"] == 0
    finally:
        proc.stop()



def test_inference_runs_off_the_event_loop(faster: ServiceProcess, loaded: httpx.Client, speech: bytes) -> None:
    samples, rate = read_samples(speech)
    long_speech = encode(np.tile(samples, 6), rate, "flac")  # ~7 s of speech: seconds of inference
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(loaded.post, "/transcribe", json={"audio": b64(long_speech)})
        deadline = time.monotonic() + 30
        while loaded.get("/v1/model").json()["in_flight"] == 0 and not pending.done():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.perf_counter()
        health = loaded.get("/health")
        quick = time.perf_counter() - started
        busy = not pending.done()
        assert pending.result().status_code == 200
    assert health.status_code == 200 and busy, "the transcription was still running while /health answered"
    assert quick < 1.0, f"/health took {quick:.2f}s while a transcription ran"

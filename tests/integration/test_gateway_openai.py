"""The official `openai` client against the gateway's root (`http://HOST:8000/v1`), with real llm,
whisper and clip services behind it: the tiny random-weight Phi-3 and CLIP, Whisper's real base
weights. Every model starts unloaded, so each first call is a cold load through the budget.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jiwer
import numpy as np
import openai
import pytest
from PIL import Image

from shared.imaging import encode_image_base64
from tests.support.processes import ServiceProcess
from tests.support.speech import speak

KEY = "s3cret"
SPOKEN = "We need more coffee and a bigger table for the kitchen."
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


def start_services(tiny_model: Callable[[str], Path], logs: Path) -> dict[str, ServiceProcess]:
    envs = {
        "llm": {"LLM_MODEL_PATH": str(tiny_model("llm")), "LLM_DEVICE": "cpu", "LLM_MAX_NEW_TOKENS": "32"},
        "whisper": {"WHISPER_MODEL_PATH": str(tiny_model("whisper"))},
        "clip": {"CLIP_MODEL_PATH": str(tiny_model("clip"))},
    }
    started: dict[str, ServiceProcess] = {}
    try:
        for name, env in envs.items():
            started[name] = ServiceProcess(f"services.{name}.app:create_app", env, logs / f"{name}.log").start(120)
    except BaseException:
        for proc in started.values():
            proc.stop()
        raise
    return started


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path]) -> Iterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("openai")
    services = start_services(tiny_model, logs)
    try:
        registry = {name: {"url": p.url, "kind": name} for name, p in services.items()}
        env = {"GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_SERVICES": json.dumps(registry), "GATEWAY_API_KEY": KEY}
        with ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as gateway:
            yield {"gateway": gateway.url, **{name: p.url for name, p in services.items()}}
    finally:
        for proc in services.values():
            proc.stop()


@pytest.fixture(scope="module")
def oai(mesh: dict[str, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mesh['gateway']}/v1", api_key=KEY, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def gw(mesh: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh["gateway"], timeout=300, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speak(SPOKEN, tmp_path_factory.mktemp("speech") / "short.wav").read_bytes()


def state(gw: httpx.Client, name: str) -> str:
    return next(m["state"] for m in gw.get("/v1/models").json()["data"] if m["id"] == name)


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def test_models_list_is_openais_shape_with_the_residency(oai: openai.OpenAI, gw: httpx.Client) -> None:
    listed = {m.id: m.model_dump() for m in oai.models.list()}
    assert set(listed) == {"llm", "whisper", "clip"}
    assert all(m["object"] == "model" and m["owned_by"] == "mediamesh" for m in listed.values())
    assert {m["state"] for m in listed.values()} == {"unloaded"}  # nothing loads by itself
    assert "whisper-1" in listed["whisper"]["aliases"] and "text-embedding-3-small" in listed["clip"]["aliases"]
    assert "microsoft/Phi-3.5-mini-instruct" in listed["llm"]["aliases"]
    report = gw.get("/v1/models").json()
    assert report["object"] == "list" and report["free_bytes"] == report["budget_bytes"] - report["reserved_bytes"]
    assert oai.models.retrieve("whisper-1").id == "whisper"


def test_chat_cold_loads_and_counts_usage(oai: openai.OpenAI, gw: httpx.Client) -> None:
    gw.post("/v1/models/llm/unload").raise_for_status()
    assert state(gw, "llm") == "unloaded"
    plain = oai.chat.completions.create(model="llm", messages=MESSAGES, temperature=0, max_tokens=12)
    assert state(gw, "llm") == "loaded"  # the call loaded it
    choice, usage = plain.choices[0], plain.usage
    assert choice.message.role == "assistant" and choice.message.content
    assert usage is not None and usage.prompt_tokens > 5 and 1 <= usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    again = oai.chat.completions.create(model="microsoft/Phi-3.5-mini-instruct", messages=MESSAGES,
                                        temperature=0, max_tokens=12)
    assert again.choices[0].message.content == choice.message.content  # an alias, the same greedy answer


def test_chat_streams_the_same_answer_with_usage_last(oai: openai.OpenAI) -> None:
    plain = oai.chat.completions.create(model="llm", messages=MESSAGES, temperature=0, max_tokens=12)
    chunks = list(oai.chat.completions.create(model="llm", messages=MESSAGES, temperature=0, max_tokens=12,
                                              stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == plain.choices[0].message.content and len(chunks) > 3
    assert chunks[-2].choices[0].finish_reason == plain.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage


def test_completions_continue_the_prompt(oai: openai.OpenAI) -> None:
    first = oai.completions.create(model="llm", prompt="Once upon a time", max_tokens=8, temperature=0)
    second = oai.completions.create(model="llm", prompt=["Once upon a time"], max_tokens=8, temperature=0, echo=True)
    assert first.object == "text_completion" and first.choices[0].text
    assert second.choices[0].text == "Once upon a time" + first.choices[0].text
    assert first.usage is not None and first.usage.completion_tokens <= 8 and first.usage.prompt_tokens >= 4


def test_transcription_cold_loads_whisper(oai: openai.OpenAI, gw: httpx.Client, speech: bytes) -> None:
    assert state(gw, "whisper") == "unloaded"
    heard = oai.audio.transcriptions.create(model="whisper-1", file=("short.wav", speech))
    assert jiwer.wer(words(SPOKEN), words(heard.text)) <= 0.15, heard.text
    assert state(gw, "whisper") == "loaded"
    srt = oai.audio.transcriptions.create(model="whisper", file=("short.wav", speech), response_format="srt")
    assert str(srt).startswith("1\n00:00:00,000 --> ")


def test_translation_runs_whispers_translate_task(oai: openai.OpenAI, speech: bytes) -> None:
    verbose = oai.audio.translations.create(model="whisper-1", file=("short.wav", speech),
                                            response_format="verbose_json")
    assert verbose.model_dump()["task"] == "translate"  # English speech translated to English: the same words
    assert jiwer.wer(words(SPOKEN), words(verbose.text)) <= 0.15, verbose.text


def test_embeddings_of_texts_and_an_image_match_clips_own(oai: openai.OpenAI, mesh: dict[str, str]) -> None:
    image = encode_image_base64(Image.new("RGB", (64, 48), (200, 40, 40)), "PNG")
    inputs = ["a red square", f"data:image/png;base64,{image}", "a cat", image]
    answer = oai.embeddings.create(model="text-embedding-3-small", input=inputs)
    vectors = np.array([d.embedding for d in answer.data])
    assert [d.index for d in answer.data] == [0, 1, 2, 3] and vectors.shape == (4, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    with httpx.Client(base_url=mesh["clip"], timeout=60) as clip:
        texts = clip.post("/v1/embed/text", json={"texts": ["a red square", "a cat"]}).json()["embeddings"]
        images = clip.post("/v1/embed/image", json={"images": [image]}).json()["embeddings"]
    assert np.allclose(vectors[[0, 2]], texts, atol=1e-5)
    assert np.allclose(vectors[1], images[0], atol=1e-5) and np.allclose(vectors[3], images[0], atol=1e-5)
    as_base64 = oai.embeddings.create(model="clip", input="a cat", encoding_format="base64")
    packed = base64.b64decode(str(as_base64.data[0].embedding))
    assert np.allclose(np.frombuffer(packed, "<f4"), texts[1], atol=1e-6)


def test_errors_are_in_openais_shape(oai: openai.OpenAI, mesh: dict[str, str]) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        oai.chat.completions.create(model="gpt-9", messages=MESSAGES)
    error = unknown.value.response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "model_not_found"
    assert "'gpt-9' does not exist" in error["message"] and "'llm'" in error["message"]
    with pytest.raises(openai.BadRequestError) as wrong_kind:
        oai.embeddings.create(model="whisper-1", input="a cat")
    assert "cannot do embeddings" in wrong_kind.value.response.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError) as upstream:  # the llm's own 422, reshaped as OpenAI's 400
        oai.chat.completions.create(model="llm", messages=[])
    assert "at least 1 item" in upstream.value.response.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{mesh['gateway']}/v1", api_key="wrong", max_retries=0).models.list()

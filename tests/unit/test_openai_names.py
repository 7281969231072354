"""OpenAI's `model` names → services, and which `input` items of `/v1/embeddings` are images."""

from __future__ import annotations

import base64

import pytest

from gateway.api.embeddings import EmbeddingsRequest, inputs_of, is_image
from gateway.api.model_names import ModelNotFound, aliases_of, resolve
from gateway.scheduler.directory import ServiceRegistry
from gateway.settings import GatewaySettings
from shared.http.errors import BadInput, ServiceError
from shared.imaging import encode_image_base64


@pytest.fixture
def registry() -> ServiceRegistry:
    services = {name: {"url": f"http://127.0.0.1:{9000 + i}", "kind": kind}
                for i, (name, kind) in enumerate([("llm", "llm"), ("whisper", "whisper"), ("clip_a", "clip"),
                                                  ("clip_b", "clip")])}
    return ServiceRegistry(GatewaySettings(services=services, storage_enabled=False))


@pytest.mark.parametrize(("model", "kind", "service"), [
    ("llm", "llm", "llm"), ("microsoft/Phi-3.5-mini-instruct", "llm", "llm"), ("whisper-1", "whisper", "whisper"),
    ("Systran/faster-whisper-base", "whisper", "whisper"), ("text-embedding-3-small", "clip", "clip_a"),
    ("clip", "clip", "clip_a"), ("clip_b", "clip", "clip_b"),
])
def test_names_and_aliases_reach_their_service(registry: ServiceRegistry, model: str, kind: str,
                                               service: str) -> None:
    assert resolve(registry, model, kind, "this") == service


def test_the_first_service_of_a_kind_owns_its_aliases(registry: ServiceRegistry) -> None:
    assert "text-embedding-ada-002" in aliases_of(registry, "clip_a") and aliases_of(registry, "clip_b") == []


def test_unknown_wrong_kind_and_missing_models(registry: ServiceRegistry) -> None:
    with pytest.raises(ModelNotFound, match="'gpt-4o' does not exist.*'llm'"):
        resolve(registry, "gpt-4o", "llm", "chat completions")
    with pytest.raises(BadInput, match="'whisper-1' \\(whisper\\) cannot do embeddings; use 'clip_a' or 'clip_b'"):
        resolve(registry, "whisper-1", "clip", "embeddings")
    with pytest.raises(BadInput, match="`model` is required"):
        resolve(registry, None, "llm", "completions")


def test_images_are_told_from_texts() -> None:
    from PIL import Image

    png = encode_image_base64(Image.new("RGB", (8, 8)), "PNG")
    jpeg = encode_image_base64(Image.new("RGB", (8, 8)), "JPEG")
    assert is_image(png) and is_image(jpeg) and is_image(f"data:image/png;base64,{png}")
    long_text = base64.b64encode(b"just some words, not a picture at all " * 3).decode()
    assert not any(map(is_image, ["a cat", "aGVsbG8=", long_text, "x" * 100]))
    with pytest.raises(ServiceError, match="data URL of type 'text/plain'"):
        is_image("data:text/plain;base64,aGVsbG8=")


@pytest.mark.parametrize(("value", "message"), [
    ([], "input is empty"), ([[1, 2, 3]], "token arrays"), (["a", ""], "empty string"), (["x"] * 300, "at most 256"),
])
def test_bad_inputs_say_what_to_send(value: object, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        inputs_of(EmbeddingsRequest(model="clip", input=value))

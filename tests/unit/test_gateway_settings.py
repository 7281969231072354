"""GatewaySettings: the services map, budget and names are checked at start with useful messages."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings


def test_defaults_come_from_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_SERVICES", raising=False)
    settings = GatewaySettings()
    assert settings.services["cnn"].url == "http://127.0.0.1:8004" and settings.services["clip"].kind == "clip"
    assert settings.budget_bytes == 6 * 1024**3 and settings.usable_budget_bytes < settings.budget_bytes


def test_env_services_several_of_one_kind_and_plain_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    services = {"cnn_fast": {"url": "http://127.0.0.1:9001/", "kind": "cnn"}, "clip": "http://127.0.0.1:9002"}
    monkeypatch.setenv("GATEWAY_SERVICES", json.dumps(services))
    monkeypatch.setenv("GATEWAY_PINNED", '["clip"]')
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://x@y/z")
    settings = GatewaySettings()
    assert settings.services["cnn_fast"].url == "http://127.0.0.1:9001" and settings.services["cnn_fast"].kind == "cnn"
    assert settings.services["clip"].kind == "clip" and settings.pinned == ["clip"]
    assert settings.connections.database_url == "postgresql+psycopg://x@y/z"


@pytest.mark.parametrize(("kwargs", "phrase"), [
    ({"pinned": ["nope"]}, "unknown service"),
    ({"budget_bytes": 100, "headroom_bytes": 100}, "leaves no budget"),
    ({"services": {"x": {"url": "127.0.0.1:1", "kind": "cnn"}}}, "must start with http"),
])
def test_bad_settings_say_what_to_fix(kwargs: dict[str, object], phrase: str) -> None:
    with pytest.raises(ValidationError, match=phrase):
        GatewaySettings(**kwargs)


def test_the_search_floor_follows_the_model_and_never_applies_to_random_weights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shared.catalog import HUB_MARKER, TINY_MARKER, model_identity

    tiny, pulled, own = tmp_path / "tiny" / "clip", tmp_path / "hub" / "clip", tmp_path / "mine"
    for folder in (tiny, pulled, own):
        folder.mkdir(parents=True)
    (tiny / TINY_MARKER).write_text("random weights")
    (pulled / HUB_MARKER).write_text("openai/clip-vit-base-patch32\npulled from the hub\n")
    assert [model_identity(f) for f in (tiny, pulled, own)] == [
        "tiny-random/clip", "openai/clip-vit-base-patch32", "mine"]
    settings = GatewaySettings(search_min_similarity=0.2, search_min_similarity_by_model={"mine": 0.3})
    assert settings.min_similarity_for("tiny-random/clip") is None
    assert settings.min_similarity_for("openai/clip-vit-base-patch32") == 0.2
    assert settings.min_similarity_for("mine") == 0.3

"""The web app's files as the gateway serves them: the page and its assets need no API key (the API does),
everything the page loads is served by the gateway itself, and the page forbids any other origin."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.web import STATIC

ASSETS = sorted(p for p in STATIC.rglob("*") if p.is_file())


def test_page_and_assets_are_served_without_the_key_but_the_api_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", "s3cret")
    gateway = TestClient(create_app(GatewaySettings(storage_enabled=False, services={})))
    page = gateway.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ASSETS:
        answer = gateway.get(f"/ui/{asset.relative_to(STATIC).as_posix()}")
        assert answer.status_code == 200, asset
    assert gateway.get("/v1/models").status_code == 401
    assert gateway.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert gateway.get("/ui/../settings.py").status_code in (401, 404)


def test_no_asset_comes_from_another_host() -> None:
    for asset in ASSETS:
        text = asset.read_text()
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), asset


def test_every_module_and_stylesheet_the_page_names_exists() -> None:
    named = set(re.findall(r'(?:href|src)="/ui/([^"]+)"', (STATIC / "index.html").read_text()))
    for script in STATIC.rglob("*.js"):
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', script.read_text()):
            named.add((script.parent / target).resolve().relative_to(STATIC.resolve()).as_posix())
    assert named and all((STATIC / name).is_file() for name in named), named

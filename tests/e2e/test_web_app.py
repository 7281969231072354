"""The web app in a real browser (Debian's Chromium through Playwright) against a real mesh: the gateway
with the cnn, clip and blip2 services (tiny models), the worker, Postgres + pgvector and Redis.

Every page is checked doing its job, no request leaves the gateway's host, and each page's screenshot is
saved to docs/screenshots/ for the README. The tests run in file order: the last one stops a service.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.support.browser import Offsite, chromium, chromium_path, held_to, screenshot
from tests.support.photos import photo
from tests.support.processes import ServiceProcess, free_port
from tests.support.storage_env import WorkerProcess, fresh_database, shared_redis_url

SERVICES = ("cnn", "clip", "blip2")  # the image pipeline; whisper and llm stay off to spare the CPU


@dataclass
class Mesh:
    gateway: ServiceProcess
    services: dict[str, ServiceProcess]
    worker: WorkerProcess

    @property
    def url(self) -> str:
        return self.gateway.url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)


def picture(seed: int) -> bytes:
    """A small picture with some shapes: distinct bytes per seed, something to look at in the screenshots."""
    palette = [(228, 87, 46), (41, 51, 92), (243, 167, 18), (102, 155, 188), (60, 145, 80), (200, 60, 120)]
    image = Image.new("RGB", (160, 120), palette[seed % 6])
    draw = ImageDraw.Draw(image)
    draw.ellipse((20 + seed * 7, 15, 100 + seed * 7, 95), fill=palette[(seed + 1) % 6])
    draw.rectangle((90, 60 - seed * 4, 150, 110), fill=palette[(seed + 3) % 6])
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path]) -> Iterator[Mesh]:
    chromium_path()  # skip before starting anything when there is no browser
    logs = tmp_path_factory.mktemp("web")
    services = {name: ServiceProcess(f"services.{name}.app:create_app",
                                     {f"{name.upper()}_MODEL_PATH": str(tiny_model(name))}, logs / f"{name}.log")
                for name in SERVICES}
    env = {"DATABASE_URL": fresh_database(), "REDIS_URL": shared_redis_url(),
           "MEDIAMESH_QUEUE": f"test:{uuid.uuid4().hex[:10]}", "MEDIAMESH_HOME": str(logs / "home"),
           "GATEWAY_SERVICES": json.dumps({n: {"url": p.url, "kind": n} for n, p in services.items()}),
           "GATEWAY_BUDGET_BYTES": str(3 * 1024**2), "GATEWAY_HEADROOM_BYTES": "0",  # tiny models: a visible bar
           "GATEWAY_POLL_INTERVAL_S": "0.5", "GATEWAY_IDLE_TTL_S": "3600", "WORKER_METRICS_PORT": str(free_port())}
    started: list[ServiceProcess] = []
    worker = None
    try:
        with ThreadPoolExecutor(len(services)) as pool:  # the services import torch: in parallel
            started += pool.map(lambda p: p.start(timeout_s=180), services.values())
        gateway = ServiceProcess("gateway.app:create_app", env, logs / "gateway.log").start(timeout_s=120)
        started.append(gateway)
        worker = WorkerProcess({**env, "GATEWAY_URL": gateway.url}, logs / "worker.log").start()
        yield Mesh(gateway, services, worker)
    finally:
        if worker is not None:
            worker.stop()
        for proc in reversed(started):
            proc.stop()


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def context(mesh: Mesh, chromium_browser: Browser) -> Iterator[tuple[BrowserContext, Offsite]]:
    with held_to(chromium_browser, mesh.url) as opened:
        yield opened


@pytest.fixture
def page(context: tuple[BrowserContext, Offsite]) -> Iterator[Page]:
    browser_context, offsite = context
    page = browser_context.new_page()
    yield page
    page.close()
    assert offsite.refused == [], "the app reached beyond the gateway"
    assert offsite.page_errors == [], "uncaught errors in the page"


def ingest(mesh: Mesh, name: str, data: bytes) -> dict:
    with mesh.client() as client:
        accepted = client.post("/v1/media", files={"file": (name, data)})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        for _ in range(600):
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.25)
        assert job["state"] == "done", f"{job}\n{mesh.worker.log_tail()}"
        return client.get(f"/v1/media/{accepted.json()['media_id']}").json()


@pytest.fixture(scope="module")
def library(mesh: Mesh) -> list[dict]:
    return [ingest(mesh, f"picture-{seed}.png", picture(seed)) for seed in range(3)]


def test_search_finds_an_image_by_a_word_of_its_label(page: Page, library: list[dict]) -> None:
    target = library[1]
    label = target["classification"]["label"]
    page.goto("/#/search")
    expect(page.locator("#results .card")).to_have_count(3)  # the library, newest first
    page.get_by_label("words").fill(label.replace("_", " "))
    page.get_by_label("label", exact=True).fill(label)
    page.get_by_role("button", name="Search").click()
    card = page.locator(f'#results .card[data-id="{target["id"]}"]')
    expect(card).to_be_visible()
    expect(card.locator(".label")).to_have_text(label)
    for other in page.locator("#results .card").all():
        assert other.get_attribute("data-label") == label
    expect(card.locator("img.thumb")).to_have_js_property("complete", True)
    screenshot(page, "search")

    card.locator("a").first.click()
    expect(page.locator("#label")).to_have_text(label)
    expect(page.locator("#trace .stage").first).to_be_visible()
    expect(page.locator("img.original")).to_have_js_property("complete", True)
    screenshot(page, "item")

    page.get_by_role("link", name="More like this").click()
    expect(page.locator("#results .card")).to_have_count(2)  # the two others, nearest first
    expect(page.locator(f'#results .card[data-id="{target["id"]}"]')).to_have_count(0)


def test_upload_shows_each_file_reaching_done_and_duplicates(page: Page, library: list[dict], tmp_path: Path) -> None:
    new, again = tmp_path / "new-picture.png", tmp_path / "picture-0.png"
    new.write_bytes(picture(4))
    again.write_bytes(picture(0))  # the same bytes as the first library item
    page.goto("/#/upload")
    page.locator("#file-input").set_input_files([new, again])
    expect(page.locator('.upload[data-name="new-picture.png"]')).to_have_attribute("data-state", "done",
                                                                                   timeout=120_000)
    duplicate = page.locator('.upload[data-name="picture-0.png"]')
    expect(duplicate).to_have_attribute("data-state", "done")
    expect(duplicate.locator(".badge.duplicate")).to_be_visible()
    screenshot(page, "upload")


def test_photo_filters_narrow_the_library_to_the_photos_that_match(page: Page, mesh: Mesh) -> None:
    canon = ingest(mesh, "canon.jpg", photo("JPEG", Image.new("RGB", (96, 64), (200, 60, 120))))  # Canon, Paris
    iphone = ingest(mesh, "iphone.jpg", photo("JPEG", Image.new("RGB", (96, 64), (60, 145, 80)), make="Apple",
                                              model="iPhone 15 Pro", taken="2023:12:24 18:00:00", gps=None))
    cards = page.locator("#results .card")
    page.goto("/#/search")
    page.get_by_label("camera").fill("canon")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"camera=canon"))
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-id", canon["id"])
    expect(cards.first.locator(".exif")).to_contain_text("Canon EOS R5")
    page.get_by_label("camera").fill("")
    page.locator('input[name="taken_from"]').fill("2023-12-01")
    page.locator('input[name="taken_to"]').fill("2023-12-31")
    page.get_by_role("button", name="Search").click()
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-id", iphone["id"])
    page.locator('input[name="taken_from"]').fill("")
    page.locator('input[name="taken_to"]').fill("")
    page.get_by_label("with GPS").check()
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"gps=1"))  # kept in the URL
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-id", canon["id"])
    screenshot(page, "photo-filters")


def test_delete_asks_first_then_removes_the_item_everywhere(page: Page, mesh: Mesh) -> None:
    doomed = ingest(mesh, "doomed.png", picture(5))
    page.goto(f"/#/item/{doomed['id']}")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.locator("#delete").click()
    expect(page.locator("#status")).to_be_visible()
    assert asked and "doomed.png" in asked[0]
    with mesh.client() as client:
        assert client.get(f"/v1/media/{doomed['id']}").status_code == 200  # dismissed: nothing deleted

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete").click()
    expect(page.locator(".notice.info")).to_contain_text("Deleted doomed.png")
    with mesh.client() as client:
        assert client.get(f"/v1/media/{doomed['id']}").status_code == 404
        assert client.get("/v1/jobs", params={"media_id": doomed["id"]}).json()["total"] == 0
        remaining = client.get("/v1/media").json()["total"]
    expect(page.locator("#results .card")).to_have_count(remaining)
    expect(page.locator(f'#results .card[data-id="{doomed["id"]}"]')).to_have_count(0)


def test_jobs_page_cancels_a_queued_job_which_then_never_runs(page: Page, mesh: Mesh) -> None:
    assert mesh.worker.proc is not None
    os.killpg(mesh.worker.proc.pid, signal.SIGSTOP)  # a busy worker: the next job stays queued
    try:
        with mesh.client() as client:
            accepted = client.post("/v1/media", files={"file": ("cancel-me.png", picture(6))}).json()
        page.goto("/#/jobs")
        row = page.locator(f'#jobs tr[data-job="{accepted["job_id"]}"]')
        expect(row).to_have_attribute("data-state", "queued")
        row.locator('button[data-action="cancel"]').click()
        expect(row).to_have_attribute("data-state", "cancelled")
        expect(row.locator('button[data-action="cancel"]')).to_have_count(0)
        with mesh.client() as client:
            assert client.get(f"/v1/jobs/{accepted['job_id']}").json()["state"] == "cancelled"
        screenshot(page, "jobs")
        page.locator('select[name="state"]').select_option("cancelled")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#jobs tbody tr")).to_have_count(1)
    finally:
        os.killpg(mesh.worker.proc.pid, signal.SIGCONT)
    ingest(mesh, "after-cancel.png", picture(7))  # the resumed worker has had the cancelled job and skipped it
    with mesh.client() as client:
        assert client.get(f"/v1/jobs/{accepted['job_id']}").json()["state"] == "cancelled"
        assert client.get(f"/v1/media/{accepted['media_id']}").json()["classification"] is None


def test_models_page_loads_and_unloads_and_the_budget_bar_follows(page: Page, mesh: Mesh) -> None:
    with mesh.client() as client:
        assert client.post("/v1/models/cnn/unload").status_code == 200
    page.goto("/#/models")
    segment = page.locator('#budget-bar .segment[data-model="cnn"]')
    row = page.locator('#models tr[data-model="cnn"]')
    expect(row).to_have_attribute("data-state", "unloaded")
    expect(segment).to_have_count(0)
    row.locator('button[data-action="load"]').click()
    expect(row).to_have_attribute("data-state", "loaded", timeout=120_000)
    expect(segment).to_have_count(1)
    assert int(segment.get_attribute("data-reserved") or 0) > 0
    screenshot(page, "models")
    row.locator('button[data-action="unload"]').click()
    expect(row).to_have_attribute("data-state", "unloaded")
    expect(segment).to_have_count(0)


def test_health_turns_a_stopped_service_down(page: Page, mesh: Mesh) -> None:
    page.goto("/#/health")
    for name in (*SERVICES, "postgres", "redis"):
        expect(page.locator(f'tr[data-name="{name}"]')).to_have_attribute("data-status", "up")
    expect(page.locator("#overall")).to_have_text("ok")
    mesh.services["blip2"].stop()
    expect(page.locator('#services tr[data-name="blip2"]')).to_have_attribute("data-status", "down")
    expect(page.locator("#overall")).to_have_text("degraded")
    screenshot(page, "health")


def test_api_key_is_asked_once_and_kept_out_of_pages_and_urls(chromium_browser: Browser, tmp_path: Path) -> None:
    key = "k3y-" + uuid.uuid4().hex
    env = {"GATEWAY_API_KEY": key, "GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_SERVICES": "{}"}
    with ServiceProcess("gateway.app:create_app", env, tmp_path / "gateway.log") as gateway, \
            held_to(chromium_browser, gateway.url) as (browser_context, offsite):
        page = browser_context.new_page()
        sent: list[str | None] = []
        page.on("request", lambda request: sent.append(request.headers.get("authorization"))
                if "/v1/models" in request.url else None)
        page.goto("/#/models")
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        page.locator("#key-input").fill(key)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#models")).to_be_visible()
        assert f"Bearer {key}" in sent
        page.reload()
        expect(page.locator("#models")).to_be_visible()
        expect(dialog).to_be_hidden()  # kept for the tab's session: asked once
        assert key not in page.content() and key not in page.url
        assert offsite.refused == [] and offsite.page_errors == []

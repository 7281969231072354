"""Ingest end to end through the REAL gateway (scheduler, proxy, cascade) and the five real model
services with tiny random-weight models: answers are meaningless, but every stage runs for real and
its output lands in Postgres + pgvector (512-d CLIP embeddings, transcripts, JSON analyses)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support import media_samples as samples
from tests.support.processes import ServiceProcess
from tests.support.storage_env import Stack, WorkerProcess, fresh_database, shared_redis_url

SERVICES = ("cnn", "clip", "blip2", "whisper", "llm")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path]) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("real")
    with ExitStack() as stack:
        services = {}
        for name in SERVICES:
            prefix = name.upper()
            env = {f"{prefix}_MODEL_PATH": str(tiny_model(name)), f"{prefix}_DEVICE": "cpu"}
            services[name] = stack.enter_context(
                ServiceProcess(f"services.{name}.app:create_app", env, folder / f"{name}.log"))
        env = {"DATABASE_URL": fresh_database(), "REDIS_URL": shared_redis_url(),
               "MEDIAMESH_QUEUE": f"real:{id(folder)}",
               "MEDIAMESH_HOME": str(folder / "home"), "GATEWAY_POLL_INTERVAL_S": "1",
               "GATEWAY_SERVICES": json.dumps({n: {"url": p.url, "kind": n} for n, p in services.items()}),
               "WORKER_FRAME_INTERVAL_S": "1.0", "WORKER_MODEL_TIMEOUT_S": "240"}
        gateway = stack.enter_context(ServiceProcess("gateway.app:create_app", env, folder / "gateway.log"))
        env["GATEWAY_URL"] = gateway.url
        worker = WorkerProcess(env, folder / "worker.log").start()
        stack.callback(worker.stop)
        yield Stack(env=env, gateway=gateway, worker=worker, home=folder / "home")


def ingest(mesh: Stack, name: str, data: bytes) -> dict:
    accepted = httpx.post(f"{mesh.url}/v1/media", files={"file": (name, data)}, timeout=60)
    assert accepted.status_code == 202, accepted.text
    job = mesh.wait_job(accepted.json()["job_id"], timeout_s=300)
    assert job["state"] == "done", job
    media = httpx.get(f"{mesh.url}/v1/media/{accepted.json()['media_id']}", timeout=30).json()
    assert media["status"] == "ready", (media["degraded_reasons"], mesh.gateway.log_tail())
    return media


def test_image_through_cascade_clip_and_blip2(mesh: Stack) -> None:
    media = ingest(mesh, "red.png", samples.png("red", size=(96, 96), seed=31))
    assert media["classification"]["label"] and media["classification"]["trace"]["stages"][0]["stage"]
    assert media["embedding"]["dim"] == 512
    assert isinstance(media["analysis"]["caption"], str) and media["analysis"]["colors"]
    similar = httpx.post(f"{mesh.url}/v1/search/image", data={"media_id": media["id"]}, timeout=60)
    assert similar.status_code == 200
    found = httpx.get(f"{mesh.url}/v1/search", params={"q": "a red square", "kind": "image"}, timeout=60).json()
    assert media["id"] in [hit["media_id"] for hit in found["results"]] and not found["degraded"]


def test_speech_through_whisper(mesh: Stack) -> None:
    media = ingest(mesh, "memo.wav", samples.spoken_wav("the quarterly report is ready"))
    assert media["transcript"] is not None and media["transcript"]["duration_s"] > 1.0


def test_video_frames_and_sound(mesh: Stack) -> None:
    media = ingest(mesh, "clip.mp4", samples.video_mp4(seconds=2.0, colors=("green", "blue")))
    assert [frame["t"] for frame in media["frames"]] == [0.0, 1.0]
    assert media["transcript"] is not None


def test_json_through_the_llm(mesh: Stack) -> None:
    media = ingest(mesh, "orders.json", samples.json_bytes())
    assert media["json_document"]["analysis"]["storage_type"] in ("sql", "jsonb")

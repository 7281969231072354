"""A worker running several jobs at once: their images reach clip together, every job is done once, and a
worker killed while holding jobs it claimed ahead loses none of them. (Also: a sound file above
WORKER_WHISPER_UPLOAD_BYTES reaches whisper re-encoded.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import media_samples as samples
from tests.support.storage_env import Stack, WorkerProcess, start_stack

IMAGES = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("concurrency")
    # a generous batch wait, so that on a busy machine the jobs' embeddings still meet in one call
    stack = start_stack(folder, WORKER_CONCURRENCY="4", WORKER_BATCH_WAIT_MS="500", WORKER_LOOKAHEAD="8",
                        WORKER_WHISPER_UPLOAD_BYTES="20000")
    stack.folder = folder  # type: ignore[attr-defined]
    yield stack
    stack.stop()


def upload_all(stack: Stack, seed: int) -> list[dict]:
    with stack.client() as client:
        accepted = [client.post("/v1/media", files={"file": ("p.png", samples.png("red", seed=seed + n))})
                    for n in range(IMAGES)]
    assert all(answer.status_code == 202 for answer in accepted)
    return [answer.json() for answer in accepted]


def clip_calls(stack: Stack) -> int:
    return int(httpx.get(f"{stack.url}/fake/calls", timeout=10).json().get("clip", 0))


def test_concurrent_jobs_share_clip_calls(stack: Stack) -> None:
    before = clip_calls(stack)
    accepted = upload_all(stack, seed=100)
    jobs = [stack.wait_job(item["job_id"]) for item in accepted]
    assert [job["state"] for job in jobs] == ["done"] * IMAGES and all(job["attempts"] == 1 for job in jobs)
    with stack.client() as client:
        media = [client.get(f"/v1/media/{item['media_id']}").json() for item in accepted]
    assert all(item["status"] == "ready" and item["embedding"]["dim"] == 512 for item in media)
    assert clip_calls(stack) - before < IMAGES  # some calls carried several jobs' images


def test_jobs_claimed_ahead_survive_a_killed_worker(stack: Stack) -> None:
    stack.configure(delay_s={"cnn": 2})  # the worker holds running and claimed-ahead jobs when killed
    accepted = upload_all(stack, seed=200)
    stack.wait_job(accepted[0]["job_id"], states=("running",), timeout_s=30)
    stack.worker.kill()
    stack.configure(delay_s={})
    stack.worker = WorkerProcess(stack.env, Path(stack.folder) / "worker-after-kill.log").start()  # type: ignore[attr-defined]
    jobs = [stack.wait_job(item["job_id"], timeout_s=90) for item in accepted]
    assert [job["state"] for job in jobs] == ["done"] * IMAGES


def test_a_large_sound_file_reaches_whisper_re_encoded(stack: Stack) -> None:
    memo = samples.spoken_wav("the quarterly report is ready")
    assert len(memo) > 20_000
    with stack.client() as client:
        accepted = client.post("/v1/media", files={"file": ("memo.wav", memo)}).json()
    assert stack.wait_job(accepted["job_id"])["state"] == "done"
    with stack.client() as client:
        assert client.get(f"/v1/media/{accepted['media_id']}").json()["transcript"]["text"]
    sent = httpx.post(f"{stack.url}/fake/config", json={}, timeout=10).json()["whisper_files"][-1]
    assert sent["head"] == b"OggS".hex() and sent["size"] < len(memo) / 5

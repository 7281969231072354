"""Durable jobs: a SIGKILLed worker's job is delivered again and finishes; a failing job is retried with
backoff and ends `failed` with its error; a Postgres restart between two jobs loses nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
import redis

from storage.media_files import MediaStore
from tests.support import media_samples as samples
from tests.support.processes import free_port
from tests.support.storage_env import Stack, WorkerProcess, shared_postgres, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("jobs")
    stack = start_stack(folder)
    stack.folder = folder  # type: ignore[attr-defined]
    yield stack
    stack.stop()


def restart_worker(stack: Stack, tag: str) -> None:
    stack.worker.kill()
    stack.worker = WorkerProcess(stack.env, stack.folder / f"worker-{tag}.log").start()  # type: ignore[attr-defined]


def upload(stack: Stack, data: bytes) -> dict:
    response = httpx.post(f"{stack.url}/v1/media", files={"file": ("f", data)}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def test_worker_killed_mid_job_is_redelivered_and_finishes(stack: Stack) -> None:
    stack.configure(delay_s={"clip": 10})
    accepted = upload(stack, samples.png("blue", seed=11))
    running = stack.wait_job(accepted["job_id"], states=("running",), timeout_s=30)
    deadline = time.monotonic() + 30
    while running["stage"] != "embedding" and time.monotonic() < deadline:  # inside the slow CLIP call
        time.sleep(0.1)
        running = stack.wait_job(accepted["job_id"], states=("running",))
    assert running["stage"] == "embedding" and running["attempts"] == 1
    stack.worker.kill()  # SIGKILL: no cleanup, no ack
    stack.configure(delay_s={})
    restart_worker(stack, "after-kill")
    job = stack.wait_job(accepted["job_id"], timeout_s=60)
    assert job["state"] == "done" and job["attempts"] == 2, job
    media = httpx.get(f"{stack.url}/v1/media/{accepted['media_id']}").json()
    assert media["status"] == "ready" and media["embedding"]["dim"] == 512


def test_failing_job_retries_with_backoff_then_fails_visibly(stack: Stack) -> None:
    stack.worker.stop()
    accepted = upload(stack, samples.png("black", seed=12))
    MediaStore(stack.home / "media").delete(accepted["sha256"])  # every attempt will now fail
    restart_worker(stack, "failing")
    job = stack.wait_job(accepted["job_id"], timeout_s=60)
    assert job["state"] == "failed" and job["attempts"] == job["max_attempts"] == 4
    assert "FileNotFoundError" in job["error"]
    elapsed = datetime.fromisoformat(job["updated_at"]) - datetime.fromisoformat(job["created_at"])
    assert elapsed.total_seconds() >= 0.2 + 0.4 + 0.8  # three backoffs: base 0.2 s, doubling
    media = httpx.get(f"{stack.url}/v1/media/{accepted['media_id']}").json()
    assert media["status"] == "failed" and "FileNotFoundError" in media["degraded_reasons"][-1]


def test_unreachable_gateway_retries_the_job_instead_of_degrading_it(stack: Stack) -> None:
    stack.worker.stop()
    accepted = upload(stack, samples.png("yellow", seed=17))
    stack.env.update(GATEWAY_URL=f"http://127.0.0.1:{free_port()}", WORKER_GATEWAY_WAIT_S="0.3")
    try:
        restart_worker(stack, "no-gateway")
        job = stack.wait_job(accepted["job_id"], timeout_s=60)
    finally:
        stack.env.update(GATEWAY_URL=stack.url)
        del stack.env["WORKER_GATEWAY_WAIT_S"]
        restart_worker(stack, "gateway-back")
    assert job["state"] == "failed" and job["attempts"] == 4 and "GatewayUnreachable" in job["error"]
    rerun = httpx.post(f"{stack.url}/v1/media/{accepted['media_id']}/reprocess", timeout=30).json()
    assert stack.wait_job(rerun["job_id"])["state"] == "done"
    media = httpx.get(f"{stack.url}/v1/media/{accepted['media_id']}").json()
    assert media["status"] == "ready" and media["degraded_reasons"] == []


def test_job_whose_queue_entry_redis_lost_is_requeued_from_postgres(stack: Stack) -> None:
    stack.worker.stop()
    accepted = upload(stack, samples.png("white", seed=15))
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    client.delete(*client.scan_iter(f"{stack.env['MEDIAMESH_QUEUE']}:*"))  # Redis lost this queue's data
    stack.env.update(WORKER_STALE_AFTER_S="1", WORKER_RECONCILE_INTERVAL_S="0.5")
    try:
        restart_worker(stack, "reconcile")
        job = stack.wait_job(accepted["job_id"], timeout_s=60)
    finally:
        del stack.env["WORKER_STALE_AFTER_S"], stack.env["WORKER_RECONCILE_INTERVAL_S"]
    assert job["state"] == "done" and job["attempts"] == 1
    assert "re-queued 1 job(s)" in stack.worker.log_tail()


def test_postgres_restart_between_two_jobs_loses_nothing(stack: Stack) -> None:
    first = upload(stack, samples.png("red", seed=13))
    assert stack.wait_job(first["job_id"])["state"] == "done"
    server = shared_postgres()
    server.stop(force=True)
    try:
        refused = httpx.post(f"{stack.url}/v1/media", files={"file": ("f", samples.png("blue", seed=16))}, timeout=30)
        assert refused.status_code == 503 and "Postgres" in refused.json()["detail"]
        assert "Retry-After" in refused.headers
    finally:
        server.start()
    second = upload(stack, samples.png("green", seed=14))
    assert stack.wait_job(second["job_id"], timeout_s=60)["state"] == "done"
    for accepted in (first, second):
        media = httpx.get(f"{stack.url}/v1/media/{accepted['media_id']}").json()
        assert media["status"] == "ready" and media["classification"] is not None


def test_worker_metrics_count_finished_jobs(stack: Stack) -> None:
    accepted = upload(stack, samples.png("yellow", seed=17))
    assert stack.wait_job(accepted["job_id"])["state"] == "done"
    metrics = httpx.get(f"http://127.0.0.1:{stack.env['WORKER_METRICS_PORT']}/metrics", timeout=10).text
    done = [line for line in metrics.splitlines()
            if line.startswith('mediamesh_worker_jobs_total{kind="ingest",outcome="done"}')]
    assert done and float(done[0].split()[-1]) >= 1
    assert "mediamesh_worker_queue_waiting 0.0" in metrics

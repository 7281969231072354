"""The worker runs queued jobs whose models are loaded before one that would evict them, and never defers a
job past its bound; the jobs it claims ahead stay pending in Redis (a killed worker loses none)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from storage.queue import JobQueue, connect
from tests.support.storage_env import shared_redis_url
from worker.ordering import JobPicker, Waiting, choose, models_for

KIND_OF = {"img1": "image", "json1": "json", "img2": "image", "json2": "json", "img3": "image", "memo": "audio"}


@pytest.fixture
def queue() -> Iterator[JobQueue]:
    queue = JobQueue(connect(shared_redis_url()), f"test-order:{uuid.uuid4().hex[:10]}")
    queue.ensure_group()
    yield queue
    queue.client.delete(queue.stream, queue.delayed)


def picker_for(queue: JobQueue, loaded: set[str] | None, lookahead: int = 16, max_deferrals: int = 32) -> JobPicker:
    return JobPicker(queue, "w1", needs=lambda ids: {i: models_for(KIND_OF[i]) for i in ids}, loaded=lambda: loaded,
                     lookahead=lookahead, max_deferrals=max_deferrals, visibility_ms=60_000, refresh_s=3600)


def run_all(picker: JobPicker, queue: JobQueue) -> list[str]:
    order = []
    while (delivery := picker.next(block_ms=0)) is not None:
        order.append(delivery.job_id)
        queue.ack(delivery.message_id)
        picker.done(delivery)
    return order


def test_jobs_for_the_loaded_model_run_first(queue: JobQueue) -> None:
    for job_id in KIND_OF:
        queue.enqueue(job_id)
    order = run_all(picker_for(queue, loaded={"cnn", "clip", "llm"}), queue)
    assert order == ["json1", "json2", "img1", "img2", "img3", "memo"]  # llm's work first, then BLIP-2's


def test_without_a_report_of_loaded_models_it_is_first_come_first_served(queue: JobQueue) -> None:
    for job_id in KIND_OF:
        queue.enqueue(job_id)
    assert run_all(picker_for(queue, loaded=None), queue) == list(KIND_OF)


def test_a_job_passed_over_too_often_runs_next() -> None:
    def waiting(job_id: str, passed_over: int = 0) -> Waiting:
        return Waiting(delivery=None, needs=models_for(KIND_OF[job_id]), passed_over=passed_over)  # type: ignore[arg-type]

    resident = {"cnn", "clip", "blip2"}
    assert choose([waiting("json1", 1), waiting("img1")], resident, max_deferrals=2) == 1
    assert choose([waiting("json1", 2), waiting("img1")], resident, max_deferrals=2) == 0


def test_waiting_jobs_stay_pending_and_heart_beat(queue: JobQueue) -> None:
    for job_id in KIND_OF:
        queue.enqueue(job_id)
    picker = picker_for(queue, loaded={"llm"}, lookahead=4)
    first = picker.next(block_ms=0)
    assert first is not None and first.job_id == "json1"
    assert queue.pending() == 4 and len(picker.waiting) == 3  # claimed ahead: pending under this worker
    picker.heartbeat()
    assert queue.pending() == 4


def test_a_stopping_worker_puts_its_waiting_jobs_back(queue: JobQueue) -> None:
    for job_id in KIND_OF:
        queue.enqueue(job_id)
    picker = picker_for(queue, loaded=None, lookahead=4)
    running = picker.next(block_ms=0)
    assert running is not None and picker.release() == 3
    assert queue.pending() == 1 and queue.waiting() == len(KIND_OF) - 1  # only the running one stays claimed
    other = picker_for(queue, loaded=None)
    assert sorted(run_all(other, queue)) == sorted(set(KIND_OF) - {running.job_id})

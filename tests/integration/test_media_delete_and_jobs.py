"""`DELETE /v1/media/{id}`, `GET /v1/jobs` and `POST /v1/jobs/{id}/cancel`, as a user sees them: a deleted
item is gone from the API, the disk and search; a cancelled queued job never runs, a running one stops at
its next stage; the job list filters and pages.

Real processes: the storage routes in a gateway process (tests/support/fake_gateway.py), the worker,
Postgres + pgvector and Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from shared.schemas.common import LabelScore
from shared.schemas.gateway import CascadeTrace, ClassifyResponse
from storage.db import Database
from storage.media_files import MediaStore
from storage.repositories.image_results import ImageResults, write_image_results, write_outcome
from storage.repositories.jobs import JobRepository
from storage.repositories.media import MediaRepository, NewMedia
from tests.support import media_samples as samples
from tests.support.storage_env import Stack, fresh_database, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("delete-cancel"))
    yield stack
    stack.stop()


def _upload(stack: Stack, name: str, data: bytes) -> dict:
    with stack.client() as client:
        answer = client.post("/v1/media", files={"file": (name, data)})
    assert answer.status_code == 202, answer.text
    return answer.json()


def _ingested(stack: Stack, name: str, data: bytes) -> dict:
    accepted = _upload(stack, name, data)
    assert stack.wait_job(accepted["job_id"])["state"] == "done"
    return accepted


def _stored(stack: Stack, sha256: str) -> Path:
    return stack.home / "media" / MediaStore(Path()).relative_path(sha256)


def test_deleted_image_is_gone_from_the_api_the_disk_and_search(stack: Stack) -> None:
    red = _ingested(stack, "red.png", samples.png("red", size=(200, 150), seed=21))
    with stack.client() as client:
        assert client.get(f"/v1/media/{red['media_id']}/thumbnail", params={"size": 64}).status_code == 200
        thumbnail = stack.home / "thumbnails" / "64" / red["sha256"][:2] / f"{red['sha256']}.jpg"
        found = client.get("/v1/search", params={"q": "red square"}).json()["results"]
        assert red["media_id"] in [hit["media_id"] for hit in found]
        assert _stored(stack, red["sha256"]).exists() and thumbnail.exists()

        assert client.delete(f"/v1/media/{red['media_id']}").status_code == 204

        assert client.get(f"/v1/media/{red['media_id']}").status_code == 404
        assert client.get(f"/v1/media/by-sha256/{red['sha256']}").status_code == 404
        assert not _stored(stack, red["sha256"]).exists() and not thumbnail.exists()
        found = client.get("/v1/search", params={"q": "red square"}).json()["results"]
        assert red["media_id"] not in [hit["media_id"] for hit in found]
        assert client.get("/v1/jobs", params={"media_id": red["media_id"]}).json()["total"] == 0
        again = client.delete(f"/v1/media/{red['media_id']}")
        assert again.status_code == 404 and "no media with id" in again.json()["detail"]
        assert client.delete("/v1/media/not-an-id").status_code == 422


def test_deleted_video_takes_its_frames_with_it(stack: Stack) -> None:
    video = _ingested(stack, "clip.mp4", samples.video_mp4(seconds=2.0, colors=("green", "yellow")))
    with stack.client() as client:
        frames = client.get(f"/v1/media/{video['media_id']}").json()["frames"]
        assert frames
        frame_hashes = [client.get(f"/v1/media/{f['media_id']}").json()["sha256"] for f in frames]
        assert client.delete(f"/v1/media/{video['media_id']}").status_code == 204
        assert all(client.get(f"/v1/media/{f['media_id']}").status_code == 404 for f in frames)
    assert not any(_stored(stack, sha).exists() for sha in [video["sha256"], *frame_hashes])


def test_a_frame_two_videos_sampled_outlives_the_first_video() -> None:
    """Content addressing makes one record of a frame two videos share: deleting one video keeps it
    (and its bytes) for the other; deleting the other then frees it."""
    media = MediaRepository(Database(fresh_database()))

    def new(char: str, kind: str) -> NewMedia:
        return NewMedia(sha256=char * 64, kind=kind, mime="video/mp4" if kind == "video" else "image/jpeg",
                        size=1, path=f"{char}/{char}")

    first, _ = media.add_with_ingest_job(new("a", "video"), max_attempts=1)
    second, _ = media.add_with_ingest_job(new("b", "video"), max_attempts=1)
    shared = media.add_frame(first.id, new("c", "image"))
    own = media.add_frame(first.id, new("d", "image"))
    assert media.add_frame(second.id, new("c", "image")) == shared
    media.save_frames(first.id, [(0.0, shared), (1.0, own)])
    media.save_frames(second.id, [(0.0, shared)])

    assert media.remove(first.id) == ["a" * 64, "d" * 64]
    assert media.get(own) is None and media.get(shared) is not None
    record = media.record(second.id)
    assert record is not None and [frame.frame_media_id for frame in record.frames] == [shared]
    assert media.remove(second.id) == ["b" * 64, "c" * 64]
    assert media.remove(second.id) is None


def test_a_job_cancelled_after_its_last_stage_stores_nothing() -> None:
    """The results of an image job are written with its `done`: a cancel that came after its last progress
    write (a fast job writes only its first stage) still wins, and the item keeps the cancel's outcome."""
    database = Database(fresh_database())
    media, jobs = MediaRepository(database), JobRepository(database)
    item, job = media.add_with_ingest_job(NewMedia(sha256="e" * 64, kind="image", mime="image/png", size=1,
                                                   path="e/e"), max_attempts=1)
    assert jobs.start(job.id, alive_within_s=60) is not None
    assert jobs.cancel(job.id) is not None
    label = ClassifyResponse(label="red", confidence=0.9, decision="answer", variant="a", request_id="r1",
                             top_k=[LabelScore(label="red", score=0.9)],
                             trace=CascadeTrace(variant="a", stages=[], total_ms=1.0))

    def results(session: Session) -> None:
        write_image_results(session, item.id, ImageResults(classification=label))
        write_outcome(session, item.id, [])

    assert not jobs.finish(job.id, {"media_id": item.id}, results)
    record = media.record(item.id)
    assert record is not None and record.media.classification is None and record.media.status == "failed"
    assert record.jobs[0].state == "cancelled"


def test_a_cancelled_queued_job_never_runs(stack: Stack) -> None:
    stack.worker.stop()  # nothing takes jobs off the queue while we cancel
    try:
        cancelled = _upload(stack, "blue.png", samples.png("blue", seed=22))
        with stack.client() as client:
            answer = client.post(f"/v1/jobs/{cancelled['job_id']}/cancel")
            assert answer.status_code == 200 and answer.json()["state"] == "cancelled"
            assert client.post(f"/v1/jobs/{cancelled['job_id']}/cancel").json()["state"] == "cancelled"
    finally:
        stack.worker.start()
    after = _ingested(stack, "green.png", samples.png("green", seed=23))  # queued behind it: the worker got past
    with stack.client() as client:
        job = client.get(f"/v1/jobs/{cancelled['job_id']}").json()
        item = client.get(f"/v1/media/{cancelled['media_id']}").json()
        assert client.get(f"/v1/media/{after['media_id']}").json()["status"] == "ready"
    assert (job["state"], job["attempts"]) == ("cancelled", 0)
    assert item["status"] == "failed" and "cancelled" in " ".join(item["degraded_reasons"])


def test_a_running_job_stops_at_its_next_stage(stack: Stack) -> None:
    stack.configure(delay_s={"cnn": 2.0})  # the first stage (classification) takes a while
    try:
        accepted = _upload(stack, "yellow.png", samples.png("yellow", seed=24))
        running = stack.wait_job(accepted["job_id"], states=("running",))
        assert running["stage"] == "classification"
        with stack.client() as client:
            assert client.post(f"/v1/jobs/{accepted['job_id']}/cancel").json()["state"] == "cancelled"
        deadline = time.monotonic() + 20
        while "stopped before embedding" not in stack.worker.log_tail(20_000):
            assert time.monotonic() < deadline, stack.worker.log_tail()
            time.sleep(0.1)
    finally:
        stack.configure(delay_s={})
    with stack.client() as client:
        job = client.get(f"/v1/jobs/{accepted['job_id']}").json()
        item = client.get(f"/v1/media/{accepted['media_id']}").json()
    assert (job["state"], job["attempts"]) == ("cancelled", 1)
    assert item["classification"] is None and item["analysis"] is None  # nothing past the cancel was stored


def test_cancelling_an_ended_or_unknown_job_says_why(stack: Stack) -> None:
    done = _ingested(stack, "purple.png", samples.png((128, 0, 128), seed=25))
    with stack.client() as client:
        answer = client.post(f"/v1/jobs/{done['job_id']}/cancel")
        assert answer.status_code == 409 and "already ended (done)" in answer.json()["detail"]
        assert client.get(f"/v1/jobs/{done['job_id']}").json()["state"] == "done"
        assert client.post(f"/v1/jobs/{'0' * 32}/cancel").status_code == 404


def test_jobs_list_filters_and_pages(stack: Stack) -> None:
    first = _ingested(stack, "one.png", samples.png("red", seed=31))
    second = _ingested(stack, "two.png", samples.png("blue", seed=32))
    with stack.client() as client:
        reprocessed = client.post(f"/v1/media/{first['media_id']}/reprocess").json()
        stack.wait_job(reprocessed["job_id"])
        mine = client.get("/v1/jobs", params={"media_id": first["media_id"]}).json()
        assert [job["id"] for job in mine["items"]] == [reprocessed["job_id"], first["job_id"]]  # newest first
        assert mine["total"] == 2
        done = client.get("/v1/jobs", params={"state": "done", "kind": "ingest", "limit": 200}).json()
        assert {first["job_id"], second["job_id"], reprocessed["job_id"]} <= {job["id"] for job in done["items"]}
        assert all(job["state"] == "done" and job["kind"] == "ingest" for job in done["items"])
        assert client.get("/v1/jobs", params={"kind": "cluster"}).json()["total"] == 0
        everything = client.get("/v1/jobs").json()["total"]
        pages = [client.get("/v1/jobs", params={"limit": 2, "offset": offset}).json() for offset in (0, 2)]
        assert [len(page["items"]) for page in pages] == [2, min(2, everything - 2)]
        assert not {job["id"] for job in pages[0]["items"]} & {job["id"] for job in pages[1]["items"]}


@pytest.mark.parametrize(("params", "message"), [
    ({"state": "paused"}, "state"), ({"kind": "resize"}, "kind"), ({"media_id": "x'; --"}, "media_id"),
    ({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"offset": -1}, "offset"),
])
def test_bad_jobs_list_parameters_are_422_with_a_message(stack: Stack, params: dict, message: str) -> None:
    with stack.client() as client:
        answer = client.get("/v1/jobs", params=params)
    assert answer.status_code == 422
    assert message in str(answer.json()["detail"])

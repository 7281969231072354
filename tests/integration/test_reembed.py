"""Issue 15: versioned embeddings. Images embedded by one tiny CLIP (512-d), the clip service swapped for
another (768-d), then `POST /v1/reembed` under concurrent searches: every answer comes from one space
(no mixed vectors), similar-item search never comes back empty, and it moves to the new space once,
when the re-embed completes. Real processes: the gateway, the clip service, the worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from sqlalchemy import text

from shared.catalog import TINY_MARKER
from storage.models import ImageEmbedding
from tests.support import media_samples as samples
from tests.support.mesh import run_cli
from tests.support.processes import ServiceProcess, free_port
from tests.support.storage_env import Stack, WorkerProcess, fresh_database, shared_redis_url

IMAGES = [(color, seed) for seed in range(4) for color in ("red", "green", "blue", "yellow", "black", "white")]


def _large_clip(folder: Path) -> Path:
    """A second tiny CLIP: other weights, 768-d like ViT-L/14."""
    from services.clip.tiny import build

    build(folder, projection_dim=768)
    (folder / TINY_MARKER).write_text("random weights, for tests\n")
    return folder


def _clip(model: Path, port: int, log: Path) -> ServiceProcess:
    return ServiceProcess("services.clip.app:create_app", {"CLIP_MODEL_PATH": str(model), "CLIP_DEVICE": "cpu"},
                          log, port=port).start(timeout_s=120)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path]) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("reembed")
    with ExitStack() as stack:
        port = free_port()
        clip = _clip(tiny_model("clip"), port, folder / "clip-512.log")
        env = {"DATABASE_URL": fresh_database(), "REDIS_URL": shared_redis_url(),
               "MEDIAMESH_QUEUE": f"reembed:{id(folder)}", "MEDIAMESH_HOME": str(folder / "home"),
               "GATEWAY_POLL_INTERVAL_S": "0.5", "WORKER_BUSY_RETRIES": "0", "WORKER_IMAGE_ANALYSIS": "false",
               "GATEWAY_SERVICES": json.dumps({"clip": {"url": clip.url, "kind": "clip"}})}
        gateway = stack.enter_context(ServiceProcess("gateway.app:create_app", env, folder / "gateway.log"))
        env["GATEWAY_URL"] = gateway.url
        worker = WorkerProcess(env, folder / "worker.log").start()
        stack.callback(worker.stop)
        state = {"stack": Stack(env=env, gateway=gateway, worker=worker, home=folder / "home"), "clip": clip,
                 "port": port, "folder": folder}
        stack.callback(lambda: state["clip"].stop())
        yield state


def _ingest(stack: Stack) -> list[str]:
    ids, jobs = [], []
    with stack.client() as client:
        for color, seed in IMAGES:
            accepted = client.post("/v1/media", files={"file": (f"{color}{seed}.png", samples.png(color, seed=seed))})
            assert accepted.status_code == 202, accepted.text
            ids.append(accepted.json()["media_id"])
            jobs.append(accepted.json()["job_id"])
    for job_id in jobs:
        assert stack.wait_job(job_id, timeout_s=300)["state"] == "done"
    return ids


def _vectors(url: str) -> dict[tuple[int, str], np.ndarray]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        rows = connection.execute("SELECT space_id, media_id, embedding::text FROM image_embeddings").fetchall()
    return {(space_id, media_id): np.asarray(json.loads(vector)) for space_id, media_id, vector in rows}


def _until_the_gateway_embeds_with_768_d(stack: Stack) -> None:
    """The gateway polls its services: wait until it sends texts to the new clip (which registers its space)."""
    for _ in range(600):
        answer = httpx.get(f"{stack.url}/v1/search", params={"q": "red"}, timeout=60).json()
        if answer["space"] is not None and answer["space"]["dim"] == 768:
            assert answer["space"]["state"] == "filling" and answer["degraded"]
            return
        threading.Event().wait(0.1)
    raise TimeoutError(f"the gateway never used the 768-d clip: {answer}")


def _reembed_stopped_after_one_batch(stack: Stack) -> None:
    """The worker's re-embed pipeline, in this process, with batches of 4: its progress report raises
    `JobStopped` (what a cancel does) once the probe (1 item) and the first batch (4) are stored."""
    from storage import db as dbmod
    from storage.media_files import MediaStore
    from storage.repositories.clusters import ClusterRepository
    from storage.repositories.media import MediaRepository
    from worker.model_client import ModelClient
    from worker.pipelines.context import JobStopped, PipelineContext
    from worker.pipelines.reembed import reembed
    from worker.settings import WorkerSettings

    reports: list[float] = []

    def report(progress: float, stage: str) -> None:
        reports.append(progress)
        if len(reports) == 3:  # asking clip, the probe stored, the first batch stored
            raise JobStopped("cancelled")

    database, models = dbmod.Database(stack.env["DATABASE_URL"]), ModelClient(stack.url)
    try:
        ctx = PipelineContext(media=MediaRepository(database), clusters=ClusterRepository(database),
                              store=MediaStore(stack.home / "media"), models=models, settings=WorkerSettings(),
                              report=report)
        with pytest.raises(JobStopped):
            reembed(ctx, {"batch": 4})
    finally:
        models.close()
        database.dispose()


class Searcher(threading.Thread):
    """Searches, as fast as answers come, for items similar to one stored item and for a text."""

    def __init__(self, url: str, media_id: str) -> None:
        super().__init__(daemon=True)
        self.url, self.media_id = url, media_id
        self.stop = threading.Event()
        self.similar: list[dict] = []
        self.texts: list[dict] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                similar = client.post("/v1/search/image", data={"media_id": self.media_id, "limit": 30})
                text = client.get("/v1/search", params={"q": "a red square", "kind": "image", "limit": 30,
                                                        "min_similarity": -1})
                for answer, into in ((similar, self.similar), (text, self.texts)):
                    if answer.status_code == 200:
                        into.append(answer.json())
                    else:
                        self.errors.append(f"{answer.status_code}: {answer.text}")


def test_reembed_into_a_768_d_model_under_concurrent_searches(mesh: dict) -> None:
    stack: Stack = mesh["stack"]
    ids = _ingest(stack)
    before = httpx.post(f"{stack.url}/v1/search/image", data={"media_id": ids[0], "limit": 30}, timeout=60).json()
    small = before["space"]
    assert small["dim"] == 512 and small["state"] == "complete" and not before["degraded"]
    # the clip service hashed its weight files at load: the space names them
    reported = httpx.get(f"{mesh['clip'].url}/v1/model", timeout=30).json()["details"]
    assert small["weights_sha256"] == reported["weights_sha256"] and len(small["weights_sha256"]) == 64
    assert len(before["results"]) == len(ids) - 1

    # the clip service now runs another model: nothing is re-embedded yet, and search still works
    mesh["clip"].stop()
    mesh["clip"] = _clip(_large_clip(mesh["folder"] / "clip-large"), mesh["port"], mesh["folder"] / "clip-768.log")
    _until_the_gateway_embeds_with_768_d(stack)
    searcher = Searcher(stack.url, ids[0])
    searcher.start()
    try:
        stale = httpx.post(f"{stack.url}/v1/search/image", data={"media_id": ids[0], "limit": 30}, timeout=60).json()
        assert stale["space"]["id"] == small["id"] and len(stale["results"]) == len(ids) - 1
        # a re-embed stopped after its first batch (as a cancel or a worker restart stops it) keeps what it did
        _reembed_stopped_after_one_batch(stack)
        spaces = httpx.get(f"{stack.url}/v1/embedding-spaces", timeout=30).json()
        assert [(s["dim"], s["state"], s["items"]) for s in spaces] == [(768, "filling", 5), (512, "complete", 24)]
        # `mediamesh reembed`: POST /v1/reembed, then follow the job to its end
        done = run_cli(["reembed", "--url", stack.url], {}, timeout_s=600)
        assert done.returncode == 0, done.stdout + done.stderr + stack.worker.log_tail()
        assert f"{len(ids)} of {len(ids)} items are in tiny-random/clip-large (768-d)" in done.stdout, done.stdout
        listed = httpx.get(f"{stack.url}/v1/jobs", params={"kind": "reembed"}, timeout=30).json()["items"]
        assert len(listed) == 1 and listed[0]["state"] == "done" and listed[0]["progress"] == 1
        job = listed[0]
        after_done = len(searcher.similar)
        while len(searcher.similar) < after_done + 3:  # a few answers after it completed
            searcher.join(0.2)
    finally:
        searcher.stop.set()
        searcher.join(60)

    large = job["result"]["space"]
    assert large["dim"] == 768 and job["result"]["items"] == len(ids) and job["result"]["failed_count"] == 0
    assert job["result"]["reembedded"] == len(ids) - 5  # it carried on: the first 5 were not done again
    # run again: nothing is left to do, and nothing changes
    with stack.client() as client:
        again = client.post("/v1/reembed").json()
    assert not again["already_running"]
    rerun = stack.wait_job(again["job_id"], timeout_s=120)
    assert rerun["state"] == "done" and rerun["result"]["reembedded"] == 0
    assert rerun["result"]["space"]["id"] == large["id"]
    spaces = {s["id"]: s for s in httpx.get(f"{stack.url}/v1/embedding-spaces", timeout=30).json()}
    assert spaces[large["id"]]["state"] == "complete" and spaces[large["id"]]["items"] == len(ids)

    assert not searcher.errors, searcher.errors[:3]
    vectors = _vectors(stack.env["DATABASE_URL"])
    seen = [answer["space"]["id"] for answer in searcher.similar]
    # similar-item search: the small space until the re-embed completed, then the large one, never back
    assert seen[0] == small["id"] and seen[-1] == large["id"]
    assert seen == sorted(seen, key=lambda space_id: space_id == large["id"])
    for answer in searcher.similar:
        space_id = answer["space"]["id"]
        assert len(answer["results"]) == len(ids) - 1  # never empty, never short
        assert bool(answer["degraded"]) == (space_id == small["id"])
        query = vectors[(space_id, ids[0])]
        for hit in answer["results"]:  # each score is the cosine within the answer's own space: no mixing
            assert hit["score"] == pytest.approx(float(vectors[(space_id, hit["media_id"])] @ query), abs=1e-4)
    # text search: the query is the large model's, so it only ever meets large vectors
    assert searcher.texts and all(answer["space"]["id"] == large["id"] for answer in searcher.texts)
    assert len(searcher.texts[-1]["results"]) == len(ids) and not searcher.texts[-1]["degraded"]
    assert any(answer["degraded"] for answer in searcher.texts)  # while it filled, the answer said so


def test_which_space_a_search_reads() -> None:
    """The first space is complete at once; a later one fills. Meanwhile a stored item's vector searches the
    previous complete space, a new model's query vector its own; once complete, the new space for both."""
    from storage import db as dbmod
    from storage import spaces
    from storage.search import Filters, MediaSearch

    database = dbmod.Database(fresh_database())
    try:
        with database.session() as session:
            small = spaces.ensure_space(session, spaces.SpaceIdentity("a", "1", 512))
            session.execute(text("INSERT INTO media (id, sha256, kind, mime, size, path) "
                                 "VALUES ('x', repeat('x', 64), 'image', 'image/png', 1, 'p')"))
            session.add(ImageEmbedding(media_id="x", space_id=small.id, model="a", embedding=[1.0] * 512))
        with database.session() as session:
            large = spaces.ensure_space(session, spaces.SpaceIdentity("b", "2", 768))
            assert small.complete and not large.complete and spaces.active(session) == large
            assert spaces.ensure_space(session, spaces.SpaceIdentity("b", "2", 768)) == large  # registered once
            stored, why = spaces.choose(session, large, query_from_current=False)
            assert stored == small and why is not None and "0 of 1 items" in why
            own, why = spaces.choose(session, large, query_from_current=True)
            assert own == large and why is not None
            session.execute(text("INSERT INTO media (id, sha256, kind, mime, size, path) "
                                 "VALUES ('y', repeat('y', 64), 'image', 'image/png', 1, 'p')"))
            session.add(ImageEmbedding(media_id="y", space_id=large.id, model="b", embedding=[1.0] * 768))
        found = MediaSearch(database)
        old_item = found.similar_to_stored("x", Filters(), limit=5, offset=0, ef_search=40)
        assert old_item is not None and old_item.space == small and old_item.degraded
        new_item = found.similar_to_stored("y", Filters(), limit=5, offset=0, ef_search=40)  # only in the new space
        assert new_item is not None and new_item.space == large and new_item.degraded
        with database.session() as session:
            spaces.mark_complete(session, large.id)
        with database.session() as session:
            current = spaces.active(session)
            assert current is not None and current.complete
            assert spaces.choose(session, current, query_from_current=False) == (current, None)
    finally:
        database.dispose()

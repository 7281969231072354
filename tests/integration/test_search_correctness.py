"""Search: pgvector HNSW nearest neighbours agree with exact NumPy cosine search; the search API ranks,
filters and pages correctly; similar images; clusters named from representatives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from storage import db as dbmod
from storage.models import ImageEmbedding, Media
from storage.search import Filters, nearest_images
from tests.support import media_samples as samples
from tests.support.storage_env import Stack, fresh_database, start_stack


def clustered_unit_vectors(n: int, dim: int = 512, centres: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim))
    vectors = means[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_hnsw_recall_against_exact_numpy_search() -> None:
    vectors = clustered_unit_vectors(3000)
    queries = clustered_unit_vectors(30, seed=1)
    database = dbmod.Database(fresh_database())
    try:
        with database.session() as session:
            ids = [f"m{i:05d}" for i in range(len(vectors))]
            session.add_all(Media(id=m, sha256=f"{i:064x}", kind="image", mime="image/png", size=1, path="p",
                                  status="ready", degraded_reasons=[]) for i, m in enumerate(ids))
            session.flush()
            session.add_all(ImageEmbedding(media_id=m, model="random", embedding=v) for m, v in zip(ids, vectors,
                                                                                                     strict=True))
        recalls = []
        for query in queries:
            exact = {ids[i] for i in np.argsort(-(vectors @ query))[:10]}
            with database.session() as session:
                session.execute(text("SET LOCAL enable_seqscan = off"))  # 3,000 rows: make the planner use HNSW
                hits = nearest_images(session, query.tolist(), Filters(), limit=10, offset=0, ef_search=100)
                plan = session.execute(text("EXPLAIN SELECT media_id FROM image_embeddings ORDER BY embedding <=> "
                                            "CAST(:q AS vector) LIMIT 10"), {"q": str(query.tolist())}).all()
            recalls.append(len(exact & {h.media.id for h in hits}) / 10)
            for hit in hits:  # the score is the cosine similarity, exactly as NumPy computes it
                assert hit.score == pytest.approx(float(vectors[int(hit.media.id[1:])] @ query), abs=1e-4)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert "ix_image_embeddings_hnsw" in " ".join(str(row) for row in plan)
        assert np.mean(recalls) >= 0.95, recalls
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("search"))
    images = [("red", 1), ("red", 2), ("blue", 3), ("green", 4), ("blue", 5)]
    jobs = []
    with stack.client() as client:
        for color, seed in images:
            accepted = client.post("/v1/media", files={"file": (f"{color}.png", samples.png(color, seed=seed))})
            jobs.append(accepted.json()["job_id"])
        jobs.append(client.post("/v1/media", files={"file": ("memo.wav", samples.spoken_wav())}).json()["job_id"])
    for job_id in jobs:
        assert stack.wait_job(job_id)["state"] == "done"
    yield stack
    stack.stop()


def search(stack: Stack, **params: object) -> dict:
    response = httpx.get(f"{stack.url}/v1/search", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_text_query_finds_matching_images_first(stack: Stack) -> None:
    results = search(stack, q="something red", kind="image")["results"]
    assert [r["label"] for r in results[:2]] == ["red", "red"] and results[0]["match"] == "embedding"
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]


def test_transcript_and_caption_full_text_search(stack: Stack) -> None:
    spoken = search(stack, q="quarterly report", kind="audio")["results"]
    assert len(spoken) == 1 and spoken[0]["match"] == "transcript" and "<b>quarterly</b>" in spoken[0]["snippet"]
    with_caption = [r for r in search(stack, q="blue squares")["results"] if r["snippet"]]
    assert len(with_caption) == 2 and all(r["label"] == "blue" for r in with_caption)
    assert "<b>blue</b> <b>square</b>" in with_caption[0]["snippet"]  # stemmed: "squares" matches "square"
    stack.configure(down=["clip"])
    try:
        captions = search(stack, q="blue squares")["results"]
    finally:
        stack.configure(down=[])
    assert [r["match"] for r in captions] == ["caption", "caption"]


def test_filters_and_pagination(stack: Stack) -> None:
    assert {r["label"] for r in search(stack, q="red", label="BLUE")["results"]} == {"blue"}
    everything = search(stack, kind="image", limit=50)["results"]
    assert len(everything) == 5 and all(r["match"] == "filter" for r in everything)
    pages = [search(stack, kind="image", limit=2, offset=o)["results"] for o in (0, 2, 4)]
    assert [r["media_id"] for page in pages for r in page] == [r["media_id"] for r in everything]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert search(stack, kind="image", since=future)["results"] == []
    assert len(search(stack, kind="image", until=future)["results"]) == 5


def test_search_degrades_to_text_when_clip_is_down(stack: Stack) -> None:
    stack.configure(down=["clip"])
    try:
        answer = search(stack, q="quarterly report")
    finally:
        stack.configure(down=[])
    assert answer["degraded"] and answer["degraded"][0].startswith("clip: HTTP 503")
    assert [r["match"] for r in answer["results"]] == ["transcript"]


def test_similar_images_by_id_and_by_upload(stack: Stack) -> None:
    reds = [r for r in search(stack, kind="image", label="red")["results"]]
    by_id = httpx.post(f"{stack.url}/v1/search/image", data={"media_id": reds[0]["media_id"]}).json()["results"]
    assert reds[0]["media_id"] not in [r["media_id"] for r in by_id] and by_id[0]["label"] == "red"
    upload = httpx.post(f"{stack.url}/v1/search/image", files={"file": ("q.png", samples.png("blue", seed=99))})
    assert [r["label"] for r in upload.json()["results"][:2]] == ["blue", "blue"]
    both = httpx.post(f"{stack.url}/v1/search/image", data={"media_id": "x"},
                      files={"file": ("q.png", samples.png("blue"))})
    assert both.status_code == 422 and "exactly one" in both.json()["detail"]


def test_clusters_group_colours_and_are_named(stack: Stack) -> None:
    too_many = httpx.post(f"{stack.url}/v1/clusters", json={"k": 50})
    assert too_many.status_code == 422 and "5 have a CLIP embedding" in too_many.json()["detail"]
    started = httpx.post(f"{stack.url}/v1/clusters", json={"k": 3})
    assert started.status_code == 202
    job = stack.wait_job(started.json()["job_id"])
    assert job["state"] == "done" and job["result"]["clusters"] == 3, job
    clusters = httpx.get(f"{stack.url}/v1/clusters").json()
    assert sorted(c["name"] for c in clusters) == ["blue things", "green things", "red things"]
    assert sorted(c["size"] for c in clusters) == [1, 2, 2]
    for cluster in clusters:
        assert cluster["enrichment"]["folder_path"] == f"/colours/{cluster['name'].replace(' ', '_')}/"
        assert cluster["representatives"] == cluster["members"]  # ≤ 5 members: all are representatives

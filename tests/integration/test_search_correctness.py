"""Search: pgvector HNSW nearest neighbours agree with exact NumPy cosine search; the search API ranks
(one list fused from images, transcripts and captions), filters and pages correctly, and refuses what
Postgres cannot take with a 422; similar images; clusters named from representatives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from storage import db as dbmod
from storage import spaces
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
            space = spaces.ensure_space(session, spaces.SpaceIdentity("random", "r", 512))
            ids = [f"m{i:05d}" for i in range(len(vectors))]
            session.add_all(Media(id=m, sha256=f"{i:064x}", kind="image", mime="image/png", size=1, path="p",
                                  status="ready", degraded_reasons=[]) for i, m in enumerate(ids))
            session.flush()
            session.add_all(ImageEmbedding(media_id=m, space_id=space.id, model="random", embedding=v)
                            for m, v in zip(ids, vectors, strict=True))
        with database.engine.connect() as connection:
            connection.execute(text("ANALYZE image_embeddings"))
            connection.commit()
        recalls = []
        for query in queries:
            exact = {ids[i] for i in np.argsort(-(vectors @ query))[:10]}
            with database.session() as session:
                session.execute(text("SET LOCAL enable_seqscan = off"))  # 3,000 rows: make the planner use HNSW
                hits = nearest_images(session, query.tolist(), Filters(), space=space, limit=10, offset=0,
                                      ef_search=100)
                plan = session.execute(text(
                    f"EXPLAIN SELECT media_id FROM image_embeddings WHERE space_id = {space.id} "
                    "ORDER BY embedding::vector(512) <=> CAST(:q AS vector) LIMIT 10"), {"q": str(query.tolist())})
                plan = plan.all()
            recalls.append(len(exact & {h.media.id for h in hits}) / 10)
            for hit in hits:  # the score is the cosine similarity, exactly as NumPy computes it
                assert hit.score == pytest.approx(float(vectors[int(hit.media.id[1:])] @ query), abs=1e-4)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert spaces.index_name(space.id) in " ".join(str(row) for row in plan)
        assert np.mean(recalls) >= 0.95, recalls
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # the fake CLIP's unrelated colours are ~0.29 similar (CLIP ViT-B/32's ~0.1-0.18): its floor is its own
    stack = start_stack(tmp_path_factory.mktemp("search"), GATEWAY_SEARCH_MIN_SIMILARITY_BY_MODEL='{"fake-clip": 0.5}')
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


def test_text_query_finds_matching_images_and_drops_unrelated_ones(stack: Stack) -> None:
    answer = search(stack, q="something red", kind="image")
    results = answer["results"]
    # the fake CLIP: red images are ~0.94 similar to "red", blue and green ones ~0.29, below fake-clip's 0.5
    assert answer["min_similarity"] == 0.5
    assert [r["label"] for r in results] == ["red", "red"] and {r["match"] for r in results} == {"embedding"}
    assert results[0]["score"] > results[1]["score"] and all(r["similarity"] > 0.9 for r in results)
    everything = search(stack, q="something red", kind="image", min_similarity=-1)
    assert everything["min_similarity"] == -1 and len(everything["results"]) == 5
    assert [r["label"] for r in everything["results"][:2]] == ["red", "red"]


def test_a_spoken_memo_ranks_first_for_words_it_holds(stack: Stack) -> None:
    """Issue 11: the memo came 13th, after every image, when the lists were concatenated."""
    results = search(stack, q="quarterly report")["results"]
    assert len(results) == 6  # the fake CLIP finds every image ~0.6 similar to a colourless query: all are kept
    memo = results[0]
    assert memo["kind"] == "audio" and memo["match"] == "transcript" and memo["start_s"] == 0.0
    assert "<b>quarterly</b>" in memo["snippet"] and memo["similarity"] is None
    assert all(r["kind"] == "image" and r["match"] == "embedding" for r in results[1:])
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_transcript_and_caption_full_text_search(stack: Stack) -> None:
    spoken = search(stack, q="quarterly report", kind="audio")["results"]
    assert len(spoken) == 1 and spoken[0]["match"] == "transcript" and "<b>quarterly</b>" in spoken[0]["snippet"]
    assert spoken[0]["start_s"] == 0.0
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
    assert {r["label"] for r in search(stack, q="square", label="BLUE")["results"]} == {"blue"}
    everything = search(stack, kind="image", limit=50)["results"]
    assert len(everything) == 5 and all(r["match"] == "filter" for r in everything)
    pages = [search(stack, kind="image", limit=2, offset=o)["results"] for o in (0, 2, 4)]
    assert [r["media_id"] for page in pages for r in page] == [r["media_id"] for r in everything]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert search(stack, kind="image", since=future)["results"] == []
    assert len(search(stack, kind="image", until=future)["results"]) == 5


def test_a_fused_ranking_pages_by_limit_and_offset(stack: Stack) -> None:
    whole = search(stack, q="blue squares", min_similarity=-1, limit=50)["results"]
    assert len(whole) == 5  # one result per item, though the blue ones are in two lists
    pages = [search(stack, q="blue squares", min_similarity=-1, limit=2, offset=o)["results"] for o in (0, 2, 4)]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [r["media_id"] for page in pages for r in page] == [r["media_id"] for r in whole]
    assert {r["label"] for r in whole[:2]} == {"blue"} and all(r["snippet"] for r in whole[:2])


def test_deep_pages_and_nul_bytes_are_refused_with_a_reason(stack: Stack) -> None:
    deep = httpx.get(f"{stack.url}/v1/search", params={"q": "red", "offset": 995, "limit": 10})
    assert deep.status_code == 422 and "1,000 deep" in deep.json()["detail"]
    assert search(stack, kind="image", offset=9_000)["results"] == []  # browsing pages deeper: no index involved
    similar = httpx.post(f"{stack.url}/v1/search/image", data={"media_id": "x", "offset": 999, "limit": 5})
    assert similar.status_code == 422 and "1,000 deep" in similar.json()["detail"]
    for params in ({"q": "red\x00"}, {"label": "\x00"}, {"q": "red", "kind": "image", "label": "a\x00b"}):
        refused = httpx.get(f"{stack.url}/v1/search", params=params)
        assert refused.status_code == 422 and "NUL" in refused.json()["detail"], (params, refused.text)
    assert httpx.get(f"{stack.url}/v1/media/ab%00cd").status_code == 422
    by_nul_id = httpx.post(f"{stack.url}/v1/search/image", data={"media_id": "a\x00"})
    assert by_nul_id.status_code == 422 and "NUL" in by_nul_id.json()["detail"]


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


def test_a_transcript_hit_starts_at_its_matching_segment(stack: Stack) -> None:
    stack.configure(transcript="good morning everyone. the budget meeting moved to noon")
    try:
        with stack.client() as client:
            job = client.post("/v1/media", files={"file": ("b.wav", samples.spoken_wav("budget"))}).json()["job_id"]
        assert stack.wait_job(job)["state"] == "done"
    finally:
        stack.configure(transcript="the quarterly report is ready")
    hits = search(stack, q="budget meeting", kind="audio")["results"]
    assert len(hits) == 1 and hits[0]["start_s"] == 2.0  # the fake: sentence i starts at 2·i seconds

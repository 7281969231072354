"""`python -m bench search_e2e`: `GET /v1/search` at 100,000 stored items vs the clip text-embedding call alone.

The gateway (storage on: embedded Postgres + pgvector, Redis) embeds the query through its in-process
dispatcher (one long-lived keep-alive client) and ranks the space's HNSW index with full-text matches.
The baseline is the same `POST /v1/embed/text` sent straight to the clip service. The two are
interleaved request by request, so load from other work on the machine hits both alike.
Target: search p50 no more than 5 ms above the embedding call's p50.

The stored items are 100,000 image records whose vectors come from a 200-component Gaussian
mixture (clustered like real CLIP embeddings), written with COPY into the clip model's embedding
space, its HNSW index built after the load.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import psutil
import psycopg
from pgvector.psycopg import register_vector

from bench.clip_batching import build_clip
from bench.report import write_section
from tests.support.processes import REPO, ServiceProcess
from tests.support.storage_env import fresh_database, shared_redis_url

ITEMS, CENTRES, PAIRS, WARMUP = 100_000, 200, 120, 10
TARGET_MS = 5.0
QUERIES = ["a cat on a sofa", "sunset over the sea", "two people hiking", "a red car", "birthday cake",
           "snow on mountains", "a dog in the park", "city at night"]


def identity(clip_url: str) -> tuple[str, int, str]:
    answer = httpx.post(clip_url + "/v1/embed/text", json={"texts": ["hello"]}, timeout=120).json()
    return answer["model"], answer["dim"], answer.get("weights_sha256") or "unknown"


def populate(database_url: str, model: str, dim: int, weights: str) -> tuple[float, int]:
    """ITEMS image records with vectors in the model's space; the space's HNSW index built after the COPY."""
    from storage import spaces
    from storage.db import Database
    from storage.spaces import SpaceIdentity

    with Database(database_url).session() as session:
        space = spaces.ensure_space(session, SpaceIdentity.of(model, dim, weights))
        session.commit()
    rng = np.random.default_rng(0)
    means = rng.normal(size=(CENTRES, dim))
    vectors = means[rng.integers(0, CENTRES, ITEMS)] + 3.2 * rng.normal(size=(ITEMS, dim)) / np.sqrt(dim)
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    started = time.perf_counter()
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection:
        register_vector(connection)
        connection.execute(f"DROP INDEX IF EXISTS {spaces.index_name(space.id)}")
        ids = [uuid.uuid4().hex for _ in range(ITEMS)]
        with connection.cursor().copy("COPY media (id, sha256, kind, mime, size, path, status, degraded_reasons) "
                                      "FROM STDIN") as copy:
            for media_id in ids:
                copy.write_row((media_id, media_id * 2, "image", "image/jpeg", 1000, f"{media_id}.jpg", "ready", "[]"))
        with connection.cursor().copy("COPY image_embeddings (media_id, space_id, model, embedding) "
                                      "FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["varchar", "int4", "text", "vector"])
            for media_id, vector in zip(ids, vectors, strict=True):
                copy.write_row((media_id, space.id, model, vector))
        connection.commit()
        connection.execute("SET maintenance_work_mem = '1GB'")
        connection.execute(spaces.space_index_sql(space.id, dim))
        connection.execute("ANALYZE media")
        connection.execute("ANALYZE image_embeddings")
        connection.commit()
    return time.perf_counter() - started, space.id


def measure(clip_url: str, gateway_url: str) -> tuple[list[float], list[float], dict[str, object]]:
    with httpx.Client(base_url=clip_url, timeout=120) as clip, httpx.Client(base_url=gateway_url, timeout=120) as gw:
        def embed(q: str) -> float:
            started = time.perf_counter()
            clip.post("/v1/embed/text", json={"texts": [q]}).raise_for_status()
            return (time.perf_counter() - started) * 1000

        def search(q: str) -> float:
            started = time.perf_counter()
            answer = gw.get("/v1/search", params={"q": q, "min_similarity": -1})
            answer.raise_for_status()
            return (time.perf_counter() - started) * 1000

        # min_similarity -1: random weights put every stored vector below the default floor, and a page of
        # 20 hits (as a real model gives) is what a search answers
        sample = gw.get("/v1/search", params={"q": QUERIES[0], "min_similarity": -1}).json()
        for i in range(WARMUP):  # also pages the index in
            search(QUERIES[i % len(QUERIES)]), embed(QUERIES[i % len(QUERIES)])
        direct: list[float] = []
        searched: list[float] = []
        for i in range(PAIRS):
            q = QUERIES[i % len(QUERIES)]
            if i % 2 == 0:
                direct.append(embed(q))
                searched.append(search(q))
            else:
                searched.append(search(q))
                direct.append(embed(q))
    return direct, searched, sample


def database_alone(database_url: str, clip_url: str, identity_: tuple[str, int, str],
                   space_id: int) -> tuple[list[float], list[float], str]:
    """The storage part alone, in this process, ms per query: the full-text half (`text_matches`, which the
    gateway runs beside the embedding call) and the rest of `ranked` (after it); and the plan Postgres picks
    for the nearest-neighbour query."""
    from storage.db import Database
    from storage.ranking import FusionWeights
    from storage.search import Filters, MediaSearch, SemanticQuery
    from storage.spaces import SpaceIdentity

    model, dim, weights = identity_
    vectors = {q: httpx.post(clip_url + "/v1/embed/text", json={"texts": [q]}, timeout=120).json()["embeddings"][0]
               for q in QUERIES}
    search = MediaSearch(Database(database_url))
    text_times, vector_times = [], []
    for i in range(PAIRS // 2 + WARMUP):
        q = QUERIES[i % len(QUERIES)]
        started = time.perf_counter()
        text = search.text_matches(q, Filters(), depth=20)
        between = time.perf_counter()
        search.ranked(q, SemanticQuery(vectors[q], SpaceIdentity.of(model, dim, weights)), Filters(), limit=20,
                      offset=0, ef_search=100, min_similarity=-1.0, weights=FusionWeights(), text=text)
        if i >= WARMUP:
            text_times.append((between - started) * 1000)
            vector_times.append((time.perf_counter() - between) * 1000)
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection:
        register_vector(connection)
        connection.execute("SET hnsw.ef_search = 100")
        plan = connection.execute(
            f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT m.id FROM image_embeddings e JOIN media m "
            f"ON m.id = e.media_id WHERE e.space_id = {space_id} ORDER BY e.embedding::vector({dim}) <=> %s LIMIT 20",
            (np.asarray(vectors[QUERIES[0]], np.float32),)).fetchall()
    shown = " / ".join(row[0].strip() for row in plan if "Execution" in row[0] or "Scan" in row[0])
    return text_times, vector_times, shown


def main() -> None:
    model_dir = build_clip(REPO / "bench" / ".cache" / "clip-vit-b32-v1")
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        database_url = fresh_database()
        # one torch thread: on cores shared with other work, two made each text embedding many times slower
        clip_env = {"CLIP_MODEL_PATH": str(model_dir), "CLIP_AUTOLOAD": "true", "CLIP_TORCH_THREADS": "1"}
        with ServiceProcess("services.clip.app:create_app", clip_env, logs / "clip.log") as clip:
            clip.wait_healthy(300)
            model, dim, weights = identity(clip.url)
            print(f"populating {ITEMS:,} items ({dim}-d) ...", flush=True)
            load_s, space_id = populate(database_url, model, dim, weights)
            print(f"  loaded and indexed in {load_s:.1f} s", flush=True)
            env = {"DATABASE_URL": database_url, "REDIS_URL": shared_redis_url(),
                   "MEDIAMESH_QUEUE": f"bench-search:{uuid.uuid4().hex[:8]}", "MEDIAMESH_HOME": str(logs / "home"),
                   "GATEWAY_POLL_INTERVAL_S": "30", "GATEWAY_SERVICES": json.dumps({"clip": {"url": clip.url,
                                                                                            "kind": "clip"}})}
            with ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as gateway:
                gateway.wait_healthy(120)
                direct, searched, sample = measure(clip.url, gateway.url)
            text_alone, alone, plan = database_alone(database_url, clip.url, (model, dim, weights), space_id)
    report(direct, searched, sample, dim, load_s, text_alone, alone, plan)


def report(direct: list[float], searched: list[float], sample: dict[str, object], dim: int, load_s: float,
           text_alone: list[float], alone: list[float], plan: str) -> None:
    p50_direct, p50_search = statistics.median(direct), statistics.median(searched)
    added = p50_search - p50_direct
    paired = statistics.median(s - d for s, d in zip(searched, direct, strict=True))
    verdict = "meets" if added <= TARGET_MS else f"misses by {added - TARGET_MS:.2f} ms"
    q95 = lambda xs: statistics.quantiles(xs, n=20)[-1]  # noqa: E731
    results = cast(list[Any], sample.get("results") or [])
    degraded = cast(list[Any], sample.get("degraded") or [])
    p50_alone, p50_text = statistics.median(alone), statistics.median(text_alone)
    print(f"embed p50 {p50_direct:.2f} ms, search p50 {p50_search:.2f} ms, +{added:.2f} ms (paired {paired:+.2f}); "
          f"storage after the embedding p50 {p50_alone:.2f} ms, full-text half p50 {p50_text:.2f} ms; "
          f"plan: {plan}")
    write_section("search_e2e", f"""
## Search end to end at 100,000 items

`GET /v1/search?q=…` through the gateway (storage on: embedded Postgres + pgvector, HNSW index of the
clip model's embedding space; CLIP called in process through the dispatcher's long-lived client) vs
the same text sent straight to the clip service (`POST /v1/embed/text`). CLIP ViT-B/32 sizes, random
weights, {dim}-d, one torch thread; {ITEMS:,} stored image records with clustered vectors (COPY + index build
{load_s:.0f} s). {PAIRS} interleaved pairs after {WARMUP} warm-up pairs, one at a time, keep-alive.
Load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores at the end (other work shares
this machine, so single calls swing; the difference is taken within the run).

| call | p50 ms | p95 ms |
|---|---|---|
| clip text embedding, directly | {p50_direct:.2f} | {q95(direct):.2f} |
| `GET /v1/search` (embedding + ranked search + answer) | {p50_search:.2f} | {q95(searched):.2f} |
| storage, full-text half (`text_matches`, {len(text_alone)} queries; beside the embedding) | {p50_text:.2f} | \
{q95(text_alone):.2f} |
| storage, after the embedding (`ranked`: HNSW scan, fusion) | {p50_alone:.2f} | {q95(alone):.2f} |

Search adds **{added:.2f} ms** at p50 (median of the paired differences {paired:+.2f} ms): it {verdict}
the target (≤ {TARGET_MS:g} ms). The sample answer had {len(results)} results{
    ', degraded: ' + '; '.join(map(str, degraded)) if degraded else ' and was not degraded'}.
The transcript and caption queries run on a thread while CLIP embeds the query, so only the part
after the embedding is on the path: {p50_alone:.2f} ms at p50 in process. The rest
({added - p50_alone:.2f} ms) is the gateway: the route, the dispatcher and the memory budget around the
clip call, the hop to a worker thread for the storage part and back, the full-text half where it
competes with the embedding for the two cores, and the answer.

What the storage part does to stay short: a complete embedding space is looked up once per process
(`storage.spaces.CompleteSpaces`: a space's identity and id never change and `complete` is its last
state); each query shape's statements are built once and reused, so psycopg prepares them on the server
(`storage.vector_scans.NearestQuery`, the full-text queries likewise); the query vector is bound in
pgvector's binary form rather than as 512 decimals printed here and parsed there; the hits are read as
plain columns on the session's Core connection, not as ORM objects. What is left after the embedding is
mostly waiting on Postgres: four round trips (BEGIN, `SET LOCAL hnsw.ef_search`, the HNSW query,
COMMIT), the HNSW query the longest. Nearest-neighbour plan: {plan}.
""")


if __name__ == "__main__":
    main()

"""Filtered semantic search at 100,000 items: does every filter get a full page, how fast, how exact?

100,000 clustered 512-d unit vectors as images in one embedding space (the schema and the space's partial
HNSW index as the app makes them), labelled 1 % `cat`, 10 % `dog`; every 7th item a video frame. For each
filter, p50/p95 latency, recall@10 against exact NumPy search over the matching items, and how full the
page of 10 came back, for:

* `hnsw then filter`: the HNSW index alone, filters applied to its ef_search candidates (what search did
  before: the page starves when the filter is selective);
* `exact scan`: the matching items measured one by one (no vector index; Postgres finds them by the
  filter's own indexes);
* `per-subset index`: the 1 % subset in a space of its own, with its own partial HNSW index (what an
  index per kind or label would give, for one value of one filter);
* `nearest_images`: what search does now (`storage.search`): an exact scan when the planner expects fewer
  than EXACT_SCAN_BELOW matches, else the index, widened and then exact when the filter starves it.

Runs on its own embedded Postgres (pgvector as `pgserver` ships it) in a temp folder.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench.report import write_section
from shared.embedded import EmbeddedPostgres
from storage import db as dbmod
from storage import search, vector_scans
from storage.spaces import Space, SpaceIdentity
from tests.support.vectors import clustered_unit_vectors, exact_order, load_library

N, QUERIES, K, EF = 100_000, 50, 10, 100  # EF: the gateway's default GATEWAY_SEARCH_EF
SHARED_BUFFERS = "1GB"
LABELS = ["cat" if i % 100 == 1 else "dog" if i % 10 == 2 else "other" for i in range(N)]
FRAME = [i % 7 == 3 for i in range(N)]
FILTERS: dict[str, tuple[search.Filters, Callable[[int], bool]]] = {
    "label=cat (1 %)": (search.Filters(label="cat"), lambda i: LABELS[i] == "cat"),
    "kind=video, label=dog (1.4 %)": (search.Filters(kind="video", label="dog"),
                                      lambda i: LABELS[i] == "dog" and FRAME[i]),
    "label=dog (10 %)": (search.Filters(label="dog"), lambda i: LABELS[i] == "dog"),
    "kind=image (86 %)": (search.Filters(kind="image"), lambda i: not FRAME[i]),
    "none (100 %)": (search.Filters(), lambda i: True),
}
Strategy = Callable[[Any, list[float], search.Filters, Space], list[int]]


def _ids(rows: list[Any]) -> list[int]:
    return [int(row[0][1:]) for row in rows]  # the media id first


def hnsw_then_filter(session: Any, query: list[float], filters: search.Filters, space: Space) -> list[int]:
    nearest = search.nearest_query(filters, space, None)
    return [] if nearest is None else _ids(vector_scans.index_scan(session, nearest, query, K, EF))


def exact_scan(session: Any, query: list[float], filters: search.Filters, space: Space) -> list[int]:
    nearest = search.nearest_query(filters, space, None)
    return [] if nearest is None else _ids(vector_scans.exact_scan(session, nearest, query, K))


def shipped(session: Any, query: list[float], filters: search.Filters, space: Space) -> list[int]:
    hits = search.nearest_images(session, query, filters, space=space, limit=K, offset=0, ef_search=EF)
    return [int(hit.media.id[1:]) for hit in hits]


def measure(database: dbmod.Database, strategy: Strategy, filters: search.Filters, space: Space,
            queries: np.ndarray, truths: list[list[int]], ids: Callable[[int], int] = lambda i: i) -> dict[str, float]:
    for query in queries[:5]:  # warm the cache and the plans
        with database.session() as session:
            strategy(session, query.tolist(), filters, space)
    latencies, recalls, fills = [], [], []
    for query, truth in zip(queries, truths, strict=True):
        started = time.perf_counter()
        with database.session() as session:
            found = [ids(i) for i in strategy(session, query.tolist(), filters, space)]
        latencies.append((time.perf_counter() - started) * 1000)
        recalls.append(len(set(found) & set(truth)) / len(truth))
        fills.append(len(found) / min(K, len(truth)))
    return {"p50": float(np.percentile(latencies, 50)), "p95": float(np.percentile(latencies, 95)),
            "recall": float(np.mean(recalls)), "fill": float(np.mean(fills)), "full": float(np.mean(
                [f >= 1.0 for f in fills]))}


def main() -> None:
    vectors, queries = np.split(clustered_unit_vectors(N + QUERIES, centres=200, seed=7), [N])
    parents = [None if not FRAME[i] else "m0000000" for i in range(N)]
    cats = [i for i in range(N) if LABELS[i] == "cat"]
    rows: list[tuple[str, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as folder:
        server = EmbeddedPostgres(Path(folder) / "pg")
        url = server.start()
        try:
            with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as c:
                c.execute(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}'")  # the index fits in memory
            server.stop(force=True)
            url = server.start()
            dbmod.upgrade(url)
            started = time.perf_counter()
            space = load_library(url, vectors, LABELS, parents=parents)
            load_s = time.perf_counter() - started
            print(f"loaded {N:,} items and built their HNSW index in {load_s:.1f}s", flush=True)
            # the cat subset again, in a space of its own with its own partial index
            subset = load_library(url, vectors[cats], ["cat"] * len(cats), prefix="c",
                                  identity=SpaceIdentity("bench/cats-only", "w", vectors.shape[1]))
            database = dbmod.Database(url)
            try:
                for name, (filters, predicate) in FILTERS.items():
                    allowed = [i for i in range(N) if predicate(i)]
                    truths = [exact_order(vectors, query, allowed, K) for query in queries]
                    for label, strategy in (("hnsw then filter", hnsw_then_filter), ("exact scan", exact_scan),
                                            ("nearest_images", shipped)):
                        rows.append((name, label, measure(database, strategy, filters, space, queries, truths)))
                        print(name, label, rows[-1][2], flush=True)
                    if name.startswith("label=cat"):
                        result = measure(database, shipped, search.Filters(), subset, queries, truths,
                                         ids=lambda i: cats[i])
                        rows.append((name, "per-subset index", result))
                        print(name, "per-subset index", result, flush=True)
            finally:
                database.dispose()
        finally:
            server.stop(force=True)
    write_section("search_filtered", report(rows, load_s))


def report(rows: list[tuple[str, str, dict[str, float]]], load_s: float) -> str:
    lines = [
        "## Filtered semantic search: a full page at any selectivity, 100,000 × 512-d",
        "",
        f"{N:,} images in one embedding space (its partial HNSW index, m = 16, ef_construction = 64), "
        f"{QUERIES} queries from the same 200-component mixture, page of {K}, ef_search = {EF}; recall@{K} "
        "against exact NumPy search over the items that match the filter; *full* is the share of queries "
        "whose page came back full. Latency: one unit of work through SQLAlchemy, end to end. Load (binary "
        f"COPY) and index build: {load_s:.0f} s. pgvector as `pgserver` ships it (0.6.2: no iterative scans; "
        "on 0.8+ the index scan sets `hnsw.iterative_scan = relaxed_order`).",
        "",
        "| filter | strategy | p50 ms | p95 ms | recall@10 | full pages |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {name} | {label} | {r['p50']:.1f} | {r['p95']:.1f} | {r['recall']:.3f} | {r['full']:.0%} |"
              for name, label, r in rows]
    shipped_rows = [r for _, label, r in rows if label == "nearest_images"]
    full = all(r["full"] == 1.0 for r in shipped_rows)
    worst = min(r["recall"] for r in shipped_rows)
    cat = {label: r for name, label, r in rows if name.startswith("label=cat")}
    exact_ms, own_ms = cat["exact scan"]["p50"], cat["per-subset index"]["p50"]
    comparison = (f"the exact scan is the faster (p50 {exact_ms:.1f} ms vs {own_ms:.1f} ms with an index of its "
                  "own)" if exact_ms <= own_ms else f"an index of the subset's own is faster than the exact scan "
                  f"(p50 {own_ms:.1f} ms vs {exact_ms:.1f} ms), but it serves one value of one filter: labels are "
                  "open-ended and filters combine, so search uses the exact scan, which needs no index and is exact")
    lines += ["", f"`nearest_images` {'meets' if full else 'misses'} the goal, a full page for every filter "
              f"({'all' if full else 'not all'} queries), recall@10 ≥ {worst:.3f}; the HNSW index alone starves "
              f"selective filters. At 1 % {comparison}. Search scans exactly when the planner expects fewer than "
              f"{search.EXACT_SCAN_BELOW:,} matches. The machine was shared with other work while this ran (load "
              f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end): latencies are noisy, "
              "compare them within the table."]
    return "\n".join(lines)

"""A library of many embedded images, loaded fast (binary COPY) for search tests and benchmarks:
media rows, their labels and their vectors in one embedding space, with that space's HNSW index."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from storage import db as dbmod
from storage import spaces

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def clustered_unit_vectors(n: int, dim: int = 512, centres: int = 50, seed: int = 0) -> np.ndarray:
    """A Gaussian mixture, normalised: clustered like real CLIP embeddings rather than uniform noise."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim))
    vectors = means[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def media_ids(n: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(n)]


def load_library(url: str, vectors: np.ndarray, labels: Sequence[str | None], *,
                 identity: spaces.SpaceIdentity | None = None, prefix: str = "m",
                 parents: Sequence[str | None] | None = None) -> spaces.Space:
    """Item i: media `{prefix}{i:07d}` (an image, created EPOCH + i minutes), label `labels[i]`, vector
    `vectors[i]` in the space of `identity`; the space's index is built once, after the rows are in."""
    identity = identity or spaces.SpaceIdentity("test/vectors", "w", vectors.shape[1])
    database = dbmod.Database(url)
    try:
        with database.session() as session:
            space = spaces.ensure_space(session, identity)
    finally:
        database.dispose()
    ids = media_ids(len(vectors), prefix)
    parents = parents or [None] * len(ids)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        register_vector(connection)
        connection.execute(f"DROP INDEX IF EXISTS {spaces.index_name(space.id)}")
        with connection.cursor().copy("COPY media (id, sha256, kind, mime, size, path, status, parent_id, "
                                      "created_at) FROM STDIN") as copy:
            for i, (media_id, parent) in enumerate(zip(ids, parents, strict=True)):
                sha256 = hashlib.sha256(media_id.encode()).hexdigest()
                copy.write_row((media_id, sha256, "image", "image/png", 1, "p", "ready", parent,
                                EPOCH + timedelta(minutes=i)))
        with connection.cursor().copy("COPY classifications (media_id, label, confidence) FROM STDIN") as copy:
            for media_id, label in zip(ids, labels, strict=True):
                if label is not None:
                    copy.write_row((media_id, label, 0.9))
        with connection.cursor().copy("COPY image_embeddings (media_id, space_id, model, embedding) "
                                      "FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["text", "int4", "text", "vector"])
            for media_id, vector in zip(ids, vectors, strict=True):
                copy.write_row((media_id, space.id, identity.model, vector))
        connection.execute("SET maintenance_work_mem = '512MB'")
        connection.execute(spaces.space_index_sql(space.id, space.dim))
        connection.commit()
        connection.autocommit = True
        connection.execute("ANALYZE media, classifications, image_embeddings")
    return space


def exact_order(vectors: np.ndarray, query: np.ndarray, allowed: Sequence[int], k: int) -> list[int]:
    """Brute force: the indices in `allowed`, nearest to `query` by cosine first, the top k."""
    allowed_array = np.asarray(allowed)
    scores = vectors[allowed_array] @ query
    return [int(i) for i in allowed_array[np.argsort(-scores, kind="stable")[:k]]]

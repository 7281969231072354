"""Migrations up and down on a real Postgres with pgvector (pgserver); the embedded servers restart cleanly."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import inspect, text

from shared.embedded import EmbeddedPostgres, EmbeddedRedis
from storage import db as dbmod
from storage import spaces
from storage.models import ImageAnalysis, ImageEmbedding, Media, Transcript
from tests.support.storage_env import fresh_database

TABLES = {"media", "classifications", "image_embeddings", "image_analyses", "transcripts", "video_frames",
          "json_documents", "clusters", "cluster_members", "jobs", "classify_results", "embedding_spaces", "objects"}


def _tables(url: str) -> set[str]:
    engine = dbmod.make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade() -> None:
    url = fresh_database(migrate=False)
    assert _tables(url) == set()
    dbmod.upgrade(url)
    assert _tables(url) == TABLES
    dbmod.downgrade(url, "base")
    assert _tables(url) == set()
    dbmod.upgrade(url)
    assert _tables(url) == TABLES


def test_schema_has_hnsw_gin_and_generated_tsvector() -> None:
    url = fresh_database()
    database = dbmod.Database(url)
    try:
        with database.session() as session:
            space = spaces.ensure_space(session, spaces.SpaceIdentity("m", "w", 512))
            indexes = dict(session.execute(text("SELECT indexname, indexdef FROM pg_indexes")).all())
            space_index = indexes[spaces.index_name(space.id)]  # the space's own HNSW index, over its rows only
            assert "hnsw" in space_index and "vector_cosine_ops" in space_index and "vector(512)" in space_index
            assert f"space_id = {space.id}" in space_index
            assert "gin" in indexes["ix_transcripts_tsv"]
            media = Media(sha256="a" * 64, kind="audio", mime="audio/wav", size=1, path="aa/aa/" + "a" * 64,
                          degraded_reasons=[])
            session.add(media)
            session.flush()
            session.add(Transcript(media_id=media.id, text="The quarterly report is ready", segments=[]))
            session.add(ImageAnalysis(media_id=media.id, caption="a black cat sitting on tables"))
            session.add(ImageEmbedding(media_id=media.id, space_id=space.id, model="m", embedding=[1.0] + [0.0] * 511))
        with database.session() as session:
            found = session.execute(text(
                "SELECT count(*) FROM transcripts WHERE tsv @@ websearch_to_tsquery('simple', 'quarterly report')"
            )).scalar_one()
            stemmed = session.execute(text(
                "SELECT count(*) FROM image_analyses WHERE caption_tsv @@ websearch_to_tsquery('english', 'cats table')"
            )).scalar_one()
            assert (found, stemmed) == (1, 1)
    finally:
        database.dispose()


def test_vectors_stored_before_spaces_move_to_a_legacy_space_and_back() -> None:
    """0005: each model name's vectors become a complete `legacy` space with its own index; down again keeps them."""
    url = fresh_database(migrate=False)
    dbmod.upgrade(url, "0004")
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    vector = "[" + ",".join(["1"] + ["0"] * 511) + "]"
    with psycopg.connect(plain) as connection:
        for media_id in ("a", "b"):
            connection.execute("INSERT INTO media (id, sha256, kind, mime, size, path) "
                               "VALUES (%s, %s, 'image', 'image/png', 1, 'p')", (media_id, media_id * 64))
            connection.execute("INSERT INTO image_embeddings (media_id, model, embedding) VALUES (%s, 'clip', %s)",
                               (media_id, vector))
    dbmod.upgrade(url)
    with psycopg.connect(plain) as connection:
        rows = connection.execute(
            "SELECT s.id, s.model, s.weights_sha256, s.dim, s.state, count(*) FROM image_embeddings e "
            "JOIN embedding_spaces s ON s.id = e.space_id GROUP BY s.id").fetchall()
        assert [row[1:] for row in rows] == [("clip", "legacy", 512, "complete", 2)]
        names = {row[0] for row in connection.execute("SELECT indexname FROM pg_indexes")}
        assert spaces.index_name(rows[0][0]) in names
    dbmod.downgrade(url, "0004")
    with psycopg.connect(plain) as connection:
        assert connection.execute("SELECT count(*) FROM image_embeddings").fetchone() == (2,)


def test_duplicate_sha_is_refused_by_the_database() -> None:
    url = fresh_database()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        insert = ("INSERT INTO media (id, sha256, kind, mime, size, path) "
                  "VALUES (%s, %s, 'image', 'image/png', 1, 'p')")
        connection.execute(insert, ("one", "b" * 64))
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute(insert, ("two", "b" * 64))


def test_embedded_postgres_keeps_data_across_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.start().replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (v vector(3))")
            connection.execute("INSERT INTO kept VALUES ('[1,2,3]')")
        server.stop()
        assert not server.running
        url = server.start().replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT v::text FROM kept").fetchone() == ("[1,2,3]",)
    finally:
        server.stop(force=True)


def test_embedded_redis_is_reachable_by_url_and_persists(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis" / "redis.db")
    try:
        client = redis.Redis.from_url(server.start())
        client.set("kept", "yes")
        client.close()
        server.stop()
        assert not server.running
        assert redis.Redis.from_url(server.start()).get("kept") == b"yes"
    finally:
        server.stop(force=True)


def test_an_image_sent_to_review_is_stored_without_a_label() -> None:
    """The cascade's abstain band answers `label: null`; the stored classification keeps the candidates."""
    from shared.schemas.common import LabelScore
    from shared.schemas.gateway import CascadeTrace, ClassifyResponse
    from storage.repositories.media import ImageResults, MediaRepository, NewMedia

    database = dbmod.Database(fresh_database())
    try:
        media = MediaRepository(database)
        stored, _ = media.add_with_ingest_job(NewMedia("ab" * 32, "image", "image/png", 3, "ab/ab.png"), 4)
        review = ClassifyResponse(label=None, confidence=0.55, decision="review", variant="a", request_id="r1",
                                  top_k=[LabelScore(label="pit", score=0.55), LabelScore(label="clean", score=0.45)],
                                  trace=CascadeTrace(variant="a", stages=[], total_ms=1.0, rule="review band"))
        media.save_image_results(stored.id, ImageResults(classification=review))
        record = media.record(stored.id)
        assert record is not None and record.media.classification is not None
        assert record.media.classification.label is None
        assert [s["label"] for s in record.media.classification.top_k] == ["pit", "clean"]
    finally:
        database.dispose()

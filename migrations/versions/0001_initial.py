"""Initial schema: media, results (classifications, embeddings, analyses, transcripts, frames, JSON), clusters, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOW = sa.text("now()")
EMPTY_LIST = sa.text("'[]'::jsonb")
EMPTY_OBJECT = sa.text("'{}'::jsonb")


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True)


def _media_fk(unique: bool = True) -> sa.Column:
    return sa.Column("media_id", sa.String(32), sa.ForeignKey("media.id", ondelete="CASCADE"), nullable=False,
                     unique=unique, index=not unique)


def _created() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False)


def _updated() -> sa.Column:
    return sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "media",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False, index=True),
        sa.Column("mime", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("original_name", sa.Text),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("degraded_reasons", JSONB, nullable=False, server_default=EMPTY_LIST),
        sa.Column("parent_id", sa.String(32), sa.ForeignKey("media.id", ondelete="CASCADE"), index=True),
        _created(), _updated(),
        sa.CheckConstraint("kind IN ('image', 'audio', 'video', 'json')", name="ck_media_kind"),
        sa.CheckConstraint("status IN ('queued', 'processing', 'ready', 'degraded', 'failed')", name="ck_media_status"),
    )
    op.create_index("ix_media_created_at", "media", ["created_at"])
    op.create_table(
        "classifications", _id(), _media_fk(),
        sa.Column("label", sa.Text, nullable=False, index=True),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("top_k", JSONB, nullable=False, server_default=EMPTY_LIST),
        sa.Column("trace", JSONB, nullable=False, server_default=EMPTY_OBJECT),
        sa.Column("escalated", sa.Boolean, nullable=False, server_default=sa.false()),
        _created(),
    )
    op.create_table(
        "image_embeddings", _id(), _media_fk(),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("embedding", Vector(512), nullable=False),
        _created(),
    )
    op.execute(
        "CREATE INDEX ix_image_embeddings_hnsw ON image_embeddings "
        "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
    _create_text_tables()
    _create_cluster_and_job_tables()


def _create_text_tables() -> None:
    op.create_table(
        "image_analyses", _id(), _media_fk(),
        sa.Column("caption", sa.Text), sa.Column("scene", sa.Text),
        sa.Column("objects", JSONB, nullable=False, server_default=EMPTY_LIST),
        sa.Column("tags", JSONB, nullable=False, server_default=EMPTY_LIST),
        sa.Column("colors", JSONB, nullable=False, server_default=EMPTY_LIST),
        sa.Column("caption_tsv", TSVECTOR, sa.Computed(
            "to_tsvector('english', coalesce(caption, '') || ' ' || coalesce(scene, ''))", persisted=True)),
        _created(),
    )
    op.create_index("ix_image_analyses_caption_tsv", "image_analyses", ["caption_tsv"], postgresql_using="gin")
    op.create_table(
        "transcripts", _id(), _media_fk(),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("language", sa.String(16)),
        sa.Column("duration_s", sa.Float),
        sa.Column("segments", JSONB, nullable=False, server_default=EMPTY_LIST),
        # 'simple': transcripts come in any language Whisper detects, so no English stemming.
        sa.Column("tsv", TSVECTOR, sa.Computed("to_tsvector('simple', coalesce(text, ''))", persisted=True)),
        _created(),
    )
    op.create_index("ix_transcripts_tsv", "transcripts", ["tsv"], postgresql_using="gin")
    op.create_table(
        "video_frames", _id(), _media_fk(unique=False),
        sa.Column("t", sa.Float, nullable=False),
        sa.Column("frame_media_id", sa.String(32), sa.ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_table(
        "json_documents", _id(), _media_fk(),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("analysis", JSONB),
        _created(),
    )


def _create_cluster_and_job_tables() -> None:
    op.create_table(
        "clusters", _id(),
        sa.Column("run_id", sa.String(32), nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("tags", JSONB, nullable=False, server_default=EMPTY_LIST),
        sa.Column("category", sa.Text),
        sa.Column("confidence", sa.Float),
        sa.Column("enrichment", JSONB),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("degraded_reasons", JSONB, nullable=False, server_default=EMPTY_LIST),
        _created(),
    )
    op.create_table(
        "cluster_members",
        sa.Column("cluster_id", sa.Integer, sa.ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("media_id", sa.String(32), sa.ForeignKey("media.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("distance", sa.Float, nullable=False),
        sa.Column("representative", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("media_id", sa.String(32), sa.ForeignKey("media.id", ondelete="CASCADE"), index=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="queued", index=True),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("stage", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="4"),
        sa.Column("error", sa.Text),
        sa.Column("params", JSONB, nullable=False, server_default=EMPTY_OBJECT),
        sa.Column("result", JSONB),
        _created(), _updated(),
        sa.CheckConstraint("state IN ('queued', 'running', 'retrying', 'done', 'failed')", name="ck_jobs_state"),
    )


def downgrade() -> None:
    for table in ("jobs", "cluster_members", "clusters", "json_documents", "video_frames", "transcripts",
                  "image_analyses", "image_embeddings", "classifications", "media"):
        op.drop_table(table)
    # The extension stays: other databases objects may use it, and dropping it needs superuser anyway.

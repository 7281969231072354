"""Versioned embeddings: every vector belongs to an embedding space (model id, weights hash, dimension).

The `embedding` column loses its fixed dimension (`vector`), so 512-d and 768-d models both fit; each
space gets its own HNSW index, a partial expression index over `embedding::vector(dim)` for its rows
(`storage.spaces.create_space_index`), created when the space first appears. An item holds one vector
per space, so a re-embed fills the new space while search still reads the previous complete one.

Also an index on `lower(label)`, what search's label filter compares.

Vectors stored before this revision carry no weights hash: they go to a `legacy` space per model name,
marked complete, and `mediamesh reembed` moves them to the active model's space.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LEGACY_WEIGHTS = "legacy"
LEGACY_DIM = 512


def _space_index(space_id: int, dim: int) -> str:
    # the same statement as storage.spaces.create_space_index (migrations do not import the app)
    return (f"CREATE INDEX IF NOT EXISTS ix_image_embeddings_space_{space_id} ON image_embeddings "
            f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
            f"WHERE space_id = {space_id}")


def upgrade() -> None:
    op.create_table(
        "embedding_spaces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("weights_sha256", sa.Text, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="filling"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("model", "weights_sha256", "dim", name="uq_embedding_spaces_identity"),
        sa.CheckConstraint("state IN ('filling', 'complete')", name="ck_embedding_spaces_state"),
        sa.CheckConstraint("dim > 0 AND dim <= 16000", name="ck_embedding_spaces_dim"),
    )
    op.add_column("image_embeddings", sa.Column(
        "space_id", sa.Integer, sa.ForeignKey("embedding_spaces.id", ondelete="CASCADE")))
    op.execute(
        "INSERT INTO embedding_spaces (model, weights_sha256, dim, state, completed_at) "
        f"SELECT DISTINCT model, '{LEGACY_WEIGHTS}', {LEGACY_DIM}, 'complete', now() FROM image_embeddings")
    op.execute("UPDATE image_embeddings e SET space_id = s.id FROM embedding_spaces s WHERE s.model = e.model")
    op.alter_column("image_embeddings", "space_id", nullable=False)
    op.drop_index("ix_image_embeddings_hnsw", table_name="image_embeddings")
    op.alter_column("image_embeddings", "embedding", type_=Vector(), postgresql_using="embedding::vector")
    # inline, not TOASTed: a 512-d vector is just over the 2 kB at which rows go out of line, and fetching
    # each one from the TOAST table made an exact scan of a filtered set several times slower
    op.execute("ALTER TABLE image_embeddings ALTER COLUMN embedding SET STORAGE MAIN")
    # one vector per item and space (was: one per item)
    op.drop_constraint("image_embeddings_media_id_key", "image_embeddings", type_="unique")
    op.create_unique_constraint("uq_image_embeddings_media_space", "image_embeddings", ["media_id", "space_id"])
    op.create_index("ix_image_embeddings_space_id", "image_embeddings", ["space_id"])
    for (space_id,) in op.get_bind().execute(sa.text("SELECT id FROM embedding_spaces")):
        op.execute(_space_index(space_id, LEGACY_DIM))
    # search's label filter is `lower(label) = …`: an index it can use, so a selective label is found fast
    op.execute("CREATE INDEX ix_classifications_label_lower ON classifications (lower(label))")


def downgrade() -> None:
    op.drop_index("ix_classifications_label_lower", table_name="classifications")
    # Back to one 512-d vector per item: keep each item's newest 512-d vector, drop the rest.
    op.execute("DELETE FROM image_embeddings e USING embedding_spaces s WHERE s.id = e.space_id AND s.dim <> 512")
    op.execute("DELETE FROM image_embeddings e WHERE EXISTS (SELECT 1 FROM image_embeddings n WHERE "
               "n.media_id = e.media_id AND (n.created_at, n.id) > (e.created_at, e.id))")
    for (space_id,) in op.get_bind().execute(sa.text("SELECT id FROM embedding_spaces")):
        op.execute(f"DROP INDEX IF EXISTS ix_image_embeddings_space_{space_id}")
    op.drop_index("ix_image_embeddings_space_id", table_name="image_embeddings")
    op.drop_constraint("uq_image_embeddings_media_space", "image_embeddings", type_="unique")
    op.create_unique_constraint("image_embeddings_media_id_key", "image_embeddings", ["media_id"])
    op.alter_column("image_embeddings", "embedding", type_=Vector(512), postgresql_using="embedding::vector(512)")
    op.execute("CREATE INDEX ix_image_embeddings_hnsw ON image_embeddings "
               "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)")
    op.drop_column("image_embeddings", "space_id")
    op.drop_table("embedding_spaces")

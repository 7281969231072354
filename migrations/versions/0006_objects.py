"""Objects the detector found in each image: box, label, score, per-object classification, crop embedding.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "objects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("media_id", sa.String(32), sa.ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("box", JSONB, nullable=False),
        sa.Column("box_normalized", JSONB, nullable=False),
        sa.Column("detector", sa.Text, nullable=False),
        sa.Column("classification", JSONB),
        sa.Column("embedding", Vector()),
        sa.Column("embedding_model", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("ix_objects_media_id", "objects", ["media_id"])
    # `?object=dog` compares labels in any case
    op.create_index("ix_objects_label_lower", "objects", [sa.text("lower(label)")])


def downgrade() -> None:
    op.drop_index("ix_objects_label_lower", table_name="objects")
    op.drop_index("ix_objects_media_id", table_name="objects")
    op.drop_table("objects")

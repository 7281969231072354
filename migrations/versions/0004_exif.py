"""A photo's EXIF capture time, camera and GPS position on its media row, for search filters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("media", sa.Column("taken_at", sa.DateTime(timezone=True)))
    op.add_column("media", sa.Column("camera", sa.Text))
    op.add_column("media", sa.Column("latitude", sa.Float))
    op.add_column("media", sa.Column("longitude", sa.Float))
    op.create_index("ix_media_taken_at", "media", ["taken_at"])


def downgrade() -> None:
    op.drop_index("ix_media_taken_at", table_name="media")
    for name in ("longitude", "latitude", "camera", "taken_at"):
        op.drop_column("media", name)

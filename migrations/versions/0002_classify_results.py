"""Classify results per A/B variant, with the true label from feedback (`GET /v1/cascade/report`);
a stored classification may have no label (the cascade's decision policy sent the image to review).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "classify_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False, index=True),
        sa.Column("variant", sa.String(64), nullable=False, index=True),
        sa.Column("label", sa.Text),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("stage_calls", sa.Integer, nullable=False),
        sa.Column("escalated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("total_ms", sa.Float, nullable=False),
        sa.Column("trace", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("truth", sa.Text),
        sa.Column("feedback_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("decision IN ('answer', 'review')", name="ck_classify_results_decision"),
    )
    op.alter_column("classifications", "label", existing_type=sa.Text, nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM classifications WHERE label IS NULL")
    op.alter_column("classifications", "label", existing_type=sa.Text, nullable=False)
    op.drop_table("classify_results")

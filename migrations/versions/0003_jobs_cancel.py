"""Jobs can be cancelled (`POST /v1/jobs/{id}/cancel`): `cancelled` joins the allowed job states.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BEFORE = "state IN ('queued', 'running', 'retrying', 'done', 'failed')"
_AFTER = "state IN ('queued', 'running', 'retrying', 'done', 'failed', 'cancelled')"


def upgrade() -> None:
    op.drop_constraint("ck_jobs_state", "jobs", type_="check")
    op.create_check_constraint("ck_jobs_state", "jobs", _AFTER)


def downgrade() -> None:
    # a cancelled job never ran to an end: the nearest older state is `failed`
    op.execute("UPDATE jobs SET state = 'failed' WHERE state = 'cancelled'")
    op.drop_constraint("ck_jobs_state", "jobs", type_="check")
    op.create_check_constraint("ck_jobs_state", "jobs", _BEFORE)

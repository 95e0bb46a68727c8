"""Jobs an operator cancels: ``jobs.cancel_requested_at`` is when a cancel was asked for (by any server
process: the one running the job reads it at its next chunk or step and ends the job ``cancelled``).

Revision ID: 0014_job_cancel
Revises: 0013_jobs
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_job_cancel"
down_revision: str | Sequence[str] | None = "0013_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested_at")

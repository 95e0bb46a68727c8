"""Trust: who made each token, the requesting user of a release, suspended releases, one disclosure
with many accesses, disclosures flagged for privacy review.

Revision ID: 0009_trust
Revises: 0008_web_sessions
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_trust"
down_revision: str | Sequence[str] | None = "0008_web_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_user", sa.String(length=32), nullable=True))
    with op.batch_alter_table("release_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by_user", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("decided_by_user", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("suspended_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("privacy_review", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("review_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("corrects_disclosure_id", sa.String(length=32), nullable=True))
    op.create_table(
        "disclosure_accesses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("disclosure_id", sa.String(length=32), nullable=False),
        sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accessed_by", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["disclosure_id"],
            ["disclosures.id"],
            name=op.f("fk_disclosure_accesses_disclosure_id_disclosures"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_accesses")),
    )
    with op.batch_alter_table("disclosure_accesses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_disclosure_accesses_disclosure_id"), ["disclosure_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("disclosure_accesses")
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.drop_column("corrects_disclosure_id")
        batch_op.drop_column("review_reason")
        batch_op.drop_column("privacy_review")
    with op.batch_alter_table("release_requests", schema=None) as batch_op:
        for column in ("sent_at", "suspended_reason", "suspended_at", "decided_by_user", "requested_by_user"):
            batch_op.drop_column(column)
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("created_by_user")

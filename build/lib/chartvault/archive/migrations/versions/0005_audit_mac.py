"""Audit log as a keyed MAC chain: each entry's position and the id of the key that sealed it.

Existing entries keep their plain SHA-256 seal and get no key id: they are verified as
legacy entries, numbered in id order. The first keyed entry's MAC covers the last legacy
hash, so the legacy part cannot be recomputed without breaking the keyed chain after it.

Revision ID: 0005_audit_mac
Revises: 0004_access_release
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_audit_mac"
down_revision: str | Sequence[str] | None = "0004_access_release"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
    # One statement on both backends (SQLite >= 3.33 and PostgreSQL): positions in id order.
    op.execute(
        "UPDATE audit_events SET seq = numbered.position FROM "
        "(SELECT id, row_number() OVER (ORDER BY id) AS position FROM audit_events) AS numbered "
        "WHERE audit_events.id = numbered.id"
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(batch_op.f("ix_audit_events_seq"), ["seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_seq"))
        batch_op.drop_column("key_id")
        batch_op.drop_column("seq")

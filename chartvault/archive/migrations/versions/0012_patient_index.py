"""The patient index: where each patient row came from, sex, and a name key found with the DOB.

``patients.source`` is ``document`` (first met on a scanned document) or ``registration`` (the
hospital's registration list, ``chartvault patients import``). ``patients.name_key`` ("SURNAME|FIRST",
letters only) with ``dob`` finds a patient by name and birth date when the MRN cannot be read; it is
backfilled here from the names already in the catalog.

Revision ID: 0012_patient_index
Revises: 0011_renditions
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_patient_index"
# 0011_renditions is merged from another branch: the lead rechains this to it at merge.
down_revision: str | Sequence[str] | None = "0011_renditions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_patients = sa.table(
    "patients",
    sa.column("id", sa.String()),
    sa.column("name", sa.String()),
    sa.column("name_key", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_key", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("sex", sa.String(length=1), nullable=True))
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), server_default="document", nullable=False)
        )
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_patients_dob_name_key", ["dob", "name_key"], unique=False)
        batch_op.create_index("ix_patients_source", ["source"], unique=False)
    _backfill_name_keys()


def _backfill_name_keys() -> None:
    """A key only where the name says unambiguously which word is the surname ('LAST, FIRST')."""
    from chartvault.archive.patients import name_keys

    bind = op.get_bind()
    rows = bind.execute(sa.select(_patients.c.id, _patients.c.name).where(_patients.c.name.is_not(None)))
    for row_id, name in rows.all():
        keys = name_keys(name)
        if len(keys) == 1:
            bind.execute(_patients.update().where(_patients.c.id == row_id).values(name_key=next(iter(keys))))


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index("ix_patients_source")
        batch_op.drop_index("ix_patients_dob_name_key")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("source")
        batch_op.drop_column("sex")
        batch_op.drop_column("name_key")

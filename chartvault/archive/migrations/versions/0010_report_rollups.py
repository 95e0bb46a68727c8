"""Report rollups and when a document's file was received.

``documents.received_at`` copies the creation time of the document's file (backfilled here), so
received-to-searchable is read from one index of documents instead of a join with every file.

``report_rollup_days`` lists the UTC days whose scanning counts are rolled up into
``report_file_days`` (files, pages, refusals per day and station) and ``report_document_days``
(documents and pages per day, station and type). Only closed days are rolled up (see
``chartvault.reports.rollups``); the scanning report reads them instead of counting a
million rows, and counts the rest of its window live.

Revision ID: 0010_report_rollups
Revises: 0009_trust
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_report_rollups"
down_revision: str | Sequence[str] | None = "0009_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = sa.text(
    "UPDATE documents SET received_at = "
    "(SELECT batch_files.created_at FROM batch_files WHERE batch_files.id = documents.file_id)"
)


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(_BACKFILL)
    # received-to-searchable: answered from this index alone on PostgreSQL (no join, no heap)
    op.drop_index("ix_documents_indexed_at", table_name="documents")
    op.create_index(
        "ix_documents_indexed_at", "documents", ["indexed_at"], postgresql_include=["received_at"]
    )
    # corrections made after a day was rolled up adjust its counts by type
    op.create_index(
        "ix_classification_corrections_corrected_at", "classification_corrections", ["corrected_at"]
    )
    op.create_table(
        "report_rollup_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_report_rollup_days")),
    )
    op.create_table(
        "report_file_days",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("station", sa.String(length=128), nullable=True),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("pages", sa.BigInteger(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["day"], ["report_rollup_days.day"], name=op.f("fk_report_file_days_day_report_rollup_days")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_file_days")),
    )
    op.create_index(op.f("ix_report_file_days_day"), "report_file_days", ["day"])
    op.create_table(
        "report_document_days",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("station", sa.String(length=128), nullable=True),
        sa.Column("doc_type", sa.String(length=64), nullable=True),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("pages", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["day"], ["report_rollup_days.day"], name=op.f("fk_report_document_days_day_report_rollup_days")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_document_days")),
    )
    op.create_index(op.f("ix_report_document_days_day"), "report_document_days", ["day"])


def downgrade() -> None:
    op.drop_index(op.f("ix_report_document_days_day"), table_name="report_document_days")
    op.drop_table("report_document_days")
    op.drop_index(op.f("ix_report_file_days_day"), table_name="report_file_days")
    op.drop_table("report_file_days")
    op.drop_table("report_rollup_days")
    op.drop_index("ix_classification_corrections_corrected_at", table_name="classification_corrections")
    op.drop_index("ix_documents_indexed_at", table_name="documents")
    op.create_index("ix_documents_indexed_at", "documents", ["indexed_at"], postgresql_include=["file_id"])
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("received_at")

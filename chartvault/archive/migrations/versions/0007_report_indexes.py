"""Catalog indexes for the management reports (chartvault.reports).

Each serves one report query as an index range, and on PostgreSQL carries the columns
that query reads (INCLUDE) so it is answered from the index alone (index-only scan),
never from a million heap pages. SQLite has no INCLUDE: there the same indexes are plain
(or partial) ones on the key columns.

Revision ID: 0007_report_indexes
Revises: 0006_users
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_report_indexes"
down_revision: str | Sequence[str] | None = "0006_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("review_status = 'pending'")
_UNLINKED = sa.text("patient_id IS NULL")
_WITH_REASON = sa.text("reason_code IS NOT NULL")


def upgrade() -> None:
    # scanning: files received per period, station and state; refusals and corrections by reason code
    op.create_index(
        "ix_batch_files_created_at",
        "batch_files",
        ["created_at"],
        postgresql_include=["batch_id", "status", "page_count", "reason_code"],
    )
    op.create_index(
        "ix_batch_files_reason_code",
        "batch_files",
        ["reason_code"],
        postgresql_where=_WITH_REASON,
        sqlite_where=_WITH_REASON,
    )
    # scanning: documents made per period, by station and type
    op.create_index(
        "ix_documents_created_at",
        "documents",
        ["created_at"],
        postgresql_include=["batch_id", "doc_type", "page_count", "blank_pages", "file_id"],
    )
    # backlog: received-to-searchable per period made searchable
    op.create_index("ix_documents_indexed_at", "documents", ["indexed_at"], postgresql_include=["file_id"])
    # quality: the review queue by reason and age; archived documents linked to no patient
    op.create_index(
        "ix_documents_review_pending",
        "documents",
        ["created_at"],
        postgresql_include=["status", "review_reasons"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_index(
        "ix_documents_unlinked",
        "documents",
        ["status", "review_status", "mrn"],
        postgresql_where=_UNLINKED,
        sqlite_where=_UNLINKED,
    )
    # retention: end of retention by rule (replaces the plain retain_until index)
    op.drop_index("ix_documents_retain_until", table_name="documents")
    op.create_index(
        "ix_documents_retain_until",
        "documents",
        ["retain_until"],
        postgresql_include=["retention_rule", "status"],
    )
    # releases: requests received and decided per period
    op.create_index("ix_release_requests_received_at", "release_requests", ["received_at"])
    op.create_index("ix_release_requests_decided_at", "release_requests", ["decided_at"])


def downgrade() -> None:
    op.drop_index("ix_release_requests_decided_at", table_name="release_requests")
    op.drop_index("ix_release_requests_received_at", table_name="release_requests")
    op.drop_index("ix_documents_retain_until", table_name="documents")
    op.create_index("ix_documents_retain_until", "documents", ["retain_until"])
    op.drop_index("ix_documents_unlinked", table_name="documents")
    op.drop_index("ix_documents_review_pending", table_name="documents")
    op.drop_index("ix_documents_indexed_at", table_name="documents")
    op.drop_index("ix_documents_created_at", table_name="documents")
    op.drop_index("ix_batch_files_reason_code", table_name="batch_files")
    op.drop_index("ix_batch_files_created_at", table_name="batch_files")

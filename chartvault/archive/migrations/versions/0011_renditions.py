"""Searchable PDF renditions beside the originals, and what placing a page's text layer needs.

``documents.rendition_*`` name the rendition object (its key, version, sha256 and size, stored under
the original's retention and holds) and its form: ``pdf`` (built from the page images and word boxes)
or ``original`` (a born-digital PDF is its own rendition: no second object). NULL: not built yet
(``resume`` builds it). ``pages.deskew_deg`` is the turn preprocessing gave a page before its words were
read, so the words can be placed back over the untouched scan.

Revision ID: 0011_renditions
Revises: 0010_report_rollups
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_renditions"
down_revision: str | Sequence[str] | None = "0010_report_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rendition_form", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("rendition_key", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("rendition_version", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("rendition_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("rendition_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("rendition_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deskew_deg", sa.Float(), nullable=True))
    # `resume` and `check` look for documents whose rendition is missing (rendition_form IS NULL).
    op.create_index("ix_documents_rendition_form", "documents", ["rendition_form"])


def downgrade() -> None:
    op.drop_index("ix_documents_rendition_form", table_name="documents")
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.drop_column("deskew_deg")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        for column in ("rendition_at", "rendition_size", "rendition_sha256", "rendition_version"):
            batch_op.drop_column(column)
        batch_op.drop_column("rendition_key")
        batch_op.drop_column("rendition_form")

"""Retention per document, legal holds, disposition tombstones, review queue, page blank/barcodes.

Revision ID: 0003_retention_holds
Revises: 0002_audit_events
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_retention_holds"
down_revision: str | Sequence[str] | None = "0002_audit_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dispositions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("executed_by", sa.String(length=128), nullable=False),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("witness", sa.String(length=128), nullable=True),
        sa.Column("method", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("document_count", sa.Integer(), nullable=False),
        sa.Column("certificate_key", sa.String(length=512), nullable=True),
        sa.Column("certificate_version", sa.String(length=256), nullable=True),
        sa.Column("certificate_sha256", sa.String(length=64), nullable=True),
        sa.Column("certificate_size", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispositions")),
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("matter", sa.String(length=256), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_value", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("placed_by", sa.String(length=128), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_by", sa.String(length=128), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legal_holds_status"), ["status"], unique=False)

    op.create_table(
        "classification_corrections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("old_type", sa.String(length=64), nullable=True),
        sa.Column("new_type", sa.String(length=64), nullable=False),
        sa.Column("corrected_by", sa.String(length=128), nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_classification_corrections_document_id_documents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classification_corrections")),
    )
    with op.batch_alter_table("classification_corrections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_classification_corrections_document_id"), ["document_id"], unique=False
        )

    op.create_table(
        "legal_hold_items",
        sa.Column("hold_id", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_legal_hold_items_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["legal_holds.id"], name=op.f("fk_legal_hold_items_hold_id_legal_holds")
        ),
        sa.PrimaryKeyConstraint("hold_id", "document_id", name=op.f("pk_legal_hold_items")),
    )
    with op.batch_alter_table("legal_hold_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legal_hold_items_document_id"), ["document_id"], unique=False)

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("classification_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("icd_codes", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("blank_pages", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("review_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("review_reasons", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("retain_until", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("retention_rule", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("retention_computed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("object_retain_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("disposition_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_documents_disposition_id"), ["disposition_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_documents_retain_until"), ["retain_until"], unique=False)
        batch_op.create_index(batch_op.f("ix_documents_review_status"), ["review_status"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_documents_disposition_id_dispositions"), "dispositions", ["disposition_id"], ["id"]
        )

    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("blank", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("barcodes", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("flags", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.drop_column("flags")
        batch_op.drop_column("barcodes")
        batch_op.drop_column("blank")

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_documents_disposition_id_dispositions"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_documents_review_status"))
        batch_op.drop_index(batch_op.f("ix_documents_retain_until"))
        batch_op.drop_index(batch_op.f("ix_documents_disposition_id"))
        batch_op.drop_column("disposition_id")
        batch_op.drop_column("disposed_at")
        batch_op.drop_column("object_retain_until")
        batch_op.drop_column("retention_computed_at")
        batch_op.drop_column("retention_rule")
        batch_op.drop_column("retain_until")
        batch_op.drop_column("review_reasons")
        batch_op.drop_column("review_status")
        batch_op.drop_column("blank_pages")
        batch_op.drop_column("icd_codes")
        batch_op.drop_column("classification_source")

    with op.batch_alter_table("legal_hold_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legal_hold_items_document_id"))

    op.drop_table("legal_hold_items")
    with op.batch_alter_table("classification_corrections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_classification_corrections_document_id"))

    op.drop_table("classification_corrections")
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legal_holds_status"))

    op.drop_table("legal_holds")
    op.drop_table("dispositions")

"""API tokens, release requests, authorizations and disclosures.

Revision ID: 0004_access_release
Revises: 0003_retention_holds
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_access_release"
down_revision: str | Sequence[str] | None = "0003_retention_holds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=128), nullable=True))
        batch_op.create_index(batch_op.f("ix_batches_created_by"), ["created_by"], unique=False)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("vendor", sa.String(length=128), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_role"), ["role"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_tokens_vendor"), ["vendor"], unique=False)

    op.create_table(
        "release_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("mrn", sa.String(length=64), nullable=False),
        sa.Column("requester_type", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=256), nullable=False),
        sa.Column("recipient_address", sa.Text(), nullable=True),
        sa.Column("purpose", sa.String(length=512), nullable=False),
        sa.Column("document_ids", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("criteria", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("approved_document_ids", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("vendor", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("extended", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("package_key", sa.String(length=512), nullable=True),
        sa.Column("package_version", sa.String(length=256), nullable=True),
        sa.Column("package_sha256", sa.String(length=64), nullable=True),
        sa.Column("package_size", sa.BigInteger(), nullable=True),
        sa.Column("package_pages", sa.Integer(), nullable=True),
        sa.Column("fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_requests")),
    )
    with op.batch_alter_table("release_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_release_requests_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_release_requests_mrn"), ["mrn"], unique=False)
        batch_op.create_index(batch_op.f("ix_release_requests_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_release_requests_vendor"), ["vendor"], unique=False)

    op.create_table(
        "disclosures",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("release_id", sa.String(length=32), nullable=True),
        sa.Column("mrn", sa.String(length=64), nullable=False),
        sa.Column("disclosed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipient", sa.String(length=256), nullable=False),
        sa.Column("recipient_address", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=512), nullable=False),
        sa.Column("disclosed_by", sa.String(length=128), nullable=False),
        sa.Column("vendor", sa.String(length=128), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("document_ids", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("accountable", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("exemption_basis", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"], ["release_requests.id"], name=op.f("fk_disclosures_release_id_release_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosures")),
    )
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disclosures_disclosed_at"), ["disclosed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_disclosures_mrn"), ["mrn"], unique=False)
        batch_op.create_index(batch_op.f("ix_disclosures_release_id"), ["release_id"], unique=False)

    op.create_table(
        "release_authorizations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("release_id", sa.String(length=32), nullable=False),
        sa.Column("image_key", sa.String(length=512), nullable=True),
        sa.Column("image_version", sa.String(length=256), nullable=True),
        sa.Column("image_sha256", sa.String(length=64), nullable=True),
        sa.Column("image_size", sa.BigInteger(), nullable=True),
        sa.Column("image_mime", sa.String(length=64), nullable=True),
        sa.Column("elements", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("covers_psychotherapy_notes", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("covers_substance_use", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["release_requests.id"],
            name=op.f("fk_release_authorizations_release_id_release_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_authorizations")),
    )
    with op.batch_alter_table("release_authorizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_release_authorizations_release_id"), ["release_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batches_created_by"))
        batch_op.drop_column("created_by")
    with op.batch_alter_table("release_authorizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_authorizations_release_id"))

    op.drop_table("release_authorizations")
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disclosures_release_id"))
        batch_op.drop_index(batch_op.f("ix_disclosures_mrn"))
        batch_op.drop_index(batch_op.f("ix_disclosures_disclosed_at"))

    op.drop_table("disclosures")
    with op.batch_alter_table("release_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_requests_vendor"))
        batch_op.drop_index(batch_op.f("ix_release_requests_status"))
        batch_op.drop_index(batch_op.f("ix_release_requests_mrn"))
        batch_op.drop_index(batch_op.f("ix_release_requests_due_at"))

    op.drop_table("release_requests")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_vendor"))
        batch_op.drop_index(batch_op.f("ix_api_tokens_role"))

    op.drop_table("api_tokens")

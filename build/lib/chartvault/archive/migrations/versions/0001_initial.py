"""Initial catalog schema.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01

batch_files.duplicate_of and documents.file_id reference each other, so the former
key is added once both tables exist (on SQLite, batch mode rebuilds the then empty
table to add it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ_DATETIME = sa.DateTime(timezone=True)


def _index(table: str, *columns: str, name: str | None = None) -> None:
    op.create_index(name or op.f(f"ix_{table}_{columns[0]}"), table, list(columns), unique=False)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("station", sa.String(length=128), nullable=True),
        sa.Column("operator", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ_DATETIME, nullable=False),
        sa.Column("updated_at", TZ_DATETIME, nullable=False),
        sa.Column("completed_at", TZ_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    _index("batches", "status")

    op.create_table(
        "index_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("created_at", TZ_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_tasks")),
    )
    _index("index_tasks", "document_id")

    op.create_table(
        "patients",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("mrn", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("dob", sa.Date(), nullable=True),
        sa.Column("created_at", TZ_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("mrn", name=op.f("uq_patients_mrn")),
    )

    op.create_table(
        "batch_files",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("original_name", sa.String(length=1024), nullable=False),
        sa.Column("source_path", sa.String(length=4096), nullable=True),
        sa.Column("staged_path", sa.String(length=1024), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("expected_pages", sa.Integer(), nullable=True),
        sa.Column("mrn_hint", sa.String(length=64), nullable=True),
        sa.Column("doc_type_hint", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("duplicate_of", sa.String(length=32), nullable=True),  # FK added below
        sa.Column("created_at", TZ_DATETIME, nullable=False),
        sa.Column("updated_at", TZ_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_batch_files_batch_id_batches")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_files")),
        sa.UniqueConstraint("batch_id", "seq", name=op.f("uq_batch_files_batch_id_seq")),
    )
    _index("batch_files", "batch_id")
    _index("batch_files", "sha256")
    _index("batch_files", "status")

    op.create_table(
        "documents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("file_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("first_page", sa.Integer(), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mime", sa.String(length=64), nullable=False),
        sa.Column("object_key", sa.String(length=512), nullable=True),
        sa.Column("object_version", sa.String(length=256), nullable=True),
        sa.Column("doc_type", sa.String(length=64), nullable=True),
        sa.Column("doc_type_confidence", sa.Float(), nullable=True),
        sa.Column("mrn", sa.String(length=64), nullable=True),
        sa.Column("patient_name", sa.String(length=256), nullable=True),
        sa.Column("dob", sa.Date(), nullable=True),
        sa.Column("date_of_service", sa.Date(), nullable=True),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("encounter", sa.String(length=64), nullable=True),
        sa.Column("identifier_confidence", sa.JSON(), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", TZ_DATETIME, nullable=False),
        sa.Column("archived_at", TZ_DATETIME, nullable=True),
        sa.Column("indexed_at", TZ_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_documents_batch_id_batches")),
        sa.ForeignKeyConstraint(
            ["file_id"], ["batch_files.id"], name=op.f("fk_documents_file_id_batch_files")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_documents_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("file_id", "first_page", name=op.f("uq_documents_file_id_first_page")),
    )
    _index("documents", "batch_id")
    _index("documents", "doc_type")
    _index("documents", "file_id")
    _index("documents", "mrn")
    _index("documents", "mrn", "date_of_service", name="ix_documents_mrn_dos")
    _index("documents", "patient_id")
    _index("documents", "sha256")
    _index("documents", "status")

    with op.batch_alter_table("batch_files") as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_batch_files_duplicate_of_documents"), "documents", ["duplicate_of"], ["id"]
        )

    op.create_table(
        "hotfolder_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("folder", sa.String(length=4096), nullable=False),
        sa.Column("claim_name", sa.String(length=1024), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=True),
        sa.Column("file_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", TZ_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_hotfolder_entries_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["batch_files.id"], name=op.f("fk_hotfolder_entries_file_id_batch_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotfolder_entries")),
        sa.UniqueConstraint("folder", "claim_name", name=op.f("uq_hotfolder_entries_folder_claim_name")),
    )

    op.create_table(
        "pages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("file_id", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=True),
        sa.Column("page_no", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("rotation", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("words", sa.JSON(), nullable=True),
        sa.Column("identifiers", sa.JSON(), nullable=True),
        sa.Column("ocr_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", TZ_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_pages_document_id_documents")
        ),
        sa.ForeignKeyConstraint(["file_id"], ["batch_files.id"], name=op.f("fk_pages_file_id_batch_files")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
        sa.UniqueConstraint("file_id", "page_no", name=op.f("uq_pages_file_id_page_no")),
    )
    _index("pages", "document_id")
    _index("pages", "file_id")
    _index("pages", "status")


def downgrade() -> None:
    with op.batch_alter_table("batch_files") as batch_op:
        batch_op.drop_constraint(op.f("fk_batch_files_duplicate_of_documents"), type_="foreignkey")
    for table in (
        "pages",
        "hotfolder_entries",
        "documents",
        "batch_files",
        "patients",
        "index_tasks",
        "batches",
    ):
        op.drop_table(table)  # its indexes go with it

"""The catalog schema: the system of record.

State lives here so that every pipeline stage can be resumed after a crash:
a page's ``status`` says which stage it has passed, and each stage checks it
before acting.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no timezone type and hands back naive values while PostgreSQL hands
    back aware ones; without this, code comparing with ``utcnow()`` works on one
    catalog and raises TypeError on the other.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column; use an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A Python None is stored as SQL NULL (plain JSON stores the JSON text 'null', which
# ``column.is_(None)`` does not find).
JSONType = JSON(none_as_null=True)

# Named constraints, so later migrations (SQLite batch mode in particular) can address them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        datetime: UTCDateTime,
    }


# Batch status
BATCH_RECEIVING = "receiving"
BATCH_PROCESSING = "processing"
BATCH_COMPLETE = "complete"  # every file archived (or a recognised duplicate)
BATCH_COMPLETE_WITH_ERRORS = "complete_with_errors"  # some files quarantined or failed
BATCH_STATUSES = (BATCH_RECEIVING, BATCH_PROCESSING, BATCH_COMPLETE, BATCH_COMPLETE_WITH_ERRORS)

# File status
FILE_RECEIVED = "received"
FILE_PROCESSING = "processing"
FILE_ARCHIVED = "archived"
FILE_DUPLICATE = "duplicate"  # same sha256 as an archived file: linked, not stored twice
FILE_QUARANTINED = "quarantined"  # refused input, kept aside with the reason
FILE_FAILED = "failed"  # accepted but processing failed; kept, can be retried
FILE_DONE_STATES = (FILE_ARCHIVED, FILE_DUPLICATE, FILE_QUARANTINED, FILE_FAILED)

# Document status beyond the page states
DOC_DISPOSED = "disposed"  # tombstone: content destroyed by disposition, row kept
DOC_SUPERSEDED = "superseded"  # replaced by corrected documents (misfile correction)

# Renditions (documents.rendition_form)
RENDITION_PDF = "pdf"  # a searchable PDF built from the page images and word boxes, its own object
RENDITION_ORIGINAL = "original"  # a born-digital PDF: the original is the rendition

# Review queue
REVIEW_PENDING = "pending"
REVIEW_RESOLVED = "resolved"
REVIEW_MISFILE = "possible_misfile"  # a review reason code: pages that may be another patient's
# A review reason code: the MRN a manifest or cover sheet gave fails the facility's check digit (a typo);
# it is not applied, and the document is linked to no one until a person confirms the MRN.
REVIEW_MRN_CHECK_DIGIT = "mrn_check_digit_failed"

# Where a patient row came from: first met on a document, or the hospital's registration list
PATIENT_SOURCE_DOCUMENT = "document"
PATIENT_SOURCE_REGISTRATION = "registration"

# Legal holds
HOLD_ACTIVE = "active"
HOLD_RELEASED = "released"
HOLD_SCOPES = ("patient", "encounter", "documents")

# Page status, in pipeline order
PAGE_RECEIVED = "received"
PAGE_OCR = "ocr"
PAGE_CLASSIFIED = "classified"
PAGE_ARCHIVED = "archived"
PAGE_INDEXED = "indexed"
PAGE_FAILED = "failed"
PAGE_ORDER = (PAGE_RECEIVED, PAGE_OCR, PAGE_CLASSIFIED, PAGE_ARCHIVED, PAGE_INDEXED)


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    source: Mapped[str] = mapped_column(String(16))  # cli | api | hotfolder
    station: Mapped[str | None] = mapped_column(String(128))
    operator: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str | None] = mapped_column(String(128), index=True)  # actor, e.g. token:<id>
    status: Mapped[str] = mapped_column(String(32), default=BATCH_RECEIVING, index=True)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Problems to be looked at by a person, e.g. page-count mismatches against the manifest.
    flags: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    files: Mapped[list[BatchFile]] = relationship(
        back_populates="batch", order_by="BatchFile.seq", cascade="all, delete-orphan"
    )


class BatchFile(Base):
    """One input file of a batch, whatever became of it."""

    __tablename__ = "batch_files"
    __table_args__ = (
        UniqueConstraint("batch_id", "seq"),
        # Report indexes. Their covering (INCLUDE) and partial (WHERE) forms are the migration's
        # (0007_report_indexes): declaring them here would load both dialects at every import.
        Index(
            "ix_batch_files_created_at",
            "created_at",
        ),
        Index(
            "ix_batch_files_reason_code",
            "reason_code",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    # As given by the scanner or uploader. May contain PHI: never logged.
    original_name: Mapped[str] = mapped_column(String(1024))
    source_path: Mapped[str | None] = mapped_column(String(4096))  # hot-folder / CLI origin
    staged_path: Mapped[str | None] = mapped_column(String(1024))  # relative to the data folder
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str | None] = mapped_column(String(16))
    page_count: Mapped[int | None] = mapped_column(Integer)
    expected_pages: Mapped[int | None] = mapped_column(Integer)  # from the manifest
    mrn_hint: Mapped[str | None] = mapped_column(String(64))
    doc_type_hint: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default=FILE_RECEIVED, index=True)
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    # documents.file_id points back here: the cycle is broken by adding this key after both tables exist.
    duplicate_of: Mapped[str | None] = mapped_column(ForeignKey("documents.id", use_alter=True))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    batch: Mapped[Batch] = relationship(back_populates="files")
    pages: Mapped[list[Page]] = relationship(
        back_populates="file", order_by="Page.page_no", cascade="all, delete-orphan"
    )
    documents: Mapped[list[Document]] = relationship(back_populates="file", foreign_keys="Document.file_id")


class Patient(Base):
    """The patient index (chartvault.archive.patients): one row per MRN, from documents or registration."""

    __tablename__ = "patients"
    # Finding a patient by name and DOB when the MRN could not be read (0012_patient_index).
    # Whether a registration list was loaded is one index probe (ix_patients_source).
    __table_args__ = (
        Index("ix_patients_dob_name_key", "dob", "name_key"),
        Index("ix_patients_source", "source"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    mrn: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(256))  # "LAST, FIRST M"
    dob: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # "SURNAME|FIRST": letters only, no middle names (chartvault.archive.patients.name_key)
    name_key: Mapped[str | None] = mapped_column(String(256))
    sex: Mapped[str | None] = mapped_column(String(1))
    source: Mapped[str] = mapped_column(
        String(16), default=PATIENT_SOURCE_DOCUMENT, server_default=PATIENT_SOURCE_DOCUMENT
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Document(Base):
    """An archived document: one original object plus its pages, type and identifiers."""

    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_mrn_dos", "mrn", "date_of_service"),
        UniqueConstraint("file_id", "first_page"),
        # Report indexes. Their covering (INCLUDE) and partial (WHERE) forms are the migration's
        # (0007_report_indexes): declaring them here would load both dialects at every import.
        Index(
            "ix_documents_created_at",
            "created_at",
        ),
        Index("ix_documents_indexed_at", "indexed_at"),
        Index(
            "ix_documents_review_pending",
            "created_at",
        ),
        Index(
            "ix_documents_unlinked",
            "status",
            "review_status",
            "mrn",
        ),
        Index("ix_documents_retain_until", "retain_until"),
        Index("ix_documents_rendition_form", "rendition_form"),  # resume and check find missing ones
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    file_id: Mapped[str] = mapped_column(ForeignKey("batch_files.id"), index=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), index=True)
    first_page: Mapped[int] = mapped_column(Integer, default=1)
    page_count: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # of the original file
    size: Mapped[int] = mapped_column(BigInteger)
    mime: Mapped[str] = mapped_column(String(64))
    object_key: Mapped[str | None] = mapped_column(String(512))
    object_version: Mapped[str | None] = mapped_column(String(256))
    doc_type: Mapped[str | None] = mapped_column(String(64), index=True)
    doc_type_confidence: Mapped[float | None] = mapped_column(Float)
    mrn: Mapped[str | None] = mapped_column(String(64), index=True)
    patient_name: Mapped[str | None] = mapped_column(String(256))
    dob: Mapped[date | None] = mapped_column(Date)
    date_of_service: Mapped[date | None] = mapped_column(Date)
    account: Mapped[str | None] = mapped_column(String(64))
    encounter: Mapped[str | None] = mapped_column(String(64))
    # Confidence of each identifier, e.g. {"mrn": 0.98, "dob": 0.9}
    identifier_confidence: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id"), index=True)
    status: Mapped[str] = mapped_column(String(32), default=PAGE_CLASSIFIED, index=True)
    # Where the type came from: model | rules | cover_sheet | hint | staff
    classification_source: Mapped[str | None] = mapped_column(String(16))
    icd_codes: Mapped[list[Any] | None] = mapped_column(JSONType)
    blank_pages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Review queue: REVIEW_PENDING while a person must look (low confidence, possible misfile).
    review_status: Mapped[str | None] = mapped_column(String(16), index=True)
    review_reasons: Mapped[list[Any] | None] = mapped_column(JSONType)
    # Retention: the date the rules give (None with a rule id = permanent) and the rule that won.
    retain_until: Mapped[date | None] = mapped_column(Date)  # indexed in __table_args__
    retention_rule: Mapped[str | None] = mapped_column(String(128))
    retention_computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The retain-until last applied to the object version in the store (only ever extended).
    object_retain_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Tombstone: set when disposition destroyed the content; the row itself is kept.
    disposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disposition_id: Mapped[str | None] = mapped_column(ForeignKey("dispositions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When its file was received (the file's created_at): received-to-searchable without a join.
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The searchable PDF rendition (migration 0011): RENDITION_PDF names its own locked object;
    # RENDITION_ORIGINAL, a born-digital PDF, is its own rendition; None: not built yet.
    rendition_form: Mapped[str | None] = mapped_column(String(16))
    rendition_key: Mapped[str | None] = mapped_column(String(512))
    rendition_version: Mapped[str | None] = mapped_column(String(256))
    rendition_sha256: Mapped[str | None] = mapped_column(String(64))
    rendition_size: Mapped[int | None] = mapped_column(BigInteger)
    rendition_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    file: Mapped[BatchFile] = relationship(back_populates="documents", foreign_keys=[file_id])
    pages: Mapped[list[Page]] = relationship(back_populates="document", order_by="Page.page_no")
    patient: Mapped[Patient | None] = relationship()


class Page(Base):
    __tablename__ = "pages"
    __table_args__ = (UniqueConstraint("file_id", "page_no"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    file_id: Mapped[str] = mapped_column(ForeignKey("batch_files.id"), index=True)
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id"), index=True)
    page_no: Mapped[int] = mapped_column(Integer)  # 1-based within the file
    status: Mapped[str] = mapped_column(String(32), default=PAGE_RECEIVED, index=True)
    text: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(String(16))  # ocr | text_layer
    rotation: Mapped[int] = mapped_column(Integer, default=0)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # Word boxes as [[text, conf, left, top, width, height], ...]
    words: Mapped[list[Any] | None] = mapped_column(JSONType)
    identifiers: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    ocr_ms: Mapped[int | None] = mapped_column(Integer)
    # Degrees counter-clockwise the page was turned (deskewed) before its words were read (0011).
    deskew_deg: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # Back of a one-sided sheet: kept in the archive, left out of the text and counts staff see.
    blank: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Barcodes read on the page: [{"format": "Code128", "text": "..."}]
    barcodes: Mapped[list[Any] | None] = mapped_column(JSONType)
    # Problems with this page, e.g. [{"code": "possible_misfile", ...}] (ids only, never values)
    flags: Mapped[list[Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    file: Mapped[BatchFile] = relationship(back_populates="pages")
    document: Mapped[Document | None] = relationship(back_populates="pages")


class IndexTask(Base):
    """Work for the single index writer. Rows are deleted once the index has committed them."""

    __tablename__ = "index_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(String(32), index=True)
    op: Mapped[str] = mapped_column(String(8), default="upsert")  # upsert | delete
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HotFolderEntry(Base):
    """A file the hot folder has taken, so that a restart never takes it twice."""

    __tablename__ = "hotfolder_entries"
    __table_args__ = (UniqueConstraint("folder", "claim_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    folder: Mapped[str] = mapped_column(String(4096))
    claim_name: Mapped[str] = mapped_column(String(1024))  # its name inside .processing/
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"))
    file_id: Mapped[str | None] = mapped_column(ForeignKey("batch_files.id"))
    state: Mapped[str] = mapped_column(String(16), default="claimed")  # claimed | done | failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEvent(Base):
    """One access or action: who, what, which ids, outcome. Never names or page text.

    Append-only by convention here; the chain that makes tampering evident (``seq``,
    ``prev_hash`` -> ``hash``, an HMAC under the key ``key_id``; a plain SHA-256 for
    legacy entries, whose ``key_id`` is NULL) is filled in by ``chartvault.archive.audit``.
    ``seq`` is the entry's position in the chain: ids may have gaps, positions may not.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, index=True, unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))  # e.g. "cli:root", "api:anonymous"
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. document.read
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    detail: Mapped[dict[str, Any] | None] = mapped_column()
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))


class LegalHold(Base):
    """A hold on a patient, an encounter or a set of documents: nothing under it is disposed of.

    The S3 legal hold flag can be lifted by anyone with the permission and has no
    owner, so the catalog row (who placed it, for which matter, who released it) is
    the authority; disposition checks these rows, not only the flag.
    """

    __tablename__ = "legal_holds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    matter: Mapped[str] = mapped_column(String(256))
    scope: Mapped[str] = mapped_column(String(16))  # patient | encounter | documents
    scope_value: Mapped[str | None] = mapped_column(String(128))  # the MRN or encounter number
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=HOLD_ACTIVE, index=True)
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    released_by: Mapped[str | None] = mapped_column(String(128))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    release_reason: Mapped[str | None] = mapped_column(Text)

    items: Mapped[list[LegalHoldItem]] = relationship(back_populates="hold", cascade="all, delete-orphan")


class LegalHoldItem(Base):
    """One document under a hold; ``applied_at`` says the store's hold flag was set on its version."""

    __tablename__ = "legal_hold_items"

    hold_id: Mapped[str] = mapped_column(ForeignKey("legal_holds.id"), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True, index=True)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    hold: Mapped[LegalHold] = relationship(back_populates="items")


class Disposition(Base):
    """One executed disposition run; its certificate of destruction is itself archived."""

    __tablename__ = "dispositions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    executed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    executed_by: Mapped[str] = mapped_column(String(128))
    approved_by: Mapped[str | None] = mapped_column(String(128))
    witness: Mapped[str | None] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | complete | partial
    document_count: Mapped[int] = mapped_column(Integer, default=0)
    certificate_key: Mapped[str | None] = mapped_column(String(512))
    certificate_version: Mapped[str | None] = mapped_column(String(256))
    certificate_sha256: Mapped[str | None] = mapped_column(String(64))
    certificate_size: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class ClassificationCorrection(Base):
    """A person's correction of a document's type: recorded, and fed to the next training."""

    __tablename__ = "classification_corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    old_type: Mapped[str | None] = mapped_column(String(64))
    new_type: Mapped[str] = mapped_column(String(64))
    corrected_by: Mapped[str] = mapped_column(String(128))
    corrected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


# -- access and release of information ---------------------------------------------------------------

ROLES = ("scanner", "staff", "him_admin", "vendor", "admin")


class User(Base):
    """A named person (or a scanning station's account): the one who signs in and holds tokens.

    Separation of duties compares users, never tokens: one person's second token is still that person.
    The password is stored only as an argon2 hash; an account without one signs in with tokens only.
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), index=True)
    vendor: Mapped[str | None] = mapped_column(String(128), index=True)  # the organisation of a vendor user
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """An API token: shown once, stored as a sha256 of its secret, with expiry and revocation."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)  # public part
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), index=True)
    vendor: Mapped[str | None] = mapped_column(String(128), index=True)  # the organisation of a vendor token
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)  # whose token it is
    # The user whose token (or CLI session) made this one: a token made by a release's requester may
    # not decide it. None for tokens made at the console or before users existed.
    created_by_user: Mapped[str | None] = mapped_column(String(32))


class WebSession(Base):
    """A signed-in browser: the cookie carries a random secret, the catalog only its sha256.

    Rows are kept after the session ends (``ended_at`` and why), so who was signed in when stays
    answerable; the secret itself cannot be recovered from a stolen catalog.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)  # named in the audit log
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # absolute end, however active
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    end_reason: Mapped[str | None] = mapped_column(String(16))  # signed_out | idle | expired | disabled


RELEASE_STATES = ("requested", "in_review", "approved", "denied", "fulfilled", "closed", "expired")
REQUESTER_TYPES = ("patient", "patient_directed", "third_party_authorized", "legal_process")


class ReleaseRequest(Base):
    """A request to release a patient's documents: who asks, for whom, why, which documents, and its state."""

    __tablename__ = "release_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    mrn: Mapped[str] = mapped_column(String(64), index=True)
    requester_type: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(256))
    recipient_address: Mapped[str | None] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(512))
    # Explicit document ids, or criteria {"from", "to", "types"} resolved to ids at approval.
    document_ids: Mapped[list[Any] | None] = mapped_column(JSONType)
    criteria: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    approved_document_ids: Mapped[list[Any] | None] = mapped_column(JSONType)
    vendor: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    extended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    extension_reason: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(128))  # actor (token id) that made the request
    requested_by_user: Mapped[str | None] = mapped_column(String(32))  # the person behind that actor
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_by_user: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # vendor may fetch until
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    package_key: Mapped[str | None] = mapped_column(String(512))
    package_version: Mapped[str | None] = mapped_column(String(256))
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    package_size: Mapped[int | None] = mapped_column(BigInteger)
    package_pages: Mapped[int | None] = mapped_column(Integer)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When staff recorded the package as sent to the recipient by other means (mail, portal).
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A document of the approved package was refiled or split: no fetch until rebuilt and re-approved.
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    suspended_reason: Mapped[str | None] = mapped_column(Text)


class ReleaseAuthorization(Base):
    """The signed authorization behind a release: its scanned image plus the 164.508(c) elements."""

    __tablename__ = "release_authorizations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    release_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id"), index=True)
    image_key: Mapped[str | None] = mapped_column(String(512))
    image_version: Mapped[str | None] = mapped_column(String(256))
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    image_size: Mapped[int | None] = mapped_column(BigInteger)
    image_mime: Mapped[str | None] = mapped_column(String(64))
    # {"description_of_phi", "disclosing_party", "recipient", "purposes", "expires_at"|"expiration_event",
    #  "signed_at", "signer", "representative_authority",
    #  "statements": {"revoke", "conditioning", "redisclosure"}}
    elements: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    expires_on: Mapped[date | None] = mapped_column(Date)
    covers_psychotherapy_notes: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    covers_substance_use: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Disclosure(Base):
    """One disclosure of PHI (recorded before the first byte leaves), for the accounting of disclosures."""

    __tablename__ = "disclosures"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    release_id: Mapped[str | None] = mapped_column(ForeignKey("release_requests.id"), index=True)
    mrn: Mapped[str] = mapped_column(String(64), index=True)
    disclosed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    recipient: Mapped[str] = mapped_column(String(256))
    recipient_address: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)  # brief description of the PHI (types, dates, pages)
    purpose: Mapped[str] = mapped_column(String(512))
    disclosed_by: Mapped[str] = mapped_column(String(128))  # actor, e.g. the vendor's token
    vendor: Mapped[str | None] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(32))  # stream | presigned_url
    document_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    accountable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    exemption_basis: Mapped[str | None] = mapped_column(String(64))
    # Set when what left turned out to be (partly) another patient's record, e.g. a misfile corrected
    # after the release: a privacy officer must look (breach assessment).
    privacy_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    review_reason: Mapped[str | None] = mapped_column(String(64))
    # The disclosure (to the patient the release was for) this row re-records against another patient.
    corrects_disclosure_id: Mapped[str | None] = mapped_column(String(32))


class DisclosureAccess(Base):
    """One fetch of a disclosed package: a repeated fetch is another access of the same disclosure."""

    __tablename__ = "disclosure_accesses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    disclosure_id: Mapped[str] = mapped_column(ForeignKey("disclosures.id"), index=True)
    accessed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    accessed_by: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(32))  # stream | presigned_url


class ReportRollupDay(Base):
    """A closed UTC day whose scanning counts are rolled up (chartvault.reports.rollups)."""

    __tablename__ = "report_rollup_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rolled_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReportFileDay(Base):
    """Files received on a rolled-up day at one station: how many, their pages, how many refused."""

    __tablename__ = "report_file_days"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(ForeignKey("report_rollup_days.day"), index=True)
    station: Mapped[str | None] = mapped_column(String(128))
    files: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(BigInteger)
    refused: Mapped[int] = mapped_column(Integer)


class ReportDocumentDay(Base):
    """Documents made on a rolled-up day at one station, of one type (as typed when rolled up)."""

    __tablename__ = "report_document_days"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(ForeignKey("report_rollup_days.day"), index=True)
    station: Mapped[str | None] = mapped_column(String(128))
    doc_type: Mapped[str | None] = mapped_column(String(64))
    documents: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(BigInteger)


# -- long operations started from a page or the API ------------------------------------------------------

JOB_CLASSIFIER_TRAIN = "classifier_train"
JOB_REGISTRATION_IMPORT = "registration_import"
JOB_ARCHIVE_CHECK = "archive_check"
JOB_KINDS = (JOB_CLASSIFIER_TRAIN, JOB_REGISTRATION_IMPORT, JOB_ARCHIVE_CHECK)
JOB_QUEUED = "queued"
JOB_RUNNING = "running"
JOB_DONE = "done"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"  # stopped at a chunk or step boundary after a cancel was asked for
JOB_STATES = (JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED)
JOB_ACTIVE = (JOB_QUEUED, JOB_RUNNING)
JOB_ENDED = (JOB_DONE, JOB_FAILED, JOB_CANCELLED)


class Job(Base):
    """A long operation (a retraining, a registration import, a full archive check) run in a thread of one
    server process, kept here so that every process sees it and a restart cannot lose it.

    ``active_kind`` is the kind while the job is queued or running and NULL after: its unique constraint
    lets the catalog itself refuse a second job of a kind, whichever process asks. ``owner`` names the
    process running it (host:pid:token) and ``heartbeat_at`` says it still lives, so one left behind by a
    dead process is recognised and marked failed. ``result`` holds counts and ids, never patient data.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    active_kind: Mapped[str | None] = mapped_column(String(32), unique=True)
    started_by: Mapped[str | None] = mapped_column(String(32))  # the user's id (None: console, system)
    owner: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # counts so far, then the outcome
    error: Mapped[str | None] = mapped_column(String(300))  # exception type and a fixed message
    # When an operator asked for the job to stop (any process): its work stops at its next boundary.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

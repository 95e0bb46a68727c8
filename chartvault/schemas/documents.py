"""Archived documents: metadata, identifiers with confidences, pages and their text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Where a document's MRN came from when it is not what the pages printed as it stands (IdentifierValue.source,
# the catalog's identifier_confidence["mrn_source"]); with the first two and a
# barcode's mending, read_as keeps what the pages read.
MRN_SOURCE_READ_BACK = "check_digit_read_back"  # one look-alike digit changed to pass the check digit
MRN_SOURCE_REREAD = "reread_vote"  # the renderings of the MRN's word out-voted the first reading
MRN_SOURCE_INDEX = "patient_index"  # filled in from the patient found by name and DOB
MRN_SOURCE_BARCODE = "label_barcode"  # the patient label's barcode, where the text was misread or unread


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentifierValue:
    value: str
    confidence: float | None
    # Where the value came from when it was not read on the page as it stands: "patient_index" (an MRN
    # filled in from the patient found by name and DOB), "check_digit_read_back" (the MRN the pages read,
    # one look-alike digit changed so that it passes the facility's check digit), "reread_vote" (the MRN's
    # word read again in several renderings, which out-voted the first reading), "label_barcode" (the
    # patient label's barcode, which mended a misread or gave the MRN the text did not).
    source: str | None = None
    # with "check_digit_read_back", "reread_vote" and a mending "label_barcode": what the pages first read
    read_as: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusedMrn:
    """An MRN a cover sheet or manifest gave for the document that fails the facility's check digit: not
    applied (the document is held, ``mrn_check_digit_failed``), shown so the reviewer can compare it."""

    source: str  # cover_sheet | manifest
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentIdentifiers:
    mrn: IdentifierValue | None
    name: IdentifierValue | None
    dob: IdentifierValue | None
    date_of_service: IdentifierValue | None
    account: IdentifierValue | None
    encounter: IdentifierValue | None
    # Until a person resolves the review or refiles the document (empty then, and without the setting).
    mrn_refused: list[RefusedMrn] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentPage:
    page_no: int
    status: str
    confidence: float | None
    source: str | None
    rotation: int | None
    flags: list[dict[str, Any]]
    text: str | None  # only when asked for (the CLI's ``show``); the API serves text page by page


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentView:
    """A document's metadata (blank backs are archived but neither listed nor counted)."""

    id: str
    batch_id: str
    file_id: str
    status: str
    doc_type: str | None
    doc_type_confidence: float | None
    identifiers: DocumentIdentifiers
    patient_id: str | None
    sha256: str
    size: int
    mime: str
    page_count: int
    blank_pages: int
    first_page: int
    classification_source: str | None
    icd_codes: list[str]
    review_status: str | None
    review_reasons: list[dict[str, Any]]
    archived_at: str | None
    indexed_at: str | None
    linked_duplicate_files: list[str]
    pages: list[DocumentPage]
    # The searchable PDF: "pdf" (its own object, with this sha256), "original" (a born-digital PDF is
    # its own rendition) or None (not built yet). GET /documents/{id}/rendition downloads it.
    rendition: str | None = None
    rendition_sha256: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PageText:
    document_id: str
    page_no: int
    text: str
    blank: bool
    confidence: float | None
    source: str | None
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentSummary:
    """What a result list shows of a document, from the catalog."""

    document_id: str
    doc_type: str | None
    mrn: str | None
    patient_name: str | None
    date_of_service: str | None
    encounter: str | None
    page_count: int

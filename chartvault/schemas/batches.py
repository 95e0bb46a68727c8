"""Batches as scanning operators and staff see them: files, pages, refusals and review flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class PageState:
    page_no: int
    status: str  # received -> ocr -> classified -> archived -> indexed, or failed
    confidence: float | None
    source: str | None  # ocr | text_layer
    error: str | None  # why a page failed (page number and reason only)
    blank: bool
    flags: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileReport:
    id: str
    seq: int
    name: str
    status: str
    reason_code: str | None
    reason: str | None
    kind: str | None
    size: int | None
    sha256: str | None
    page_count: int | None
    expected_pages: int | None
    duplicate_of: str | None
    documents: list[str]
    pages: list[PageState]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReport:
    """One batch, every file and page accounted for."""

    id: str
    status: str
    source: str
    station: str | None
    operator: str | None
    created_at: str | None
    completed_at: str | None
    needs_review: bool
    flags: list[dict[str, Any]]
    file_counts: dict[str, int]
    pages: int
    done: bool
    files: list[FileReport]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSummary:
    id: str
    status: str
    source: str
    station: str | None
    created_at: str | None
    needs_review: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchList:
    limit: int
    offset: int
    items: list[BatchSummary]


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptedFile:
    file_id: str
    name: str
    status: str
    reason_code: str | None
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchAccepted:
    """The answer to an upload: every file staged; processing continues in the background."""

    batch_id: str
    status: str
    status_url: str
    files: list[AcceptedFile]


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestedFile:
    path: str
    file_id: str | None
    status: str
    reason_code: str | None
    reason: str | None
    pages: int | None
    documents: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSummary:
    """A finished intake run (CLI ``ingest``, hot folder): what happened to every file given."""

    batch_id: str
    status: str
    needs_review: bool
    flags: list[dict[str, Any]]
    pages: int
    indexed: bool  # False when another process owns the index writer (it indexes the batch)
    files: list[IngestedFile]

    @property
    def refused(self) -> list[IngestedFile]:
        return [f for f in self.files if f.status in ("quarantined", "failed", "refused")]


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantinePurge:
    """Quarantined files whose bytes and reason file were deleted (the catalog keeps the reason)."""

    older_than_days: int | None  # None: files named one by one
    dry_run: bool
    files: list[str]  # batch file ids
    bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantinedFile:
    """A refused file as the quarantine lists it: ids, hash, size and why; never the name it came
    with (a scanned file's name often is the patient's). ``kept``: its bytes are still on disk."""

    file_id: str
    batch_id: str
    sha256: str
    size: int
    reason_code: str | None
    reason: str | None
    received_at: str | None
    kept: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineList:
    """Quarantined files, newest first, a page at a time; ``total`` counts them all."""

    total: int
    kept: int  # how many of them still have their bytes on disk
    limit: int
    offset: int
    files: list[QuarantinedFile]

"""Search answers: ranked hits with highlighted snippets, facets, timelines, similar documents."""

from __future__ import annotations

from dataclasses import dataclass

from chartvault.schemas.documents import DocumentSummary


@dataclass(frozen=True, slots=True, kw_only=True)
class SnippetView:
    page_no: int
    html: str  # matched words in <mark>...</mark>, the rest HTML-escaped


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchHitView(DocumentSummary):
    score: float
    pages: list[int]
    snippets: list[SnippetView]


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchAnswer:
    total: int
    offset: int
    limit: int
    suggestion: str | None  # set when nothing matched as typed and these are a fuzzy retry's hits
    facets: dict[str, dict[str, int]]
    hits: list[SearchHitView]
    # Send as ``cursor`` (with the same query) for the next page; None on the last page.
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EncounterGroup:
    encounter: str | None
    first_date: str | None
    last_date: str | None
    documents: list[DocumentSummary]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """A patient's documents by date of service, grouped by encounter (undated last)."""

    mrn: str
    total: int
    encounters: list[EncounterGroup]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimilarHit(DocumentSummary):
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SimilarDocuments:
    document_id: str
    total: int
    hits: list[SimilarHit]


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexReport:
    """Catalog against index, by id and fingerprint (ids only)."""

    consistent: bool
    index_state: str
    catalog_documents: int
    index_documents: int
    missing: list[str]
    extra: list[str]
    stale: list[str]
    pending: int
    repaired: bool

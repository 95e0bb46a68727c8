"""The search contract shared by every backend: plain data, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from chartvault.errors import Unavailable


@dataclass(slots=True)
class IndexDocument:
    """What the index needs of one archived document.

    ``pages`` is used for indexing only; backends never store page text, so that
    the index holds nothing the catalog does not. Snippets are built at query time
    from text handed back by the caller (``PageLoader``).
    """

    doc_id: str
    pages: list[str]
    mrn: str | None = None
    patient_name: str | None = None
    doc_type: str | None = None
    date_of_service: date | None = None
    batch_id: str | None = None
    encounter: str | None = None
    # ICD-10 codes found on the document (extraction lives in classify/); indexed dot- and case-blind.
    icd_codes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SearchQuery:
    text: str | None = None
    mrn: str | None = None
    doc_type: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    batch_id: str | None = None
    # Every word of ``name`` must be in the patient's name (any order, accents folded).
    name: str | None = None
    # An ICD-10 code (``E11.9``, ``e119``) or a code prefix (``E11*``: the whole category).
    icd: str | None = None
    encounter: str | None = None
    limit: int = 20
    offset: int = 0
    # "relevance" (best first; lists without words come newest first), "date_desc" or "date_asc".
    # By date, undated documents come last either way and scores are 0. Ties are broken by document
    # id, so pages never overlap or skip a document.
    sort: str = "relevance"
    with_facets: bool = True  # counting every match costs time; lists that show no facets can skip it
    # Documents the caller knows must not be shown (the catalog says so): excluded from hits, totals
    # and facets alike, so the numbers stay honest until the index catches up.
    exclude_ids: frozenset[str] = frozenset()


@dataclass(slots=True)
class Snippet:
    page_no: int  # 1-based
    html: str  # matched terms wrapped in <mark>...</mark>, the rest HTML-escaped


@dataclass(slots=True)
class SearchHit:
    doc_id: str
    score: float
    pages: list[int] = field(default_factory=list)  # pages that contain a match, 1-based
    snippets: list[Snippet] = field(default_factory=list)


@dataclass(slots=True)
class SearchResults:
    total: int
    offset: int
    limit: int
    hits: list[SearchHit]
    # Set when the query as typed matched nothing and these are the results of a fuzzy retry: the query
    # with the words the hits actually contain ("did you mean"), else with ``~`` added to the words.
    suggestion: str | None = None
    # Counts over all matches (not just this page):
    # {"doc_type": {type: n}, "year": {"2024": n}, "encounter": {id: n}}.
    # Documents without a type, a date or an encounter are not counted in that facet; encounters are the
    # ``MAX_FACET_VALUES`` most frequent.
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One document of a patient's timeline, as the index knows it (the catalog has the final word)."""

    doc_id: str
    date_of_service: date | None
    doc_type: str | None
    encounter: str | None


class IndexUnavailable(Unavailable):
    """No usable index to answer from (missing, corrupt, or being rebuilt with nothing to fall back on).

    The API answers 503 with ``Retry-After``; the message names no document or patient.
    """

    code = "index_rebuilding"

    def __init__(self, message: str = "the search index is being rebuilt", retry_after_s: int = 30) -> None:
        super().__init__(message, retry_after_s=retry_after_s)


SORT_ORDERS = ("relevance", "date_desc", "date_asc")
FACETS = ("doc_type", "year", "encounter")
# A patient-wide search can match thousands of encounters: only the most frequent are counted.
MAX_FACET_VALUES = 50


# Given a doc id, return its page texts (from the catalog) for highlighting.
PageLoader = Callable[[str], Sequence[str]]


class SearchBackend(Protocol):
    """A full-text index. Only one process may write to it at a time."""

    path: object
    schema_version: int | None

    def index(self, docs: Sequence[IndexDocument], merge: bool = True) -> None:
        """Add or replace these documents and commit once (``merge=False``: bulk load, merge later)."""

    def delete(self, doc_ids: Sequence[str]) -> None:
        """Remove these documents (unknown ids are ignored) and commit once."""

    def search(self, query: SearchQuery, load_pages: PageLoader | None = None) -> SearchResults:
        """Ranked documents; with ``load_pages``, hit pages and highlighted snippets."""

    def timeline(self, mrn: str) -> list[TimelineEntry]:
        """Every document of this MRN, oldest date of service first (undated last), ties by id."""

    def more_like_this(
        self,
        doc_id: str,
        pages: Sequence[str],
        limit: int = 10,
        exclude_ids: frozenset[str] = frozenset(),
        identifiers: Sequence[str] = (),
    ) -> SearchResults:
        """Documents sharing this one's most distinctive words (the document itself excluded);
        ``pages`` is its text from the catalog, ``identifiers`` words never to use (MRN, name)."""

    def doc_ids(self) -> set[str]:
        """Every indexed document id (for reconciliation with the catalog)."""

    def fingerprints(self) -> dict[str, str]:
        """Every indexed document id with the fingerprint of what was indexed (stale detection)."""

    def doc_count(self) -> int:
        """How many documents the index holds."""

    def optimize(self) -> None:
        """Merge segments into one (after a bulk load): fewer, larger segments answer faster."""

    def clear(self) -> None:
        """Drop every document (before a full rebuild)."""

    def close(self) -> None: ...

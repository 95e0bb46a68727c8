"""The search contract shared by every backend: plain data, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol


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


@dataclass(slots=True)
class SearchQuery:
    text: str | None = None
    mrn: str | None = None
    doc_type: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    batch_id: str | None = None
    limit: int = 20
    offset: int = 0
    # "relevance" (best first; lists without words come newest first), "date_desc" or "date_asc".
    # By date, undated documents come last either way and scores are 0.
    sort: str = "relevance"
    with_facets: bool = True  # counting every match costs time; lists that show no facets can skip it


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
    # Counts over all matches (not just this page): {"doc_type": {type: n}, "year": {"2024": n}}.
    # Documents without a type or a date are not counted in that facet.
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


SORT_ORDERS = ("relevance", "date_desc", "date_asc")
FACETS = ("doc_type", "year")


# Given a doc id, return its page texts (from the catalog) for highlighting.
PageLoader = Callable[[str], Sequence[str]]


class SearchBackend(Protocol):
    """A full-text index. Only one process may write to it at a time."""

    def index(self, docs: Sequence[IndexDocument]) -> None:
        """Add or replace these documents and commit once."""

    def delete(self, doc_ids: Sequence[str]) -> None:
        """Remove these documents (unknown ids are ignored) and commit once."""

    def search(self, query: SearchQuery, load_pages: PageLoader | None = None) -> SearchResults:
        """Ranked documents; with ``load_pages``, hit pages and highlighted snippets."""

    def doc_ids(self) -> set[str]:
        """Every indexed document id (for reconciliation with the catalog)."""

    def clear(self) -> None:
        """Drop every document (before a full rebuild)."""

    def close(self) -> None: ...

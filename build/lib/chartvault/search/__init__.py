"""Full-text search backends behind one small interface. Knows nothing of HTTP or the database.

``open_backend("tantivy" | "whoosh", path)`` returns a ``SearchBackend`` over the current generation of
that kind's index (``lifecycle``: schema version, rebuild into a new folder, atomic swap); each kind keeps
its index in its own subfolder of ``path``, so switching the setting never opens one engine's files with
the other. Only one process may call the write methods (``index``/``delete``/``clear``); any number may
search.

Both backends offer the same query syntax (see ``query``), fuzzy words (``word~``, ``word~2``) and a
"did you mean" retry when nothing matched (``SearchResults.suggestion``), ordering by relevance or date
(``SearchQuery.sort``) with ties broken by document id, counts per type, year and encounter over all
matches (``SearchResults.facets``), filters on MRN, type, dates, batch, encounter, patient name and ICD
code (also typed as ``name:…``/``icd:…``), a patient timeline and "more like this".
"""

from __future__ import annotations

from pathlib import Path

from chartvault.search.types import (
    FACETS,
    SORT_ORDERS,
    IndexDocument,
    IndexUnavailable,
    PageLoader,
    SearchBackend,
    SearchHit,
    SearchQuery,
    SearchResults,
    Snippet,
    TimelineEntry,
)

BACKEND_KINDS = ("whoosh", "tantivy")

__all__ = [
    "BACKEND_KINDS",
    "FACETS",
    "SORT_ORDERS",
    "IndexDocument",
    "IndexUnavailable",
    "PageLoader",
    "SearchBackend",
    "SearchHit",
    "SearchQuery",
    "SearchResults",
    "Snippet",
    "TimelineEntry",
    "open_backend",
]


def open_backend(kind: str, path: Path) -> SearchBackend:
    """Open the current ``kind`` index under ``path / kind`` (an empty one is created if there is none).

    Engines are imported lazily.
    """
    if kind not in BACKEND_KINDS:
        raise ValueError(f"unknown search backend {kind!r}; expected one of {', '.join(BACKEND_KINDS)}")
    from chartvault.search.lifecycle import open_current

    return open_current(kind, Path(path))

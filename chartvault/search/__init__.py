"""Full-text search backends behind one small interface. Knows nothing of HTTP or the database.

``open_backend("tantivy" | "whoosh", path)`` returns a ``SearchBackend``; each kind keeps its index in
its own subfolder of ``path``, so switching the setting never opens one engine's files with the other.
Only one process may call the write methods (``index``/``delete``/``clear``); any number may search.

Both backends offer the same query syntax (see ``query``), fuzzy words (``word~``, ``word~2``) and a
"did you mean" retry when nothing matched (``SearchResults.suggestion``), ordering by relevance or date
(``SearchQuery.sort``) and counts per type and year over all matches (``SearchResults.facets``).
"""

from __future__ import annotations

from pathlib import Path

from chartvault.search.types import (
    FACETS,
    SORT_ORDERS,
    IndexDocument,
    PageLoader,
    SearchBackend,
    SearchHit,
    SearchQuery,
    SearchResults,
    Snippet,
)

BACKEND_KINDS = ("whoosh", "tantivy")

__all__ = [
    "BACKEND_KINDS",
    "FACETS",
    "SORT_ORDERS",
    "IndexDocument",
    "PageLoader",
    "SearchBackend",
    "SearchHit",
    "SearchQuery",
    "SearchResults",
    "Snippet",
    "open_backend",
]


def open_backend(kind: str, path: Path) -> SearchBackend:
    """Create or open the ``kind`` index under ``path / kind``. Engines are imported lazily."""
    if kind == "whoosh":
        from chartvault.search.whoosh_backend import WhooshBackend

        return WhooshBackend(Path(path) / kind)
    if kind == "tantivy":
        from chartvault.search.tantivy_backend import TantivyBackend

        return TantivyBackend(Path(path) / kind)
    raise ValueError(f"unknown search backend {kind!r}; expected one of {', '.join(BACKEND_KINDS)}")

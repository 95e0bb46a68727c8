"""Plumbing shared by the backends: schema-version file, write locks, hit assembly."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from chartvault.search.highlight import highlight
from chartvault.search.query import ParsedQuery
from chartvault.search.types import IndexDocument, PageLoader, SearchHit

log = logging.getLogger(__name__)

SCHEMA_FILE = "schema.json"

_locks_guard = threading.Lock()
_write_locks: dict[str, threading.Lock] = {}


def write_lock(path: Path) -> threading.Lock:
    """One lock per index folder for the whole process, shared by every backend instance on it.

    It serialises writers between threads. Between processes the engines' own lock files make a second
    writer fail fast; the application must run a single indexing process.
    """
    key = str(path.resolve())
    with _locks_guard:
        return _write_locks.setdefault(key, threading.Lock())


def read_schema_version(path: Path) -> int | None:
    """The schema version recorded when the index was created (None: unknown, treat as outdated)."""
    try:
        return int(json.loads((path / SCHEMA_FILE).read_text())["schema_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_schema_version(path: Path, backend: str, version: int) -> None:
    """Record the schema version atomically, so a later release can detect indexes needing a rebuild."""
    tmp = path / (SCHEMA_FILE + ".tmp")
    tmp.write_text(json.dumps({"backend": backend, "schema_version": version}) + "\n")
    os.replace(tmp, path / SCHEMA_FILE)


def unique_docs(docs: Sequence[IndexDocument]) -> list[IndexDocument]:
    """Drop repeated ids in one batch (last wins): engines would otherwise keep both copies."""
    return list({doc.doc_id: doc for doc in docs}.values())


def page_window(limit: int, offset: int) -> tuple[int, int]:
    """Clamp caller-supplied paging to sane non-negative values."""
    return max(0, limit), max(0, offset)


def build_hits(
    rows: Sequence[tuple[str, float]], parsed: ParsedQuery | None, load_pages: PageLoader | None
) -> list[SearchHit]:
    """Turn ``(doc_id, score)`` rows into hits, with pages and snippets when text is available.

    Queries without positive terms (filters only, or only ``NOT …``) get no snippets, and the loader
    is not even called. A loader raising ``LookupError`` (document gone from the catalog but not yet
    from the index) yields a hit without snippets rather than failing the whole search.
    """
    spec = parsed.match if parsed is not None else None
    hits: list[SearchHit] = []
    for doc_id, score in rows:
        hit = SearchHit(doc_id=doc_id, score=score)
        if load_pages is not None and spec:
            try:
                pages = load_pages(doc_id)
            except LookupError:
                log.warning("search hit %s has no pages in the catalog", doc_id)
            else:
                hit.pages, hit.snippets = highlight(pages, spec)
        hits.append(hit)
    return hits

"""Plumbing shared by the backends: schema-version file, write locks, hit assembly, "did you mean"."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from chartvault.search.analysis import normalize, tokens, within_edits
from chartvault.search.highlight import highlight
from chartvault.search.query import ParsedQuery, fuzzy_variant, parse_user_query, rewrite_words
from chartvault.search.types import SORT_ORDERS, IndexDocument, PageLoader, SearchHit, SearchResults

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


def check_sort(sort: str) -> None:
    """Reject an unknown order loudly (the API turns ValueError into a 4xx) rather than guess."""
    if sort not in SORT_ORDERS:
        raise ValueError(f"unknown sort {sort!r}; expected one of {', '.join(SORT_ORDERS)}")


def year_of(date_key: int) -> str:
    """``YYYYMMDD`` (int or str) to the ``"YYYY"`` facet key."""
    return f"{int(date_key) // 10_000:04d}"


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


# Runs one parsed query (None: filters only) with the caller's filters and paging.
QueryRunner = Callable[[ParsedQuery | None, PageLoader | None], SearchResults]
SUGGESTION_HITS = 10  # hits whose pages are read to pick the corrected words


def search_with_suggestion(
    text: str | None, run: QueryRunner, load_pages: PageLoader | None
) -> SearchResults:
    """Run the query; when words were typed and nothing matched, retry with fuzzy words.

    OCR misreads words and users mistype them; an empty page is the worst answer. The retry keeps
    every filter, bends only positive alphabetic words of 4+ letters (``query.auto_edits``), and its
    results carry ``suggestion`` so the UI can say what was searched instead.
    """
    parsed = parse_user_query(text)
    loader = _memoized(load_pages)
    results = run(parsed, loader)
    if results.total or parsed is None or not text:
        return results
    fuzzy = fuzzy_variant(parsed)
    if fuzzy is None:
        return results
    retry = run(fuzzy, loader)
    if not retry.total:
        return results
    retry.suggestion = _suggestion(text, fuzzy, retry.hits[:SUGGESTION_HITS], loader)
    return retry


def _memoized(load_pages: PageLoader | None) -> PageLoader | None:
    """The loader, remembering pages for one search (snippets and the suggestion both read them)."""
    if load_pages is None:
        return None
    cache: dict[str, Sequence[str]] = {}

    def load(doc_id: str) -> Sequence[str]:
        if doc_id not in cache:
            cache[doc_id] = load_pages(doc_id)
        return cache[doc_id]

    return load


def _suggestion(text: str, fuzzy: ParsedQuery, hits: Sequence[SearchHit], load: PageLoader | None) -> str:
    """``text`` with each bent word replaced by the closest, then most frequent, word of the hits."""
    wanted = dict(fuzzy.match.fuzzy)
    counts: dict[str, Counter[str]] = {term: Counter() for term in wanted}
    spellings: dict[str, Counter[str]] = {}
    for hit in hits:
        try:
            pages = load(hit.doc_id) if load is not None else ()
        except LookupError:
            continue
        for page in pages:
            for term, start, end in tokens(page):
                for target, edits in wanted.items():
                    if within_edits(term, target, edits):
                        counts[target][term] += 1
                        spellings.setdefault(term, Counter())[page[start:end].lower()] += 1
    chosen: dict[str, str | None] = {}  # None: the word as typed was right
    for target, found in counts.items():
        if found:
            best = min(found, key=lambda t: (_distance(t, target, wanted[target]), -found[t], t))
            chosen[target] = None if best == target else spellings[best].most_common(1)[0][0]

    def replace(m: re.Match[str]) -> str:
        term = normalize(m.group())
        if term in chosen:
            return chosen[term] or m.group()
        if term in wanted and not m.string.startswith("~", m.end()):
            return m.group() + ("~" if wanted[term] == 1 else f"~{wanted[term]}")
        return m.group()

    return rewrite_words(text, replace)


def _distance(a: str, b: str, limit: int) -> int:
    return next((k for k in range(limit + 1) if within_edits(a, b, k)), limit + 1)

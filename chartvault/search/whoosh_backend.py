"""Whoosh (pure Python) search backend over an on-disk index folder.

Concurrency: exactly one writer. ``index``/``delete``/``clear`` open a whoosh writer, apply the whole
batch and commit once, under a process-wide lock per folder (``common.write_lock``). Whoosh's lock file
makes a writer in a *second process* fail immediately with ``whoosh.index.LockError``: only the single
indexing process may call the write methods; every other process only searches.

Reads reuse one searcher, reopened after our own commits and whenever another process has committed
(checked cheaply per search). Whoosh searchers are not thread-safe, so searches on one instance are
serialised; use the tantivy backend where query throughput matters.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from whoosh import fields, index, sorting, writing
from whoosh import query as wq
from whoosh.automata import lev
from whoosh.automata.fsa import DFA, find_all_matches
from whoosh.searching import Searcher
from whoosh.sorting import FieldFacet, TranslateFacet

from chartvault.search.analysis import date_key, index_text
from chartvault.search.common import (
    build_hits,
    check_sort,
    page_window,
    read_schema_version,
    search_with_suggestion,
    unique_docs,
    write_lock,
    write_schema_version,
    year_of,
)
from chartvault.search.query import NAME_FIELD, TEXT_FIELD, ParsedQuery, text_field
from chartvault.search.types import FACETS, IndexDocument, PageLoader, SearchQuery, SearchResults

SCHEMA_VERSION = 1


def build_schema() -> fields.Schema:
    """Ids and filter fields stored; text fields indexed only (the catalog owns the text)."""
    return fields.Schema(
        doc_id=fields.ID(stored=True, unique=True),
        **{TEXT_FIELD: text_field(), NAME_FIELD: text_field()},
        mrn=fields.ID(stored=True),
        doc_type=fields.ID(stored=True),
        # 'YYYYMMDD': sorts and range-filters as a plain string; sortable for date-ordered listings.
        date_of_service=fields.ID(stored=True, sortable=True),
        batch_id=fields.ID(stored=True),
    )


def _date_id(value: date) -> str:
    return f"{date_key(value):08d}"


def _year_key(value: str | bytes | None) -> str:
    """Facet key of a stored ``YYYYMMDD`` ("" when undated: dropped by ``_counts``)."""
    if isinstance(value, bytes):
        value = value.decode()
    return year_of(value) if value else ""


def _counts(groups: dict[Any, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, n in groups.items():
        if isinstance(key, bytes):
            key = key.decode()
        if key:  # documents without the field
            out[key] = out.get(key, 0) + n
    return out


def _undated_last(value: str | bytes | None) -> str:
    return (value.decode() if isinstance(value, bytes) else value) or "99999999"


@lru_cache(maxsize=256)
def _levenshtein_dfa(text: str, edits: int) -> DFA:
    return lev.levenshtein_automaton(text, edits, 0).to_dfa()


def fuzzy_words(vocabulary: Sequence[str], text: str, edits: int) -> list[str]:
    """Words of a sorted ``vocabulary`` within ``edits`` of ``text`` (whoosh's own automaton walk).

    Whoosh's ``FuzzyTerm`` walks the same automaton over each segment's on-disk term table, which costs
    ~50 ms per segment and word; over one in-memory list the walk is ~20 times cheaper.
    """

    def first_at_or_after(word: str) -> str | None:
        i = bisect.bisect_left(vocabulary, word)
        return vocabulary[i] if i < len(vocabulary) else None

    return list(find_all_matches(_levenshtein_dfa(text, edits), first_at_or_after))


def _date_order(ascending: bool) -> sorting.FacetType:
    """Newest or oldest first; undated documents last either way (as tantivy orders them)."""
    if ascending:
        return TranslateFacet(_undated_last, FieldFacet("date_of_service"))
    return FieldFacet("date_of_service", reverse=True)


class WhooshBackend:
    """``SearchBackend`` over whoosh; ``WhooshBackend(path)`` creates the index or opens it."""

    kind = "whoosh"

    def __init__(self, path: Path, procs: int = 1, multisegment: bool = False, limitmb: int = 128) -> None:
        """``procs > 1`` indexes each batch with that many processes (whoosh's ``MpWriter``);
        ``multisegment`` then keeps their segments unmerged, trading query speed for indexing speed.
        """
        self.path = Path(path)
        self._procs, self._multisegment, self._limitmb = max(1, procs), multisegment, limitmb
        self.path.mkdir(parents=True, exist_ok=True)
        if index.exists_in(self.path):
            self._ix = index.open_dir(self.path)
        else:
            write_schema_version(self.path, self.kind, SCHEMA_VERSION)
            self._ix = index.create_in(self.path, build_schema())
        # What is on disk, which may be older than SCHEMA_VERSION (None when unrecorded).
        self.schema_version = read_schema_version(self.path)
        self._write_lock = write_lock(self.path)
        self._read_lock = threading.Lock()
        self._searcher: Searcher | None = None
        self._vocabulary: list[str] | None = None  # sorted terms of TEXT_FIELD for _searcher
        self._closed = False

    # -- writing ---------------------------------------------------------------------------------

    def index(self, docs: Sequence[IndexDocument]) -> None:
        """Add or replace these documents and commit once."""
        batch = unique_docs(docs)
        if not batch:
            return
        self._write(
            lambda w: [w.update_document(**self._fields(doc)) for doc in batch],
            procs=self._procs if len(batch) > 1 else 1,
        )

    def delete(self, doc_ids: Sequence[str]) -> None:
        """Remove these documents (unknown ids are ignored) and commit once."""
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return
        self._write(lambda w: [w.delete_by_term("doc_id", doc_id) for doc_id in ids])

    def clear(self) -> None:
        """Drop every document (before a full rebuild)."""
        self._write(lambda w: None, mergetype=writing.CLEAR)

    def _write(self, apply: Callable[[Any], object], procs: int = 1, **commit_kwargs: Any) -> None:
        self._check_open()
        with self._write_lock:
            if procs > 1:
                writer = self._ix.writer(procs=procs, limitmb=self._limitmb, multisegment=self._multisegment)
            else:
                writer = self._ix.writer(procs=1, limitmb=self._limitmb)
            try:
                apply(writer)
            except BaseException:
                writer.cancel()
                raise
            writer.commit(**commit_kwargs)
        with self._read_lock:
            self._reopen_searcher()

    @staticmethod
    def _fields(doc: IndexDocument) -> dict[str, str]:
        # index_text() includes the MRN and name, so they also match as free-text words.
        out = {"doc_id": doc.doc_id, TEXT_FIELD: index_text(doc)}
        if doc.patient_name:
            out[NAME_FIELD] = doc.patient_name
        for name in ("mrn", "doc_type", "batch_id"):
            value = getattr(doc, name)
            if value:
                out[name] = value
        if doc.date_of_service is not None:
            out["date_of_service"] = _date_id(doc.date_of_service)
        return out

    # -- reading ---------------------------------------------------------------------------------

    def search(self, query: SearchQuery, load_pages: PageLoader | None = None) -> SearchResults:
        """Ranked (BM25F) documents, or by date (``query.sort``); lists without words come newest first.

        A text query that matches nothing is retried with fuzzy words (``SearchResults.suggestion``).
        """
        self._check_open()
        check_sort(query.sort)
        return search_with_suggestion(query.text, lambda p, load: self._run(query, p, load), load_pages)

    def _run(
        self, query: SearchQuery, parsed: ParsedQuery | None, load_pages: PageLoader | None
    ) -> SearchResults:
        limit, offset = page_window(query.limit, query.offset)
        filt = self._filter(query)
        if parsed is None and filt is None:
            return SearchResults(total=0, offset=offset, limit=limit, hits=[])
        ranked = parsed is not None and bool(parsed.match) and query.sort == "relevance"
        q = parsed.query if parsed is not None else wq.Every()
        fuzzy = parsed is not None and bool(parsed.match.fuzzy)
        kwargs: dict[str, Any] = {}
        if not ranked:
            kwargs["sortedby"] = _date_order(ascending=query.sort == "date_asc")
        if query.with_facets:
            kwargs["groupedby"] = {
                "doc_type": FieldFacet("doc_type"),
                "year": TranslateFacet(_year_key, FieldFacet("date_of_service")),
            }
            kwargs["maptype"] = sorting.Count
        with self._read_lock:
            searcher = self._current_searcher()
            if fuzzy:
                q = q.accept(self._expand_fuzzy)
            results = searcher.search(q, limit=max(1, offset + limit), filter=filt, **kwargs)
            total = len(results)
            rows = [
                (hit["doc_id"], float(hit.score or 0.0) if ranked else 0.0)
                for hit in results[offset : offset + limit]
            ]
            facets = {name: _counts(results.groups(name)) for name in FACETS} if query.with_facets else {}
        return SearchResults(
            total=total,
            offset=offset,
            limit=limit,
            hits=build_hits(rows, parsed, load_pages),
            facets=facets,
        )

    @staticmethod
    def _filter(query: SearchQuery) -> wq.Query | None:
        clauses: list[wq.Query] = []
        for name in ("mrn", "doc_type", "batch_id"):
            value = getattr(query, name)
            if value is not None and value.strip():
                clauses.append(wq.Term(name, value.strip()))
        if query.date_from is not None or query.date_to is not None:
            start = _date_id(query.date_from) if query.date_from is not None else None
            end = _date_id(query.date_to) if query.date_to is not None else None
            clauses.append(wq.TermRange("date_of_service", start, end))
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else wq.And(clauses)

    def _expand_fuzzy(self, node: wq.Query) -> wq.Query:
        """Caller holds ``_read_lock``. A fuzzy word as the OR of the indexed words it stands for."""
        if not isinstance(node, wq.FuzzyTerm) or node.fieldname != TEXT_FIELD:
            return node
        if self._vocabulary is None:
            words: set[str] = set()
            for leaf, _ in self._current_searcher().reader().leaf_readers():
                words.update(leaf.lexicon(TEXT_FIELD))
            self._vocabulary = sorted(w.decode() if isinstance(w, bytes) else w for w in words)
        found = fuzzy_words(self._vocabulary, node.text, int(node.maxdist))
        if not found:
            return wq.Term(TEXT_FIELD, " ")  # no term holds a space: matches nothing, unlike NullQuery
        return wq.Or([wq.Term(TEXT_FIELD, word) for word in found], boost=node.boost)

    def doc_ids(self) -> set[str]:
        """Every indexed document id (for reconciliation with the catalog)."""
        self._check_open()
        with self._read_lock:
            return {stored["doc_id"] for stored in self._current_searcher().all_stored_fields()}

    def _current_searcher(self) -> Searcher:
        """Caller holds ``_read_lock``. Picks up commits made by this or another process."""
        if self._searcher is None or not self._searcher.up_to_date():
            self._reopen_searcher()
        assert self._searcher is not None
        return self._searcher

    def _reopen_searcher(self) -> None:
        """Caller holds ``_read_lock``. A new searcher, not ``Searcher.refresh()``: in whoosh-reloaded
        2.7.5 refresh() keeps the segments of the old reader, resurrecting merged or cleared documents.
        """
        if self._searcher is not None:
            self._searcher.close()
        self._searcher = self._ix.searcher()
        self._vocabulary = None

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the searcher's files. Idempotent."""
        with self._read_lock:
            if self._searcher is not None:
                self._searcher.close()
                self._searcher = None
            if not self._closed:
                self._ix.close()
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"search backend at {self.path} is closed")

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

import threading
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from whoosh import fields, index, writing
from whoosh import query as wq
from whoosh.searching import Searcher
from whoosh.sorting import FieldFacet

from chartvault.search.analysis import date_key, index_text
from chartvault.search.common import (
    build_hits,
    page_window,
    read_schema_version,
    unique_docs,
    write_lock,
    write_schema_version,
)
from chartvault.search.query import NAME_FIELD, TEXT_FIELD, parse_user_query, text_field
from chartvault.search.types import IndexDocument, PageLoader, SearchQuery, SearchResults

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


class WhooshBackend:
    """``SearchBackend`` over whoosh; ``WhooshBackend(path)`` creates the index or opens it."""

    kind = "whoosh"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
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
        self._closed = False

    # -- writing ---------------------------------------------------------------------------------

    def index(self, docs: Sequence[IndexDocument]) -> None:
        """Add or replace these documents and commit once."""
        batch = unique_docs(docs)
        if not batch:
            return
        self._write(lambda w: [w.update_document(**self._fields(doc)) for doc in batch])

    def delete(self, doc_ids: Sequence[str]) -> None:
        """Remove these documents (unknown ids are ignored) and commit once."""
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return
        self._write(lambda w: [w.delete_by_term("doc_id", doc_id) for doc_id in ids])

    def clear(self) -> None:
        """Drop every document (before a full rebuild)."""
        self._write(lambda w: None, mergetype=writing.CLEAR)

    def _write(self, apply: Callable[[Any], object], **commit_kwargs: Any) -> None:
        self._check_open()
        with self._write_lock:
            writer = self._ix.writer(procs=1, limitmb=128)
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
        """Ranked (BM25F) documents; filter-only or negative-only queries list newest first."""
        self._check_open()
        limit, offset = page_window(query.limit, query.offset)
        parsed = parse_user_query(query.text)
        filt = self._filter(query)
        if parsed is None and filt is None:
            return SearchResults(total=0, offset=offset, limit=limit, hits=[])
        ranked = parsed is not None and bool(parsed.match)
        q = parsed.query if parsed is not None else wq.Every()
        with self._read_lock:
            searcher = self._current_searcher()
            if ranked:
                results = searcher.search(q, limit=max(1, offset + limit), filter=filt)
            else:
                results = searcher.search(
                    q,
                    limit=max(1, offset + limit),
                    filter=filt,
                    sortedby=FieldFacet("date_of_service", reverse=True),
                )
            total = len(results)
            rows = [
                (hit["doc_id"], float(hit.score or 0.0) if ranked else 0.0)
                for hit in results[offset : offset + limit]
            ]
        return SearchResults(
            total=total, offset=offset, limit=limit, hits=build_hits(rows, parsed, load_pages)
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

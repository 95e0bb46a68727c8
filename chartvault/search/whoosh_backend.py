"""Whoosh (pure Python) search backend over an on-disk index folder.

Concurrency: exactly one writer. ``index``/``delete``/``clear`` open a whoosh writer, apply the whole
batch and commit once, under a process-wide lock per folder (``common.write_lock``). Whoosh's lock file
makes a writer in a *second process* fail immediately with ``whoosh.index.LockError``: only the single
indexing process may call the write methods; every other process only searches.

Reads reuse one searcher, reopened after our own commits and whenever another process has committed
(checked cheaply per search). Whoosh searchers are not thread-safe, so searches on one instance are
serialised; use the tantivy backend where query throughput matters.

Made as fast as whoosh honestly gets: no stored text, one-pass analyzer (``analysis.ChartTokenizer``),
column ("sortable") fields for the facets and sort keys, a 256 MB writer buffer, and bulk loads that
commit without merging and merge once at the end (``optimize``).
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
from whoosh.sorting import FieldFacet, MultiFacet, TranslateFacet

from chartvault.search.analysis import date_key, index_text, terms
from chartvault.search.common import (
    Filters,
    build_hits,
    check_sort,
    fingerprint,
    key_terms,
    normalize_icd,
    page_window,
    read_schema_version,
    search_with_suggestion,
    similar_query,
    split_field_filters,
    stable_window,
    unique_docs,
    write_lock,
    write_schema_version,
    year_of,
)
from chartvault.search.query import NAME_FIELD, TEXT_FIELD, ParsedQuery, text_field
from chartvault.search.types import (
    FACETS,
    MAX_FACET_VALUES,
    IndexDocument,
    IndexUnavailable,
    PageLoader,
    SearchQuery,
    SearchResults,
    TimelineEntry,
)

# 1: first release. 2: encounter, ICD codes, fingerprint; doc_id/doc_type/encounter as columns.
SCHEMA_VERSION = 2
WRITER_LIMIT_MB = 256
MERGE_ABOVE_SEGMENTS = 6


def build_schema() -> fields.Schema:
    """Ids and filter fields stored; text fields indexed only (the catalog owns the text)."""
    return fields.Schema(
        doc_id=fields.ID(stored=True, unique=True, sortable=True),
        **{TEXT_FIELD: text_field(), NAME_FIELD: text_field()},
        mrn=fields.ID(stored=True),
        doc_type=fields.ID(stored=True, sortable=True),
        # 'YYYYMMDD': sorts and range-filters as a plain string; sortable for date-ordered listings.
        date_of_service=fields.ID(stored=True, sortable=True),
        batch_id=fields.ID(stored=True),
        encounter=fields.ID(stored=True, sortable=True),
        icd=fields.KEYWORD(lowercase=False, commas=False, scorable=False),
        fp=fields.STORED(),  # fingerprint of what was indexed (reconciliation)
    )


def _date_id(value: date) -> str:
    return f"{date_key(value):08d}"


def _parse_date_id(value: str | None) -> date | None:
    if not value:
        return None
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def _text(value: str | bytes | None) -> str:
    return (value.decode() if isinstance(value, bytes) else value) or ""


def _year_key(value: str | bytes | None) -> str:
    """Facet key of a stored ``YYYYMMDD`` ("" when undated: dropped by ``_counts``)."""
    text = _text(value)
    return year_of(int(text)) if text else ""


def _counts(groups: dict[Any, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, n in groups.items():
        key = _text(key)
        if key:  # documents without the field
            out[key] = out.get(key, 0) + n
    return out


def _undated_last(value: str | bytes | None) -> str:
    return _text(value) or "99999999"


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
    """Newest or oldest first; undated documents last either way (as tantivy orders them); ties by id."""
    if ascending:
        first: sorting.FacetType = TranslateFacet(_undated_last, FieldFacet("date_of_service"))
    else:
        first = FieldFacet("date_of_service", reverse=True)
    return MultiFacet([first, FieldFacet("doc_id")])


class WhooshBackend:
    """``SearchBackend`` over whoosh; ``WhooshBackend(path)`` creates the index or opens it."""

    kind = "whoosh"

    def __init__(
        self,
        path: Path,
        procs: int = 1,
        multisegment: bool = False,
        limitmb: int = WRITER_LIMIT_MB,
        create: bool = True,
    ) -> None:
        """``procs > 1`` indexes each batch with that many processes (whoosh's ``MpWriter``);
        ``multisegment`` then keeps their segments unmerged, trading query speed for indexing speed.
        ``create=False`` opens an existing index only (``whoosh.index.EmptyIndexError`` otherwise).
        """
        self.path = Path(path)
        self._procs, self._multisegment, self._limitmb = max(1, procs), multisegment, limitmb
        if index.exists_in(self.path):
            self._ix = index.open_dir(self.path)
        elif create:
            self.path.mkdir(parents=True, exist_ok=True)
            write_schema_version(self.path, self.kind, SCHEMA_VERSION)
            self._ix = index.create_in(self.path, build_schema())
        else:
            raise index.EmptyIndexError(f"no whoosh index in {self.path.name}")
        # What is on disk, which may be older than SCHEMA_VERSION (None when unrecorded).
        self.schema_version = read_schema_version(self.path)
        self._names = set(self._ix.schema.names())
        self._write_lock = write_lock(self.path)
        self._read_lock = threading.Lock()
        self._searcher: Searcher | None = None
        self._vocabulary: list[str] | None = None  # sorted terms of TEXT_FIELD for _searcher
        self._closed = False

    # -- writing ---------------------------------------------------------------------------------

    def index(self, docs: Sequence[IndexDocument], merge: bool = True) -> None:
        """Add or replace these documents and commit once; ``merge=False`` for bulk loads."""
        batch = unique_docs(docs)
        if not batch:
            return
        prepared = [self._fields(doc) for doc in batch]
        # ``merge`` is deliberately not passed on: unmerged commits leave one segment per batch, and
        # merging a hundred of them at the end costs more than whoosh's small-segment merges on the way.
        self._write(
            lambda w: [w.update_document(**fields_) for fields_ in prepared],
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

    def optimize(self) -> None:
        """Merge every segment into one: whoosh searches each segment in turn, so fewer is faster.

        Whoosh merges in Python at roughly the cost of indexing the documents again, while its
        small-segment merges on every commit already keep the count logarithmic; so the full merge
        runs only past ``MERGE_ABOVE_SEGMENTS`` (a few segments cost a query far less than that).
        """
        self._check_open()
        with self._read_lock:
            segments = len(self._ix._segments())
        if segments > MERGE_ABOVE_SEGMENTS:
            self._write(lambda w: None, optimize=True)

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

    def _fields(self, doc: IndexDocument) -> dict[str, str]:
        # index_text() includes the MRN and name, so they also match as free-text words.
        out = {"doc_id": doc.doc_id, TEXT_FIELD: index_text(doc)}
        if doc.patient_name:
            out[NAME_FIELD] = doc.patient_name
        for name in ("mrn", "doc_type", "batch_id", "encounter"):
            value = getattr(doc, name)
            if value and name in self._names:
                out[name] = value
        if doc.date_of_service is not None:
            out["date_of_service"] = _date_id(doc.date_of_service)
        codes = sorted({normalize_icd(c) for c in doc.icd_codes} - {""})
        if codes and "icd" in self._names:
            out["icd"] = " ".join(codes)
        if "fp" in self._names:
            out["fp"] = fingerprint(doc)
        return out

    # -- reading ---------------------------------------------------------------------------------

    def search(self, query: SearchQuery, load_pages: PageLoader | None = None) -> SearchResults:
        """Ranked (BM25F) documents, or by date (``query.sort``); lists without words come newest first.

        A text query that matches nothing is retried with fuzzy words (``SearchResults.suggestion``).
        """
        self._check_open()
        check_sort(query.sort)
        filters = split_field_filters(query)
        return search_with_suggestion(
            filters.text, lambda p, load: self._run(query, filters, p, load), load_pages
        )

    def _run(
        self,
        query: SearchQuery,
        filters: Filters,
        parsed: ParsedQuery | None,
        load_pages: PageLoader | None,
        ranked_only: bool = False,
    ) -> SearchResults:
        limit, offset = page_window(query.limit, query.offset)
        filt = self._filter(query, filters)
        if parsed is None and filt is None:
            return SearchResults(total=0, offset=offset, limit=limit, hits=[])
        ranked = ranked_only or (parsed is not None and bool(parsed.match) and query.sort == "relevance")
        q = parsed.query if parsed is not None else wq.Every()
        fuzzy = parsed is not None and bool(parsed.match.fuzzy)
        mask = wq.Or([wq.Term("doc_id", x) for x in sorted(query.exclude_ids)]) if query.exclude_ids else None
        kwargs: dict[str, Any] = {"filter": filt, "mask": mask}
        with_facets = query.with_facets and not ranked_only
        if with_facets:
            kwargs["groupedby"] = self._facet_groups()
            kwargs["maptype"] = sorting.Count
        with self._read_lock:
            searcher = self._current_searcher()
            if fuzzy:
                q = q.accept(self._expand_fuzzy)
            if ranked:
                first = searcher.search(q, limit=offset + limit + 1, **kwargs)
                total = len(first)
                cache = {offset + limit + 1: first}

                def fetch(n: int) -> list[tuple[str, Any, float]]:
                    res = cache[n] if n in cache else searcher.search(q, limit=n, filter=filt, mask=mask)
                    return [(hit["doc_id"], float(hit.score or 0.0), float(hit.score or 0.0)) for hit in res]

                rows = stable_window(fetch, total, offset, limit, key=lambda r: (-r[2], r[0]))
                results = first
            else:
                kwargs["sortedby"] = _date_order(ascending=query.sort == "date_asc")
                results = searcher.search(q, limit=max(1, offset + limit), **kwargs)
                total = len(results)
                rows = [(hit["doc_id"], 0.0) for hit in results[offset : offset + limit]]
            facets = _facet_counts(results, kwargs["groupedby"]) if with_facets else {}
        return SearchResults(
            total=total,
            offset=offset,
            limit=limit,
            hits=build_hits(rows, parsed, load_pages),
            facets=facets,
        )

    def _facet_groups(self) -> dict[str, Any]:
        """Whoosh facets for the counts beside a result (encounter only once the index has that field)."""
        return {
            name: facet
            for name, facet in (
                ("doc_type", FieldFacet("doc_type")),
                ("year", TranslateFacet(_year_key, FieldFacet("date_of_service"))),
                ("encounter", FieldFacet("encounter")),
            )
            if name == "year" or name in self._names
        }

    def _filter(self, query: SearchQuery, filters: Filters) -> wq.Query | None:
        clauses: list[wq.Query] = []
        for name in ("mrn", "doc_type", "batch_id", "encounter"):
            value = getattr(query, name)
            if value is not None and value.strip():
                self._require_field(name)
                clauses.append(wq.Term(name, value.strip()))
        if query.date_from is not None or query.date_to is not None:
            start = _date_id(query.date_from) if query.date_from is not None else None
            end = _date_id(query.date_to) if query.date_to is not None else None
            clauses.append(wq.TermRange("date_of_service", start, end))
        for name in filters.names:
            clauses += [wq.Term(NAME_FIELD, term) for term in dict.fromkeys(terms(name))]
        for code in filters.icds:
            self._require_field("icd")
            clauses.append(wq.Prefix("icd", code[:-1]) if code.endswith("*") else wq.Term("icd", code))
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else wq.And(clauses)

    def _require_field(self, name: str) -> None:
        """An index of an older schema cannot answer a filter it never indexed: say so, don't guess."""
        if name not in self._names:
            raise IndexUnavailable("the search index predates this filter and is being rebuilt")

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

    def timeline(self, mrn: str) -> list[TimelineEntry]:
        """Every document of this MRN, oldest first (undated last), ties by id: one term lookup and
        the stored fields of the patient's documents, never a scan of the archive."""
        self._check_open()
        mrn = mrn.strip()
        if not mrn:
            return []
        with self._read_lock:
            searcher = self._current_searcher()
            results = searcher.search(wq.Term("mrn", mrn), limit=None, scored=False)
            stored = [searcher.stored_fields(docnum) for docnum in results.docs()]
        entries = [
            TimelineEntry(
                doc_id=f["doc_id"],
                date_of_service=_parse_date_id(f.get("date_of_service")),
                doc_type=f.get("doc_type"),
                encounter=f.get("encounter"),
            )
            for f in stored
        ]
        entries.sort(key=lambda e: (e.date_of_service is None, e.date_of_service or date.min, e.doc_id))
        return entries

    def more_like_this(
        self,
        doc_id: str,
        pages: Sequence[str],
        limit: int = 10,
        exclude_ids: frozenset[str] = frozenset(),
        identifiers: Sequence[str] = (),
    ) -> SearchResults:
        """Documents sharing this one's most distinctive words (``common.key_terms``), best first.

        Whoosh's own ``more_like`` needs stored text or term vectors; the index keeps neither, so the
        key terms come from the catalog's text (``pages``) weighed against the index's frequencies.
        Words of ``identifiers`` (MRN, name) are never used: similar content, not the same patient.
        """
        self._check_open()
        own = set(terms(" ".join(identifiers)))
        with self._read_lock:
            searcher = self._current_searcher()
            n_docs = searcher.doc_count()
            weighted = key_terms(pages, own, lambda t: searcher.doc_frequency(TEXT_FIELD, t), n_docs)
        return self._similar(weighted, doc_id, limit, exclude_ids)

    def _similar(
        self, weighted: list[tuple[str, float]], doc_id: str, limit: int, exclude_ids: frozenset[str]
    ) -> SearchResults:
        parsed = similar_query(weighted)
        if parsed is None:
            return SearchResults(total=0, offset=0, limit=limit, hits=[])
        query = SearchQuery(limit=limit, exclude_ids=exclude_ids | {doc_id}, with_facets=False)
        return self._run(query, Filters(None, (), ()), parsed, None, ranked_only=True)

    def doc_ids(self) -> set[str]:
        """Every indexed document id (for reconciliation with the catalog)."""
        return set(self.fingerprints())

    def fingerprints(self) -> dict[str, str]:
        """Every indexed document id with the fingerprint of what was indexed ("" if unrecorded)."""
        self._check_open()
        with self._read_lock:
            return {f["doc_id"]: f.get("fp", "") for f in self._current_searcher().all_stored_fields()}

    def doc_count(self) -> int:
        """How many documents the index holds."""
        self._check_open()
        with self._read_lock:
            return int(self._current_searcher().doc_count())

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
            raise RuntimeError("search backend is closed")


def _facet_counts(results: Any, groups: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Counts per facet value; encounters cut to the ``MAX_FACET_VALUES`` most frequent, as tantivy's."""
    facets = {name: _counts(results.groups(name)) if name in groups else {} for name in FACETS}
    if len(facets["encounter"]) > MAX_FACET_VALUES:
        top = sorted(facets["encounter"].items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_FACET_VALUES]
        facets["encounter"] = dict(top)
    return facets

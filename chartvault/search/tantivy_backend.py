"""Tantivy (Rust) search backend: same contract and behaviour as the whoosh one, much faster.

Behaviour is kept identical by construction rather than by imitation:

* text is analyzed in Python by ``analysis`` and handed to tantivy as space-separated terms (indexed
  with tantivy's ``whitespace`` tokenizer), so both engines hold the same terms and positions;
* user queries are parsed by the shared whoosh-based parser (``query``) and the resulting tree is
  translated node by node into tantivy queries;
* snippets come from the shared highlighter.

Only ids and filter fields are stored. Writes follow the same single-writer rule as whoosh: each
batch takes the process-wide lock for the folder, opens a tantivy writer, commits once and releases
it; tantivy's lock file makes a writer in a second process fail (``ValueError: ... LockBusy``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import tantivy
from tantivy import FieldType, Occur, Order
from tantivy import Query as TQuery
from whoosh import query as wq

from chartvault.search.analysis import date_key, index_text, terms
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
from chartvault.search.query import NAME_FIELD, TEXT_FIELD, ParsedQuery, parse_user_query
from chartvault.search.types import FACETS, IndexDocument, PageLoader, SearchQuery, SearchResults

SCHEMA_VERSION = 1
WRITER_HEAP_BYTES = 64_000_000
_TERM_CHARS = re.compile(r"[^\W_]+")  # what an indexed term can consist of


def build_schema() -> tantivy.Schema:
    """Ids and filter fields stored; text fields indexed with positions only (the catalog owns text)."""
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("doc_id", stored=True, tokenizer_name="raw")
    sb.add_text_field(TEXT_FIELD, stored=False, tokenizer_name="whitespace", index_option="position")
    sb.add_text_field(NAME_FIELD, stored=False, tokenizer_name="whitespace", index_option="position")
    sb.add_text_field("mrn", stored=True, tokenizer_name="raw")
    sb.add_text_field("doc_type", stored=True, tokenizer_name="raw")
    # YYYYMMDD as u64: range filters and date-ordered listings (fast field). Absent when unknown.
    sb.add_unsigned_field("date_of_service", stored=True, indexed=True, fast=True)
    sb.add_text_field("batch_id", stored=True, tokenizer_name="raw")
    return sb.build()


class TantivyBackend:
    """``SearchBackend`` over tantivy; ``TantivyBackend(path)`` creates the index or opens it."""

    kind = "tantivy"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if tantivy.Index.exists(str(self.path)):
            self._ix: tantivy.Index | None = tantivy.Index.open(str(self.path))
        else:
            write_schema_version(self.path, self.kind, SCHEMA_VERSION)
            self._ix = tantivy.Index(build_schema(), path=str(self.path), reuse=False)
        self._schema = self._ix.schema
        # What is on disk, which may be older than SCHEMA_VERSION (None when unrecorded).
        self.schema_version = read_schema_version(self.path)
        self._write_lock = write_lock(self.path)
        self._compile: Callable[[str], TQuery] = lru_cache(maxsize=256)(self._compile_text)

    # -- writing ---------------------------------------------------------------------------------

    def index(self, docs: Sequence[IndexDocument]) -> None:
        """Add or replace these documents and commit once."""
        batch = unique_docs(docs)
        if not batch:
            return
        prepared = [self._document(doc) for doc in batch]  # analyze before taking the lock

        def apply(writer: tantivy.IndexWriter) -> None:
            for doc, tdoc in zip(batch, prepared, strict=True):
                # Delete-then-add in one commit is an upsert: a delete only hits older operations.
                writer.delete_documents_by_term("doc_id", doc.doc_id)
                writer.add_document(tdoc)

        self._write(apply)

    def delete(self, doc_ids: Sequence[str]) -> None:
        """Remove these documents (unknown ids are ignored) and commit once."""
        ids = list(dict.fromkeys(doc_ids))
        if ids:
            self._write(lambda w: [w.delete_documents_by_term("doc_id", doc_id) for doc_id in ids])

    def clear(self) -> None:
        """Drop every document (before a full rebuild)."""
        self._write(lambda w: w.delete_all_documents())

    def _write(self, apply: Callable[[tantivy.IndexWriter], object]) -> None:
        ix = self._index()
        with self._write_lock:
            writer = ix.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
            try:
                apply(writer)
                writer.commit()
            except Exception:
                writer.rollback()
                raise
            finally:
                # Let merges finish and release the lock file before the next batch opens a writer.
                writer.wait_merging_threads()
        ix.reload()

    @staticmethod
    def _document(doc: IndexDocument) -> tantivy.Document:
        tdoc = tantivy.Document()
        tdoc.add_text("doc_id", doc.doc_id)
        # index_text() includes the MRN and name, so they also match as free-text words.
        tdoc.add_text(TEXT_FIELD, " ".join(terms(index_text(doc))))
        if doc.patient_name:
            tdoc.add_text(NAME_FIELD, " ".join(terms(doc.patient_name)))
        for name in ("mrn", "doc_type", "batch_id"):
            value = getattr(doc, name)
            if value:
                tdoc.add_text(name, value)
        if doc.date_of_service is not None:
            tdoc.add_unsigned("date_of_service", date_key(doc.date_of_service))
        return tdoc

    # -- reading ---------------------------------------------------------------------------------

    def search(self, query: SearchQuery, load_pages: PageLoader | None = None) -> SearchResults:
        """Ranked (BM25) documents, or by date (``query.sort``); lists without words come newest first.

        A text query that matches nothing is retried with fuzzy words (``SearchResults.suggestion``).
        """
        self._index()
        check_sort(query.sort)
        as_typed = parse_user_query(query.text)

        def run(parsed: ParsedQuery | None, load: PageLoader | None) -> SearchResults:
            main = self._compile(query.text) if parsed is as_typed else self._translate(parsed.query)
            return self._run(query, parsed, main, load)

        return search_with_suggestion(query.text, run, load_pages)

    def _run(
        self, query: SearchQuery, parsed: ParsedQuery | None, main: TQuery, load_pages: PageLoader | None
    ) -> SearchResults:
        ix = self._index()
        limit, offset = page_window(query.limit, query.offset)
        filters = self._filters(query)
        if parsed is None and not filters:
            return SearchResults(total=0, offset=offset, limit=limit, hits=[])
        ranked = parsed is not None and bool(parsed.match) and query.sort == "relevance"
        main = main if parsed is not None else TQuery.all_query()
        # Filters score 0 so they narrow without changing the ranking (like whoosh's filter=).
        clauses = [(Occur.Must, main)] + [(Occur.Must, TQuery.const_score_query(f, 0.0)) for f in filters]
        q = TQuery.boolean_query(clauses) if len(clauses) > 1 else main
        searcher = ix.searcher()
        if ranked:
            result = searcher.search(q, limit=max(1, limit), offset=offset, count=True)
        else:
            # By date; tantivy puts documents without a value last in both orders.
            result = searcher.search(
                q,
                limit=max(1, limit),  # tantivy panics on 0
                offset=offset,
                count=True,
                order_by_field="date_of_service",
                order=Order.Asc if query.sort == "date_asc" else Order.Desc,
            )
        rows = [
            (searcher.doc(address).get_first("doc_id"), float(score) if ranked else 0.0)
            for score, address in result.hits[:limit]
        ]
        total = result.count if result.count is not None else len(rows)
        return SearchResults(
            total=total,
            offset=offset,
            limit=limit,
            hits=build_hits(rows, parsed, load_pages),
            facets=(self._facets(searcher, q) if total else {name: {} for name in FACETS})
            if query.with_facets
            else {},
        )

    @staticmethod
    def _facets(searcher: tantivy.Searcher, q: TQuery) -> dict[str, dict[str, int]]:
        """Counts over every match: types from the term dictionary restricted to the matches (no fast
        field needed, so indexes built before facets existed work), years from a date histogram."""
        types = {term: n for term, n in searcher.terms_with_prefix("doc_type", "", filter_query=q) if n}
        agg = searcher.aggregate(q, {"year": {"histogram": {"field": "date_of_service", "interval": 10_000}}})
        years = {
            year_of(int(bucket["key"])): int(bucket["doc_count"])
            for bucket in agg["year"]["buckets"]
            if bucket["doc_count"]
        }
        return {"doc_type": types, "year": years}

    def _filters(self, query: SearchQuery) -> list[TQuery]:
        out: list[TQuery] = []
        for name in ("mrn", "doc_type", "batch_id"):
            value = getattr(query, name)
            if value is not None and value.strip():
                out.append(TQuery.term_query(self._schema, name, value.strip()))
        if query.date_from is not None or query.date_to is not None:
            out.append(
                TQuery.range_query(
                    self._schema,
                    "date_of_service",
                    FieldType.Unsigned,
                    date_key(query.date_from) if query.date_from is not None else 0,
                    date_key(query.date_to) if query.date_to is not None else 99_991_231,
                    include_lower=True,
                    include_upper=True,
                )
            )
        return out

    def _compile_text(self, text: str) -> TQuery:
        parsed: ParsedQuery | None = parse_user_query(text)
        return self._translate(parsed.query) if parsed is not None else TQuery.empty_query()

    def _translate(self, q: wq.Query) -> TQuery:
        """Whoosh query tree -> tantivy query (node types limited by ``query._is_supported``)."""
        if isinstance(q, wq.FuzzyTerm):
            # Plain Levenshtein like whoosh (a swap costs 2); a term that cannot exist matches nothing.
            if _TERM_CHARS.fullmatch(q.text):
                out = TQuery.fuzzy_term_query(
                    self._schema, q.fieldname, q.text, distance=int(q.maxdist), transposition_cost_one=False
                )
            else:
                out = TQuery.empty_query()
        elif isinstance(q, wq.Term):
            out = TQuery.term_query(self._schema, q.fieldname, q.text)
        elif isinstance(q, wq.Phrase):
            words = list(q.words)
            if len(words) == 1:  # tantivy panics on one-word phrases
                out = TQuery.term_query(self._schema, q.fieldname, words[0])
            else:  # whoosh slop 1 == adjacent == tantivy slop 0
                out = TQuery.phrase_query(self._schema, q.fieldname, words, slop=max(0, q.slop - 1))
        elif isinstance(q, wq.Prefix):
            # A prefix with punctuation can match no indexed term (whoosh agrees); never build a regex
            # from it.
            if _TERM_CHARS.fullmatch(q.text):
                out = TQuery.regex_query(self._schema, q.fieldname, q.text + ".*")
            else:
                out = TQuery.empty_query()
        elif isinstance(q, wq.Not):
            out = TQuery.boolean_query(
                [(Occur.Must, TQuery.all_query()), (Occur.MustNot, self._translate(q.query))]
            )
        elif isinstance(q, wq.And):
            clauses = [
                (Occur.MustNot, self._translate(c.query))
                if isinstance(c, wq.Not)
                else (Occur.Must, self._translate(c))
                for c in q.subqueries
            ]
            if all(occur == Occur.MustNot for occur, _ in clauses):
                clauses.append((Occur.Must, TQuery.all_query()))  # "NOT x" means everything but x
            out = TQuery.boolean_query(clauses)
        elif isinstance(q, wq.Or):
            out = TQuery.boolean_query([(Occur.Should, self._translate(c)) for c in q.subqueries])
        else:
            raise TypeError(f"unsupported query node {q!r}")
        boost = getattr(q, "boost", 1.0)
        return TQuery.boost_query(out, boost) if boost != 1.0 else out

    def doc_ids(self) -> set[str]:
        """Every indexed document id (for reconciliation with the catalog)."""
        searcher = self._index().searcher()
        if searcher.num_docs == 0:
            return set()
        result = searcher.search(TQuery.all_query(), limit=searcher.num_docs, count=False)
        return {searcher.doc(address).get_first("doc_id") for _, address in result.hits}

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Drop the index handle (tantivy releases its files when collected). Idempotent."""
        self._ix = None

    def _index(self) -> tantivy.Index:
        if self._ix is None:
            raise RuntimeError(f"search backend at {self.path} is closed")
        return self._ix

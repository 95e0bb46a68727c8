"""Finding documents: ranked search, a patient's timeline, similar documents, index upkeep.

The index finds; the catalog decides what may be shown and supplies what is displayed. A hit the
catalog does not show (disposed, superseded, not archived) is dropped, excluded from a re-run so
totals and facets stay honest, and queued for removal from the index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.models import Document
from chartvault.archive.queries import visible_clause
from chartvault.errors import InvalidInput, NotFound
from chartvault.schemas.common import d
from chartvault.schemas.documents import DocumentSummary
from chartvault.schemas.search import (
    EncounterGroup,
    IndexReport,
    SearchAnswer,
    SearchHitView,
    SimilarDocuments,
    SimilarHit,
    SnippetView,
    Timeline,
)
from chartvault.search.cursor import decode_cursor, encode_cursor
from chartvault.search.indexer import Indexer
from chartvault.search.types import PageLoader, SearchQuery, SearchResults
from chartvault.services.caller import AuditTrail
from chartvault.telemetry import metrics

# A result list shows at most 500 documents per page; the audit entry of a list holds their ids.


class SearchService:
    def __init__(
        self, sessions: sessionmaker[Session], indexer: Indexer, page_texts: PageLoader, audit: AuditTrail
    ) -> None:
        self.sessions = sessions
        self.indexer = indexer
        self.page_texts = page_texts
        self.audit = audit

    @metrics.SEARCH_SECONDS.labels("search").time()
    def search(self, query: SearchQuery, cursor: str | None = None) -> SearchAnswer:
        """Ranked hits, each checked against the catalog: the index never decides what exists.

        ``cursor`` (a ``next_cursor`` of an earlier answer to the same query) pages past the deepest
        offset a caller may type; see ``chartvault.search.cursor``.
        """
        if cursor is not None:
            if query.offset:
                raise InvalidInput("give offset or cursor, not both")
            query = replace(query, offset=decode_cursor(cursor, query).position)
        results, docs = self._shown(
            lambda hidden: self.indexer.reader().search(replace(query, exclude_ids=hidden), self.page_texts)
        )
        hits = [
            SearchHitView(
                **_summary_fields(docs[h.doc_id]),
                score=round(h.score, 4),
                pages=h.pages,
                snippets=[SnippetView(page_no=sn.page_no, html=sn.html) for sn in h.snippets],
            )
            for h in results.hits
        ]
        shown = [h.document_id for h in hits]
        detail = {"filters": self._query_filters(query), "results": len(hits), "documents": shown}
        self.audit("search", detail=detail)
        reached = results.offset + len(hits)
        more = bool(hits) and reached < results.total
        return SearchAnswer(
            total=results.total,
            offset=results.offset,
            limit=results.limit,
            suggestion=results.suggestion,
            facets=results.facets,
            hits=hits,
            next_cursor=encode_cursor(query, reached, shown[-1]) if more else None,
        )

    @metrics.SEARCH_SECONDS.labels("timeline").time()
    def timeline(self, mrn: str) -> Timeline:
        """Every document of a patient in date-of-service order (undated last), grouped by encounter.

        The index finds the documents (one term lookup); the catalog decides which may be shown.
        Groups come in the order of their first document; documents without an encounter form the
        group whose ``encounter`` is null.
        """
        entries = self.indexer.reader().timeline(mrn)
        ids = [e.doc_id for e in entries]
        with self.sessions() as s:
            q = select(Document).where(Document.id.in_(ids), Document.mrn == mrn, visible_clause())
            docs = {doc.id: doc for doc in s.scalars(q)}
        if dropped := [doc_id for doc_id in ids if doc_id not in docs]:
            self.indexer.hide(dropped)
        groups: dict[str | None, list[DocumentSummary]] = {}
        for e in entries:
            if (doc := docs.get(e.doc_id)) is not None:
                groups.setdefault(doc.encounter, []).append(DocumentSummary(**_summary_fields(doc)))
        shown = [x.document_id for group in groups.values() for x in group]
        self.audit.seen("patient.timeline", "patient", self.audit.patient_ref(mrn), shown)
        return Timeline(
            mrn=mrn,
            total=len(docs),
            encounters=[
                EncounterGroup(
                    encounter=encounter,
                    first_date=next((x.date_of_service for x in items if x.date_of_service), None),
                    last_date=next((x.date_of_service for x in reversed(items) if x.date_of_service), None),
                    documents=items,
                )
                for encounter, items in groups.items()
            ],
        )

    @metrics.SEARCH_SECONDS.labels("similar").time()
    def similar(self, doc_id: str, limit: int = 10) -> SimilarDocuments:
        """Documents whose content resembles this one's (its most distinctive words, not its patient)."""
        with self.sessions() as s:
            doc = s.scalars(select(Document).where(Document.id == doc_id, visible_clause())).first()
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            identifiers = [x for x in (doc.mrn, doc.patient_name) if x]
        pages = self.page_texts(doc_id)
        results, docs = self._shown(
            lambda hidden: self.indexer.reader().more_like_this(doc_id, pages, limit, hidden, identifiers)
        )
        hits = [SimilarHit(**_summary_fields(docs[h.doc_id]), score=round(h.score, 4)) for h in results.hits]
        shown = [h.document_id for h in hits]
        self.audit("document.similar", "document", doc_id, detail={"results": len(hits), "documents": shown})
        return SimilarDocuments(document_id=doc_id, total=results.total, hits=hits)

    def _query_filters(self, query: SearchQuery) -> dict[str, Any]:
        """What a search asked for, minus free text and names (which may be PHI): ids and codes only.

        The MRN filter is recorded as the patient's internal id (or a keyed hash when no patient has
        that MRN), never as the MRN itself.
        """
        return {
            "has_text": bool(query.text),
            "patient": self.audit.patient_ref(query.mrn),
            "doc_type": query.doc_type,
            "from": d(query.date_from),
            "to": d(query.date_to),
            "batch": query.batch_id,
            "encounter": query.encounter,
            "icd": query.icd,
            "has_name": bool(query.name),
            "sort": query.sort,
            "offset": query.offset,
        }

    def reindex(self, fresh: bool = False) -> int:
        """Rebuild the index from the catalog into a new generation and swap it in (resumable: an
        interrupted rebuild continues where it stopped unless ``fresh``)."""
        return self.indexer.rebuild(fresh=fresh)

    def reconcile(self, repair: bool = False) -> IndexReport:
        """Catalog against index by id and fingerprint: missing, extra and stale documents (ids only);
        with ``repair`` they are queued for the writer (and fixed at once if this process is it)."""
        r = self.indexer.reconcile(repair=repair)
        self.audit("index.check", detail={"repair": repair, "consistent": r.consistent})
        return IndexReport(
            consistent=r.consistent,
            index_state=r.index_state,
            catalog_documents=r.catalog,
            index_documents=r.index,
            missing=sorted(r.missing),
            extra=sorted(r.extra),
            stale=sorted(r.stale),
            pending=r.pending,
            repaired=r.repaired,
        )

    def _shown(
        self, run: Callable[[frozenset[str]], SearchResults], attempts: int = 3
    ) -> tuple[SearchResults, dict[str, Document]]:
        """Run a search and keep only what the catalog shows, re-running without what it does not.

        The index lags the catalog by up to one commit (and may hold what a repair has not yet
        removed); the catalog decides. After ``attempts`` runs, leftovers are dropped from the page
        and the total lowered by as many, so no number counts a document nobody may see.
        """
        hidden = self.indexer.hidden() | self.indexer.unshown_in_index()
        for attempt in range(attempts):
            results = run(hidden)
            ids = [h.doc_id for h in results.hits]
            with self.sessions() as s:
                docs = {
                    doc.id: doc
                    for doc in s.scalars(select(Document).where(Document.id.in_(ids), visible_clause()))
                }
            dropped = [doc_id for doc_id in ids if doc_id not in docs]
            if not dropped:
                return results, docs
            self.indexer.hide(dropped)
            hidden = hidden | set(dropped)
            if attempt == attempts - 1:
                results.hits = [h for h in results.hits if h.doc_id in docs]
                results.total = max(len(results.hits), results.total - len(dropped))
        return results, docs


def _summary_fields(doc: Document) -> dict[str, Any]:
    """What a result list shows of a document, from the catalog."""
    return {
        "document_id": doc.id,
        "doc_type": doc.doc_type,
        "mrn": doc.mrn,
        "patient_name": doc.patient_name,
        "date_of_service": d(doc.date_of_service),
        "encounter": doc.encounter,
        "page_count": doc.page_count,
    }

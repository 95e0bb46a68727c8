"""The catalog as the index writer sees it (``chartvault.search.indexer.IndexSource``).

The index queue is a table in the catalog: whoever changes a document adds a row, and the one
writer process drains it. What a document looks like to the index is decided here, from the
catalog, so the index never holds anything the catalog does not show.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from chartvault.archive.models import PAGE_ARCHIVED, PAGE_INDEXED, Document, IndexTask, Page
from chartvault.archive.queries import HIDDEN_STATUSES, visible_clause
from chartvault.search.indexer import QueuedTask
from chartvault.search.types import IndexDocument


def to_index_document(doc: Document) -> IndexDocument:
    """A catalog document as the index sees it (text for indexing only; it is never stored)."""
    return IndexDocument(
        doc_id=doc.id,
        pages=[p.text or "" for p in doc.pages],
        mrn=doc.mrn,
        patient_name=doc.patient_name,
        doc_type=doc.doc_type,
        date_of_service=doc.date_of_service,
        batch_id=doc.batch_id,
        encounter=doc.encounter,
        icd_codes=[str(c) for c in doc.icd_codes or []],
    )


class CatalogIndexSource:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def queue_length(self) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(IndexTask)) or 0

    def queued_ids(self) -> set[str]:
        with self.sessions() as s:
            return set(s.scalars(select(IndexTask.document_id)))

    def enqueue(self, upserts: Sequence[str] = (), deletes: Sequence[str] = ()) -> None:
        with self.sessions() as s:
            s.add_all(IndexTask(document_id=doc_id, op="upsert") for doc_id in upserts)
            s.add_all(IndexTask(document_id=doc_id, op="delete") for doc_id in deletes)
            s.commit()

    def next_tasks(self, limit: int) -> list[QueuedTask]:
        with self.sessions() as s:
            rows = s.execute(select(IndexTask.id, IndexTask.document_id).order_by(IndexTask.id).limit(limit))
            return [QueuedTask(task_id, doc_id) for task_id, doc_id in rows]

    def shown_documents(self, ids: Sequence[str]) -> list[IndexDocument]:
        if not ids:
            return []
        return self._documents(Document.id.in_(list(ids)))

    def shown_after(self, last_id: str, limit: int) -> list[IndexDocument]:
        return self._documents(Document.id > last_id, limit=limit)

    def _documents(self, where: ColumnElement[bool], limit: int | None = None) -> list[IndexDocument]:
        q = (
            select(Document)
            .where(where, visible_clause())
            .order_by(Document.id)
            .options(selectinload(Document.pages))
        )
        with self.sessions() as s:
            return [to_index_document(d) for d in s.scalars(q.limit(limit) if limit else q)]

    def settle(self, task_ids: Sequence[int], indexed: Sequence[str], removed: Sequence[str]) -> None:
        now = datetime.now(UTC)
        with self.sessions() as s, s.begin():
            if indexed:
                shown = select(Document.id).where(Document.id.in_(list(indexed)), visible_clause())
                s.execute(
                    update(Document)
                    .where(Document.id.in_(shown))
                    .values(status=PAGE_INDEXED, indexed_at=now)
                    .execution_options(synchronize_session=False)
                )
                s.execute(
                    update(Page)
                    .where(Page.document_id.in_(list(indexed)), Page.status == PAGE_ARCHIVED)
                    .values(status=PAGE_INDEXED)
                    .execution_options(synchronize_session=False)
                )
            if removed:  # out of the index: ``awaiting_removal`` relies on this
                s.execute(
                    update(Document)
                    .where(Document.id.in_(list(removed)))
                    .values(indexed_at=None)
                    .execution_options(synchronize_session=False)
                )
            if task_ids:
                s.execute(delete(IndexTask).where(IndexTask.id.in_(list(task_ids))))

    def awaiting_removal(self) -> frozenset[str]:
        # Cheap: an IN over the hidden statuses uses the status index, and ``settle`` clears
        # ``indexed_at`` when a document leaves the index, so only those waiting come back.
        with self.sessions() as s:
            q = select(Document.id).where(
                Document.status.in_(HIDDEN_STATUSES), Document.indexed_at.is_not(None)
            )
            return frozenset(s.scalars(q))

    def any_indexed(self) -> bool:
        with self.sessions() as s:
            q = select(Document.id).where(Document.status == PAGE_INDEXED, visible_clause()).limit(1)
            return s.scalar(q) is not None

    def shown_ids_after(self, last_id: str, limit: int, only_indexed: bool = False) -> list[str]:
        where = [visible_clause(), Document.id > last_id]
        if only_indexed:
            where.append(Document.status == PAGE_INDEXED)
        with self.sessions() as s:
            return list(s.scalars(select(Document.id).where(*where).order_by(Document.id).limit(limit)))

    def changed_since(self, since: datetime) -> list[str]:
        with self.sessions() as s:
            q = select(Document.id).where(visible_clause(), Document.indexed_at >= since)
            return list(s.scalars(q))

"""The single index writer: it consumes the catalog's index queue and owns the index.

whoosh (and tantivy) allow one writer per index; peers that open their own
writers meet lock errors or, worse, corrupt the index. So indexing goes through
a queue table in the catalog, and exactly one process at a time — the one that
holds ``writer.lock`` — drains it. Everyone else only reads.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from chartvault.archive.models import (
    PAGE_ARCHIVED,
    PAGE_INDEXED,
    Document,
    IndexTask,
)
from chartvault.search.types import IndexDocument, SearchBackend

log = logging.getLogger("chartvault.indexer")


def to_index_document(doc: Document) -> IndexDocument:
    return IndexDocument(
        doc_id=doc.id,
        pages=[p.text or "" for p in doc.pages],
        mrn=doc.mrn,
        patient_name=doc.patient_name,
        doc_type=doc.doc_type,
        date_of_service=doc.date_of_service,
        batch_id=doc.batch_id,
    )


class WriterLock:
    """An exclusive, non-blocking advisory lock on a file; released when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Indexer:
    def __init__(
        self, sessions: sessionmaker[Session], backend: Callable[[], SearchBackend], lock: WriterLock
    ) -> None:
        self.sessions = sessions
        self._backend = backend
        self.lock = lock

    def pending(self) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(IndexTask)) or 0

    def run_once(self, limit: int = 200) -> int:
        """Index up to ``limit`` queued documents in one commit; returns how many were done.

        The index commits before the queue rows are deleted, so a crash between
        the two only repeats an idempotent upsert.
        """
        if not self.lock.acquire():
            return 0
        with self.sessions() as s:
            tasks = s.scalars(select(IndexTask).order_by(IndexTask.id).limit(limit)).all()
            if not tasks:
                return 0
            upsert_ids = {t.document_id for t in tasks if t.op == "upsert"}
            delete_ids = {t.document_id for t in tasks if t.op == "delete"} - upsert_ids
            docs = s.scalars(
                select(Document).where(Document.id.in_(upsert_ids)).options(selectinload(Document.pages))
            ).all()
            backend = self._backend()
            if docs:
                backend.index([to_index_document(d) for d in docs])
            if delete_ids:
                backend.delete(sorted(delete_ids))
            now = datetime.now(UTC)
            for d in docs:
                d.status, d.indexed_at = PAGE_INDEXED, now
                for p in d.pages:
                    if p.status == PAGE_ARCHIVED:
                        p.status = PAGE_INDEXED
            for t in tasks:
                s.delete(t)
            s.commit()
            log.info("indexed documents=%d deleted=%d", len(docs), len(delete_ids))
            return len(tasks)

    def drain(self) -> int:
        total = 0
        while n := self.run_once():
            total += n
        return total

    def rebuild(self, chunk: int = 200) -> int:
        """Rebuild the whole index from the catalog, in bounded memory (``chunk`` documents at a time)."""
        if not self.lock.acquire():
            raise RuntimeError("another ChartVault process owns the index writer; stop it or reindex there")
        backend = self._backend()
        backend.clear()
        total = 0
        for docs in self._archived_chunks(chunk):
            backend.index([to_index_document(d) for d in docs])
            total += len(docs)
        return total

    def _archived_chunks(self, chunk: int) -> Iterator[list[Document]]:
        last = ""
        while True:
            with self.sessions() as s:
                docs = s.scalars(
                    select(Document)
                    .where(Document.status.in_((PAGE_ARCHIVED, PAGE_INDEXED)), Document.id > last)
                    .order_by(Document.id)
                    .limit(chunk)
                    .options(selectinload(Document.pages))
                ).all()
                if not docs:
                    return
                last = docs[-1].id
                yield list(docs)

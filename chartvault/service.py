"""One core under the CLI and the API (Datasette's pattern): every operation lives here once.

``Vault`` opens the catalog (migrating it), the object store, the search
backend and the worker pool from ``Settings``; the CLI and the FastAPI routes
are thin shells that call it and print or serialise what it returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from chartvault.archive import audit
from chartvault.archive.db import make_engine, session_factory, upgrade
from chartvault.archive.models import (
    BATCH_COMPLETE,
    BATCH_COMPLETE_WITH_ERRORS,
    BATCH_RECEIVING,
    FILE_DONE_STATES,
    PAGE_ARCHIVED,
    PAGE_INDEXED,
    Batch,
    BatchFile,
    Document,
    Page,
)
from chartvault.archive.objectstore import ObjectRef
from chartvault.archive.stores import open_object_store
from chartvault.config import Settings
from chartvault.ingest.batches import (
    StagedFile,
    add_file,
    close_intake,
    create_batch,
    read_chunks,
    stage_chunks,
)
from chartvault.ingest.indexer import Indexer, WriterLock
from chartvault.ingest.manifest import Manifest
from chartvault.ingest.pipeline import Pipeline, Progress
from chartvault.ingest.sniff import Limits
from chartvault.ingest.workers import make_pool
from chartvault.ocr.types import OcrOptions
from chartvault.search import open_backend
from chartvault.search.types import SearchBackend, SearchQuery

log = logging.getLogger("chartvault")


class NotFound(LookupError):
    """No such batch, document or page (the message names the id only)."""


@dataclass(frozen=True, slots=True)
class Original:
    ref: ObjectRef
    mime: str
    size: int
    filename: str


class Vault:
    def __init__(self, settings: Settings, actor: str = "system") -> None:
        self.settings = settings
        self.actor = actor  # who the audit log names for reads through this Vault
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("staging", "quarantine", "tmp", "index"):
            (settings.data_dir / sub).mkdir(exist_ok=True)
        self.engine = make_engine(settings.catalog_url)
        upgrade(self.engine)
        self.sessions = session_factory(self.engine)
        self.store = open_object_store(settings)
        self._backend: SearchBackend | None = None
        self._backend_lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.limits = Limits(
            max_file_bytes=settings.max_file_bytes,
            max_pages=settings.max_pages,
            max_pixels=settings.max_pixels,
            render_dpi=settings.ocr_dpi,
        )
        self.ocr_options = OcrOptions(
            lang=settings.ocr_lang,
            dpi=settings.ocr_dpi,
            timeout_s=settings.ocr_timeout_s,
            text_layer_min_chars=settings.text_layer_min_chars,
        )
        self.pipeline = Pipeline(
            settings.data_dir,
            self.sessions,
            self.store,
            self.pool,
            self.limits,
            self.ocr_options,
            self.reset_pool,
        )
        self.indexer = Indexer(
            self.sessions, self.backend, WriterLock(settings.data_dir / "index" / "writer.lock")
        )

    # -- resources ------------------------------------------------------------------------------

    def backend(self) -> SearchBackend:
        with self._backend_lock:
            if self._backend is None:
                self._backend = open_backend(self.settings.search_backend, self.settings.data_dir / "index")
            return self._backend

    def pool(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = make_pool(self.settings.worker_count, self.settings.max_pixels)
            return self._pool

    def reset_pool(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        self.reset_pool()
        if self._backend is not None:
            self._backend.close()
        self.indexer.lock.release()
        self.engine.dispose()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- intake ---------------------------------------------------------------------------------

    def new_batch(
        self,
        source: str,
        station: str | None = None,
        operator: str | None = None,
        manifest: Manifest | None = None,
    ) -> str:
        with self.sessions() as s:
            batch = create_batch(s, source, station, operator, manifest)
            s.commit()
            return batch.id

    def stage(self, chunks: Iterable[bytes]) -> StagedFile:
        return stage_chunks(
            chunks, self.settings.data_dir / "staging" / ".incoming", self.settings.max_file_bytes
        )

    def add_staged(
        self,
        batch_id: str,
        staged: StagedFile,
        name: str | None,
        manifest: Manifest | None = None,
        source_path: str | None = None,
    ) -> str:
        with self.sessions() as s:
            batch = s.get(Batch, batch_id)
            if batch is None:
                raise NotFound(f"batch {batch_id} not found")
            row = add_file(
                s,
                self.settings.data_dir,
                batch,
                staged,
                name,
                manifest,
                source_path=source_path,
                max_bytes=self.settings.max_file_bytes,
            )
            s.commit()
            return row.id

    def add_path(self, batch_id: str, path: Path, manifest: Manifest | None = None) -> str:
        staged = self.stage(read_chunks(path))
        return self.add_staged(batch_id, staged, path.name, manifest, source_path=str(path))

    def close_intake(self, batch_id: str, manifest: Manifest | None = None) -> None:
        with self.sessions() as s:
            batch = s.get(Batch, batch_id)
            if batch is None:
                raise NotFound(f"batch {batch_id} not found")
            close_intake(s, batch, manifest)
            s.commit()

    def close_intake_if_open(self, batch_id: str) -> None:
        """After a crash during intake: close it with what was staged (nothing staged is dropped)."""
        with self.sessions() as s:
            batch = s.get(Batch, batch_id)
            if batch is not None and batch.status == BATCH_RECEIVING:
                close_intake(s, batch, None)
                s.commit()

    def process(self, batch_id: str, progress: Progress | None = None) -> None:
        self.pipeline.process_batch(batch_id, progress)

    def index_pending(self) -> int:
        """Index queued documents if this process owns the writer; 0 when another process does."""
        return self.indexer.drain()

    def owns_index_writer(self) -> bool:
        return self.indexer.lock.acquire()

    def incomplete_batches(self) -> list[str]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(Batch.id)
                    .where(Batch.status.not_in((BATCH_COMPLETE, BATCH_COMPLETE_WITH_ERRORS)))
                    .order_by(Batch.created_at)
                )
            )

    # -- reading (every read of a document is audited) ------------------------------------------

    def audit(
        self,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> None:
        audit.record(self.sessions, actor or self.actor, action, target_type, target_id, outcome, detail)

    def batch_report(self, batch_id: str) -> dict[str, Any]:
        with self.sessions() as s:
            batch = s.get(
                Batch,
                batch_id,
                options=[
                    selectinload(Batch.files).selectinload(BatchFile.pages),
                    selectinload(Batch.files).selectinload(BatchFile.documents),
                ],
            )
            if batch is None:
                raise NotFound(f"batch {batch_id} not found")
            files = [_file_report(f) for f in batch.files]
            counts: dict[str, int] = {}
            for f in batch.files:
                counts[f.status] = counts.get(f.status, 0) + 1
            return {
                "id": batch.id,
                "status": batch.status,
                "source": batch.source,
                "station": batch.station,
                "operator": batch.operator,
                "created_at": _ts(batch.created_at),
                "completed_at": _ts(batch.completed_at),
                "needs_review": bool(batch.flags),
                "flags": batch.flags or [],
                "file_counts": counts,
                "pages": sum(f.page_count or 0 for f in batch.files),
                "done": all(f.status in FILE_DONE_STATES for f in batch.files),
                "files": files,
            }

    def list_batches(self, limit: int, offset: int) -> list[dict[str, Any]]:
        with self.sessions() as s:
            rows = s.scalars(
                select(Batch).order_by(Batch.created_at.desc()).limit(limit).offset(offset)
            ).all()
            return [
                {
                    "id": b.id,
                    "status": b.status,
                    "source": b.source,
                    "station": b.station,
                    "created_at": _ts(b.created_at),
                    "needs_review": bool(b.flags),
                }
                for b in rows
            ]

    def document(self, doc_id: str, with_text: bool = True) -> dict[str, Any]:
        with self.sessions() as s:
            doc = s.get(Document, doc_id, options=[selectinload(Document.pages)])
            if doc is None:
                self.audit("document.read", "document", doc_id, outcome="not_found")
                raise NotFound(f"document {doc_id} not found")
            linked = s.scalars(select(BatchFile.id).where(BatchFile.duplicate_of == doc.id)).all()
            result = _document_dict(doc, list(linked), with_text)
        self.audit("document.read", "document", doc_id, detail={"with_text": with_text})
        return result

    def page_text(self, doc_id: str, page_no: int) -> dict[str, Any]:
        with self.sessions() as s:
            page = s.scalars(
                select(Page)
                .join(Document, Page.document_id == Document.id)
                .where(Document.id == doc_id, Page.page_no == page_no)
            ).first()
            if page is None:
                if s.get(Document, doc_id) is None:
                    raise NotFound(f"document {doc_id} not found")
                raise NotFound(f"document {doc_id} has no page {page_no}")
            return {
                "document_id": doc_id,
                "page_no": page.page_no,
                "text": page.text or "",
                "confidence": page.confidence,
                "source": page.source,
                "status": page.status,
            }

    def original(self, doc_id: str) -> Original:
        with self.sessions() as s:
            doc = s.get(Document, doc_id)
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            if doc.object_key is None:
                raise NotFound(f"document {doc_id} is not archived yet")
            ext = {"image/tiff": "tif", "image/png": "png", "image/jpeg": "jpg", "application/pdf": "pdf"}
            return Original(
                ObjectRef(doc.object_key, doc.sha256, doc.size, doc.object_version),
                doc.mime,
                doc.size,
                f"{doc.id}.{ext.get(doc.mime, 'bin')}",
            )

    def stream_original(self, doc_id: str, original: Original) -> Iterator[bytes]:
        """The original's bytes; the download is audited before the first byte leaves."""
        self.audit("document.download", "document", doc_id, detail={"sha256": original.ref.sha256})
        return self.store.open(original.ref)

    def page_texts(self, doc_id: str) -> Sequence[str]:
        with self.sessions() as s:
            rows = s.scalars(select(Page).where(Page.document_id == doc_id).order_by(Page.page_no)).all()
            return [p.text or "" for p in rows]

    def search(self, query: SearchQuery) -> dict[str, Any]:
        """Ranked hits, each checked against the catalog: the index never decides what exists."""
        results = self.backend().search(query, self.page_texts)
        ids = [h.doc_id for h in results.hits]
        with self.sessions() as s:
            docs = {
                d.id: d
                for d in s.scalars(
                    select(Document).where(
                        Document.id.in_(ids), Document.status.in_((PAGE_ARCHIVED, PAGE_INDEXED))
                    )
                )
            }
        hits = []
        for h in results.hits:
            d = docs.get(h.doc_id)
            if d is None:
                continue
            hits.append(
                {
                    "document_id": d.id,
                    "score": round(h.score, 4),
                    "doc_type": d.doc_type,
                    "mrn": d.mrn,
                    "patient_name": d.patient_name,
                    "date_of_service": _d(d.date_of_service),
                    "page_count": d.page_count,
                    "pages": h.pages,
                    "snippets": [{"page_no": sn.page_no, "html": sn.html} for sn in h.snippets],
                }
            )
        self.audit("search", detail={"filters": _query_filters(query), "results": len(hits)})
        return {
            "total": results.total,
            "offset": results.offset,
            "limit": results.limit,
            "suggestion": results.suggestion,
            "facets": results.facets,
            "hits": hits,
        }

    def reindex(self) -> int:
        return self.indexer.rebuild()


def _query_filters(query: SearchQuery) -> dict[str, Any]:
    """What a search asked for, minus free text and names (which may be PHI): ids and codes only."""
    return {
        "has_text": bool(query.text),
        "mrn": query.mrn,
        "doc_type": query.doc_type,
        "from": _d(query.date_from),
        "to": _d(query.date_to),
        "batch": query.batch_id,
        "sort": query.sort,
    }


def _ts(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _d(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _file_report(f: BatchFile) -> dict[str, Any]:
    docs = [d.id for d in f.documents] or ([f.duplicate_of] if f.duplicate_of else [])
    return {
        "id": f.id,
        "seq": f.seq,
        "name": f.original_name,
        "status": f.status,
        "reason_code": f.reason_code,
        "reason": f.reason,
        "kind": f.kind,
        "size": f.size,
        "sha256": f.sha256,
        "page_count": f.page_count,
        "expected_pages": f.expected_pages,
        "duplicate_of": f.duplicate_of,
        "documents": docs,
        "pages": [
            {
                "page_no": p.page_no,
                "status": p.status,
                "confidence": p.confidence,
                "source": p.source,
                "error": p.error,
            }
            for p in f.pages
        ],
    }


def _document_dict(doc: Document, linked_files: list[str], with_text: bool) -> dict[str, Any]:
    conf = doc.identifier_confidence or {}

    def ident(name: str, value: Any) -> dict[str, Any] | None:
        return None if value is None else {"value": value, "confidence": conf.get(name)}

    return {
        "id": doc.id,
        "batch_id": doc.batch_id,
        "file_id": doc.file_id,
        "status": doc.status,
        "doc_type": doc.doc_type,
        "doc_type_confidence": doc.doc_type_confidence,
        "identifiers": {
            "mrn": ident("mrn", doc.mrn),
            "name": ident("name", doc.patient_name),
            "dob": ident("dob", _d(doc.dob)),
            "date_of_service": ident("date_of_service", _d(doc.date_of_service)),
            "account": ident("account", doc.account),
            "encounter": ident("encounter", doc.encounter),
        },
        "patient_id": doc.patient_id,
        "sha256": doc.sha256,
        "size": doc.size,
        "mime": doc.mime,
        "page_count": doc.page_count,
        "archived_at": _ts(doc.archived_at),
        "indexed_at": _ts(doc.indexed_at),
        "linked_duplicate_files": linked_files,
        "pages": [
            {
                "page_no": p.page_no,
                "status": p.status,
                "confidence": p.confidence,
                "source": p.source,
                "rotation": p.rotation,
                **({"text": p.text or ""} if with_text else {}),
            }
            for p in doc.pages
        ],
    }

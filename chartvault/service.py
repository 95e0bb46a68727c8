"""One core under the CLI and the API (Datasette's pattern): every operation lives here once.

``Vault`` opens the catalog (migrating it), the object store, the search
backend and the worker pool from ``Settings``; the CLI and the FastAPI routes
are thin shells that call it and print or serialise what it returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from chartvault.access import AccessMixin
from chartvault.archive import audit
from chartvault.archive.db import make_engine, session_factory, upgrade
from chartvault.archive.lifecycle import INACTIVE, RetentionPolicy, apply_retention, recompute_patient
from chartvault.archive.models import (
    BATCH_COMPLETE,
    BATCH_COMPLETE_WITH_ERRORS,
    BATCH_RECEIVING,
    DOC_DISPOSED,
    FILE_DONE_STATES,
    REVIEW_PENDING,
    REVIEW_RESOLVED,
    Batch,
    BatchFile,
    ClassificationCorrection,
    Document,
    IndexTask,
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
from chartvault.ingest.indexer import Indexer, ReconcileReport, WriterLock, visible_clause
from chartvault.ingest.manifest import Manifest
from chartvault.ingest.pipeline import Pipeline, Progress
from chartvault.ingest.sniff import Limits
from chartvault.ingest.workers import make_pool
from chartvault.ocr.types import OcrOptions
from chartvault.records import RecordsMixin
from chartvault.release.service import ReleaseMixin
from chartvault.search.types import SearchBackend, SearchQuery, SearchResults

log = logging.getLogger("chartvault")


class InvalidInput(ValueError):
    """A request the core refuses as malformed (the message names fields, never values)."""


def _drop_reasons(doc: Document, codes: set[str]) -> None:
    """Remove resolved review reasons; the review is resolved once none is left."""
    left = [r for r in doc.review_reasons or [] if r.get("code") not in codes]
    doc.review_reasons = left or None
    if doc.review_status == REVIEW_PENDING and not left:
        doc.review_status = REVIEW_RESOLVED


class NotFound(LookupError):
    """No such batch, document or page (the message names the id only)."""


@dataclass(frozen=True, slots=True)
class Original:
    ref: ObjectRef
    mime: str
    size: int
    filename: str


class Vault(AccessMixin, RecordsMixin, ReleaseMixin):
    def __init__(self, settings: Settings, actor: str = "system") -> None:
        self.settings = settings
        self._default_actor = actor  # who the audit log names when no API caller is set
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("staging", "quarantine", "tmp", "index"):
            (settings.data_dir / sub).mkdir(exist_ok=True)
        self.engine = make_engine(settings.catalog_url)
        upgrade(self.engine)
        self.sessions = session_factory(self.engine)
        self.store = open_object_store(settings)
        self.retention_policy = RetentionPolicy.from_settings(settings)
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
            preprocess=settings.ocr_preprocess,
            engine=settings.ocr_engine,
            grey_dpi=settings.ocr_grey_dpi,
        )
        self.pipeline = Pipeline(
            settings.data_dir,
            self.sessions,
            self.store,
            self.pool,
            self.limits,
            self.ocr_options,
            self.reset_pool,
            self.retention_policy,
        )
        # Document-type model for this catalog (base training data + its staff corrections).
        self._model_lock = threading.Lock()
        self._model: Any = None
        self._model_marker: tuple[int, int] | None = None
        self.pipeline.doc_model = self.classifier_model
        self.pipeline.review_threshold = settings.review_confidence_threshold
        self.indexer = Indexer(
            self.sessions,
            settings.search_backend,
            settings.data_dir / "index",
            WriterLock(settings.data_dir / "index" / "writer.lock"),
        )

    # -- resources ------------------------------------------------------------------------------

    def backend(self) -> SearchBackend:
        """The current index generation (``IndexUnavailable`` while there is none to answer from)."""
        return self.indexer.reader()

    def pool(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None and self.settings.executor == "celery":
                from chartvault.ingest.distributed import CeleryExecutor  # celery only when configured

                self._pool = CeleryExecutor(self.settings)  # type: ignore[assignment]  # same submit/shutdown
            elif self._pool is None:
                self._pool = make_pool(self.settings.worker_count, self.settings.max_pixels)
            return self._pool

    def reset_pool(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        self.reset_pool()
        self.indexer.close()
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
            batch.created_by = self.actor
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
    ) -> str:
        """Append an audit entry; returns its chain hash."""
        return audit.record(
            self.sessions, actor or self.actor, action, target_type, target_id, outcome, detail
        )

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
            if batch is None or not self._may_see_batch(batch):
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

    def _may_see_batch(self, batch: Batch) -> bool:
        """Scanner tokens see only the batches they uploaded (404 otherwise: no existence leak)."""
        p = self.principal
        return p is None or p.role != "scanner" or batch.created_by == self.actor

    def list_batches(self, limit: int, offset: int) -> list[dict[str, Any]]:
        with self.sessions() as s:
            q = select(Batch).order_by(Batch.created_at.desc())
            if self.principal is not None and self.principal.role == "scanner":
                q = q.where(Batch.created_by == self.actor)  # a scanning station sees its own batches
            rows = s.scalars(q.limit(limit).offset(offset)).all()
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
                "text": "" if page.blank else (page.text or ""),  # a blank back: no text to show
                "blank": bool(page.blank),
                "confidence": page.confidence,
                "source": page.source,
                "status": page.status,
            }

    def original(self, doc_id: str) -> Original:
        with self.sessions() as s:
            doc = s.get(Document, doc_id)
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            if doc.status == DOC_DISPOSED:
                raise NotFound(f"document {doc_id} was destroyed by disposition {doc.disposition_id}")
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
        """Page texts in page order; a blank page gives "" (kept in place so positions stay page numbers)."""
        with self.sessions() as s:
            rows = s.scalars(select(Page).where(Page.document_id == doc_id).order_by(Page.page_no)).all()
            return ["" if p.blank else (p.text or "") for p in rows]

    # -- classification and the review queue ------------------------------------------------------

    def _corrections_marker(self) -> tuple[int, int]:
        with self.sessions() as s:
            row = s.execute(
                select(func.count(ClassificationCorrection.id), func.max(ClassificationCorrection.id))
            ).one()
            return int(row[0] or 0), int(row[1] or 0)

    def classifier_corrections(self) -> list[tuple[str, str]]:
        """(text, doc_type) of every staff-corrected document, latest correction per document, for training.

        The text is the document's non-blank page texts; documents whose text is gone (disposed) are skipped.
        """
        with self.sessions() as s:
            latest: dict[str, str] = {}
            for c in s.scalars(select(ClassificationCorrection).order_by(ClassificationCorrection.id)):
                latest[c.document_id] = c.new_type
            out: list[tuple[str, str]] = []
            for doc_id in sorted(latest):
                rows = s.scalars(select(Page).where(Page.document_id == doc_id).order_by(Page.page_no)).all()
                text = "\n".join(p.text or "" for p in rows if not p.blank and p.text)
                if text.strip():
                    out.append((text, latest[doc_id]))
            return out

    def _model_dir(self, with_corrections: bool) -> Path:
        # Corrections belong to this catalog, so a model trained on them is cached with its data;
        # the base model is shared by every catalog on the machine (CHARTVAULT_MODEL_DIR).
        from chartvault.classify.doctype import model_dir

        return self.settings.data_dir / "models" if with_corrections else model_dir()

    def classifier_model(self) -> Any:
        """The type model for this catalog, reloaded when its corrections change (retrained if stale).

        None when it cannot be built (no training data or scikit-learn): the rules then work alone.
        """
        from chartvault.classify import get_default_model
        from chartvault.classify.model import default_model

        marker = self._corrections_marker()
        with self._model_lock:
            if self._model_marker != marker:
                corrections = self.classifier_corrections() if marker[0] else []
                try:
                    if corrections:
                        self._model = default_model(self._model_dir(True), corrections)
                    else:
                        self._model = get_default_model()
                except (FileNotFoundError, ImportError) as exc:
                    log.warning("document-type model unavailable, using rules only: %s", type(exc).__name__)
                    self._model = None
                self._model_marker = marker
            return self._model

    def train_classifier(self) -> dict[str, Any]:
        """Retrain the type model on the labelled texts + samples + this catalog's staff corrections."""
        import time

        from chartvault.classify import doctype
        from chartvault.classify.model import cache_path, retrain

        marker = self._corrections_marker()
        corrections = self.classifier_corrections()
        folder = self._model_dir(bool(corrections))
        started = time.perf_counter()
        model = retrain(folder, corrections)
        elapsed = round(time.perf_counter() - started, 2)
        with self._model_lock:
            self._model, self._model_marker = model, marker
        if not corrections:
            doctype.set_default_model(model)
        self.audit("classifier.train", detail={"version": model.version, "corrections": len(corrections)})
        return {
            "version": model.version,
            "sklearn_version": model.sklearn_version,
            "n_train": model.n_train,
            "corrections": len(corrections),
            "train_s": elapsed,
            "path": str(cache_path(folder)),
        }

    def review_queue(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Documents waiting for a person (oldest first) with their reasons: ids and codes, never PHI."""
        with self.sessions() as s:
            pending = Document.review_status == REVIEW_PENDING
            total = s.scalar(select(func.count()).select_from(Document).where(pending)) or 0
            docs = s.scalars(
                select(Document)
                .where(pending)
                .options(selectinload(Document.pages))
                .order_by(Document.created_at, Document.id)
                .limit(limit)
                .offset(offset)
            ).all()
            items = [
                {
                    "document_id": d.id,
                    "batch_id": d.batch_id,
                    "file_id": d.file_id,
                    "first_page": d.first_page,
                    "page_count": d.page_count - (d.blank_pages or 0),
                    "doc_type": d.doc_type,
                    "doc_type_confidence": d.doc_type_confidence,
                    "classification_source": d.classification_source,
                    "patient_linked": d.patient_id is not None,
                    "reasons": list(d.review_reasons or []),
                    "flagged_pages": [{"page_no": p.page_no, "flags": p.flags} for p in d.pages if p.flags],
                    "created_at": _ts(d.created_at),
                }
                for d in docs
            ]
        self.audit("review.list", detail={"results": len(items)})
        return {"total": total, "limit": limit, "offset": offset, "items": items}

    def correct_classification(self, doc_id: str, doc_type: str, actor: str | None = None) -> dict[str, Any]:
        """A person sets the type: recorded for training, resolves the type review, re-queued for indexing."""
        from chartvault.classify import DOC_TYPES
        from chartvault.classify.types import SOURCE_STAFF
        from chartvault.ingest.pipeline import REVIEW_LOW_CONFIDENCE

        if doc_type not in DOC_TYPES:
            raise InvalidInput(f"unknown document type (expected one of {', '.join(DOC_TYPES)})")
        who = actor or self.actor
        with self.sessions() as s:
            doc = s.get(Document, doc_id)
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            old = doc.doc_type
            correction = ClassificationCorrection(
                document_id=doc.id, old_type=old, new_type=doc_type, corrected_by=who
            )
            s.add(correction)
            doc.doc_type, doc.doc_type_confidence, doc.classification_source = doc_type, 1.0, SOURCE_STAFF
            _drop_reasons(doc, {REVIEW_LOW_CONFIDENCE, "invalid_cover_sheet"})
            s.add(IndexTask(document_id=doc.id, op="upsert"))
            if doc.object_key and doc.status not in INACTIVE:
                apply_retention(s, self.store, doc, self.retention_policy)  # the type drives the rules
            s.commit()
            status = doc.review_status
        self.audit(
            "document.classify",
            "document",
            doc_id,
            detail={"old_type": old, "new_type": doc_type},
            actor=who,
        )
        return {"document_id": doc_id, "doc_type": doc_type, "old_type": old, "review_status": status}

    def resolve_review(self, doc_id: str, mrn: str | None = None, actor: str | None = None) -> dict[str, Any]:
        """A person confirms whose document this is (optionally correcting the MRN): every reason is
        resolved, page misfile flags are cleared, and the document is linked to a patient if two
        identifiers agree."""
        from chartvault.ingest.pipeline import _match_patient

        who = actor or self.actor
        with self.sessions() as s:
            doc = s.get(Document, doc_id, options=[selectinload(Document.pages)])
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            codes = [r.get("code") for r in doc.review_reasons or []]
            if mrn is not None:
                if not mrn.strip() or len(mrn.strip()) > 64:
                    raise InvalidInput("mrn must be 1-64 characters")
                doc.mrn = mrn.strip()
                doc.identifier_confidence = {**(doc.identifier_confidence or {}), "mrn": 1.0}
            doc.review_reasons = None
            doc.review_status = REVIEW_RESOLVED
            for p in doc.pages:
                if p.flags:
                    p.flags = [f for f in p.flags if f.get("code") != "possible_misfile"] or None
            doc.patient_id = _match_patient(s, doc)
            s.add(IndexTask(document_id=doc.id, op="upsert"))
            if doc.object_key and doc.status not in INACTIVE:
                s.flush()
                apply_retention(s, self.store, doc, self.retention_policy)
                if doc.mrn:  # this encounter may be the patient's latest
                    recompute_patient(s, self.store, doc.mrn, self.retention_policy, skip=[doc.id])
            s.commit()
            linked = doc.patient_id is not None
        self.audit(
            "document.review_resolve",
            "document",
            doc_id,
            detail={"codes": codes, "mrn_changed": mrn is not None, "patient_linked": linked},
            actor=who,
        )
        return {"document_id": doc_id, "review_status": REVIEW_RESOLVED, "patient_linked": linked}

    def search(self, query: SearchQuery) -> dict[str, Any]:
        """Ranked hits, each checked against the catalog: the index never decides what exists.

        Hits the catalog does not show (disposed, gone, not archived) are dropped, excluded from a
        re-run so that totals and facets stay honest, and queued for removal from the index.
        """
        results, docs = self._shown(
            lambda hidden: self.backend().search(replace(query, exclude_ids=hidden), self.page_texts)
        )
        hits = [
            {
                **_hit_dict(docs[h.doc_id]),
                "score": round(h.score, 4),
                "pages": h.pages,
                "snippets": [{"page_no": sn.page_no, "html": sn.html} for sn in h.snippets],
            }
            for h in results.hits
        ]
        self.audit("search", detail={"filters": _query_filters(query), "results": len(hits)})
        return {
            "total": results.total,
            "offset": results.offset,
            "limit": results.limit,
            "suggestion": results.suggestion,
            "facets": results.facets,
            "hits": hits,
        }

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
                    d.id: d for d in s.scalars(select(Document).where(Document.id.in_(ids), visible_clause()))
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

    def timeline(self, mrn: str) -> dict[str, Any]:
        """Every document of a patient in date-of-service order (undated last), grouped by encounter.

        The index finds the documents (one term lookup); the catalog decides which may be shown and
        supplies what is displayed. Groups come in the order of their first document; documents
        without an encounter form the group whose ``encounter`` is null.
        """
        entries = self.backend().timeline(mrn)
        ids = [e.doc_id for e in entries]
        with self.sessions() as s:
            docs = {
                d.id: d
                for d in s.scalars(
                    select(Document).where(Document.id.in_(ids), Document.mrn == mrn, visible_clause())
                )
            }
        dropped = [doc_id for doc_id in ids if doc_id not in docs]
        if dropped:
            self.indexer.hide(dropped)
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for e in entries:
            d = docs.get(e.doc_id)
            if d is not None:
                groups.setdefault(d.encounter, []).append(_hit_dict(d))
        self.audit("patient.timeline", "patient", mrn, detail={"documents": len(docs)})
        return {
            "mrn": mrn,
            "total": len(docs),
            "encounters": [
                {
                    "encounter": encounter,
                    "first_date": next((x["date_of_service"] for x in items if x["date_of_service"]), None),
                    "last_date": next(
                        (x["date_of_service"] for x in reversed(items) if x["date_of_service"]), None
                    ),
                    "documents": items,
                }
                for encounter, items in groups.items()
            ],
        }

    def more_like_this(self, doc_id: str, limit: int = 10) -> dict[str, Any]:
        """Documents whose content resembles this one's (its most distinctive words, not its patient).

        The document must be one the catalog shows; similar documents are checked the same way.
        """
        with self.sessions() as s:
            doc = s.scalars(select(Document).where(Document.id == doc_id, visible_clause())).first()
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            identifiers = [x for x in (doc.mrn, doc.patient_name) if x]
        pages = self.page_texts(doc_id)
        results, docs = self._shown(
            lambda hidden: self.backend().more_like_this(doc_id, pages, limit, hidden, identifiers)
        )
        hits = [{**_hit_dict(docs[h.doc_id]), "score": round(h.score, 4)} for h in results.hits]
        self.audit("document.similar", "document", doc_id, detail={"results": len(hits)})
        return {"document_id": doc_id, "total": results.total, "hits": hits}

    def reindex(self, fresh: bool = False) -> int:
        """Rebuild the index from the catalog into a new generation and swap it in (resumable:
        an interrupted rebuild continues where it stopped unless ``fresh``)."""
        return self.indexer.rebuild(fresh=fresh)

    def reconcile_index(self, repair: bool = False) -> dict[str, Any]:
        """Catalog against index by id and fingerprint: missing, extra and stale documents (ids only);
        with ``repair`` they are queued for the writer (and fixed at once if this process is it)."""
        report: ReconcileReport = self.indexer.reconcile(repair=repair)
        self.audit("index.check", detail={"repair": repair, "consistent": report.consistent})
        return report.as_dict()


def _hit_dict(d: Document) -> dict[str, Any]:
    """What a result list shows of a document, from the catalog."""
    return {
        "document_id": d.id,
        "doc_type": d.doc_type,
        "mrn": d.mrn,
        "patient_name": d.patient_name,
        "date_of_service": _d(d.date_of_service),
        "encounter": d.encounter,
        "page_count": d.page_count,
    }


def _query_filters(query: SearchQuery) -> dict[str, Any]:
    """What a search asked for, minus free text and names (which may be PHI): ids and codes only."""
    return {
        "has_text": bool(query.text),
        "mrn": query.mrn,
        "doc_type": query.doc_type,
        "from": _d(query.date_from),
        "to": _d(query.date_to),
        "batch": query.batch_id,
        "encounter": query.encounter,
        "icd": query.icd,
        "has_name": bool(query.name),
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
                "blank": bool(p.blank),
                "flags": p.flags or [],
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
        "page_count": doc.page_count - (doc.blank_pages or 0),  # blank backs are archived, not counted
        "blank_pages": doc.blank_pages or 0,
        "first_page": doc.first_page,
        "classification_source": doc.classification_source,
        "icd_codes": list(doc.icd_codes or []),
        "review_status": doc.review_status,
        "review_reasons": list(doc.review_reasons or []),
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
                **({"flags": p.flags} if p.flags else {}),
                **({"text": p.text or ""} if with_text else {}),
            }
            for p in doc.pages
            if not p.blank
        ],
    }

"""The pipeline: sniff -> OCR -> classify -> archive -> index queue, resumable at every step.

Each stage reads its input state from the catalog and commits its output
before the next stage runs, so a batch interrupted by a crash resumes where it
stopped: a page already OCR'd is not OCR'd again, a document already archived
is not archived twice (and the object store is content-addressed anyway).

Only the pure work (sniffing, OCR) runs in the worker pool; catalog writes stay
in this process, so SQLite sees one writer per pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.models import (
    BATCH_COMPLETE,
    BATCH_COMPLETE_WITH_ERRORS,
    FILE_ARCHIVED,
    FILE_DONE_STATES,
    FILE_DUPLICATE,
    FILE_FAILED,
    FILE_PROCESSING,
    FILE_QUARANTINED,
    PAGE_ARCHIVED,
    PAGE_CLASSIFIED,
    PAGE_FAILED,
    PAGE_OCR,
    PAGE_RECEIVED,
    Batch,
    BatchFile,
    Document,
    IndexTask,
    Page,
    Patient,
    new_id,
)
from chartvault.archive.objectstore import ObjectStore
from chartvault.classify import classify_document, extract_identifiers, merge_identifiers
from chartvault.classify.types import Extracted, Identifiers
from chartvault.filetypes import FileKind
from chartvault.ingest.batches import archived_document_for, quarantine_staged
from chartvault.ingest.sniff import Limits
from chartvault.ingest.workers import PageOutcome, SniffOutcome, ocr_task, sniff_task
from chartvault.ocr.types import OcrOptions

log = logging.getLogger("chartvault.pipeline")

Progress = Callable[[int, int], None]  # (pages done, pages known so far)


@dataclass(slots=True)
class _Run:
    """Book-keeping of one pass over a batch."""

    done_pages: int = 0
    total_pages: int = 0
    inflight: dict[Future, tuple[str, str, int]] = field(
        default_factory=dict
    )  # future -> (stage, file, page)
    retried: set[tuple[str, int]] = field(default_factory=set)


class Pipeline:
    def __init__(
        self,
        data_dir: Path,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        pool: Callable[[], ProcessPoolExecutor],
        limits: Limits,
        ocr_options: OcrOptions,
        reset_pool: Callable[[], None],
    ) -> None:
        self.data_dir = data_dir
        self.sessions = sessions
        self.store = store
        self._pool = pool
        self._reset_pool = reset_pool
        self.limits = limits
        self.ocr_options = ocr_options

    # -- driver -------------------------------------------------------------------------------

    def process_batch(self, batch_id: str, progress: Progress | None = None) -> None:
        """Run every unfinished file of the batch to a final state."""
        run = _Run()
        with self.sessions() as s:
            batch = s.get(Batch, batch_id)
            if batch is None:
                raise KeyError(batch_id)
            for f in batch.files:
                run.total_pages += f.page_count or 0
                run.done_pages += sum(1 for p in f.pages if p.status != PAGE_RECEIVED)
        # Files with the same bytes as an earlier one wait for it, then are linked to its document.
        while True:
            primaries = self._start_round(batch_id, run)
            if not primaries and not run.inflight:
                break
            self._drain(run, progress)
        self._finish_batch(batch_id)

    def _start_round(self, batch_id: str, run: _Run) -> list[str]:
        primaries: list[str] = []
        with self.sessions() as s:
            files = s.scalars(
                select(BatchFile)
                .where(BatchFile.batch_id == batch_id, BatchFile.status.not_in(FILE_DONE_STATES))
                .order_by(BatchFile.seq)
            ).all()
            seen: set[str] = set()
            for f in files:
                if (dup := archived_document_for(s, f.sha256)) is not None and not f.documents:
                    self._link_duplicate(s, f, dup)
                    continue
                if f.sha256 in seen:
                    continue
                seen.add(f.sha256)
                primaries.append(f.id)
            s.commit()
            for fid in primaries:
                self._advance_file(s, s.get(BatchFile, fid), run)
        return primaries

    def _drain(self, run: _Run, progress: Progress | None) -> None:
        while run.inflight:
            done, _ = wait(list(run.inflight), return_when=FIRST_COMPLETED)
            for fut in done:
                stage, file_id, page_no = run.inflight.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    self._recover_pool(run, stage, file_id, page_no)
                    continue
                with self.sessions() as s:
                    f = s.get(BatchFile, file_id)
                    if stage == "sniff":
                        self._on_sniffed(s, f, result, run)
                    else:
                        self._on_page(s, f, page_no, result, run)
                        if progress:
                            progress(run.done_pages, run.total_pages)

    def _recover_pool(self, run: _Run, stage: str, file_id: str, page_no: int) -> None:
        """A worker died (a crashing decoder): rebuild the pool, retry each task once."""
        self._reset_pool()
        lost = [(stage, file_id, page_no), *run.inflight.values()]
        run.inflight.clear()
        for st, fid, pno in lost:
            with self.sessions() as s:
                f = s.get(BatchFile, fid)
                if (fid, pno) in run.retried:
                    if st == "sniff":
                        self._on_sniffed(
                            s,
                            f,
                            SniffOutcome(code="unreadable", reason="Decoding the file crashed a worker."),
                            run,
                        )
                    else:
                        self._on_page(
                            s, f, pno, PageOutcome(error=f"page {pno}: decoding crashed a worker"), run
                        )
                    continue
                run.retried.add((fid, pno))
                self._submit(run, st, f, pno)

    # -- stages -------------------------------------------------------------------------------

    def _advance_file(self, s: Session, f: BatchFile, run: _Run) -> None:
        """Queue whatever this file needs next, from the state the catalog records."""
        if f.kind is None:
            self._submit(run, "sniff", f, 0)
            return
        pending = [p.page_no for p in f.pages if p.status == PAGE_RECEIVED]
        if pending:
            for page_no in pending:
                self._submit(run, "ocr", f, page_no)
        else:
            self._complete_file(s, f)

    def _submit(self, run: _Run, stage: str, f: BatchFile, page_no: int) -> None:
        path = str(self.data_dir / (f.staged_path or ""))
        if stage == "sniff":
            fut = self._pool().submit(sniff_task, path, self.limits)
        else:
            tmp_root = self.data_dir / "tmp"
            tmp_root.mkdir(exist_ok=True)
            fut = self._pool().submit(ocr_task, path, f.kind or "", page_no, self.ocr_options, str(tmp_root))
        run.inflight[fut] = (stage, f.id, page_no)

    def _on_sniffed(self, s: Session, f: BatchFile, out: SniffOutcome, run: _Run) -> None:
        if out.sniffed is None:
            f.status, f.reason_code, f.reason = FILE_QUARANTINED, out.code, out.reason
            quarantine_staged(self.data_dir, f)
            s.commit()
            log.info("file quarantined file=%s batch=%s code=%s", f.id, f.batch_id, out.code)
            return
        f.kind = out.sniffed.kind.value
        f.page_count = out.sniffed.page_count
        f.status = FILE_PROCESSING
        existing = {p.page_no for p in f.pages}
        for n in range(1, f.page_count + 1):
            if n not in existing:
                s.add(Page(id=new_id(), file_id=f.id, page_no=n, status=PAGE_RECEIVED))
        if f.expected_pages is not None and f.expected_pages != f.page_count:
            _flag(
                f.batch,
                {
                    "code": "page_count_mismatch",
                    "file_id": f.id,
                    "expected": f.expected_pages,
                    "received": f.page_count,
                    "message": f"File #{f.seq} has {f.page_count} pages; "
                    f"the manifest says {f.expected_pages}.",
                },
            )
        run.total_pages += f.page_count
        s.commit()
        s.refresh(f)
        self._advance_file(s, f, run)

    def _on_page(self, s: Session, f: BatchFile, page_no: int, out: PageOutcome, run: _Run) -> None:
        page = s.scalars(select(Page).where(Page.file_id == f.id, Page.page_no == page_no)).one()
        if page.status == PAGE_RECEIVED:
            if out.page is None:
                page.status, page.error = PAGE_FAILED, out.error
                _flag(
                    f.batch,
                    {
                        "code": "ocr_failed",
                        "file_id": f.id,
                        "page_no": page_no,
                        "message": f"Page {page_no} of file #{f.seq} could not be read: {out.error}",
                    },
                )
            else:
                r = out.page
                page.text, page.confidence, page.source = r.text, r.confidence, r.source
                page.rotation, page.width, page.height = r.rotation, r.width, r.height
                page.words = [[w.text, w.conf, w.left, w.top, w.width, w.height] for w in r.words]
                page.identifiers = out.identifiers
                page.ocr_ms = r.elapsed_ms
                page.status = PAGE_OCR
            run.done_pages += 1
            s.commit()
        # One indexed count, not a load of every page of the file per page result.
        waiting = s.scalar(
            select(func.count()).select_from(Page).where(Page.file_id == f.id, Page.status == PAGE_RECEIVED)
        )
        if not waiting:
            self._complete_file(s, f)

    def _complete_file(self, s: Session, f: BatchFile) -> None:
        """Classify, archive and queue for indexing; each step idempotent."""
        doc = f.documents[0] if f.documents else self._classify(s, f)
        if doc.object_key is None:
            self._archive(s, f, doc)
        if f.status != FILE_ARCHIVED:
            f.status = FILE_ARCHIVED
            s.commit()
        if f.staged_path and (self.data_dir / f.staged_path).exists():
            (self.data_dir / f.staged_path).unlink()  # the original now lives in the object store

    def _classify(self, s: Session, f: BatchFile) -> Document:
        texts = [p.text or "" for p in f.pages]
        ids = merge_identifiers([_page_identifiers(p) for p in f.pages])
        prediction = classify_document(texts, hint=f.doc_type_hint)
        doc = Document(
            id=new_id(),
            file_id=f.id,
            batch_id=f.batch_id,
            first_page=1,
            page_count=f.page_count or len(f.pages),
            sha256=f.sha256,
            size=f.size,
            mime=FileKind(f.kind).mime,
            doc_type=prediction.doc_type,
            doc_type_confidence=prediction.confidence,
            status=PAGE_CLASSIFIED,
        )
        self._apply_identifiers(f, doc, ids)
        s.add(doc)
        for p in f.pages:
            p.document_id = doc.id
            if p.status == PAGE_OCR:
                p.status = PAGE_CLASSIFIED
        s.commit()
        s.refresh(f)
        return doc

    def _apply_identifiers(self, f: BatchFile, doc: Document, ids: Identifiers) -> None:
        conf: dict[str, float] = {}
        for name, value in ids.as_items():
            if value is not None:
                conf[name] = round(value.confidence, 3)
        doc.mrn = ids.mrn.value if ids.mrn else None
        doc.patient_name = ids.name.value if ids.name else None
        doc.dob = _iso(ids.dob.value) if ids.dob else None
        doc.date_of_service = _iso(ids.date_of_service.value) if ids.date_of_service else None
        doc.account = ids.account.value if ids.account else None
        doc.encounter = ids.encounter.value if ids.encounter else None
        if f.mrn_hint:
            if doc.mrn and doc.mrn != f.mrn_hint:
                _flag(
                    f.batch,
                    {
                        "code": "mrn_mismatch",
                        "file_id": f.id,
                        "document_id": doc.id,
                        "message": f"The MRN read from file #{f.seq} differs from the manifest's.",
                    },
                )
            doc.mrn = f.mrn_hint  # the operator's indexing wins; the disagreement is flagged
            conf["mrn"] = 1.0
        doc.identifier_confidence = conf

    def _archive(self, s: Session, f: BatchFile, doc: Document) -> None:
        staged = self.data_dir / (f.staged_path or "")
        ref = self.store.put_file(str(staged), f.sha256, doc.mime)
        doc.object_key, doc.object_version = ref.key, ref.version_id
        doc.status = PAGE_ARCHIVED
        doc.archived_at = datetime.now(UTC)
        doc.patient_id = _match_patient(s, doc)
        for p in doc.pages:
            if p.status in (PAGE_CLASSIFIED, PAGE_OCR):
                p.status = PAGE_ARCHIVED
        s.add(IndexTask(document_id=doc.id, op="upsert"))
        s.commit()
        log.info(
            "document archived doc=%s file=%s batch=%s pages=%d", doc.id, f.id, f.batch_id, doc.page_count
        )

    def _link_duplicate(self, s: Session, f: BatchFile, dup: Document) -> None:
        f.status, f.duplicate_of = FILE_DUPLICATE, dup.id
        f.reason_code = "duplicate"
        f.reason = "An identical file (same sha256) is already archived; linked to it, not stored twice."
        f.page_count = f.page_count or dup.page_count
        if f.staged_path and (self.data_dir / f.staged_path).exists():
            (self.data_dir / f.staged_path).unlink()
        f.staged_path = None
        log.info("file linked as duplicate file=%s doc=%s", f.id, dup.id)

    def _finish_batch(self, batch_id: str) -> None:
        with self.sessions() as s:
            batch = s.get(Batch, batch_id)
            assert batch is not None
            if any(f.status not in FILE_DONE_STATES for f in batch.files):
                return
            bad = any(f.status in (FILE_QUARANTINED, FILE_FAILED) for f in batch.files)
            batch.status = BATCH_COMPLETE_WITH_ERRORS if bad else BATCH_COMPLETE
            batch.completed_at = batch.completed_at or datetime.now(UTC)
            s.commit()


def _page_identifiers(page: Page) -> Identifiers:
    """The identifiers the worker extracted from this page (or extract them now, for older rows)."""
    if page.identifiers is None:
        return extract_identifiers(page.text or "")
    fields = {k: Extracted(**v) for k, v in page.identifiers.items() if v}
    return Identifiers(**fields)


def _flag(batch: Batch, flag: dict) -> None:
    flags = list(batch.flags or [])
    if flag not in flags:
        flags.append(flag)
    batch.flags = flags  # reassign: JSON columns do not track in-place changes


def _iso(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _match_patient(s: Session, doc: Document) -> str | None:
    """Link to a patient only when a second identifier agrees with the MRN (never on MRN alone)."""
    if not doc.mrn:
        return None
    patient = s.scalars(select(Patient).where(Patient.mrn == doc.mrn)).first()
    if patient is None:
        if doc.dob is None and not doc.patient_name:
            return None
        patient = Patient(id=new_id(), mrn=doc.mrn, name=doc.patient_name, dob=doc.dob)
        s.add(patient)
        s.flush()
        return patient.id
    agrees = (doc.dob is not None and doc.dob == patient.dob) or (
        bool(doc.patient_name) and doc.patient_name == patient.name
    )
    return patient.id if agrees else None

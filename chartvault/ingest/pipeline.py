"""The pipeline: every page of a batch through ``STAGES``, resumable at every step.

    sniff -> ocr -> segment -> classify -> identify -> archive -> rendition -> enqueue

``sniff`` (one task per file) and ``ocr`` (one task per page) are pure work run by an ``Executor``
(local processes or Celery workers); their outcomes are applied to the catalog here, in the one
process that drives the batch (it holds the batch's lease), so SQLite sees one writer per batch.
When the last page of a file is read, the file stages run in order on that file, while the pool
keeps reading the other files' pages. Each stage reads its input state from the catalog and
commits its output, so a batch interrupted by a crash resumes where it stopped: a page already read
is not read again, a document already archived is not archived twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.lifecycle import RetentionPolicy
from chartvault.archive.models import (
    BATCH_COMPLETE,
    BATCH_COMPLETE_WITH_ERRORS,
    FILE_DONE_STATES,
    FILE_DUPLICATE,
    FILE_FAILED,
    FILE_PROCESSING,
    FILE_QUARANTINED,
    PAGE_FAILED,
    PAGE_OCR,
    PAGE_RECEIVED,
    Batch,
    BatchFile,
    Document,
    Page,
    new_id,
)
from chartvault.archive.objectstore import ObjectStore
from chartvault.classify.checkdigit import CheckDigit
from chartvault.classify.model import DocTypeModel
from chartvault.config import Settings
from chartvault.ingest.batches import archived_document_for, flag_batch, quarantine_staged
from chartvault.ingest.executors import Executor
from chartvault.ingest.lease import batch_lease, content_lease
from chartvault.ingest.sniff import Limits
from chartvault.ingest.stages import (
    FileStage,
    FileWork,
    StageEnv,
    archive,
    classify,
    enqueue,
    identify,
    rendition,
    segment,
)
from chartvault.ingest.tasks import OcrTask, PageOutcome, SniffOutcome, SniffTask
from chartvault.ocr.types import OcrOptions
from chartvault.telemetry import metrics

log = logging.getLogger("chartvault.pipeline")

# The stages a file goes through once its pages are read, in order.
FILE_STAGES: tuple[FileStage, ...] = (segment, classify, identify, archive, rendition, enqueue)
# Every stage, as the README and the batch states name them.
STAGES: tuple[str, ...] = ("sniff", "ocr", *(stage.__name__ for stage in FILE_STAGES))

Progress = Callable[[int, int], None]  # (pages done, pages known so far)


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    data_dir: Path
    limits: Limits
    ocr: OcrOptions
    review_threshold: float
    mrn_pattern: str | None = None
    mrn_check_digit: CheckDigit = "none"

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineOptions:
        return cls(
            data_dir=settings.data_dir,
            limits=Limits(
                max_file_bytes=settings.max_file_bytes,
                max_pages=settings.max_pages,
                max_pixels=settings.max_pixels,
                render_dpi=settings.ocr_dpi,
            ),
            ocr=OcrOptions(
                lang=settings.ocr_lang,
                dpi=settings.ocr_dpi,
                timeout_s=settings.ocr_timeout_s,
                text_layer_min_chars=settings.text_layer_min_chars,
                preprocess=settings.ocr_preprocess,
                engine=settings.ocr_engine,
                grey_dpi=settings.ocr_grey_dpi,
            ),
            review_threshold=settings.review_confidence_threshold,
            mrn_pattern=settings.mrn_pattern,
            mrn_check_digit=settings.mrn_check_digit,
        )


@dataclass(slots=True)
class _Run:
    """Book-keeping of one pass over a batch."""

    env: StageEnv
    progress: Progress | None
    done_pages: int = 0
    total_pages: int = 0
    inflight: dict[Future[Any], tuple[str, int]] = field(default_factory=dict)  # -> (file id, page no)


class Pipeline:
    def __init__(
        self,
        options: PipelineOptions,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        executor: Executor,
        policy: RetentionPolicy,
        model: Callable[[], DocTypeModel | None],
    ) -> None:
        self.options = options
        self.sessions = sessions
        self.store = store
        self.executor = executor
        self.policy = policy
        self.model = model

    def process_batch(self, batch_id: str, progress: Progress | None = None) -> bool:
        """Run every unfinished file of the batch to a final state.

        Returns False, doing nothing, when another driver holds the batch's lease.
        """
        engine = self.sessions.kw["bind"]
        with batch_lease(engine, self.options.data_dir / "locks", batch_id) as held:
            if not held:
                log.info("batch %s is being processed by another driver; skipped", batch_id)
                return False
            run = self._start(batch_id, progress)
            # Files with the same bytes as an earlier one wait for it, then are linked to its document.
            while self._next_round(batch_id, run) or run.inflight:
                self._drain(run)
            self._finish(batch_id)
            return True

    def _start(self, batch_id: str, progress: Progress | None) -> _Run:
        env = StageEnv(
            self.options.data_dir,
            self.store,
            self.policy,
            self.model(),
            self.options.review_threshold,
            self.options.mrn_pattern,
            self.options.mrn_check_digit,
        )
        run = _Run(env, progress)
        with self.sessions() as s:
            batch = s.get(Batch, batch_id)
            if batch is None:
                raise KeyError(batch_id)
            for f in batch.files:
                run.total_pages += f.page_count or 0
                run.done_pages += sum(1 for p in f.pages if p.status != PAGE_RECEIVED)
        return run

    def _next_round(self, batch_id: str, run: _Run) -> list[str]:
        """Start every unfinished file whose bytes no earlier file of this round has; link duplicates."""
        primaries: list[str] = []
        with self.sessions() as s:
            files = s.scalars(
                select(BatchFile)
                .where(BatchFile.batch_id == batch_id, BatchFile.status.not_in(FILE_DONE_STATES))
                .order_by(BatchFile.seq)
            ).all()
            seen: set[str] = set()
            for f in files:
                if self._linked_to_earlier_copy(s, f):
                    continue
                if f.sha256 not in seen:
                    seen.add(f.sha256)
                    primaries.append(f.id)
            s.commit()
            for file_id in primaries:
                primary = s.get(BatchFile, file_id)
                assert primary is not None
                self._advance(s, primary, run)
        return primaries

    def _advance(self, s: Session, f: BatchFile, run: _Run) -> None:
        """Queue whatever this file needs next, from the state the catalog records."""
        if f.kind is None:
            self._submit(run, f, 0, SniffTask(f.staged_path or "", self.options.limits))
            return
        pending = [p.page_no for p in f.pages if p.status == PAGE_RECEIVED]
        for page_no in pending:
            task = OcrTask(
                f.staged_path or "",
                f.kind,
                page_no,
                self.options.ocr,
                self.options.mrn_pattern,
                self.options.mrn_check_digit,
            )
            self._submit(run, f, page_no, task)
        if not pending:
            self._file_stages(s, f, run)

    def _submit(self, run: _Run, f: BatchFile, page_no: int, task: SniffTask | OcrTask) -> None:
        run.inflight[self.executor.submit(task)] = (f.id, page_no)

    def _drain(self, run: _Run) -> None:
        while run.inflight:
            done, _ = wait(list(run.inflight), return_when=FIRST_COMPLETED)
            for future in done:
                file_id, page_no = run.inflight.pop(future)
                outcome = future.result()
                with self.sessions() as s:
                    f = s.get(BatchFile, file_id)
                    assert f is not None
                    if isinstance(outcome, SniffOutcome):
                        self._on_sniffed(s, f, outcome, run)
                    else:
                        self._on_page(s, f, page_no, outcome, run)

    def _on_sniffed(self, s: Session, f: BatchFile, out: SniffOutcome, run: _Run) -> None:
        if out.sniffed is None:
            f.status, f.reason_code, f.reason = FILE_QUARANTINED, out.code, out.reason
            quarantine_staged(self.options.data_dir, f)
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
            flag_batch(
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
        self._advance(s, f, run)

    def _on_page(self, s: Session, f: BatchFile, page_no: int, out: PageOutcome, run: _Run) -> None:
        page = s.scalars(select(Page).where(Page.file_id == f.id, Page.page_no == page_no)).one()
        if page.status == PAGE_RECEIVED:  # a page done twice (a redelivered task) is applied once
            _apply_page(f, page, out)
            run.done_pages += 1
            s.commit()
            metrics.page_read(out.page.elapsed_ms if out.page else None, ok=out.page is not None)
            if run.progress:
                run.progress(run.done_pages, run.total_pages)
        # One indexed count, not a load of every page of the file per page result.
        waiting = s.scalar(
            select(func.count()).select_from(Page).where(Page.file_id == f.id, Page.status == PAGE_RECEIVED)
        )
        if not waiting:
            self._file_stages(s, f, run)

    def _file_stages(self, s: Session, f: BatchFile, run: _Run) -> None:
        engine = self.sessions.kw["bind"]
        s.commit()  # never wait for the lease inside a write transaction: its holder may need to write
        with content_lease(engine, self.options.data_dir / "locks", f.sha256):
            s.expire_all()  # what another driver archived while this one waited for the lease
            if self._linked_to_earlier_copy(s, f):
                s.commit()
                return
            work = FileWork(s, f, run.env)
            for stage in FILE_STAGES:
                stage(work)

    def _linked_to_earlier_copy(self, s: Session, f: BatchFile) -> bool:
        """Link the file when another file's identical bytes are archived and none of its own are: another
        batch (or driver) archived them first, perhaps while this one lay killed with its documents
        identified but not stored. Never store the same bytes twice."""
        dup = archived_document_for(s, f.sha256)
        if dup is None or dup.file_id == f.id or _archived_any(f):
            return False
        _drop_unarchived(s, f)
        self._link_duplicate(f, dup)
        return True

    def _link_duplicate(self, f: BatchFile, dup: Document) -> None:
        f.status, f.duplicate_of = FILE_DUPLICATE, dup.id
        f.reason_code = "duplicate"
        f.reason = "An identical file (same sha256) is already archived; linked to it, not stored twice."
        f.page_count = f.page_count or dup.page_count
        staged = self.options.data_dir / f.staged_path if f.staged_path else None
        if staged is not None and staged.exists():
            staged.unlink()
        f.staged_path = None
        log.info("file linked as duplicate file=%s doc=%s", f.id, dup.id)

    def _finish(self, batch_id: str) -> None:
        with self.sessions() as s:
            batch = s.get(Batch, batch_id)
            assert batch is not None
            if any(f.status not in FILE_DONE_STATES for f in batch.files):
                return
            bad = any(f.status in (FILE_QUARANTINED, FILE_FAILED) for f in batch.files)
            batch.status = BATCH_COMPLETE_WITH_ERRORS if bad else BATCH_COMPLETE
            batch.completed_at = batch.completed_at or datetime.now(UTC)
            s.commit()


def _apply_page(f: BatchFile, page: Page, out: PageOutcome) -> None:
    """A page's OCR outcome onto its row: the text and boxes, or the failure and a batch flag."""
    if out.page is None:
        page.status, page.error = PAGE_FAILED, out.error
        flag_batch(
            f.batch,
            {
                "code": "ocr_failed",
                "file_id": f.id,
                "page_no": page.page_no,
                "message": f"Page {page.page_no} of file #{f.seq} could not be read: {out.error}",
            },
        )
        return
    r = out.page
    page.text, page.confidence, page.source = r.text, r.confidence, r.source
    page.rotation, page.width, page.height = r.rotation, r.width, r.height
    page.words = [[w.text, w.conf, w.left, w.top, w.width, w.height] for w in r.words]
    page.identifiers = out.identifiers
    page.ocr_ms = r.elapsed_ms
    page.deskew_deg = r.deskew_deg or None
    page.blank = r.blank
    page.barcodes = out.barcodes
    page.status = PAGE_OCR


def _archived_any(f: BatchFile) -> bool:
    """True once any document of the file has its original in the store."""
    return any(d.object_key is not None for d in f.documents)


def _drop_unarchived(s: Session, f: BatchFile) -> None:
    """Forget a file's identified-but-never-stored documents and their pages (nothing of them is in the
    store or the index: ``archive`` and ``enqueue`` had not run), so the file can become a duplicate."""
    for doc in list(f.documents):
        s.delete(doc)
    for page in list(f.pages):
        s.delete(page)
    s.flush()

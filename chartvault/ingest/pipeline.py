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
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.holds import apply_holds_to_new_document
from chartvault.archive.lifecycle import RetentionPolicy, decide, object_tags, recompute_patient
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
    REVIEW_PENDING,
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
from chartvault.classify.coversheet import CoverSheet, find_cover_sheet
from chartvault.classify.types import (
    SOURCE_COVER_SHEET,
    SOURCE_MODEL,
    SOURCE_RULES,
    DocTypePrediction,
    Identifiers,
)
from chartvault.filetypes import FileKind
from chartvault.ingest.batches import archived_document_for, quarantine_staged
from chartvault.ingest.lease import batch_lease
from chartvault.ingest.sniff import Limits
from chartvault.ingest.workers import PageOutcome, SniffOutcome, ocr_task, sniff_task
from chartvault.ocr.types import OcrOptions

if TYPE_CHECKING:
    from chartvault.classify.model import DocTypeModel

log = logging.getLogger("chartvault.pipeline")

# Review reason codes (documents.review_reasons[].code).
REVIEW_LOW_CONFIDENCE = "low_confidence"
REVIEW_MISFILE = "possible_misfile"

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
    # Classification settings, set by the owner (Vault) after construction: the model to use (None: the
    # process-wide default) and the type confidence below which a document goes to the review queue.
    doc_model: Callable[[], DocTypeModel | None] | None = None
    review_threshold: float = 0.5

    def __init__(
        self,
        data_dir: Path,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        pool: Callable[[], ProcessPoolExecutor],
        limits: Limits,
        ocr_options: OcrOptions,
        reset_pool: Callable[[], None],
        policy: RetentionPolicy,
    ) -> None:
        self.policy = policy
        self.data_dir = data_dir
        self.sessions = sessions
        self.store = store
        self._pool = pool
        self._reset_pool = reset_pool
        self.limits = limits
        self.ocr_options = ocr_options

    # -- driver -------------------------------------------------------------------------------

    def process_batch(self, batch_id: str, progress: Progress | None = None) -> bool:
        """Run every unfinished file of the batch to a final state.

        Returns False, doing nothing, when another driver holds the batch's lease.
        """
        engine = self.sessions.kw["bind"]
        with batch_lease(engine, self.data_dir / "locks", batch_id) as held:
            if not held:
                log.info("batch %s is being processed by another driver; skipped", batch_id)
                return False
            self._process_batch(batch_id, progress)
            return True

    def _process_batch(self, batch_id: str, progress: Progress | None) -> None:
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
                page.blank = bool(getattr(r, "blank", False))
                page.barcodes = out.barcodes
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
        """Classify (splitting at cover sheets), archive each document and queue it; each step idempotent.

        Several documents of one file share one stored object (content-addressed), so the staged file is
        removed only after the last of them is archived.
        """
        docs = list(f.documents) or self._classify(s, f)
        for doc in sorted(docs, key=lambda d: d.first_page):
            if doc.object_key is None:
                self._archive(s, f, doc)
        loose = [p for p in f.pages if p.document_id is None and p.status in (PAGE_OCR, PAGE_CLASSIFIED)]
        for p in loose:  # cover sheets: kept (the object holds every page), part of no document
            p.status = PAGE_ARCHIVED
        if loose:
            s.commit()
        if f.status != FILE_ARCHIVED:
            f.status = FILE_ARCHIVED
            s.commit()
        if f.staged_path and (self.data_dir / f.staged_path).exists():
            (self.data_dir / f.staged_path).unlink()  # the original now lives in the object store

    def _classify(self, s: Session, f: BatchFile) -> list[Document]:
        """The file's documents: one per cover sheet (or one for the whole file), typed and identified.

        Blank pages stay in their document (archived, counted in ``blank_pages``) but give no text; cover
        sheet pages belong to no document. A document whose type is uncertain, or whose pages disagree on
        whose they are, goes to the review queue.
        """
        segments = _segments(list(f.pages))
        docs: list[Document] = []
        for seg in segments:
            has_content = any(not p.blank for p in seg.pages)
            if has_content or (seg.pages and seg.cover_page is None):
                docs.append(self._segment_document(f, seg))
            if seg.cover_page is not None:
                seg.cover_page.flags = [{"code": "cover_sheet" if seg.cover else "invalid_cover_sheet"}]
                if seg.cover_page.status == PAGE_OCR:
                    seg.cover_page.status = PAGE_CLASSIFIED
            if seg.cover_page is not None and not has_content:
                _flag(
                    f.batch,
                    {
                        "code": "empty_cover_sheet",
                        "file_id": f.id,
                        "page_no": seg.cover_page.page_no,
                        "message": f"The cover sheet on page {seg.cover_page.page_no} of file #{f.seq} "
                        "is followed by no document page.",
                    },
                )
        if not docs:  # only cover sheets: still one document, so the original is archived and seen
            only = self._segment_document(f, _Segment(None, None, list(f.pages)))
            only.review_reasons = [
                *(only.review_reasons or []),
                {"code": "cover_sheet_only", "message": f"File #{f.seq} holds cover sheets but no document."},
            ]
            only.review_status = REVIEW_PENDING
            docs.append(only)
        for doc in docs:
            s.add(doc)
        s.commit()
        s.refresh(f)
        return docs

    def _segment_document(self, f: BatchFile, seg: _Segment) -> Document:
        """One document from a run of pages: type, identifiers, ICD codes, misfile and review flags."""
        content = [p for p in seg.pages if not p.blank]
        texts = [p.text or "" for p in content]
        page_ids = [(p, _page_identifiers(p)) for p in content]
        ids = merge_identifiers([pi for _, pi in page_ids])
        if seg.cover is not None:
            prediction = DocTypePrediction(seg.cover.doc_type, 1.0, source=SOURCE_COVER_SHEET)
        else:
            model = self.doc_model() if self.doc_model is not None else None
            prediction = classify_document(texts, hint=f.doc_type_hint, model=model)
        doc = Document(
            id=new_id(),
            file_id=f.id,
            batch_id=f.batch_id,
            first_page=seg.pages[0].page_no if seg.pages else 1,
            page_count=len(seg.pages),
            blank_pages=len(seg.pages) - len(content),
            sha256=f.sha256,
            size=f.size,
            mime=FileKind(f.kind).mime,
            doc_type=prediction.doc_type,
            doc_type_confidence=prediction.confidence,
            classification_source=prediction.source,
            status=PAGE_CLASSIFIED,
        )
        self._apply_identifiers(f, doc, ids, seg.cover)
        reasons: list[dict[str, str]] = []
        if seg.invalid:
            reasons.append(
                {
                    "code": "invalid_cover_sheet",
                    "message": "A cover-sheet barcode before this document did not validate.",
                }
            )
        uncertain = prediction.source in (SOURCE_MODEL, SOURCE_RULES)
        if uncertain and prediction.confidence < self.review_threshold:
            reasons.append(
                {
                    "code": REVIEW_LOW_CONFIDENCE,
                    "message": f"Document type confidence {prediction.confidence:.2f} is below "
                    f"{self.review_threshold:.2f}.",
                }
            )
        misfiled = _misfile_pages(doc, page_ids)
        for p in seg.pages:
            p.document_id = doc.id
            p.flags = None
            if p.status == PAGE_OCR:
                p.status = PAGE_CLASSIFIED
        for p, fields in misfiled:
            p.flags = [{"code": REVIEW_MISFILE, "fields": fields}]
        if misfiled:
            nums = ", ".join(str(p.page_no) for p, _ in misfiled)
            fields = sorted({fld for _, fl in misfiled for fld in fl})
            reasons.append(
                {
                    "code": REVIEW_MISFILE,
                    "message": f"Page(s) {nums} of file #{f.seq}: {', '.join(fields)} disagree with the rest "
                    "of the document; held, not linked to a patient.",
                }
            )
        doc.review_reasons = reasons or None
        doc.review_status = REVIEW_PENDING if reasons else None
        if reasons:
            log.info(
                "document held for review doc=%s file=%s codes=%s",
                doc.id,
                f.id,
                ",".join(r["code"] for r in reasons),
            )
        return doc

    def _apply_identifiers(
        self, f: BatchFile, doc: Document, ids: Identifiers, cover: CoverSheet | None = None
    ) -> None:
        """Identifiers onto the document: values read, then the cover sheet's and manifest's (they win)."""
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
        doc.icd_codes = list(ids.icd_codes) or None
        if cover is not None:
            doc.mrn, conf["mrn"] = cover.mrn, 1.0  # printed by staff for this document: it wins
            if cover.dob is not None:
                doc.dob, conf["dob"] = cover.dob, 1.0
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
        """Store the original locked until its retention date, then record it and queue indexing.

        Retention is decided before the write so the version is never unlocked;
        holds on the patient or encounter catch it at once; the new encounter
        extends the patient's other documents.
        """
        staged = self.data_dir / (f.staged_path or "")
        now = datetime.now(UTC)
        doc.patient_id = _match_patient(s, doc)
        decision = decide(s, doc, self.policy, now)
        lock_until = self.policy.lock_until(decision, now)
        ref = self.store.put_file(
            str(staged), f.sha256, doc.mime, retain_until=lock_until, tags=object_tags(doc, decision)
        )
        doc.object_key, doc.object_version = ref.key, ref.version_id
        doc.retain_until, doc.retention_rule = decision.retain_until, decision.rule_id
        doc.retention_computed_at, doc.object_retain_until = now, lock_until
        doc.status = PAGE_ARCHIVED
        doc.archived_at = now
        s.flush()
        apply_holds_to_new_document(s, self.store, doc)
        if doc.mrn:
            recompute_patient(s, self.store, doc.mrn, self.policy, skip=[doc.id])
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
    return Identifiers.from_dict(page.identifiers)


@dataclass(slots=True)
class _Segment:
    """A run of pages of one file that forms one document, and the cover sheet in front of it."""

    cover: CoverSheet | None
    cover_page: Page | None
    pages: list[Page]
    invalid: bool = False  # a cover-sheet barcode was there but did not validate


def _segments(pages: list[Page]) -> list[_Segment]:
    """Split a file's pages at cover sheets; without any, the whole file is one segment."""
    segs: list[_Segment] = [_Segment(None, None, [])]
    for p in pages:
        cover, invalid = find_cover_sheet(p.barcodes)
        if cover is not None or invalid:
            segs.append(_Segment(cover, p, [], invalid=cover is None))
        else:
            segs[-1].pages.append(p)
    if segs[0].pages and len(segs) > 1 and all(p.blank for p in segs[0].pages):
        segs[0].pages = []  # blank sheets in front of the first cover sheet are no document
    return [sg for sg in segs if sg.pages or sg.cover_page is not None]


# A page value counts against the document only when it was read cleanly (labelled, no OCR fix-ups):
# a misread digit must not hold a document. Names are not compared: OCR varies them too much.
_MISFILE_MIN_CONFIDENCE = 0.8
_MISFILE_FIELDS = ("mrn", "dob")


def _misfile_pages(doc: Document, page_ids: list[tuple[Page, Identifiers]]) -> list[tuple[Page, list[str]]]:
    """Pages whose MRN or DOB disagrees with the document's: the cover sheet's or manifest's, else the
    pages' confidence-weighted majority."""
    want = {"mrn": doc.mrn, "dob": doc.dob.isoformat() if doc.dob else None}
    out: list[tuple[Page, list[str]]] = []
    for page, ids in page_ids:
        fields = []
        for name in _MISFILE_FIELDS:
            got = getattr(ids, name)
            if got is None or want[name] is None or got.confidence < _MISFILE_MIN_CONFIDENCE:
                continue
            if got.value != want[name]:
                fields.append(name)
        if fields:
            out.append((page, fields))
    return out


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
    """Link to a patient only when a second identifier agrees with the MRN (never on MRN alone).

    A document held as a possible misfile is linked to no one until a person resolves it.
    """
    if not doc.mrn or held_as_misfile(doc):
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


def held_as_misfile(doc: Document) -> bool:
    """True while the document waits in review because its pages may belong to someone else."""
    return doc.review_status == REVIEW_PENDING and any(
        r.get("code") == REVIEW_MISFILE for r in (doc.review_reasons or [])
    )

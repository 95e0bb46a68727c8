"""The review queue, the corrections people make in it, and the classifier those corrections train."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from chartvault.archive.lifecycle import INACTIVE, RetentionPolicy, apply_retention, recompute_patient
from chartvault.archive.models import (
    JOB_CLASSIFIER_TRAIN,
    JOB_DONE,
    REVIEW_MISFILE,
    REVIEW_PENDING,
    REVIEW_RESOLVED,
    ClassificationCorrection,
    Document,
    IndexTask,
    Page,
)
from chartvault.archive.objectstore import ObjectStore
from chartvault.archive.patients import settle_patient, with_mrn_given, without_refused_mrns
from chartvault.classify.checkdigit import CheckDigit
from chartvault.classify.model import RETRAIN_STAGES, DocTypeModel
from chartvault.classify.types import DOC_TYPES, SOURCE_STAFF
from chartvault.errors import InvalidInput, NotFound
from chartvault.ingest.stages import REVIEW_LOW_CONFIDENCE
from chartvault.release.misfiles import MisfileFallout, audit_fallout, misfile_fallout
from chartvault.schemas.common import iso, to_jsonable
from chartvault.schemas.jobs import JobInfo
from chartvault.schemas.review import (
    ClassificationChange,
    ClassifierInfo,
    ClassifierOverview,
    ClassifierStatus,
    ClassifierTraining,
    FlaggedPage,
    ReviewItem,
    ReviewQueue,
    ReviewResolution,
)
from chartvault.services.caller import AuditTrail
from chartvault.services.jobs import JobContext, JobService
from chartvault.services.mrns import typed_mrn

log = logging.getLogger("chartvault.review")


# An MRN a person types (the web review page, the API, `chartvault resolve`): what the API's body and a
# registration row allow, so no face lets a control, direction-override or zero-width character in.
_UNCOUNTED = object()


class ClassifierModels:
    """The document-type model for one catalog: the base model, or one that includes its staff corrections.

    A model with corrections belongs to this catalog, so it is cached with its data; the base one is
    shared by every catalog on the machine (``CHARTVAULT_MODEL_DIR``). ``current`` reloads (retraining
    if stale) only when the corrections changed, checked with one query.
    """

    def __init__(self, sessions: sessionmaker[Session], folder: Path) -> None:
        self.sessions = sessions
        self.folder = folder
        self._lock = threading.Lock()
        self._model: DocTypeModel | None = None
        self._marker: tuple[int, int] | None = None
        self._base_texts: int | object | None = _UNCOUNTED

    def current(self) -> DocTypeModel | None:
        """None when no model can be built (no training data): the title rules then work alone."""
        from chartvault.classify import get_default_model
        from chartvault.classify.model import default_model

        marker = self._corrections_marker()
        with self._lock:
            if self._marker != marker:
                corrections = self.corrections() if marker[0] else []
                try:
                    self._model = (
                        default_model(self.folder, corrections) if corrections else get_default_model()
                    )
                except (FileNotFoundError, ImportError) as exc:
                    log.warning("document-type model unavailable, using rules only: %s", type(exc).__name__)
                    self._model = None
                self._marker = marker
            return self._model

    def retrain(self, at_stage: Callable[[str], None] | None = None) -> tuple[DocTypeModel, int]:
        """Train again on the labelled texts, the samples and the corrections: (model, corrections).
        ``at_stage`` is called as each of ``RETRAIN_STAGES`` begins; an exception it raises before "save"
        ends the retraining with nothing saved and the model in use unchanged."""
        from chartvault.classify import doctype
        from chartvault.classify.model import retrain

        stage = at_stage or (lambda _name: None)
        stage("corrections")
        marker = self._corrections_marker()
        corrections = self.corrections()
        folder = self.folder if corrections else doctype.model_dir()
        model = retrain(folder, corrections, at_stage=stage)
        with self._lock:
            self._model, self._marker = model, marker
        if not corrections:
            doctype.set_default_model(model)
        return model, len(corrections)

    def saved(self) -> tuple[Path, dict[str, object] | None, datetime | None]:
        """The model ``current`` uses as saved: this catalog's once staff corrected a type and it was trained
        with them, else the shared base one. Its path, version header and when it was written; (path, None,
        None) before any training. Reads the header only: nothing is trained or unpickled."""
        from chartvault.classify import doctype
        from chartvault.classify.model import cache_path

        folders = [self.folder] if self._corrections_marker()[0] else []
        for path in [cache_path(folder) for folder in (*folders, doctype.model_dir())]:
            try:
                header = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
                written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except (OSError, ValueError):
                continue
            if isinstance(header, dict):
                return path, header, written
        return cache_path(doctype.model_dir()), None, None

    def base_texts(self) -> int | None:
        """The labelled texts a model learns from before any staff correction (None: they are missing).
        Counted once: the classifier page asks every 2 s while a training runs, and the texts are packaged
        data that do not change while the process runs."""
        from chartvault.classify.model import training_data

        if self._base_texts is _UNCOUNTED:
            try:
                self._base_texts = len(training_data()[0])
            except FileNotFoundError:
                self._base_texts = None
        return self._base_texts  # type: ignore[return-value]

    def corrections(self) -> list[tuple[str, str]]:
        """(text, doc_type) of every staff-corrected document, latest correction per document.

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

    def _corrections_marker(self) -> tuple[int, int]:
        with self.sessions() as s:
            count, last = s.execute(
                select(func.count(ClassificationCorrection.id), func.max(ClassificationCorrection.id))
            ).one()
            return int(count or 0), int(last or 0)


class ReviewService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: Callable[[], ObjectStore],
        policy: Callable[[], RetentionPolicy],
        classifier: ClassifierModels,
        audit: AuditTrail,
        jobs: JobService,
        mrn_check_digit: CheckDigit = "none",
    ) -> None:
        self.sessions = sessions
        self.jobs = jobs  # the retraining runs as a job: any server process shows it, a restart ends it
        self._store = store  # opened when a correction recomputes retention
        self._policy = policy
        self.classifier = classifier
        self.audit = audit
        self.mrn_check_digit = mrn_check_digit  # the facility's: an MRN a person types must pass it

    def queue(self, limit: int = 50, offset: int = 0) -> ReviewQueue:
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
            items = [_review_item(doc) for doc in docs]
        self.audit("review.list", detail={"results": len(items)})
        return ReviewQueue(total=total, limit=limit, offset=offset, items=items)

    def correct_type(self, doc_id: str, doc_type: str) -> ClassificationChange:
        """A person sets the type: recorded for training, resolves the type review, re-queued for indexing."""
        if doc_type not in DOC_TYPES:
            raise InvalidInput(f"unknown document type (expected one of {', '.join(DOC_TYPES)})")
        with self.sessions() as s:
            doc = s.get(Document, doc_id)
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            old = doc.doc_type
            s.add(
                ClassificationCorrection(
                    document_id=doc.id, old_type=old, new_type=doc_type, corrected_by=self.audit.actor
                )
            )
            doc.doc_type, doc.doc_type_confidence, doc.classification_source = doc_type, 1.0, SOURCE_STAFF
            _drop_reasons(doc, {REVIEW_LOW_CONFIDENCE, "invalid_cover_sheet"})
            s.add(IndexTask(document_id=doc.id, op="upsert"))
            if doc.object_key and doc.status not in INACTIVE:
                apply_retention(s, self._store(), doc, self._policy())  # the type drives the rules
            s.commit()
            status = doc.review_status
        self.audit("document.classify", "document", doc_id, detail={"old_type": old, "new_type": doc_type})
        return ClassificationChange(document_id=doc_id, doc_type=doc_type, old_type=old, review_status=status)

    def resolve(self, doc_id: str, mrn: str | None = None, dob: date | None = None) -> ReviewResolution:
        """A person confirms whose document this is (optionally giving the MRN and DOB they compared):
        every reason is resolved, page misfile flags are cleared, and the document is linked to a
        patient if two identifiers agree. If they do not, it goes back to the queue with the patient
        reason (``no_patient_identified`` or ``patient_conflict``): never resolved and linked to no one.
        An MRN that fails the facility's check digit is refused before anything changes: it is mistyped."""
        if mrn is not None:
            mrn = typed_mrn(mrn, self.mrn_check_digit)
        with self.sessions() as s:
            doc = s.get(Document, doc_id, options=[selectinload(Document.pages)])
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            codes = [r.get("code") for r in doc.review_reasons or []]
            old_mrn = doc.mrn
            doc.identifier_confidence = without_refused_mrns(doc.identifier_confidence)  # compared now
            if mrn is not None:
                doc.mrn = mrn
                doc.identifier_confidence = with_mrn_given(doc.identifier_confidence)
            if dob is not None:
                doc.dob = dob
                doc.identifier_confidence = {**(doc.identifier_confidence or {}), "dob": 1.0}
            doc.review_reasons = None
            doc.review_status = REVIEW_RESOLVED
            for p in doc.pages:
                if p.flags:
                    p.flags = [f for f in p.flags if f.get("code") != REVIEW_MISFILE] or None
            doc.patient_id = None
            settle_patient(s, doc)
            fallout = misfile_fallout(s, doc.id, old_mrn, doc.mrn) if doc.mrn else MisfileFallout()
            s.add(IndexTask(document_id=doc.id, op="upsert"))
            if doc.object_key and doc.status not in INACTIVE:
                s.flush()
                store, policy = self._store(), self._policy()
                apply_retention(s, store, doc, policy)
                if doc.mrn:  # this encounter may be the patient's latest
                    recompute_patient(s, store, doc.mrn, policy, skip=[doc.id])
            s.commit()
            linked, status = doc.patient_id is not None, doc.review_status or REVIEW_RESOLVED
        detail = {
            "codes": codes,
            "mrn_changed": mrn is not None,
            "dob_given": dob is not None,
            "patient_linked": linked,
        }
        self.audit("document.review_resolve", "document", doc_id, detail=detail)
        audit_fallout(self.audit, doc_id, fallout)  # a changed MRN is a refile: releases, disclosures
        return ReviewResolution(document_id=doc_id, review_status=status, patient_linked=linked)

    def classifier_status(self) -> ClassifierStatus:
        """The model the pipeline uses as saved, the staff corrections it learned from, and those made since
        it was written (the next training, or the next batch, takes them in). Counts only."""
        _, header, written = self.classifier.saved()
        n_train = header.get("n_train") if header else None
        base = self.classifier.base_texts() if isinstance(n_train, int) else None
        with self.sessions() as s:
            recorded = s.scalar(select(func.count(ClassificationCorrection.id))) or 0
            since = select(func.count(ClassificationCorrection.id))
            if written is not None:
                since = since.where(ClassificationCorrection.corrected_at > written)
            waiting = s.scalar(since) or 0
        return ClassifierStatus(
            version=str(header["version"]) if header and "version" in header else None,
            sklearn_version=str(header["sklearn_version"])
            if header and "sklearn_version" in header
            else None,
            n_train=n_train if isinstance(n_train, int) else None,
            corrections_learned=max(0, n_train - base)
            if isinstance(n_train, int) and base is not None
            else None,
            trained_at=iso(written),
            corrections_recorded=recorded,
            corrections_waiting=waiting,
        )

    def start_training(self) -> JobInfo:
        """``train_classifier`` as a background job (audited as this caller when it starts and ends): the
        page or API call that asks is answered at once. While a training runs, that one is given. Its
        progress is the stage it is in (``RETRAIN_STAGES``); cancelled, it stops as the next stage begins:
        the fit itself cannot be interrupted, so a cancel during it takes effect when it ends, and the
        model it fitted is thrown away (never saved, never used)."""

        def work(context: JobContext) -> dict[str, Any]:
            def at_stage(stage: str) -> None:
                context.boundary({"stage": stage, "stages": list(RETRAIN_STAGES)})

            result: dict[str, Any] = to_jsonable(self.train_classifier(at_stage))
            return result

        job, _ = self.jobs.start(JOB_CLASSIFIER_TRAIN, work)
        return job

    def last_training(self) -> JobInfo | None:
        """The last training started from a page or the API, by any server process (None: never)."""
        job = self.jobs.latest(JOB_CLASSIFIER_TRAIN)
        return None if job is None else training_shown(job)

    def classifier_training(self) -> ClassifierTraining | None:
        """``last_training`` as the classifier page shows it, its result read back as ``ClassifierInfo``."""
        job = self.last_training()
        if job is None:
            return None
        return ClassifierTraining(
            state=job.state,
            started_at=job.created_at or "",
            started_by=job.started_by,
            finished_at=job.finished_at,
            result=ClassifierInfo(**job.result) if job.state == JOB_DONE and job.result else None,
            error=job.error,
            progress=job.result if job.state != JOB_DONE else None,
            cancel_requested_at=job.cancel_requested_at,
        )

    def classifier_overview(self) -> ClassifierOverview:
        """The model in use and the last training (``GET /classifier``); the training read first, as the
        page does, so a training ending between the two reads is never shown done beside the old model."""
        training = self.last_training()
        return ClassifierOverview(model=self.classifier_status(), training=training)

    def model_file(self) -> Path:
        """Where the model in use is saved on this machine: for the console's operator (``chartvault
        classifier train``); no page or API answer names a file of the server."""
        return self.classifier.saved()[0]

    def train_classifier(self, at_stage: Callable[[str], None] | None = None) -> ClassifierInfo:
        """Retrain the type model on the labelled texts + samples + this catalog's staff corrections
        (``at_stage``: see ``ClassifierModels.retrain``)."""
        started = time.perf_counter()
        model, corrections = self.classifier.retrain(at_stage)
        elapsed = round(time.perf_counter() - started, 2)
        self.audit("classifier.train", detail={"version": model.version, "corrections": corrections})
        return ClassifierInfo(
            version=model.version,
            sklearn_version=model.sklearn_version,
            n_train=model.n_train,
            corrections=corrections,
            train_s=elapsed,
        )


_TRAINING_FIGURES = frozenset(f.name for f in fields(ClassifierInfo))


def training_shown(job: JobInfo) -> JobInfo:
    """A retraining job as pages and the API show it: its result's figures only. A training recorded by an
    earlier version also kept the model file's path on the server, which no page or API answer names."""
    if job.state != JOB_DONE or not job.result:
        return job
    return replace(job, result={k: v for k, v in job.result.items() if k in _TRAINING_FIGURES})


def _drop_reasons(doc: Document, codes: set[str]) -> None:
    """Remove resolved review reasons; the review is resolved once none is left."""
    left = [r for r in doc.review_reasons or [] if r.get("code") not in codes]
    doc.review_reasons = left or None
    if doc.review_status == REVIEW_PENDING and not left:
        doc.review_status = REVIEW_RESOLVED


def _review_item(doc: Document) -> ReviewItem:
    return ReviewItem(
        document_id=doc.id,
        batch_id=doc.batch_id,
        file_id=doc.file_id,
        first_page=doc.first_page,
        page_count=doc.page_count - (doc.blank_pages or 0),
        doc_type=doc.doc_type,
        doc_type_confidence=doc.doc_type_confidence,
        classification_source=doc.classification_source,
        patient_linked=doc.patient_id is not None,
        reasons=list(doc.review_reasons or []),
        flagged_pages=[FlaggedPage(page_no=p.page_no, flags=list(p.flags)) for p in doc.pages if p.flags],
        created_at=iso(doc.created_at),
    )

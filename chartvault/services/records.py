"""Records management: retention, legal holds, disposition, misfile corrections, the archive check."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.check import StoreReport, check_store
from chartvault.archive.corrections import MisfileRefused, MisfileResult, correct_misfile
from chartvault.archive.db import transaction
from chartvault.archive.disposition import DispositionResult, plan
from chartvault.archive.disposition import Plan as Plan  # re-exported: the pages show a plan
from chartvault.archive.disposition import execute as execute_disposition
from chartvault.archive.holds import active_hold_ids, place_hold, release_hold
from chartvault.archive.lifecycle import INACTIVE, RetentionPolicy, decide, document_ref, recompute_patient
from chartvault.archive.models import (
    HOLD_ACTIVE,
    JOB_ARCHIVE_CHECK,
    Disposition,
    Document,
    LegalHold,
    Patient,
)
from chartvault.archive.objectstore import ObjectRef, ObjectStore
from chartvault.archive.registration import EARLIEST_DOB
from chartvault.archive.renditions import missing_renditions
from chartvault.config import Settings
from chartvault.errors import InvalidInput, NotFound
from chartvault.ingest.private import TempLeftover
from chartvault.ingest.renditions import render_document
from chartvault.release.misfiles import audit_fallout, misfile_fallout
from chartvault.schemas.common import d as day
from chartvault.schemas.common import iso, to_jsonable
from chartvault.schemas.jobs import JobInfo
from chartvault.schemas.patients import DobCorrected, DobCorrection, RetentionChange
from chartvault.schemas.records import DispositionRun
from chartvault.services.caller import AuditTrail
from chartvault.services.jobs import CANCEL_POLL_S, JobCancelled, JobContext, JobService, throttled
from chartvault.services.mrns import typed_mrn


class RecordsService:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        policy: RetentionPolicy,
        audit: AuditTrail,
        index_now: Callable[[], object],
        reconcile_index: Callable[[bool], Any],
        resume: Callable[[], list[str]],
        unfinished: Callable[[], list[str]],
        temp_leftovers: Callable[[], list[TempLeftover]],
        clean_temp: Callable[[], list[TempLeftover]],
        forget_pages: Callable[[Sequence[str]], None] = lambda doc_ids: None,
        unlinked: Callable[[], int] = lambda: 0,
        settle_unlinked: Callable[[], dict[str, int]] = lambda: {},
        jobs: JobService | None = None,
    ) -> None:
        self._jobs = jobs  # the full check runs as a job (as long as reading the whole archive)
        self._unlinked = unlinked  # live archived documents with neither a patient nor a review
        self._settle_unlinked = settle_unlinked
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self.policy = policy
        self.audit = audit
        self._index_now = index_now  # after a change, the index writer (if this process) catches up
        self._reconcile_index = reconcile_index
        self._resume = resume
        self._unfinished = unfinished
        self._forget_pages = forget_pages  # cached page images of what is destroyed or refiled go too
        self._temp_leftovers = temp_leftovers
        self._clean_temp = clean_temp

    def retention(self, doc_id: str) -> dict[str, Any]:
        """The document's retention as the catalog and the store each see it."""
        with self.sessions() as s:
            doc = s.get(Document, doc_id)
            if doc is None:
                raise NotFound(f"document {doc_id} not found")
            decision = decide(s, doc, self.policy) if doc.status not in INACTIVE else None
            result: dict[str, Any] = {
                "document_id": doc.id,
                "status": doc.status,
                "retain_until": day(doc.retain_until),
                "permanent": doc.retention_rule is not None and doc.retain_until is None,
                "rule": doc.retention_rule,
                "considered": [[r, day(when)] for r, when in decision.considered] if decision else [],
                "holds": active_hold_ids(s, doc.id),
                "store": None,
            }
            if doc.object_key and doc.status not in INACTIVE:
                ref = document_ref(doc)
                mode, until = self.store.retention(ref)
                result["store"] = {
                    "mode": mode,
                    "retain_until": until.isoformat() if until else None,
                    "legal_hold": self.store.legal_hold(ref),
                    "tags": self.store.tags(ref),
                }
        self.audit("retention.read", "document", doc_id)
        return result

    def correct_dob(self, mrn: str, dob: date) -> DobCorrected:
        """Record a corrected DOB for a patient and recompute their documents' retention.

        Refused (``InvalidInput`` coded ``dob_future`` or ``dob_after_service``, audited as refused) for a
        DOB in the future or after the date of service of one of the patient's documents: retention would
        ignore it as impossible (``lifecycle._facts``).
        """
        with transaction(self.sessions) as s:
            patient = _patient(s, mrn)
            live = _live_documents(s, mrn)
            patient_id, problem = patient.id, _dob_problem(dob, live)
            changed: list[str] = []
            if problem is None:
                patient.dob = dob
                for doc in live:
                    doc.dob = dob
                s.flush()
                changed = recompute_patient(s, self.store, mrn, self.policy)
        if problem is not None:
            detail = {"problem": problem[0]}
            self.audit("patient.dob_corrected", "patient", patient_id, outcome="refused", detail=detail)
            raise _dob_refused(problem)
        self.audit("patient.dob_corrected", "patient", patient_id, detail={"documents_changed": len(changed)})
        return DobCorrected(mrn=mrn, dob=dob.isoformat(), documents_changed=changed)

    def dob_correction(self, mrn: str, dob: date | None = None) -> DobCorrection:
        """The DOB on record and each live document's retention now, and what ``correct_dob(mrn, dob)``
        would make of it, computed by the same rules on the unsaved rows (nothing is written), so a person
        sees what moves before confirming. Refused as ``correct_dob`` refuses. Audited as a retention read.
        """
        with self.sessions() as s, s.no_autoflush:
            patient = s.scalars(select(Patient).where(Patient.mrn == mrn)).first()
            if patient is None:  # a probe of who is in the index: recorded, under a keyed hash of the MRN
                self.audit("patient.retention_read", "patient", self.audit.patient_ref(mrn), "not_found")
                raise NotFound("no patient with that MRN in the patient index")
            live = _live_documents(s, mrn)
            problem = _dob_problem(dob, live) if dob is not None else None
            archived = [doc for doc in live if doc.object_key]
            before = {doc.id: (doc.retain_until, doc.retention_rule) for doc in archived}
            on_record, patient_id = patient.dob, patient.id
            after: dict[str, tuple[date | None, str | None]] = {}
            if dob is not None and problem is None:
                patient.dob = dob
                for doc in live:
                    doc.dob = dob
                for doc in archived:
                    decision = decide(s, doc, self.policy)
                    after[doc.id] = (decision.retain_until, decision.rule_id)
            documents = [_retention_change(doc, before[doc.id], after.get(doc.id)) for doc in archived]
            s.rollback()  # the DOB set above only to ask the rules
        target = patient_id  # as the correction's entries name the patient
        if problem is not None:  # nothing shown
            detail = {"problem": problem[0], "dob_given": True}
            self.audit("patient.retention_read", "patient", target, "refused", detail)
            raise _dob_refused(problem)
        shown = [d.document_id for d in documents]
        self.audit.seen("patient.retention_read", "patient", target, shown, dob_given=dob is not None)
        return DobCorrection(
            mrn=mrn,
            dob=day(on_record),
            new_dob=day(dob),
            documents=sorted(documents, key=lambda d: (d.date_of_service or "9999", d.document_id)),
            changed=sum(1 for d in documents if d.changed),
        )

    def place_hold(
        self,
        matter: str,
        scope: str,
        reason: str,
        value: str | None = None,
        document_ids: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Place a legal hold (catalog row + the store's flag on every affected version)."""
        with transaction(self.sessions) as s:
            hold = place_hold(
                s,
                self.store,
                matter=matter,
                scope=scope,
                reason=reason,
                placed_by=self.audit.actor,
                value=value,
                document_ids=document_ids,
            )
            result = hold_dict(hold)
        detail = {"scope": scope, "documents": len(result["documents"])}
        self.audit("hold.place", "hold", result["id"], detail=detail)
        return result

    def release_hold(self, hold_id: str, reason: str) -> dict[str, Any]:
        with transaction(self.sessions) as s:
            hold = release_hold(s, self.store, hold_id, self.audit.actor, reason)
            result = hold_dict(hold)
        self.audit("hold.release", "hold", hold_id, detail={"documents": len(result["documents"])})
        return result

    def holds(self, active_only: bool = True) -> list[dict[str, Any]]:
        """Legal holds, oldest first; audited as a read (``hold.list``) with the ids of the holds shown,
        never what they cover (a patient's hold shows the MRN)."""
        with self.sessions() as s:
            q = select(LegalHold).order_by(LegalHold.placed_at)
            if active_only:
                q = q.where(LegalHold.status == HOLD_ACTIVE)
            holds = [hold_dict(h) for h in s.scalars(q)]
        detail = {"results": len(holds), "holds": [h["id"] for h in holds], "active_only": active_only}
        self.audit("hold.list", detail=detail)
        return holds

    def disposition_plan(self, as_of: date | None = None) -> Plan:
        """The dry run: what is past retention, what is held (nothing is changed)."""
        with self.sessions() as s:
            result = plan(s, as_of)
        self.audit("disposition.plan", detail={"eligible": len(result.eligible), "held": len(result.held)})
        return result

    def dispose(
        self,
        document_ids: Sequence[str],
        approved_by: str | None = None,
        witness: str | None = None,
        as_of: date | None = None,
        reason: str | None = None,
    ) -> DispositionResult:
        """Destroy the given eligible documents, archive the certificate, drop them from the index."""
        result = execute_disposition(
            self.sessions,
            self.store,
            self.policy,
            list(document_ids),
            executed_by=self.audit.actor,
            facility=self.settings.facility_name,
            audit=lambda actor, *args: self.audit.log.record(actor, *args),
            tmp_dir=self.settings.data_dir / "tmp",
            approved_by=approved_by,
            witness=witness,
            as_of=as_of,
            reason=reason,
        )
        self._forget_pages(result.destroyed)
        self._index_now()
        return result

    def correct_misfile(
        self,
        doc_id: str,
        to_mrn: str,
        reason: str,
        pages: Sequence[int] | None = None,
        break_glass: bool = False,
    ) -> MisfileResult:
        """Refile a document, or split misfiled pages out of it (break-glass under GOVERNANCE). A target MRN
        failing the facility's check digit is refused (``mrn_check_digit_failed``, audited) as a reviewer's
        is, before anything changes."""
        if not reason.strip():
            raise MisfileRefused("a misfile correction needs a reason")
        detail: dict[str, Any] = {"break_glass": break_glass, "pages": list(pages or [])}
        try:
            to_mrn = typed_mrn(to_mrn, self.settings.mrn_check_digit)
        except InvalidInput as exc:
            refused = {**detail, "refused": exc.code}
            self.audit("document.misfile_correction", "document", doc_id, outcome="refused", detail=refused)
            raise
        try:
            with transaction(self.sessions) as s:
                doc = s.get(Document, doc_id)
                old_mrn = doc.mrn if doc is not None else None
                result = correct_misfile(
                    s,
                    self.store,
                    self.policy,
                    doc_id,
                    to_mrn,
                    self.settings.data_dir / "tmp",
                    pages=pages,
                    break_glass=break_glass,
                )
                fallout = misfile_fallout(s, doc_id, old_mrn, to_mrn)
        except MisfileRefused:
            self.audit("document.misfile_correction", "document", doc_id, outcome="refused", detail=detail)
            raise
        detail |= {
            "mode": result.mode,
            "new_documents": result.new_documents,
            "versions_deleted": len(result.versions_deleted),
            "governance_bypass": bool(result.versions_deleted),
            "suspended_releases": fallout.suspended_releases,
            "privacy_review_disclosures": fallout.rerecorded_disclosures,
        }
        self.audit("document.misfile_correction", "document", doc_id, detail=detail)
        self._forget_pages([doc_id])
        audit_fallout(self.audit, doc_id, fallout)
        self._index_now()
        self._render(result.new_documents)
        return result

    def _render(self, doc_ids: Sequence[str]) -> None:
        """The searchable PDFs of documents a split made (one that fails is left to ``resume``)."""
        with self.sessions() as s:
            for new_id in doc_ids:
                if (doc := s.get(Document, new_id)) is not None:
                    render_document(s, self.store, self.settings.data_dir, doc, None)

    def check(
        self, repair: bool = False, fixity: bool = True, job: JobContext | None = None
    ) -> dict[str, Any]:
        """The whole archive: store fixity and orphans, index against catalog, unfinished batches,
        documents with neither a patient nor a pending review (``unlinked_outside_review``: lost charts).

        With ``repair`` the index is reconciled (missing/stale re-queued, extras dropped),
        unfinished batches are resumed and lost charts are linked or held for review; missing,
        corrupt and orphaned objects are reported for a person (they are locked, and a missing
        original cannot be made up).

        Run as a ``job``, it reports where it is (the step, objects checked of the total) and stops at
        the next object or step when the job is cancelled (``JobCancelled`` with the counts so far,
        audited as a cancelled check).
        """
        steps = _CheckSteps(job)
        try:
            result = self._findings(repair, fixity, steps)
        except JobCancelled:
            detail = {"repair": repair, "fixity": fixity, **steps.counts}
            self.audit("archive.check", outcome="cancelled", detail=detail)
            raise
        detail = {
            "consistent": result["consistent"],
            "repair": repair,
            "fixity": fixity,
            "objects": result["store"]["objects_checked"],
            "unlinked_outside_review": result["unlinked_outside_review"],
        }
        self.audit("archive.check", outcome="ok" if result["consistent"] else "inconsistent", detail=detail)
        return result

    def _findings(self, repair: bool, fixity: bool, steps: _CheckSteps) -> dict[str, Any]:
        """``check``'s answer, step by step (each a point where a cancelled job stops)."""
        store = check_store(self.sessions, self.store, fixity=fixity, progress=steps.objects, stop=steps.stop)
        steps.objects(store, final=True)
        steps.enter("index")
        index = self._reconcile_index(repair)
        steps.enter("batches")
        unfinished = self._unfinished()
        resumed: list[str] = []
        if repair and unfinished:
            resumed = self._resume()
            unfinished = self._unfinished()
        steps.enter("renditions")
        no_rendition = self._missing_renditions()
        if repair and no_rendition:
            self._resume()  # builds every missing rendition
            no_rendition = self._missing_renditions()
        steps.enter("temp")
        leftovers = self._temp_leftovers()  # page images of a killed ingest hold PHI: not to stay
        removed = self._clean_temp() if repair and leftovers else []
        if removed:
            leftovers = self._temp_leftovers()
        steps.enter("unlinked")
        unlinked = self._unlinked()
        settled = self._settle_unlinked() if repair and unlinked else {}
        if settled:
            unlinked = self._unlinked()
        consistent = (
            store.consistent
            and index.consistent
            and not unfinished
            and not leftovers
            and not unlinked
            and not no_rendition
        )
        return {
            "consistent": consistent,
            "store": store.as_dict(),
            "index": to_jsonable(index),
            "unfinished_batches": unfinished,
            "resumed_batches": resumed,
            "renditions_missing": no_rendition,
            "temp_leftovers": [to_jsonable(x) for x in leftovers],
            "temp_removed": [to_jsonable(x) for x in removed],
            "unlinked_outside_review": unlinked,
            "unlinked_settled": settled.get("settled", 0),
        }

    def start_check(self) -> JobInfo:
        """The full check (every object read back against its sha256, no repairs) as a background job; its
        result is ``check_summary``, its progress the step and the objects read back of the total. While
        one runs, that one is given; cancelled, it stops at the next object or step."""
        if self._jobs is None:
            raise RuntimeError("this RecordsService was built without jobs")

        def work(context: JobContext) -> dict[str, Any]:
            return check_summary(self.check(repair=False, fixity=True, job=context), fixity=True)

        job, _ = self._jobs.start(JOB_ARCHIVE_CHECK, work)
        return job

    def _missing_renditions(self) -> list[str]:
        """Live archived documents without their searchable PDF (``resume`` builds them)."""
        with self.sessions() as s:
            return missing_renditions(s)

    def dispositions(self, limit: int = 100) -> list[DispositionRun]:
        """Executed dispositions, newest first (ids and counts; each certificate is read on its own)."""
        with self.sessions() as s:
            rows = s.scalars(select(Disposition).order_by(Disposition.executed_at.desc()).limit(limit))
            return [
                DispositionRun(
                    id=r.id,
                    executed_at=iso(r.executed_at),
                    executed_by=r.executed_by,
                    approved_by=r.approved_by,
                    status=r.status,
                    document_count=r.document_count,
                    has_certificate=bool(r.certificate_key and r.certificate_sha256),
                )
                for r in rows
            ]

    def certificate(self, disposition_id: str) -> dict[str, Any]:
        """A certificate of destruction, read back from the archive and verified by sha256."""
        with self.sessions() as s:
            row = s.get(Disposition, disposition_id)
            if row is None or not row.certificate_key or not row.certificate_sha256:
                raise NotFound(f"no certificate for disposition {disposition_id}")
            ref = ObjectRef(
                row.certificate_key,
                row.certificate_sha256,
                row.certificate_size or 0,
                row.certificate_version,
            )
        certificate: dict[str, Any] = json.loads(b"".join(self.store.open(ref)))
        self.audit("disposition.certificate_read", "disposition", disposition_id)
        return certificate


def _patient(s: Session, mrn: str) -> Patient:
    patient = s.scalars(select(Patient).where(Patient.mrn == mrn)).first()
    if patient is None:
        raise NotFound("no patient with that MRN in the patient index")
    return patient


def _live_documents(s: Session, mrn: str) -> list[Document]:
    return list(s.scalars(select(Document).where(Document.mrn == mrn, Document.status.not_in(INACTIVE))))


def _dob_problem(dob: date, live: Sequence[Document]) -> tuple[str, str] | None:
    """Why a DOB cannot be a patient's, as (code, message); no date in either (they reach the audit)."""
    if dob > date.today():
        return "future", "the date of birth cannot be in the future"
    if dob < EARLIEST_DOB:  # as a registration row's
        return "too_early", f"the date of birth cannot be before {EARLIEST_DOB.year}"
    later = sum(1 for doc in live if doc.date_of_service is not None and doc.date_of_service < dob)
    if later:
        return (
            "after_service",
            f"the date of birth is after the date of service of {later} of this patient's documents",
        )
    return None


def _dob_refused(problem: tuple[str, str]) -> InvalidInput:
    """The refusal of an impossible DOB, coded for API clients (``dob_future``, ``dob_too_early``,
    ``dob_after_service``)."""
    return InvalidInput(problem[1], code=f"dob_{problem[0]}")


def _retention_change(
    doc: Document, before: tuple[date | None, str | None], after: tuple[date | None, str | None] | None
) -> RetentionChange:
    new_until, new_rule = after if after is not None else (None, None)
    return RetentionChange(
        document_id=doc.id,
        doc_type=doc.doc_type,
        date_of_service=day(doc.date_of_service),
        retain_until=day(before[0]),
        rule=before[1],
        new_retain_until=day(new_until),
        new_rule=new_rule,
        changed=after is not None and after != before,
    )


def hold_dict(hold: LegalHold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "matter": hold.matter,
        "scope": hold.scope,
        "scope_value": hold.scope_value,
        "reason": hold.reason,
        "status": hold.status,
        "placed_by": hold.placed_by,
        "placed_at": iso(hold.placed_at),
        "released_by": hold.released_by,
        "released_at": iso(hold.released_at),
        "documents": sorted(i.document_id for i in hold.items),
    }


CHECK_STEPS = ("objects", "index", "batches", "renditions", "temp", "unlinked")  # in the order a check runs


class _CheckSteps:
    """Where a check is (``counts``: the step, objects checked of the total, bytes, missing and corrupt so
    far), told to the job it runs as at most every ``REPORT_EVERY_S`` and at each step; the job's cancel is
    asked before each object and step. Without a job it only counts."""

    REPORT_EVERY_S = 1.0
    ASK_EVERY_S = CANCEL_POLL_S  # the cancel is asked at most this often between objects, at every step

    def __init__(self, job: JobContext | None) -> None:
        self.job = job
        self.counts: dict[str, Any] = {"step": CHECK_STEPS[0], "steps": list(CHECK_STEPS)}
        self._reported = float("-inf")
        self._cancelled = throttled(job.cancelled, self.ASK_EVERY_S) if job is not None else None

    def enter(self, step: str) -> None:
        """The next step begins: where the job stops (``JobCancelled``) if it was cancelled."""
        self.counts["step"] = step
        if self.job is not None:
            self.job.boundary(dict(self.counts))

    def objects(self, report: StoreReport, final: bool = False) -> None:
        """The store check's counts so far; a stopped one ends the check here."""
        self.counts.update(
            objects_checked=report.objects_checked,
            objects_total=report.objects_total,
            bytes_checked=report.bytes_checked,
            missing=len(report.missing),
            corrupt=len(report.corrupt),
        )
        if report.stopped:
            raise JobCancelled(dict(self.counts))
        if self.job is not None and not final and time.monotonic() - self._reported >= self.REPORT_EVERY_S:
            self._reported = time.monotonic()
            self.job.progress(dict(self.counts))

    def stop(self) -> bool:
        return self._cancelled is not None and self._cancelled()


CHECK_IDS_SHOWN = 50  # ids kept per finding by ``check_summary`` (every finding is counted)


def check_summary(result: dict[str, Any], fixity: bool) -> dict[str, Any]:
    """``check``'s answer as the page shows it and a job keeps it: each finding's count and its first
    ids (documents, objects, batches: no patient data), the index's figures, whether it is consistent."""
    store, index, temp = result["store"], result["index"], result["temp_leftovers"]
    findings = {
        "unlinked": {"count": result["unlinked_outside_review"], "ids": []},  # counted only
        "missing": _first_ids(store["missing"]),
        "corrupt": _first_ids(store["corrupt"]),
        "orphans": _first_ids(store["orphans"]),
        "renditions": _first_ids(result["renditions_missing"]),
        "index_missing": _first_ids(index["missing"]),
        "index_extra": _first_ids(index["extra"]),
        "index_stale": _first_ids(index["stale"]),
        "batches": _first_ids(result["unfinished_batches"]),
        "temp": {"count": len(temp), "ids": [], "bytes": sum(x["bytes"] for x in temp)},  # names not kept
    }
    facts = ("index_state", "catalog_documents", "index_documents", "pending")
    return {
        "consistent": result["consistent"],
        "fixity": fixity,
        "objects_checked": store["objects_checked"],
        "bytes_checked": store["bytes_checked"],
        "findings": findings,
        "index": {name: index[name] for name in facts},
    }


def _first_ids(ids: list[str]) -> dict[str, Any]:
    return {"count": len(ids), "ids": list(ids[:CHECK_IDS_SHOWN])}

"""The patient index: loading the registration list, and settling documents with no patient.

Settling is ``chartvault.archive.patients.settle_patient`` over many documents: each is linked by two
agreeing identifiers or held in review saying why. A document whose MRN was filled in from the index
has its retention, holds and index entry brought up to date here, as the pipeline does at archive time.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.check import unlinked_outside_review
from chartvault.archive.holds import apply_holds_to_new_document
from chartvault.archive.lifecycle import RetentionPolicy, apply_retention
from chartvault.archive.models import (
    JOB_REGISTRATION_IMPORT,
    PATIENT_SOURCE_REGISTRATION,
    REVIEW_PENDING,
    Document,
    IndexTask,
    Patient,
)
from chartvault.archive.objectstore import ObjectStore
from chartvault.archive.patients import (
    REVIEW_NO_PATIENT,
    REVIEW_PATIENT_CONFLICT,
    Settled,
    settle_pending,
    settle_unlinked,
)
from chartvault.archive.registration import BadFile, ImportCounts, import_registration
from chartvault.classify.checkdigit import CheckDigit, passes
from chartvault.errors import InvalidInput, NotFound, TooLarge
from chartvault.schemas.common import to_jsonable
from chartvault.schemas.jobs import JobInfo
from chartvault.schemas.patients import PatientImport, PatientIndexSummary, RowRefusal
from chartvault.services.caller import AuditTrail
from chartvault.services.jobs import JobCancelled, JobContext, JobService

log = logging.getLogger("chartvault.patients")

_AUDITED_LINES = 200  # refused line numbers kept in the audit entry (the count is always complete)
# Room for a large hospital's master patient index: 3 million patients are some 200 MB of CSV, so this is
# about 15 million. The file is on disk (the CLI's path, the page's and the API's staged upload) and
# streamed a chunk at a time: what grows with it is the import's time (some 40 s a million rows on
# SQLite) and its dict of the MRNs read (about 125 MB a million rows, 440 MB for 3 million: see
# chartvault.archive.registration and bench.registration), no longer the whole file held in memory.
MAX_REGISTRATION_BYTES = 1024 * 1024 * 1024


JOB_ERRORS_SHOWN = 200  # refused lines a background import keeps in its job (the page lists as many)


def import_summary(result: PatientImport) -> dict[str, Any]:
    """What a background import's job keeps: the counts, and the first refused lines by number with the
    field at fault (never a value), as the page shows them."""
    shown = result.errors[:JOB_ERRORS_SHOWN]
    summary: dict[str, Any] = to_jsonable(result)
    summary.update(errors=to_jsonable(shown), errors_note=_errors_note(len(shown), result.refused))
    return summary


def _rows_so_far(context: JobContext) -> Callable[[ImportCounts], None]:
    """The import's counts, reported to the job at each commit (the page shows how far it got)."""

    def report(counts: ImportCounts) -> None:
        context.progress({"rows_read": counts.applied + counts.refused, "refused": counts.refused})

    return report


def _errors_note(shown: int, refused: int) -> str | None:
    """What to say when fewer refused lines are listed than were refused (None when all are)."""
    if shown >= refused:
        return None
    return f"first {shown:,} of {refused:,} refused lines shown (by line number)"


class PatientService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: Callable[[], ObjectStore],
        policy: Callable[[], RetentionPolicy],
        audit: AuditTrail,
        jobs: JobService,
        mrn_check_digit: CheckDigit = "none",
        mrn_pattern: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.jobs = jobs  # a list loaded from a page runs as a job (3 million rows: two minutes)
        self._store = store  # opened only when a settled document's MRN changed
        self._policy = policy
        self.audit = audit
        self.mrn_check_digit = mrn_check_digit  # a registration row's MRN must pass the facility's
        self.mrn_pattern = mrn_pattern  # and match its MRN pattern

    def start_import(self, staged: Path) -> tuple[JobInfo, bool]:
        """``import_registration`` of a staged upload as a background job: (the job, True). While another
        import runs: (that one, False), and this file is deleted unread (load it again after). The job's
        result is ``import_summary``: counts and the first refused lines, never a value of a row."""

        def work(context: JobContext) -> dict[str, Any]:
            assert context.input is not None  # the staged file, moved under the jobs folder
            return self._import_in_job(context, context.input)

        return self.jobs.start(JOB_REGISTRATION_IMPORT, work, input=staged)

    def import_registration(
        self, data: Path | bytes, progress: Callable[[ImportCounts], None] | None = None
    ) -> PatientImport:
        """Load the hospital's registration export, a file (the CLI, and the page's and API's staged
        upload) or its bytes: an admin action, audited with counts and line numbers. Held documents the
        new rows identify are linked at once (``documents_linked``). ``progress`` gets the counts so far
        every 25,000 rows.

        It runs as a registration-import job in the caller's thread, so two imports never run at once
        (they fail on each other's new MRNs): ``Conflict`` (``job_running``) while one runs, here or in
        another process. Like a background import it is listed with the jobs and can be cancelled."""
        answers: list[PatientImport] = []

        def work(context: JobContext) -> dict[str, Any]:
            return self._import_in_job(context, data, progress, answers)

        with contextlib.suppress(JobCancelled):  # the answer says so, with what was committed
            self.jobs.run_here(JOB_REGISTRATION_IMPORT, work)
        return answers[0]

    def _import_in_job(
        self,
        context: JobContext,
        data: Path | bytes,
        progress: Callable[[ImportCounts], None] | None = None,
        answers: list[PatientImport] | None = None,
    ) -> dict[str, Any]:
        """The import as a job's work, its result: counts reported to the job (and ``progress``) at each
        commit, stopped at a commit once cancelled, raising ``JobCancelled`` with what it did. The whole
        answer (``cancelled`` when it stopped) is appended to ``answers``."""
        report = _rows_so_far(context)

        def on_commit(counts: ImportCounts) -> None:
            report(counts)
            if progress is not None:
                progress(counts)

        found, counts = self._import(data, on_commit, context.cancelled)
        result = replace(found, cancelled=counts.stopped)
        if answers is not None:
            answers.append(result)
        if counts.stopped:  # at a commit: what was committed stays, the rest of the file is not read
            raise JobCancelled({**import_summary(result), "rows_applied": counts.applied})
        return import_summary(result)

    def _import(
        self,
        data: Path | bytes,
        progress: Callable[[ImportCounts], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> tuple[PatientImport, ImportCounts]:
        """``import_registration``, stopped at a commit when ``stop`` says so: (the answer, its counts). A
        stopped import keeps the rows it committed and links the held documents they identify, as a
        whole one does; it is audited with its counts, outcome ``cancelled``."""
        if isinstance(data, Path) and not data.is_file():
            raise NotFound(f"no file at {data.name}")
        size = data.stat().st_size if isinstance(data, Path) else len(data)
        if size > MAX_REGISTRATION_BYTES:
            raise TooLarge(f"a registration list is at most {MAX_REGISTRATION_BYTES:,} bytes")
        with self.sessions() as s:
            try:
                counts = import_registration(
                    s,
                    data,
                    mrn_ok=self._mrn_ok(),
                    on_commit=progress,
                    stop=stop,
                    mrn_pattern=self.mrn_pattern,
                )
            except BadFile as exc:  # found before any row was written
                s.rollback()
                self.audit("patients.import", outcome="refused", detail={"error": str(exc)})
                raise InvalidInput(str(exc)) from None
            s.commit()
            linked = self._finish(s, settle_pending(s))
        detail = {
            "imported": counts.imported,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "refused": counts.refused,
            "refused_lines": [e.line for e in counts.errors[:_AUDITED_LINES]],
            "documents_linked": linked,
        }
        self.audit("patients.import", outcome="cancelled" if counts.stopped else "ok", detail=detail)
        log.info("registration imported %s", {k: v for k, v in detail.items() if k != "refused_lines"})
        answer = PatientImport(
            imported=counts.imported,
            updated=counts.updated,
            unchanged=counts.unchanged,
            refused=counts.refused,
            errors=[RowRefusal(line=e.line, code=e.code, message=e.message) for e in counts.errors],
            errors_note=_errors_note(len(counts.errors), counts.refused),
            documents_linked=linked,
        )
        return answer, counts

    def _mrn_ok(self) -> Callable[[str], bool] | None:
        """The facility's check digit as the import asks it (the catalog knows no scheme); None: unset."""
        return None if self.mrn_check_digit == "none" else partial(passes, scheme=self.mrn_check_digit)

    def summary(self) -> PatientIndexSummary:
        """Patients by where they came from, and the documents waiting on the index (counts only)."""
        with self.sessions() as s:
            counted = s.execute(select(Patient.source, func.count()).group_by(Patient.source))
            by_source: dict[str, int] = {source: count for source, count in counted}
            held = s.scalars(select(Document.review_reasons).where(Document.review_status == REVIEW_PENDING))
            codes = Counter(r.get("code") for reasons in held for r in (reasons or []) if isinstance(r, dict))
            registered = by_source.pop(PATIENT_SOURCE_REGISTRATION, 0)
            return PatientIndexSummary(
                registered=registered,
                from_documents=sum(by_source.values()),
                held_no_patient=codes[REVIEW_NO_PATIENT],
                held_conflict=codes[REVIEW_PATIENT_CONFLICT],
                unlinked_outside_review=unlinked_outside_review(s),
            )

    def unlinked_outside_review(self) -> int:
        """Live archived documents with neither a patient nor a pending review (the answer must be 0)."""
        with self.sessions() as s:
            return unlinked_outside_review(s)

    def settle_unlinked(self) -> dict[str, int]:
        """Link or hold every document left with neither (archived by older code, or edited by hand)."""
        with self.sessions() as s:
            settled = settle_unlinked(s)
            linked = self._finish(s, settled)
        result = {"settled": len(settled), "linked": linked, "held": len(settled) - linked}
        if settled:
            self.audit("patients.settle_unlinked", detail=result)
        return result

    def _finish(self, s: Session, settled: list[tuple[Document, Settled]]) -> int:
        """Commit settled documents; those whose MRN came from the index get retention, holds, index."""
        moved = [doc for doc, outcome in settled if outcome.changed_mrn]
        if moved:
            store, policy = self._store(), self._policy()
            for doc in moved:
                apply_retention(s, store, doc, policy)
                apply_holds_to_new_document(s, store, doc)
        for doc, outcome in settled:
            if outcome.patient_id is not None:
                s.add(IndexTask(document_id=doc.id, op="upsert"))  # the index carries the patient's MRN
        s.commit()
        return sum(1 for _, outcome in settled if outcome.patient_id is not None)

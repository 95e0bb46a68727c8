"""HIM administrators: legal holds and the patient index (the registration list loaded from a page, as
``chartvault patients import`` loads it). Disposition has its own pages (``routes.disposition``)."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from chartvault.archive.models import JOB_REGISTRATION_IMPORT
from chartvault.errors import InvalidInput, TooLarge
from chartvault.schemas.jobs import JobInfo
from chartvault.services.patients import MAX_REGISTRATION_BYTES
from chartvault.web import ReceivedUpload
from chartvault.web.context import Page
from chartvault.web.routing import page_router
from chartvault.web.uploads import receive_form_upload

router = page_router()

SCOPES = {"patient": "A patient (MRN)", "encounter": "An encounter", "documents": "Listed documents"}


@router.get("/ui/holds")
def holds_page(page: Page, all: bool = False) -> Response:
    holds = page.services.records.holds(active_only=not all)
    return page.render("holds.html", holds=holds, scopes=SCOPES, show_all=all)


@router.post("/ui/holds")
def place_hold(page: Page) -> Response:
    """A hold on a patient, an encounter or documents: nothing under it is disposed of."""
    scope = page.field("scope")
    value = page.field("value")
    if scope not in SCOPES:
        raise InvalidInput("choose what the hold covers")
    ids = [d for d in value.replace(",", " ").split() if d] if scope == "documents" else []
    page.services.records.place_hold(
        page.field("matter"),
        scope,
        page.field("reason"),
        value=value if scope != "documents" else None,
        document_ids=ids,
    )
    return RedirectResponse("/ui/holds", status_code=303)


@router.post("/ui/holds/{hold_id}/release")
def release_hold(hold_id: str, page: Page) -> Response:
    page.services.records.release_hold(hold_id, page.field("reason"))
    return RedirectResponse("/ui/holds", status_code=303)


@router.get("/ui/patient-index")
def patient_index_page(page: Page) -> Response:
    """What the index holds, what waits on it, and the form that loads the registration list."""
    return page.render("patient_index.html", summary=page.services.patients.summary(), job=None)


@router.post("/ui/patient-index")
async def import_registration_page(page: Page) -> Response:
    """The registration export, staged to disk, loaded by a background job (3 million rows take two
    minutes, longer than a proxy waits): the answer is the job's page, which follows it to its outcome."""
    upload = await receive_form_upload(page, max_files=1, max_file_bytes=MAX_REGISTRATION_BYTES)
    try:
        staged = _registration_file(upload)
        job, started = await run_in_threadpool(page.services.patients.start_import, staged)
    except (InvalidInput, TooLarge) as exc:
        upload.discard()
        summary = await run_in_threadpool(page.services.patients.summary)  # catalog reads off the event loop
        status = 413 if isinstance(exc, TooLarge) else 422
        return page.render("patient_index.html", status=status, summary=summary, job=None, error=str(exc))
    return RedirectResponse(f"/ui/patient-index/jobs/{job.id}{'' if started else '?busy=1'}", status_code=303)


@router.get("/ui/patient-index/jobs/{job_id}")
def registration_job_page(job_id: str, page: Page, busy: bool = False) -> Response:
    """A registration import followed (htmx, or a reload without JavaScript) to its counts and refused
    lines; ``busy``: the list just sent was not loaded, as this one was running."""
    job = _registration_job(page, job_id)
    summary = page.services.patients.summary()
    return page.render("patient_index.html", summary=summary, job=job, busy=busy)


@router.get("/ui/patient-index/jobs/{job_id}/progress")
def registration_job_progress(job_id: str, page: Page) -> Response:
    """The live part of the job's page alone (htmx replaces it every 2 s while the import runs)."""
    job = _registration_job(page, job_id)
    return page.render("_patient_index_status.html", summary=page.services.patients.summary(), job=job)


def _registration_file(upload: ReceivedUpload) -> Path:
    """The staged upload's path, or why there is none to load."""
    staged = upload.files[0][1] if upload.files else None
    if staged is not None and (staged.over_limit or staged.size > MAX_REGISTRATION_BYTES):
        raise TooLarge(f"a registration list is at most {MAX_REGISTRATION_BYTES:,} bytes")
    if staged is None or staged.path is None:
        raise InvalidInput("choose the registration list (a CSV file) to load")
    return staged.path


def _registration_job(page: Page, job_id: str) -> JobInfo:
    """The job, if it is of the kind this page follows (another kind's id is not found here)."""
    return page.services.jobs.get(job_id, kind=JOB_REGISTRATION_IMPORT)

"""The patient index: the hospital's registration list, sent as CSV; a patient's DOB corrected."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.errors import Conflict, TooLarge
from chartvault.schemas.common import to_jsonable
from chartvault.schemas.jobs import JobInfo
from chartvault.schemas.patients import DobCorrected, DobCorrection, PatientImport, PatientIndexSummary
from chartvault.services import Services
from chartvault.services.patients import MAX_REGISTRATION_BYTES

router = APIRouter(tags=["patients"])

_CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "CSV with a header: mrn, last_name, first_name, dob (YYYY-MM-DD or MM/DD/YYYY), "
        "optional middle_name and sex (M, F, U, X). UTF-8.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.post(
    "/patients/import",
    summary="Load the registration list into the patient index (refused rows listed by line number)",
    response_model=PatientImport,
    responses={**error_responses(409, 413, 422), 202: {"model": JobInfo, "description": "With ?background"}},
    openapi_extra=_CSV_BODY,
)
async def import_patients(
    request: Request, services: ServicesDep, background: bool = False
) -> PatientImport | JSONResponse:
    """Safe to repeat (unchanged rows count as ``unchanged``); never echoes a value of a row. With
    ``?background=true``: 202 and the job (``GET /jobs/{id}``), or 409 while another import runs."""
    staged = await _stage_body(request, services)
    try:
        if background:
            return await run_in_threadpool(_start_import, services, staged)
        return await run_in_threadpool(services.patients.import_registration, staged)
    finally:
        staged.unlink(missing_ok=True)  # a started job moved it under its own name first


def _start_import(services: Services, staged: Path) -> JSONResponse:
    job, started = services.patients.start_import(staged)
    if not started:
        raise Conflict(f"registration import {job.id} is running: send the list again once it ends")
    return JSONResponse(to_jsonable(job), status_code=202)


async def _stage_body(request: Request, services: Services) -> Path:
    """The CSV body written under the data folder as it arrives (as an upload is, never whole in memory);
    the import then streams it from there."""
    stager = services.intake.stager(MAX_REGISTRATION_BYTES)
    try:
        async for chunk in request.stream():
            await run_in_threadpool(stager.write, chunk)  # disk writes off the event loop
            if stager.size > MAX_REGISTRATION_BYTES:
                raise TooLarge(f"a registration list is at most {MAX_REGISTRATION_BYTES:,} bytes")
        staged = await run_in_threadpool(stager.finish)
    except BaseException:
        stager.abort()
        raise
    assert staged.path is not None  # within the limit, so kept
    return staged.path


@router.get(
    "/patients/index",
    summary="What the patient index holds and how many documents wait on it",
    responses=error_responses(),
)
def patient_index(services: ServicesDep) -> PatientIndexSummary:
    """Counts only (the web page's table): patients by source, documents held for a patient reason, and
    documents with neither a patient nor a review (``chartvault check``'s figure, which must be 0)."""
    return services.patients.summary()


class DobBody(BaseModel):
    """A patient's corrected date of birth (the audit entry names who made it, never the date)."""

    dob: date = Field(description="The corrected date of birth (YYYY-MM-DD).")


class DobPreviewBody(BaseModel):
    """The date of birth a correction would give (in the body: a URL's query is kept by proxies' logs)."""

    dob: date | None = Field(
        None, description="The corrected DOB (YYYY-MM-DD); none: the retention now only."
    )


class PatientDobPreviewBody(DobPreviewBody):
    """The patient and the date of birth a correction would give, both in the body."""

    mrn: str = Field(min_length=1, max_length=64, description="The patient's MRN.")


class PatientDobBody(DobBody):
    """The patient and their corrected date of birth, both in the body."""

    mrn: str = Field(min_length=1, max_length=64, description="The patient's MRN.")


_PREVIEW: dict[str, Any] = {
    "summary": "What correcting a patient's DOB would change: each document's retention from and to",
    "responses": error_responses(404, 422),
}
_CORRECTION: dict[str, Any] = {
    "summary": "Correct a patient's DOB and recompute their documents' retention (store locks only extend)",
    "responses": error_responses(404, 422),
}
_MRN_IN_URL = "Deprecated: the MRN is in the URL, which proxies' access logs keep. Use `POST {}`."


@router.post("/patients/dob-correction", **_PREVIEW)
def dob_correction_by_body(body: PatientDobPreviewBody, services: ServicesDep) -> DobCorrection:
    """Nothing is saved: the web page's preview. A POST so that the date and the MRN travel in the body,
    never in a URL (a reverse proxy's access log keeps whole URLs). A DOB in the future, before 1880 or
    after one of the patient's dates of service is refused (422, ``dob_future`` / ``dob_too_early`` /
    ``dob_after_service``) as the correction would be."""
    return services.records.dob_correction(body.mrn, body.dob)


@router.post("/patients/dob", **_CORRECTION)
def correct_dob_by_body(body: PatientDobBody, services: ServicesDep) -> DobCorrected:
    """As ``chartvault retention correct-dob`` and the web page: audited as ``patient.dob_corrected``."""
    return services.records.correct_dob(body.mrn, body.dob)


@router.post(
    "/patients/{mrn}/dob-correction",
    description=_MRN_IN_URL.format("/patients/dob-correction"),
    deprecated=True,
    **_PREVIEW,
)
def dob_correction(mrn: str, body: DobPreviewBody, services: ServicesDep) -> DobCorrection:
    """As ``POST /patients/dob-correction``, the MRN in the path."""
    return services.records.dob_correction(mrn, body.dob)


@router.post(
    "/patients/{mrn}/dob", description=_MRN_IN_URL.format("/patients/dob"), deprecated=True, **_CORRECTION
)
def correct_dob(mrn: str, body: DobBody, services: ServicesDep) -> DobCorrected:
    """As ``POST /patients/dob``, the MRN in the path."""
    return services.records.correct_dob(mrn, body.dob)

"""Background jobs (a retraining, a registration import, a full archive check) followed by their id."""

from __future__ import annotations

from fastapi import APIRouter

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.schemas.jobs import JobInfo

router = APIRouter(tags=["jobs"])


@router.get(
    "/jobs/{job_id}",
    summary="A background job: its state, counts so far, then its outcome (no patient data)",
    responses=error_responses(404),
)
def job(job_id: str, services: ServicesDep) -> JobInfo:
    """Only to a role that may start jobs of that kind (403 otherwise): the archive check's to admins."""
    return services.jobs.get(job_id)

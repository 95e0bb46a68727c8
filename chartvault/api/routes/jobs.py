"""Background jobs (a retraining, a registration import, a full archive check): listed, followed by their
id, and cancelled."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.archive.models import JOB_CLASSIFIER_TRAIN
from chartvault.schemas.jobs import JobInfo, JobList
from chartvault.services.jobs import MAX_LISTED
from chartvault.services.review import training_shown

router = APIRouter(tags=["jobs"])

# classifier_train | registration_import | archive_check; queued | running | done | failed | cancelled
# (another is refused, 422: the service knows the names)
KindParam = Annotated[str | None, Query(max_length=32)]
StateParam = Annotated[str | None, Query(max_length=16)]


@router.get(
    "/jobs",
    summary="Recent background jobs of the kinds the caller may see, newest first (no patient data)",
    responses=error_responses(422),
)
def jobs(
    services: ServicesDep,
    kind: KindParam = None,
    state: StateParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 50,
) -> JobList:
    """A kind the role may not see is refused (403): the archive check's jobs are the admins'."""
    return JobList(limit=limit, items=[_shown(j) for j in services.jobs.recent(kind, state, limit)])


@router.get(
    "/jobs/{job_id}",
    summary="A background job: its state, counts so far, then its outcome (no patient data)",
    responses=error_responses(404),
)
def job(job_id: str, services: ServicesDep) -> JobInfo:
    """Only to a role that may start jobs of that kind (403 otherwise): the archive check's to admins."""
    return _shown(services.jobs.get(job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    summary="Ask a queued or running job to stop at its next chunk or step (409 once it ended)",
    responses=error_responses(404, 409),
)
def cancel(job_id: str, services: ServicesDep) -> JobInfo:
    """The job as it is now, ``cancel_requested_at`` set: it ends ``cancelled`` with its counts so far.
    A registration import stops after its next commit (the rows committed stay); the archive check before
    its next object or step; a retraining as its next stage begins (a fit under way ends first, and its
    model is thrown away). A job that reaches its end first ends ``done``. Audited as ``job.cancel``."""
    return _shown(services.jobs.cancel(job_id))


def _shown(job: JobInfo) -> JobInfo:
    """A job as the API answers it: a retraining's result without the server path an earlier version kept."""
    return training_shown(job) if job.kind == JOB_CLASSIFIER_TRAIN else job

"""The document-type classifier: the model in use, and retraining it on the staff's type corrections."""

from __future__ import annotations

from fastapi import APIRouter

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.schemas.jobs import JobInfo
from chartvault.schemas.review import ClassifierOverview

router = APIRouter(tags=["review"])


@router.get(
    "/classifier",
    summary="The type model in use, the corrections since it was trained, and the last training job",
    responses=error_responses(),
)
def classifier(services: ServicesDep) -> ClassifierOverview:
    return services.review.classifier_overview()


@router.post(
    "/classifier/train",
    status_code=202,
    summary="Retrain the type model as a background job (follow it at GET /jobs/{id})",
    responses=error_responses(),
)
def train(services: ServicesDep) -> JobInfo:
    """Answered at once with the job; while a training runs, that one is answered (never two at once)."""
    return services.review.start_training()

"""The review queue and the corrections HIM staff make in it."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.classify.types import DOC_TYPES
from chartvault.schemas.review import ClassificationChange, ReviewQueue, ReviewResolution

router = APIRouter(tags=["review"])


class ClassificationBody(BaseModel):
    """A staff correction of a document's type."""

    doc_type: Literal[DOC_TYPES] = Field(description="One of the document types.")  # type: ignore[valid-type]


class ResolveBody(BaseModel):
    """Resolution of a document's review; ``mrn`` and ``dob`` replace the document's when given.

    The document is linked only if two identifiers agree with a patient of the index; otherwise it
    stays in the queue with the patient reason (``review_status`` says ``pending``).
    """

    mrn: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")
    dob: date | None = Field(None, description="The date of birth the person compared (YYYY-MM-DD).")


@router.get(
    "/review",
    summary="Documents waiting for a person, with reasons (ids only)",
    responses=error_responses(422),
)
def review_queue(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ReviewQueue:
    return services.review.queue(limit, offset)


@router.post(
    "/documents/{doc_id}/classification",
    summary="Set a document's type (recorded for training)",
    responses=error_responses(404, 422),
)
def correct_classification(
    doc_id: str, body: ClassificationBody, services: ServicesDep
) -> ClassificationChange:
    return services.review.correct_type(doc_id, body.doc_type)


@router.post(
    "/documents/{doc_id}/review/resolve",
    summary="Confirm whose document this is (e.g. after a possible misfile); optionally fix the MRN",
    responses=error_responses(404, 422),
)
def resolve_review(doc_id: str, services: ServicesDep, body: ResolveBody | None = None) -> ReviewResolution:
    return services.review.resolve(doc_id, mrn=body.mrn if body else None, dob=body.dob if body else None)

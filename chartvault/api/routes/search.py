"""Finding documents: search, a patient's timeline, similar documents."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.errors import InvalidInput
from chartvault.schemas.search import SearchAnswer, SimilarDocuments, Timeline
from chartvault.search.cursor import MAX_CURSOR_DEPTH, MAX_PAGE_SIZE, MAX_SEARCH_OFFSET
from chartvault.search.types import SearchQuery

router = APIRouter(tags=["search"])


@router.get(
    "/search",
    summary="Ranked documents with highlighted snippets, hit pages and facets",
    responses=error_responses(422, 503),
)
def search(
    services: ServicesDep,
    q: Annotated[str | None, Query(description='Words, "phrases", AND/OR/NOT, prefix*.')] = None,
    mrn: str | None = None,
    doc_type: Annotated[str | None, Query(alias="type")] = None,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    batch: str | None = None,
    name: Annotated[str | None, Query(description="Every word in the patient name.")] = None,
    icd: Annotated[str | None, Query(description="ICD-10 code (E11.9) or category (E11*).")] = None,
    encounter: str | None = None,
    sort: Literal["relevance", "date_desc", "date_asc"] = "relevance",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 20,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_SEARCH_OFFSET,
            description=f"Hits to skip, at most {MAX_SEARCH_OFFSET:,}: page deeper with `cursor`.",
        ),
    ] = 0,
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            description="The `next_cursor` of the previous page of the same query "
            f"(pages up to {MAX_CURSOR_DEPTH:,} hits deep).",
        ),
    ] = None,
) -> SearchAnswer:
    if not (q or mrn or doc_type or date_from or date_to or batch or name or icd or encounter):
        raise InvalidInput("give q or at least one filter (mrn, type, from, to, batch)")
    query = SearchQuery(
        text=q,
        mrn=mrn,
        doc_type=doc_type,
        date_from=date_from,
        date_to=date_to,
        batch_id=batch,
        name=name,
        icd=icd,
        encounter=encounter,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return services.search.search(query, cursor)


@router.get(
    "/patients/{mrn}/timeline",
    summary="Every document of the patient, oldest date of service first, grouped by encounter",
    responses=error_responses(503),
)
def patient_timeline(mrn: str, services: ServicesDep) -> Timeline:
    return services.search.timeline(mrn)


@router.get(
    "/documents/{doc_id}/similar",
    summary='Documents whose content resembles this one\'s ("more like this")',
    responses=error_responses(404, 422, 503),
)
def similar_documents(
    doc_id: str, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> SimilarDocuments:
    return services.search.similar(doc_id, limit)

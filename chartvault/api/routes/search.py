"""Finding documents: search, a patient's timeline, similar documents."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.errors import InvalidInput
from chartvault.schemas.search import SearchAnswer, SimilarDocuments, Timeline
from chartvault.search.cursor import MAX_CURSOR_DEPTH, MAX_PAGE_SIZE, MAX_SEARCH_OFFSET
from chartvault.search.types import SearchQuery
from chartvault.services import Services

router = APIRouter(tags=["search"])


SORT = Literal["relevance", "date_desc", "date_asc"]
_POST_INSTEAD = (
    "A URL's query is kept whole by browser history and proxies' access logs: a search by name, MRN or "
    "words that may name a patient is better sent as `POST /search`, the same fields in a JSON body."
)


@router.get(
    "/search",
    summary="Ranked documents with highlighted snippets, hit pages and facets",
    description=_POST_INSTEAD,
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
    sort: SORT = "relevance",
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
    body = SearchBody.model_validate(
        {
            "q": q,
            "mrn": mrn,
            "type": doc_type,
            "from": date_from,
            "to": date_to,
            "batch": batch,
            "name": name,
            "icd": icd,
            "encounter": encounter,
            "sort": sort,
            "limit": limit,
            "offset": offset,
            "cursor": cursor,
        }
    )
    return _search(services, body)


class SearchBody(BaseModel):
    """``GET /search``'s query as a JSON body (FHIR's ``POST [type]/_search``): no value in the URL."""

    model_config = {"populate_by_name": True}
    q: str | None = Field(None, description='Words, "phrases", AND/OR/NOT, prefix*.')
    mrn: str | None = None
    doc_type: str | None = Field(None, alias="type")
    date_from: date | None = Field(None, alias="from")
    date_to: date | None = Field(None, alias="to")
    batch: str | None = None
    name: str | None = Field(None, description="Every word in the patient name.")
    icd: str | None = Field(None, description="ICD-10 code (E11.9) or category (E11*).")
    encounter: str | None = None
    sort: SORT = "relevance"
    limit: int = Field(20, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    offset: int = Field(
        0,
        ge=0,
        le=MAX_SEARCH_OFFSET,
        description=f"Hits to skip, at most {MAX_SEARCH_OFFSET:,}: page deeper with `cursor`.",
    )
    cursor: str | None = Field(
        None,
        max_length=512,
        description="The `next_cursor` of the previous page of the same query "
        f"(pages up to {MAX_CURSOR_DEPTH:,} hits deep; a GET's cursor serves the POST and back).",
    )


@router.post(
    "/search",
    summary="The same search with its fields in a JSON body, so no name or MRN travels in a URL",
    responses=error_responses(422, 503),
)
def search_by_body(body: SearchBody, services: ServicesDep) -> SearchAnswer:
    """As ``GET /search``, field for field (``type``, ``from``, ``to`` by those names), answered and
    audited the same, with the same cursor paging."""
    return _search(services, body)


def _search(services: Services, body: SearchBody) -> SearchAnswer:
    """One search, whichever way its fields came."""
    filters = (body.mrn, body.doc_type, body.date_from, body.date_to, body.batch, body.name, body.icd)
    if not (body.q or body.encounter or any(filters)):
        raise InvalidInput("give q or at least one filter (mrn, type, from, to, batch)")
    query = SearchQuery(
        text=body.q,
        mrn=body.mrn,
        doc_type=body.doc_type,
        date_from=body.date_from,
        date_to=body.date_to,
        batch_id=body.batch,
        name=body.name,
        icd=body.icd,
        encounter=body.encounter,
        sort=body.sort,
        limit=body.limit,
        offset=body.offset,
    )
    return services.search.search(query, body.cursor)


class PatientBody(BaseModel):
    """A patient named in the body, where no proxy's access log keeps it."""

    mrn: str = Field(min_length=1, max_length=64, description="The patient's MRN.")


@router.get(
    "/patients/{mrn}/timeline",
    summary="Every document of the patient, oldest date of service first, grouped by encounter",
    description="Deprecated: the MRN is in the URL, which proxies' access logs keep. Use "
    "`POST /patients/timeline`.",
    deprecated=True,
    responses=error_responses(503),
)
def patient_timeline(mrn: str, services: ServicesDep) -> Timeline:
    return services.search.timeline(mrn)


@router.post(
    "/patients/timeline",
    summary="Every document of the patient, oldest date of service first, grouped by encounter",
    responses=error_responses(422, 503),
)
def patient_timeline_by_body(body: PatientBody, services: ServicesDep) -> Timeline:
    """As ``GET /patients/{mrn}/timeline``, the MRN in the body (audited the same)."""
    return services.search.timeline(body.mrn)


@router.get(
    "/documents/{doc_id}/similar",
    summary='Documents whose content resembles this one\'s ("more like this")',
    responses=error_responses(404, 422, 503),
)
def similar_documents(
    doc_id: str, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> SimilarDocuments:
    return services.search.similar(doc_id, limit)

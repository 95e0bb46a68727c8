"""Management reports: the list, and one report as JSON or as a CSV download."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from chartvault.api.deps import ServicesDep
from chartvault.api.errors import error_responses
from chartvault.schemas.reports import Period, ReportAnswer, ReportList
from chartvault.services.reports import ReportRequest

router = APIRouter(tags=["reports"])

CSV = "text/csv"


def _wants_csv(form: str | None, accept: str | None) -> bool:
    """``?format=`` decides; without it, an Accept header naming text/csv (a browser link, curl -H)."""
    if form is not None:
        return form == "csv"
    return accept is not None and CSV in accept.lower()


@router.get("/reports", summary="Every management report, with what it is for", responses=error_responses())
def list_reports(services: ServicesDep) -> ReportList:
    return services.reports.catalog()


@router.get(
    "/reports/{name}",
    response_model=ReportAnswer,
    summary="One management report (SQL aggregates of the catalog; counts, never patient data)",
    responses={
        200: {
            "description": "The report as JSON, or as CSV with `?format=csv` or `Accept: text/csv`",
            "content": {CSV: {"schema": {"type": "string"}}},
        },
        **error_responses(404, 422),
    },
)
def get_report(
    name: str,
    services: ServicesDep,
    date_from: Annotated[date | None, Query(alias="from", description="First day (UTC), inclusive.")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Last day (UTC), inclusive.")] = None,
    period: Annotated[Period | None, Query(description="Bucket of time series; default week.")] = None,
    form: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None,
    table: Annotated[
        str | None, Query(max_length=64, description="Only this table of the report (e.g. vendors).")
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ReportAnswer | Response:
    request = ReportRequest(name, date_from, date_to, period)
    if not _wants_csv(form, accept):
        return services.reports.run(request, table)
    download = services.reports.csv(request, table)
    return Response(
        download.text,
        media_type=f"{CSV}; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{download.filename}"',
            "Cache-Control": "no-store",
        },
    )

"""Management reports as pages (HIM administrators and admins): tables, SVG charts, CSV downloads.

Every figure on these pages is a cell of ``ReportsService``'s answer (SQL aggregates of the catalog);
the page formats and draws them, never counts. Showing a report runs it through the service, which
audits it exactly as the API's ``GET /reports/{name}`` (``report.run``, under the signed-in user);
the CSV link downloads the very text the API sends for ``?format=csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query
from fastapi.responses import Response
from markupsafe import Markup

from chartvault.errors import InvalidInput, NotFound
from chartvault.schemas.reports import ReportAnswer, ReportInfo, ReportList, ReportTable
from chartvault.services.reports import ReportRequest
from chartvault.web.charts import NUMERIC_KINDS, Series, chart_data, render_svg
from chartvault.web.context import Page
from chartvault.web.forms import day
from chartvault.web.routing import page_router

router = page_router()

FromParam = Annotated[str, Query(alias="from", max_length=32)]
ToParam = Annotated[str, Query(alias="to", max_length=32)]
PeriodParam = Annotated[str, Query(max_length=16)]
TableParam = Annotated[str, Query(max_length=64)]


@dataclass(frozen=True, slots=True)
class TableView:
    """One table of a report as the page shows it: the cells, its chart (if any) and its CSV link."""

    table: ReportTable
    chart: Markup | None  # None: no chart hint, or nothing to draw (the empty state is shown instead)
    has_chart: bool
    legend: tuple[Series, ...]
    csv_url: str

    @property
    def is_empty(self) -> bool:
        return not self.table.rows


def _info(catalog: ReportList, name: str) -> ReportInfo:
    for info in catalog.reports:
        if info.name == name:
            return info
    raise NotFound(f"no report {name!r}")


def _csv_url(answer: ReportAnswer, table: str | None) -> str:
    """The download of exactly the window shown (resolved dates, so "today" cannot move under it)."""
    query = {"from": answer.date_from, "to": answer.date_to, "period": answer.period}
    if table is not None:
        query["table"] = table
    return f"/ui/reports/{answer.name}/csv?{urlencode(query)}"


def _views(answer: ReportAnswer) -> list[TableView]:
    views = []
    for table in answer.tables:
        data = chart_data(table)
        drawn = None
        if data is not None and not data.is_empty():
            drawn = render_svg(data, f"chart-{table.name}", table.title)
        legend = data.series if data is not None else ()
        views.append(TableView(table, drawn, data is not None, legend, _csv_url(answer, table.name)))
    return views


@router.get("/ui/reports")
def reports_page(page: Page) -> Response:
    """The reports and what each answers (running none: a list costs no query)."""
    return page.render("reports.html", catalog=page.services.reports.catalog())


@router.get("/ui/reports/{name}")
def report_page(
    name: str, page: Page, date_from: FromParam = "", date_to: ToParam = "", period: PeriodParam = ""
) -> Response:
    """One report over the chosen window: a chart and a table per table; a bad window says why."""
    catalog = page.services.reports.catalog()
    info = _info(catalog, name)
    form = {"from": date_from, "to": date_to, "period": period}
    try:
        request = ReportRequest(name, day(date_from, "From"), day(date_to, "To"), period or None)
        answer = page.services.reports.run(request)
    except NotFound:
        raise
    except InvalidInput as exc:
        return page.render(
            "report.html", status=422, info=info, catalog=catalog, form=form, error=str(exc), answer=None
        )
    form = {"from": answer.date_from, "to": answer.date_to, "period": answer.period}
    views = _views(answer)
    return page.render(
        "report.html",
        info=info,
        catalog=catalog,
        form=form,
        error=None,
        answer=answer,
        views=views,
        numeric=NUMERIC_KINDS,
        all_empty=all(v.is_empty or (v.has_chart and v.chart is None) for v in views),
        csv_url=_csv_url(answer, None),
    )


@router.get("/ui/reports/{name}/csv")
def report_csv(
    name: str,
    page: Page,
    date_from: FromParam = "",
    date_to: ToParam = "",
    period: PeriodParam = "",
    table: TableParam = "",
) -> Response:
    """The report (or one table) as the API's CSV download, byte for byte, with the same file name."""
    request = ReportRequest(name, day(date_from, "From"), day(date_to, "To"), period or None)
    download = page.services.reports.csv(request, table or None)
    return Response(
        download.text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{download.filename}"'},
    )

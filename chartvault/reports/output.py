"""A report as the API's answer, as plain JSON data, or as CSV (no further queries).

``to_answer`` is the one conversion to cells every consumer shows (dates and times as ISO text),
so the API, ``chartvault report --format json`` and the CSV download cannot disagree.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

from chartvault.reports.catalog import REPORTS
from chartvault.reports.result import Report, Table, Value
from chartvault.schemas.common import iso, to_jsonable
from chartvault.schemas.reports import Cell, ReportAnswer, ReportChart, ReportColumn, ReportTable


def cell(value: Value) -> Cell:
    """A value as shown: a timestamp as ISO 8601 UTC, a date as YYYY-MM-DD, anything else as is."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _table_answer(table: Table) -> ReportTable:
    chart = None
    if table.chart is not None:
        c = table.chart
        chart = ReportChart(kind=c.kind, x=c.x, y=list(c.y), series=c.series)
    return ReportTable(
        name=table.name,
        title=table.title,
        columns=[ReportColumn(name=c.name, label=c.label, kind=c.kind) for c in table.columns],
        rows=[[cell(v) for v in row] for row in table.rows],
        chart=chart,
    )


def to_answer(report: Report) -> ReportAnswer:
    """The report as the API answers it (a frozen dataclass of plain cells)."""
    return ReportAnswer(
        name=report.name,
        title=report.title,
        description=REPORTS[report.name].description,
        date_from=report.date_from.isoformat(),
        date_to=report.date_to.isoformat(),
        period=report.period,
        generated_at=iso(report.generated_at) or "",
        tables=[_table_answer(t) for t in report.tables],
    )


def to_json(report: Report) -> dict[str, Any]:
    """Plain JSON data (str, int, float, bool, None, lists, dicts): exactly what the API sends."""
    data: dict[str, Any] = to_jsonable(to_answer(report))
    return data


# A text cell starting with one of these is a formula to a spreadsheet (a station or vendor name is typed
# by people): such a cell is written with a leading apostrophe, which spreadsheets show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Value) -> str | int | float | bool:
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    shown = cell(value)
    return "" if shown is None else shown


def _write_table(writer: Any, table: Table) -> None:
    writer.writerow(table.column_names())
    for row in table.rows:
        writer.writerow([_csv_cell(v) for v in row])


def to_csv(report: Report, table: str | None = None) -> str:
    """CSV text. With ``table``, exactly that table (header + rows), what a spreadsheet opens cleanly.

    Without it every table, each introduced by a one-cell line naming it and separated by an empty
    line, so one download holds the whole report. Raises KeyError for a table the report lacks.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if table is not None:
        _write_table(writer, report.table(table))
        return out.getvalue()
    for i, t in enumerate(report.tables):
        if i:
            writer.writerow([])
        writer.writerow([t.name])
        _write_table(writer, t)
    return out.getvalue()

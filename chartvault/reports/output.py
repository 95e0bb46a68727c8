"""A report as CSV or as plain JSON-ready data (no further queries)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

from chartvault.reports.result import Report, Table, Value


def _cell(value: Value) -> str | int | float | bool | None:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _write_table(writer: Any, table: Table) -> None:
    writer.writerow(table.column_names())
    for row in table.rows:
        writer.writerow(["" if v is None else _cell(v) for v in row])


def to_csv(report: Report, table: str | None = None) -> str:
    """CSV text. With ``table``, exactly that table (header + rows), what a spreadsheet opens cleanly.

    Without it every table, each introduced by a one-cell line naming it and separated by an empty
    line, so one download holds the whole report.
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


def _table_json(table: Table) -> dict[str, Any]:
    chart = None
    if table.chart is not None:
        c = table.chart
        chart = {"kind": c.kind, "x": c.x, "y": list(c.y), "series": c.series}
    return {
        "name": table.name,
        "title": table.title,
        "columns": [{"name": c.name, "label": c.label, "kind": c.kind} for c in table.columns],
        "rows": [[_cell(v) for v in row] for row in table.rows],
        "chart": chart,
    }


def to_json(report: Report) -> dict[str, Any]:
    """Plain JSON data (str, int, float, bool, None, lists, dicts); dates as ISO 8601 text."""
    return {
        "name": report.name,
        "title": report.title,
        "date_from": report.date_from.isoformat(),
        "date_to": report.date_to.isoformat(),
        "period": report.period,
        "generated_at": report.generated_at.isoformat(),
        "tables": [_table_json(t) for t in report.tables],
    }

"""Management reports as the API answers them and ``chartvault report --format json`` prints them.

A report is tables of plain cells (text, numbers, flags; dates and times as ISO text) with each
column's kind and a chart hint beside the rows, so a web page can draw a chart and a spreadsheet can
read the CSV without knowing any report by name. Counts only: no report carries a patient's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Period = Literal["day", "week", "month"]

# How a column is meant to be read: counts add up, hours and days are durations, period is the start
# date of a day/week/month bucket (UTC), text is a category, flag a yes/no.
ColumnKind = Literal["period", "text", "count", "hours", "days", "date", "datetime", "flag"]

ChartKind = Literal["bar", "line"]

# One cell: what JSON, CSV and a chart axis all show without a custom type (dates as ISO text).
Cell = str | int | float | bool | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportColumn:
    """``name`` for programs (CSV header, chart axes), ``label`` for people."""

    name: str
    label: str
    kind: ColumnKind


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportChart:
    """Draw ``x`` against the ``y`` columns, one series per distinct value of ``series`` (if any)."""

    kind: ChartKind
    x: str
    y: list[str]
    series: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportTable:
    """One grid of a report: ``rows`` hold cells in ``columns`` order."""

    name: str
    title: str
    columns: list[ReportColumn]
    rows: list[list[Cell]]
    chart: ReportChart | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportAnswer:
    """A whole report: the dates asked for (inclusive, UTC), the period, when it was made, its tables."""

    name: str
    title: str
    description: str
    date_from: str
    date_to: str
    period: Period
    generated_at: str
    tables: list[ReportTable]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportInfo:
    """What a report is for and the tables it answers with."""

    name: str
    title: str
    description: str
    tables: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportList:
    """Every report, and the windows a request may ask for."""

    reports: list[ReportInfo]
    periods: list[Period]
    default_days: int
    max_days: int

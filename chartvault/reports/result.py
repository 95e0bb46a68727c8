"""What a report answers: typed, frozen, plain values only.

One result feeds every consumer (an API response model, a CSV download, an SVG
chart, a terminal table) without another query, so it carries the column kinds and
a chart hint next to the rows rather than leaving each consumer to guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from chartvault.schemas.reports import ChartKind, ColumnKind, Period

__all__ = ["PERIODS", "Chart", "ChartKind", "Column", "ColumnKind", "Period", "Report", "Table", "Value"]

PERIODS: tuple[Period, ...] = ("day", "week", "month")

# A cell as the query gives it; the answer (``output.to_answer``) turns dates into ISO text.
Value = str | int | float | bool | date | datetime | None


@dataclass(frozen=True, slots=True)
class Column:
    """A named column of a table; ``label`` is for people, ``name`` for programs."""

    name: str
    label: str
    kind: ColumnKind


@dataclass(frozen=True, slots=True)
class Chart:
    """How the table is best drawn: ``x`` against the ``y`` columns, one series per value of ``series``."""

    kind: ChartKind
    x: str
    y: tuple[str, ...]
    series: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """One grid of a report. ``rows`` hold values in ``columns`` order."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Value, ...], ...]
    chart: Chart | None = None

    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def records(self) -> list[dict[str, Value]]:
        """The rows as dicts keyed by column name (what an API response model takes)."""
        names = self.column_names()
        return [dict(zip(names, row, strict=True)) for row in self.rows]


@dataclass(frozen=True, slots=True)
class Report:
    """A whole report: what was asked (window, period, the moment "now") and its tables."""

    name: str
    title: str
    date_from: date
    date_to: date
    period: Period
    generated_at: datetime
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

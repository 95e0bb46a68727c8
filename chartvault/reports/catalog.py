"""The reports by name, and running one against the catalog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from chartvault.errors import InvalidInput, NotFound
from chartvault.reports.backlog import backlog
from chartvault.reports.quality import quality
from chartvault.reports.releases import releases
from chartvault.reports.result import PERIODS, Period, Report, Table
from chartvault.reports.retention import retention
from chartvault.reports.scanning import scanning
from chartvault.reports.sql import Window

# Without dates a report covers the last 90 days up to today (UTC), week by week.
DEFAULT_DAYS = 90
DEFAULT_PERIOD: Period = "week"
# A longer window is refused rather than left to run as an unbounded scan of the catalog.
MAX_DAYS = 3700
# Daily buckets over years make tables nobody reads and charts nobody can draw.
MAX_BUCKETS = 400


class ReportError(InvalidInput):
    """A report request that cannot be answered as asked (a bad window or period); ids only.

    An ``InvalidInput``: the API answers 422 and the CLI exits 2 without either knowing reports.
    """

    code = "invalid_report_request"


class UnknownReport(ReportError, NotFound):
    """No report of that name: a ``NotFound`` first (404, exit 4), and still a ``ReportError``."""

    code = "unknown_report"


@dataclass(frozen=True, slots=True)
class ReportSpec:
    """A report's name, what it is for, and the function that queries its tables."""

    name: str
    title: str
    description: str
    tables: tuple[str, ...]
    build: Callable[[Connection, Window], tuple[Table, ...]]


REPORTS: dict[str, ReportSpec] = {
    spec.name: spec
    for spec in (
        ReportSpec(
            "scanning",
            "Scanning",
            "Files, pages and documents received per period, by station and by document type; "
            "refusals by reason.",
            ("received", "by_station", "by_type", "refusals"),
            scanning,
        ),
        ReportSpec(
            "backlog",
            "Backlog and turnaround",
            "Pages waiting per state now; received-to-searchable time (median, p90) per period; "
            "the oldest unfinished batch.",
            ("pages_waiting", "time_to_searchable", "oldest_unfinished_batch"),
            backlog,
        ),
        ReportSpec(
            "quality",
            "Quality",
            "Review queue size and age, by reason; type corrections per type; documents linked to no "
            "patient.",
            ("review_queue", "review_reasons", "type_corrections", "unlinked"),
            quality,
        ),
        ReportSpec(
            "releases",
            "Release of information",
            "Requests received, approved, denied, fulfilled; turnaround against the 30-day rule and the "
            "extension; overdue now; disclosures by purpose and requester type; per vendor.",
            ("requests", "turnaround", "overdue", "disclosures", "vendors"),
            releases,
        ),
        ReportSpec(
            "retention",
            "Retention",
            "Documents reaching the end of retention in the next 30/90/365 days by rule; holds in "
            "force; disposed documents and certificates per period.",
            ("end_of_retention", "holds", "dispositions"),
            retention,
        ),
    )
}


def _period(value: str) -> Period:
    for period in PERIODS:
        if period == value:
            return period
    raise ReportError(f"period must be one of {', '.join(PERIODS)}")


def _window(
    date_from: date | None, date_to: date | None, period: str | None, now: datetime | None, rollups: bool
) -> Window:
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ReportError("now must be timezone-aware")
    moment = moment.astimezone(UTC)
    chosen = _period(period or DEFAULT_PERIOD)
    end = date_to or moment.date()
    start = date_from or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ReportError("date_from is after date_to")
    if (end - start).days + 1 > MAX_DAYS:
        raise ReportError(f"a report covers at most {MAX_DAYS} days")
    window = Window(start, end, chosen, moment, rollups)
    if len(window.buckets()) > MAX_BUCKETS:
        raise ReportError(f"at most {MAX_BUCKETS} periods: choose a longer period or a shorter window")
    return window


# PostgreSQL settings for the report's transaction (SET LOCAL: they end with it). JIT compilation costs
# ~0.5 s per query on these short aggregates and never pays back; percentiles sort up to a row per
# document, which spills to disk at the server's default 4 MB; at the default random_page_cost (4, a
# spinning disk) the planner reads a 450 MB documents heap rather than its 120 MB covering index and
# takes 1.6x as long (bench.reports, 1M documents).
PG_REPORT_SETTINGS = {"jit": "off", "work_mem": "64MB", "random_page_cost": "1.1"}


def _connection(source: Session | Connection) -> Connection:
    conn = source.connection() if isinstance(source, Session) else source
    if conn.dialect.name == "postgresql":
        for name, value in PG_REPORT_SETTINGS.items():
            conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
    return conn


def run_report(
    source: Session | Connection,
    name: str,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    period: str | None = None,
    now: datetime | None = None,
    rollups: bool = True,
) -> Report:
    """Answer report ``name`` for the dates ``date_from``..``date_to`` (inclusive, UTC) by ``period``.

    Every number is a SQL aggregate computed by the catalog database; tables marked
    "now" describe the catalog at ``now`` (default: the current time) whatever the dates.
    Daily rollups (``chartvault.reports.rollups``) answer the days they cover unless ``rollups``
    is False; they give the same numbers.
    Raises ``UnknownReport`` for an unknown name, ``ReportError`` for an unusable window.
    """
    spec = REPORTS.get(name)
    if spec is None:
        raise UnknownReport(f"unknown report {name!r}; reports: {', '.join(REPORTS)}")
    window = _window(date_from, date_to, period, now, rollups)
    tables = spec.build(_connection(source), window)
    return Report(spec.name, spec.title, window.date_from, window.date_to, window.period, window.now, tables)

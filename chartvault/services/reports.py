"""Management reports for the CLI, the API and (later) the web pages: one answer, JSON or CSV.

Reports hold counts, never a patient's data, but who asked for which numbers is still worth
knowing, so each run is audited with its name and window. Before a report runs, the daily rollups
are extended over the days that closed since the last run (usually none, or one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from chartvault.archive.db import transaction
from chartvault.errors import NotFound
from chartvault.reports import PERIODS, REPORTS, Report, rollups, run_report, to_answer, to_csv
from chartvault.reports.catalog import DEFAULT_DAYS, MAX_DAYS
from chartvault.schemas.reports import ReportAnswer, ReportInfo, ReportList
from chartvault.services.caller import AuditTrail

log = logging.getLogger("chartvault.services.reports")


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What a caller asks for: a report by name over inclusive UTC dates (defaults: the last 90 days)."""

    name: str
    date_from: date | None = None
    date_to: date | None = None
    period: str | None = None


@dataclass(frozen=True, slots=True)
class ReportDownload:
    """A report (or one of its tables) as CSV text, with the file name a browser saves it under."""

    filename: str
    text: str


class ReportsService:
    def __init__(self, sessions: sessionmaker[Session], audit: AuditTrail) -> None:
        self.sessions = sessions
        self.audit = audit

    def catalog(self) -> ReportList:
        """Every report with what it is for, and the windows a request may ask for."""
        return ReportList(
            reports=[
                ReportInfo(name=s.name, title=s.title, description=s.description, tables=list(s.tables))
                for s in REPORTS.values()
            ],
            periods=list(PERIODS),
            default_days=DEFAULT_DAYS,
            max_days=MAX_DAYS,
        )

    def run(self, request: ReportRequest, table: str | None = None) -> ReportAnswer:
        """The report's tables (or just ``table``), computed by the catalog database now."""
        self._check_table(request.name, table)
        answer = to_answer(self._report(request, "json"))
        if table is None:
            return answer
        return replace(answer, tables=[t for t in answer.tables if t.name == table])

    def csv(self, request: ReportRequest, table: str | None = None) -> ReportDownload:
        """The whole report as one CSV, or just ``table``."""
        self._check_table(request.name, table)
        report = self._report(request, "csv")
        stem = f"{report.name}-{table}" if table else report.name
        filename = f"chartvault-{stem}-{report.date_from.isoformat()}-{report.date_to.isoformat()}.csv"
        return ReportDownload(filename, to_csv(report, table))

    @staticmethod
    def _check_table(name: str, table: str | None) -> None:
        """NotFound for a table the report does not have (an unknown report is run_report's to refuse)."""
        spec = REPORTS.get(name)
        if spec is not None and table is not None and table not in spec.tables:
            raise NotFound(f"report {spec.name} has no table {table!r}; tables: {', '.join(spec.tables)}")

    def refresh_rollups(self, now: datetime | None = None) -> int:
        """Roll up the days closed since the last refresh; how many. A failure only costs speed."""
        moment = now or datetime.now(UTC)
        try:
            with self.sessions() as s:
                if not rollups.needs_refresh(s.connection(), moment):
                    return 0
            with transaction(self.sessions, immediate=True) as s:
                return rollups.refresh(s.connection(), moment)
        except SQLAlchemyError as exc:  # e.g. a read-only replica: the report counts live instead
            log.warning("report rollups not refreshed, days counted live error=%s", type(exc).__name__)
            return 0

    def _report(self, request: ReportRequest, form: str) -> Report:
        self.refresh_rollups()
        with self.sessions() as s:
            report = run_report(
                s, request.name, date_from=request.date_from, date_to=request.date_to, period=request.period
            )
        detail = {
            "from": report.date_from.isoformat(),
            "to": report.date_to.isoformat(),
            "period": report.period,
            "format": form,
        }
        self.audit("report.run", "report", report.name, detail=detail)
        return report

"""Management reports computed as SQL aggregates in the catalog (SQLite and PostgreSQL alike).

    report = run_report(session, "scanning", date_from=date(2026, 1, 1), period="month")
    to_csv(report), to_json(report), report.table("received").records()

Depends on the catalog models only, so the CLI, the API and the web pages can all
call it without the reports knowing any of them.
"""

from chartvault.reports.catalog import REPORTS, ReportError, ReportSpec, UnknownReport, run_report
from chartvault.reports.output import cell, to_answer, to_csv, to_json
from chartvault.reports.result import PERIODS, Chart, Column, Period, Report, Table, Value

__all__ = [
    "PERIODS",
    "REPORTS",
    "Chart",
    "Column",
    "Period",
    "Report",
    "ReportError",
    "ReportSpec",
    "Table",
    "UnknownReport",
    "Value",
    "cell",
    "run_report",
    "to_answer",
    "to_csv",
    "to_json",
]

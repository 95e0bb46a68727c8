"""Management reports at the terminal: a table per report table, or the API's JSON, or CSV."""

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from chartvault.cli._common import emit_json, open_services, out, parse_date

if TYPE_CHECKING:
    from rich.table import Table

    from chartvault.schemas.reports import Cell, ReportAnswer, ReportList, ReportTable


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class PeriodChoice(StrEnum):
    day = "day"
    week = "week"
    month = "month"


_RIGHT_ALIGNED = frozenset({"count", "hours", "days"})


def _shown(value: "Cell") -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return value


def _rich_table(table: "ReportTable") -> "Table":
    from rich.table import Table

    grid = Table(title=table.title, title_justify="left")
    for column in table.columns:
        grid.add_column(column.label, justify="right" if column.kind in _RIGHT_ALIGNED else "left")
    for row in table.rows:
        grid.add_row(*(_shown(v) for v in row))
    return grid


def _print_answer(answer: "ReportAnswer") -> None:
    out.print(
        f"{answer.title}: {answer.date_from} to {answer.date_to} by {answer.period} "
        f"(generated {answer.generated_at})",
        markup=False,
        highlight=False,
    )
    for table in answer.tables:
        out.print(_rich_table(table))


def _print_list(listing: "ReportList") -> None:
    from rich.table import Table

    grid = Table("report", "what it answers", "tables")
    for info in listing.reports:
        grid.add_row(info.name, info.description, ", ".join(info.tables))
    out.print(grid)
    out.print(
        f"Default window: the last {listing.default_days} days by week; at most {listing.max_days} days.",
        markup=False,
    )


def report(
    name: Annotated[
        str | None, typer.Argument(help="scanning, backlog, quality, releases or retention; none: the list.")
    ] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (UTC).")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (UTC).")] = None,
    period: Annotated[PeriodChoice | None, typer.Option(help="Bucket of the time series.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="json: the API's answer.")] = Format.table,
    table: Annotated[str | None, typer.Option("--table", help="Only this table (e.g. vendors).")] = None,
) -> None:
    """A management report: SQL aggregates of the catalog (counts only, never patient data)."""
    from chartvault.services.reports import ReportRequest

    with open_services() as services:
        if name is None:
            listing = services.reports.catalog()
            if fmt is Format.json:
                emit_json(listing)
            else:
                _print_list(listing)
            return
        window = parse_date(date_from, "--from"), parse_date(date_to, "--to")
        request = ReportRequest(name, *window, period.value if period else None)
        if fmt is Format.csv:
            sys.stdout.write(services.reports.csv(request, table).text)
            return
        answer = services.reports.run(request, table)
    if fmt is Format.json:
        emit_json(answer)
    else:
        _print_answer(answer)


def register(app: typer.Typer) -> None:
    app.command()(report)

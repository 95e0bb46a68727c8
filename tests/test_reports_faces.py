"""The reports through their faces: the API (JSON and CSV), the CLI, the role policy, the audit log.

The numbers themselves are checked in test_reports.py against a catalog with known counts; here the
same catalog is read through ``GET /reports/{name}`` and ``chartvault report``, which must answer the
same dataclass field for field.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import api_client, as_json
from sqlalchemy import Engine, select
from test_reports import FROM, TO, _build
from typer.testing import CliRunner

from chartvault.archive.models import AuditEvent
from chartvault.config import Settings
from chartvault.reports import REPORTS, Column, Report, Table, to_csv

WINDOW = {"from": FROM.isoformat(), "to": TO.isoformat(), "period": "week"}
CLI_WINDOW = ["--from", FROM.isoformat(), "--to", TO.isoformat(), "--period", "week"]


@pytest.fixture
def known(db_engine: Engine, db_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings over the catalog of known counts (SQLite and PostgreSQL)."""
    _build(db_engine)
    yield Settings(data_dir=tmp_path / "data", database_url=db_url, workers=1, _env_file=None)


@pytest.fixture
def cli(known: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(known.data_dir))
    monkeypatch.setenv("CHARTVAULT_DATABASE_URL", known.catalog_url)
    return CliRunner()


def _invoke(runner: CliRunner, *args: str) -> Any:
    from chartvault.cli import app

    return runner.invoke(app, list(args))


def _without_moment(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "generated_at"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scanning", "retention"])  # no table of these depends on the hour
def test_api_and_cli_answer_the_same_report(known: Settings, cli: CliRunner, name: str) -> None:
    with api_client(known, "him_admin", start_background=False) as c:
        api = c.get(f"/reports/{name}", params=WINDOW)
        assert api.status_code == 200, api.text
        direct = c.app.state.services.reports.run(_request(name))
    printed = _invoke(cli, "report", name, *CLI_WINDOW, "--format", "json")
    assert printed.exit_code == 0, printed.output
    assert _without_moment(api.json()) == _without_moment(json.loads(printed.stdout))
    assert _without_moment(api.json()) == _without_moment(as_json(direct))
    body = api.json()
    assert (body["name"], body["date_from"], body["date_to"], body["period"]) == (
        name,
        "2026-03-02",
        "2026-03-15",
        "week",
    )
    assert [t["name"] for t in body["tables"]] == list(REPORTS[name].tables)
    datetime.fromisoformat(body["generated_at"])  # an ISO timestamp


def _request(name: str) -> Any:
    from chartvault.services.reports import ReportRequest

    return ReportRequest(name, FROM, TO, "week")


@pytest.mark.slow
def test_api_report_rows_are_the_known_counts(known: Settings) -> None:
    with api_client(known, "admin", start_background=False) as c:
        body = c.get("/reports/scanning", params=WINDOW).json()
        one = c.get("/reports/releases", params={**WINDOW, "table": "turnaround"}).json()
    received = next(t for t in body["tables"] if t["name"] == "received")
    assert [col["name"] for col in received["columns"]] == [
        "period",
        "files",
        "pages",
        "documents",
        "refused",
    ]
    assert [col["kind"] for col in received["columns"]] == ["period", "count", "count", "count", "count"]
    assert received["rows"] == [["2026-03-02", 3, 6, 2, 1], ["2026-03-09", 3, 4, 2, 2]]
    assert received["chart"] == {
        "kind": "bar",
        "x": "period",
        "y": ["files", "pages", "documents"],
        "series": None,
    }
    assert [t["name"] for t in one["tables"]] == ["turnaround"]
    # period, decided, within 30 days, within the extension, late, extended, median, p90 (days)
    assert one["tables"][0]["rows"] == [
        ["2026-03-02", 2, 1, 1, 0, 1, 22.5, 38.1],
        ["2026-03-09", 1, 0, 0, 1, 1, 68.0, 68.0],
    ]


@pytest.mark.slow
def test_csv_download_by_query_or_accept_header(known: Settings) -> None:
    with api_client(known, "him_admin", start_background=False) as c:
        by_query = c.get("/reports/releases", params={**WINDOW, "format": "csv", "table": "vendors"})
        by_accept = c.get("/reports/releases", params=WINDOW, headers={"Accept": "text/csv"})
        json_wins = c.get(
            "/reports/releases", params={**WINDOW, "format": "json"}, headers={"Accept": "text/csv"}
        )
    assert by_query.status_code == 200
    assert by_query.headers["content-type"].startswith("text/csv")
    assert by_query.headers["content-disposition"] == (
        'attachment; filename="chartvault-releases-vendors-2026-03-02-2026-03-15.csv"'
    )
    vendors = list(csv.reader(io.StringIO(by_query.text)))
    assert vendors[0] == ["vendor", "received", "approved", "denied", "overdue", "disclosures", "median_days"]
    # vendor, received, approved, denied, disclosures, median days (overdue counts move with the clock)
    assert [row[:4] + row[5:] for row in vendors[1:]] == [
        ["vendor-a", "2", "1", "1", "1", "22.5"],
        ["vendor-b", "0", "1", "0", "2", "68.0"],
        ["", "0", "0", "0", "1", ""],
    ]
    assert by_accept.headers["content-type"].startswith("text/csv")
    whole = list(csv.reader(io.StringIO(by_accept.text)))
    assert [line for line in whole if len(line) == 1] == [[t] for t in REPORTS["releases"].tables]
    assert json_wins.headers["content-type"].startswith("application/json")


@pytest.mark.slow
def test_cli_csv_and_table_output(cli: CliRunner) -> None:
    got = _invoke(cli, "report", "releases", *CLI_WINDOW, "--format", "csv", "--table", "vendors")
    assert got.exit_code == 0, got.output
    assert got.stdout.splitlines()[1].startswith("vendor-a,2,1,1,")
    shown = _invoke(cli, "report", "scanning", *CLI_WINDOW)
    assert shown.exit_code == 0, shown.output
    assert "Received per period" in shown.stdout and "2026-03-09" in shown.stdout
    listing = _invoke(cli, "report", "--format", "json")
    assert [r["name"] for r in json.loads(listing.stdout)["reports"]] == list(REPORTS)


@pytest.mark.slow
@pytest.mark.parametrize("role", ["staff", "vendor", "scanner"])
def test_reports_are_for_him_admins_and_admins_only(settings: Settings, role: str) -> None:
    with api_client(
        settings, role, vendor="vendor-a" if role == "vendor" else None, start_background=False
    ) as c:
        for path in ("/reports", "/reports/scanning", "/reports/scanning?format=csv"):
            r = c.get(path)
            assert r.status_code == 403, path
            assert r.json()["error"]["code"] == "forbidden"
            assert "text/csv" not in r.headers["content-type"]
    with api_client(settings, "him_admin", start_background=False) as c:
        listing = c.get("/reports")
        assert listing.status_code == 200
        assert [r["name"] for r in listing.json()["reports"]] == list(REPORTS)
        c.headers.pop("Authorization")
        assert c.get("/reports/scanning").status_code == 401


@pytest.mark.slow
def test_refusals_through_chartvault_errors(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with api_client(settings, "admin", start_background=False) as c:
        unknown = c.get("/reports/nope")
        backwards = c.get("/reports/scanning", params={"from": "2026-03-05", "to": "2026-03-04"})
        bad_period = c.get("/reports/scanning", params={"period": "year"})
        bad_table = c.get("/reports/scanning", params={"table": "vendors", "format": "csv"})
        too_long = c.get("/reports/scanning", params={"from": "2000-01-01", "to": "2026-01-01"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_report")
    assert (backwards.status_code, backwards.json()["error"]["code"]) == (422, "invalid_report_request")
    assert bad_period.status_code == 422
    assert (bad_table.status_code, bad_table.json()["error"]["code"]) == (404, "not_found")
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (422, "invalid_report_request")
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    assert _invoke(runner, "report", "nope").exit_code == 4
    assert _invoke(runner, "report", "scanning", "--from", "2026-03-05", "--to", "2026-03-04").exit_code == 2
    assert _invoke(runner, "report", "scanning", "--from", "March").exit_code == 2


def test_each_run_is_audited_under_its_caller(settings: Settings) -> None:
    with api_client(settings, "him_admin", start_background=False) as c:
        assert c.get("/reports/quality", params={"format": "csv"}).status_code == 200
        sessions = c.app.state.services.parts.sessions
    with sessions() as s:
        runs = s.scalars(select(AuditEvent).where(AuditEvent.action == "report.run")).all()
    assert [(e.target_type, e.target_id, e.detail["format"]) for e in runs] == [("report", "quality", "csv")]
    assert runs[0].actor.startswith("token:")


@pytest.mark.slow
def test_openapi_declares_the_answer_and_the_csv(settings: Settings) -> None:
    with api_client(settings, "admin", start_background=False) as c:
        spec = c.get("/openapi.json").json()
    op = spec["paths"]["/reports/{name}"]["get"]
    content = op["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/ReportAnswer"}
    assert "text/csv" in content
    assert {"404", "422", "401", "403"} <= set(op["responses"])
    assert {p["name"] for p in op["parameters"]} >= {"from", "to", "period", "format", "table"}


def test_csv_cells_cannot_become_spreadsheet_formulas() -> None:
    table = Table(
        "by_station",
        "t",
        (Column("station", "Station", "text"), Column("pages", "Pages", "count")),
        (("=HYPERLINK(1)", 3), ("-scan", -1), ("scan-01", 2), (None, 0)),
    )
    moment = datetime(2026, 3, 18, tzinfo=UTC)
    report = Report("scanning", "Scanning", date(2026, 3, 1), date(2026, 3, 2), "day", moment, (table,))
    assert list(csv.reader(io.StringIO(to_csv(report, "by_station")))) == [
        ["station", "pages"],
        ["'=HYPERLINK(1)", "3"],
        ["'-scan", "-1"],  # a number stays a number
        ["scan-01", "2"],
        ["", "0"],
    ]

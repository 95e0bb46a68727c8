"""The reports pages over the catalog of known counts (test_reports._build), on SQLite and PostgreSQL.

The pages must show exactly what ``ReportsService`` answers (cell for cell), draw one bar or point per
value of each chart, hand out the very CSV the API sends, refuse every role but HIM administrators and
admins, and leave the same audit entry as the API's report read. The SVG drawer is also checked on
its own (stacking, broken lines, escaping, round axes).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from conftest import api_client
from sqlalchemy import Engine, select
from test_reports import FROM, TO, _build
from webfixtures import PASSWORD, ROLES, web_client

from chartvault.archive.models import AuditEvent
from chartvault.config import Settings
from chartvault.reports import REPORTS
from chartvault.schemas.reports import ReportChart, ReportColumn, ReportTable
from chartvault.web.charts import axis, chart_data, render_svg

WINDOW = {"from": FROM.isoformat(), "to": TO.isoformat(), "period": "week"}
SVG = "{http://www.w3.org/2000/svg}"
DURATIONS = ("hours", "days")


@pytest.fixture
def known(db_engine: Engine, db_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings over the catalog of known counts, with one user per role (username = role)."""
    from chartvault.services import Services

    _build(db_engine)
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, workers=1, _env_file=None)
    with Services(settings) as services:
        for role in ROLES:
            vendor = "vendor-a" if role == "vendor" else None
            services.access.create_user(role, f"Test {role}", role, password=PASSWORD, vendor=vendor)
    yield settings


def _audit(settings: Settings, action: str) -> list[AuditEvent]:
    from chartvault.services import Services

    with Services(settings) as services, services.parts.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _section(html: str, table: str) -> str:
    found = re.search(rf'<section class="report-table" id="table-{table}".*?</section>', html, re.S)
    assert found, f"no section for table {table}"
    return found.group(0)


def _shown_rows(section: str) -> list[list[str]]:
    """The table's body cells as the page shows them (text, entities decoded)."""
    body = re.search(r"<tbody>(.*?)</tbody>", section, re.S)
    assert body, "no table body"
    return [
        [unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


def _as_shown(text: str, kind: str) -> Any:
    """A shown cell back as the value it stands for (numbers without separators, "—" as None)."""
    if text == "—":
        return None
    if kind == "flag":
        return text == "Yes"
    if kind in ("count", *DURATIONS):
        number = float(text.replace(",", ""))
        return int(number) if kind == "count" else number
    return text


def _svg(section: str) -> ET.Element:
    found = re.search(r"<svg .*?</svg>", section, re.S)
    assert found, "no chart"
    return ET.fromstring(found.group(0))  # valid XML, or this raises


# -- who may see them -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_pages_are_for_him_admins_and_admins_only(known: Settings) -> None:
    paths = ("/ui/reports", "/ui/reports/scanning", "/ui/reports/scanning/csv")
    for role in ROLES:
        with web_client(known, role) as client:
            menu = client.get("/ui/account").text
            for path in paths:
                resp = client.get(path, params=WINDOW if path != "/ui/reports" else None)
                if role in ("him_admin", "admin"):
                    assert resp.status_code == 200, (role, path)
                else:
                    assert resp.status_code == 403 and "Not allowed" in resp.text, (role, path)
                    assert "text/csv" not in resp.headers["content-type"]
        shown = 'href="/ui/reports"' in menu
        assert shown == (role in ("him_admin", "admin")), f"the Reports link for {role}"
    with web_client(known) as anonymous:
        resp = anonymous.get("/ui/reports/scanning", follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/ui/sign-in")


# -- the numbers are the service's ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REPORTS))
def test_every_number_on_the_page_is_the_services_answer(known: Settings, name: str) -> None:
    from chartvault.services.reports import ReportRequest

    with web_client(known, "him_admin") as client:
        page = client.get(f"/ui/reports/{name}", params=WINDOW)
        direct = client.app.state.services.reports.run(ReportRequest(name, FROM, TO, "week"))
    assert page.status_code == 200, page.text
    assert f"{FROM.isoformat()} to {TO.isoformat()}, by week" in page.text
    for table in direct.tables:
        section = _section(page.text, table.name)
        if not table.rows:
            assert "Nothing in this window." in section and "<table" not in section
            continue
        kinds = [c.kind for c in table.columns]
        shown = [[_as_shown(t, k) for t, k in zip(row, kinds, strict=True)] for row in _shown_rows(section)]
        assert len(shown) == len(table.rows), table.name
        for got, want in zip(shown, table.rows, strict=True):
            for g, w, kind in zip(got, want, kinds, strict=True):
                if kind in DURATIONS and w is not None:  # "now" ages move by a fraction between the calls
                    assert g == pytest.approx(w, abs=0.11), (table.name, got, want)
                elif kind == "datetime" and w is not None:
                    assert g.endswith("UTC") and g[:16] == str(w)[:16].replace("T", " "), (table.name, g, w)
                else:
                    assert g == w, (table.name, got, want)


def test_the_known_scanning_counts_are_on_the_page_and_in_the_chart(known: Settings) -> None:
    with web_client(known, "admin") as client:
        page = client.get("/ui/reports/scanning", params=WINDOW)
    received = _section(page.text, "received")
    # period, files, pages, documents, refused: worked out by hand in test_reports
    assert _shown_rows(received) == [["2026-03-02", "3", "6", "2", "1"], ["2026-03-09", "3", "4", "2", "2"]]
    svg = _svg(received)
    assert svg.get("role") == "img"
    ids = {e.get("id"): e.tag for e in svg.iter()}
    assert (
        ids[svg.get("aria-labelledby")] == f"{SVG}title" and ids[svg.get("aria-describedby")] == f"{SVG}desc"
    )
    assert svg.find(f"{SVG}title").text == "Received per period"
    assert "The numbers are in the table below" in svg.find(f"{SVG}desc").text
    bars = [e for e in svg.iter(f"{SVG}rect") if "bar" in e.get("class", "").split()]
    # one bar per value of the chart's y columns (files, pages, documents) in each period, in order
    assert [float(b.get("data-value")) for b in bars] == [3, 6, 2, 3, 4, 2]
    heights = [float(b.get("height")) for b in bars]
    assert heights[1] == max(heights) and heights[2] == heights[5] and heights[0] == heights[3]
    assert all(b.find(f"{SVG}title") is not None for b in bars)
    stations = _svg(_section(page.text, "by_station"))
    stacked = [e for e in stations.iter(f"{SVG}rect") if "bar" in e.get("class", "").split()]
    assert len(stacked) == len(_shown_rows(_section(page.text, "by_station")))  # one per (period, station)
    refusals = _shown_rows(_section(page.text, "refusals"))
    assert refusals == [["corrupt", "2"], ["unsupported_type", "1"]]
    assert page.text.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 4


def test_line_chart_has_a_point_per_value(known: Settings) -> None:
    with web_client(known, "him_admin") as client:
        page = client.get("/ui/reports/backlog", params=WINDOW)
    section = _section(page.text, "time_to_searchable")
    rows = _shown_rows(section)
    values = [cell for row in rows for cell in row[-2:] if cell != "—"]  # median and p90 hours
    svg = _svg(section)
    points = [e for e in svg.iter(f"{SVG}circle") if "point" in e.get("class", "").split()]
    assert len(points) == len(values) > 0
    assert sorted(float(p.get("data-value")) for p in points) == sorted(float(v) for v in values)


# -- CSV downloads ------------------------------------------------------------------------------------------


def test_csv_downloads_are_the_apis_csv(known: Settings) -> None:
    with web_client(known, "him_admin") as client:
        page = client.get("/ui/reports/releases", params=WINDOW)
        links = [unescape(h) for h in re.findall(r'href="(/ui/reports/releases/csv\?[^"]+)"', page.text)]
        assert len(links) == 1 + len(REPORTS["releases"].tables)  # the whole report and each table
        downloads = {link: client.get(link) for link in links}
    with api_client(known, "him_admin", start_background=False) as api:
        for link, web in downloads.items():
            table = re.search(r"table=(\w+)", link)
            params = {**WINDOW, "format": "csv", **({"table": table.group(1)} if table else {})}
            expected = api.get("/reports/releases", params=params)
            assert expected.status_code == 200 and web.status_code == 200, link
            assert web.content == expected.content, link
            assert web.headers["content-disposition"] == expected.headers["content-disposition"]
            assert web.headers["content-type"] == expected.headers["content-type"]
    vendors = downloads[next(link for link in links if "table=vendors" in link)].text.splitlines()
    assert vendors[0] == "vendor,received,approved,denied,overdue,disclosures,median_days"
    assert vendors[1].startswith("vendor-a,2,1,1,")


# -- audit, windows, empty periods --------------------------------------------------------------------------


def test_viewing_and_downloading_are_audited_like_the_api(known: Settings) -> None:
    with web_client(known, "him_admin") as client:
        assert client.get("/ui/reports").status_code == 200  # the list runs nothing
        assert _audit(known, "report.run") == []
        assert client.get("/ui/reports/quality", params=WINDOW).status_code == 200
        assert (
            client.get("/ui/reports/quality/csv", params={**WINDOW, "table": "unlinked"}).status_code == 200
        )
    runs = _audit(known, "report.run")
    assert [(e.target_type, e.target_id, e.detail["format"]) for e in runs] == [
        ("report", "quality", "json"),
        ("report", "quality", "csv"),
    ]
    assert all(e.actor.startswith("user:") for e in runs)
    assert runs[0].detail == {"from": "2026-03-02", "to": "2026-03-15", "period": "week", "format": "json"}


@pytest.mark.slow
def test_the_period_picker_changes_the_buckets_and_keeps_what_was_chosen(known: Settings) -> None:
    with web_client(known, "him_admin") as client:
        daily = client.get("/ui/reports/scanning", params={**WINDOW, "period": "day"})
        monthly = client.get("/ui/reports/scanning", params={**WINDOW, "period": "month"})
        default = client.get("/ui/reports/scanning")
    assert len(_shown_rows(_section(daily.text, "received"))) == 14
    assert _shown_rows(_section(monthly.text, "received")) == [["2026-03-01", "6", "10", "4", "3"]]
    assert '<option value="day" selected>' in daily.text
    assert 'value="2026-03-02"' in daily.text and 'value="2026-03-15"' in daily.text
    assert '<option value="week" selected>' in default.text  # the default window, shown in the form
    assert re.search(r'id="from" name="from" value="\d{4}-\d{2}-\d{2}"', default.text)


def test_a_bad_window_keeps_the_form_and_says_why(known: Settings) -> None:
    with web_client(known, "him_admin") as client:
        backwards = client.get("/ui/reports/scanning", params={"from": "2026-03-15", "to": "2026-03-02"})
        not_a_date = client.get("/ui/reports/scanning", params={"from": "March"})
        bad_period = client.get("/ui/reports/scanning", params={"period": "year"})
        unknown = client.get("/ui/reports/nope")
        unknown_csv = client.get("/ui/reports/nope/csv")
        bad_table = client.get("/ui/reports/scanning/csv", params={"table": "vendors"})
    assert backwards.status_code == 422 and "date_from is after date_to" in backwards.text
    assert 'value="2026-03-15"' in backwards.text and "<svg" not in backwards.text
    assert not_a_date.status_code == 422 and "From must be a date" in not_a_date.text
    assert bad_period.status_code == 422 and "period must be one of" in bad_period.text
    assert unknown.status_code == 404 and unknown_csv.status_code == 404 and bad_table.status_code == 404
    assert _audit(known, "report.run") == []


def test_an_empty_window_shows_a_clear_empty_state(known: Settings) -> None:
    with web_client(known, "him_admin") as client:
        empty = client.get("/ui/reports/scanning", params={"from": "2025-06-01", "to": "2025-06-30"})
        busy = client.get("/ui/reports/scanning", params=WINDOW)
    assert empty.status_code == 200
    assert (
        'id="report-empty"' in empty.text and "Nothing to report from 2025-06-01 to 2025-06-30" in empty.text
    )
    assert "<svg" not in empty.text
    assert "Nothing to draw: every value is 0" in _section(empty.text, "received")
    assert "Nothing in this window." in _section(empty.text, "refusals")
    assert 'id="report-empty"' not in busy.text


# -- the SVG drawer on its own ------------------------------------------------------------------------------


def _table(rows: list[list[Any]], chart: ReportChart, *columns: tuple[str, str]) -> ReportTable:
    return ReportTable(
        name="t",
        title="A <table> & co",
        columns=[ReportColumn(name=n, label=n.title(), kind=k) for n, k in columns],  # type: ignore[arg-type]
        rows=rows,
        chart=chart,
    )


def test_stacked_bars_one_per_value_and_labels_escaped() -> None:
    table = _table(
        [
            ["2026-03-02", "z<script>", 3],
            ["2026-03-02", "a&b", 5],
            ["2026-03-09", "a&b", 0],
            ["2026-03-09", None, 2],
        ],
        ReportChart(kind="bar", x="period", y=["pages"], series="station"),
        ("period", "period"),
        ("station", "text"),
        ("pages", "count"),
    )
    data = chart_data(table)
    assert data is not None and data.stacked and [s.label for s in data.series] == ["a&b", "z<script>", "—"]
    svg = ET.fromstring(str(render_svg(data, "c1", table.title)))
    assert svg.find(f"{SVG}title").text == "A <table> & co"
    bars = [e for e in svg.iter(f"{SVG}rect") if "bar" in e.get("class", "").split()]
    assert [float(b.get("data-value")) for b in bars] == [5, 3, 0, 2]  # series in name order, blank last
    first, second = bars[0], bars[1]  # stacked: the second segment sits on top of the first
    assert float(second.get("y")) + float(second.get("height")) == pytest.approx(float(first.get("y")))
    assert bars[0].get("x") == bars[1].get("x")
    assert "<script>" not in str(render_svg(data, "c1", table.title))


def test_line_breaks_where_a_period_has_no_value() -> None:
    table = _table(
        [["d1", 1.5, 2.0], ["d2", None, None], ["d3", 4.0, 8.25], ["d4", 3.0, 9.0]],
        ReportChart(kind="line", x="period", y=["median", "p90"]),
        ("period", "period"),
        ("median", "hours"),
        ("p90", "hours"),
    )
    data = chart_data(table)
    assert data is not None and not data.whole_numbers
    svg = ET.fromstring(str(render_svg(data, "c2", "t")))
    points = [e for e in svg.iter(f"{SVG}circle")]
    lines = [e for e in svg.iter(f"{SVG}polyline")]
    assert len(points) == 6  # a point per value, none for the empty period
    assert [len(line.get("points").split()) for line in lines] == [2, 2]  # d1 alone, then d3-d4
    assert "Line chart of Median, P90 by period" in svg.find(f"{SVG}desc").text


def test_axis_is_round_and_covers_the_largest_value() -> None:
    assert axis(6, True) == (6.0, [0.0, 2.0, 4.0, 6.0])
    assert axis(3, True) == (3.0, [0.0, 1.0, 2.0, 3.0])
    top, ticks = axis(38.1, False)
    assert top >= 38.1 and ticks[0] == 0 and len(ticks) <= 6 and top == ticks[-1]
    assert axis(0, True) == (1.0, [0.0, 1.0])
    top, ticks = axis(1234567, True)
    assert top >= 1234567 and len(ticks) <= 6

"""Each role's journey in a real browser (Debian's chromium, driven by Playwright) against a real
``chartvault serve`` on loopback, over real ingested corpus documents.

Staff search and open a document with the hit boxed on the page image; a staff member requests a
release and an HIM admin approves it; the vendor downloads the package and reaches nothing else; a
scanning operator uploads a file and watches every page get archived. Each role is refused the pages
it may not see. axe-core (vendored, injected) must find no serious or critical violation on the main
pages. Screenshots of each main page go to ``tests/.screenshots/`` (not committed).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pdfplumber
import pytest
from sqlalchemy import update as sa_update
from webfixtures import PASSWORD, VENDOR_ORG, RecordsArchive, build_records_archive

pytestmark = pytest.mark.slow  # each test here drives a real server, browser or pipeline

CHROMIUM = Path(os.environ.get("CHARTVAULT_TEST_CHROMIUM", "/usr/bin/chromium"))
HERE = Path(__file__).resolve().parent
AXE = HERE / "vendor" / "axe-4.14.1.min.js"
SHOTS = HERE / ".screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
UPLOAD = "files/103c1e0ee7fb.tif"  # a one-page scanned consult note
AUTHORIZATION_SCAN = "files/25d10e037353.png"

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency")
expect = playwright_api.expect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serve(data_dir: Path) -> Iterator[str]:
    """``chartvault serve`` on a free loopback port over ``data_dir``; its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "CHARTVAULT_DATA_DIR": str(data_dir),
        "CHARTVAULT_WORKERS": "1",
        "OMP_THREAD_LIMIT": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "chartvault.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"chartvault serve exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("chartvault serve did not answer /health within 60 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(web_archive) -> Iterator[str]:
    """``chartvault serve`` over the fixture archive; its base URL."""
    with _serve(web_archive.data_dir) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        if os.environ.get("CHARTVAULT_REQUIRE_SERVICES"):
            pytest.fail(f"chromium not found at {CHROMIUM} (apt install chromium)")
        pytest.skip(f"chromium not found at {CHROMIUM} (apt install chromium)")
    SHOTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def _signed_in(browser, server: str, username: str, **context_options):
    """A new browser context (own cookies) signed in through the sign-in form; its page."""
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900}, **context_options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/ui/(?!sign-in)"))
    return page


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _sealed(web_archive, username: str, purpose: str, value: dict[str, str]) -> str:
    """A link sealed for ``username`` as the server's pages seal it: the test and the server share the
    data folder, so its link key file (as servers sharing a data folder do)."""
    from chartvault.services import Services
    from chartvault.services.links import LinkSealer

    with Services(web_archive.settings) as services:
        user = next(u for u in services.access.users().users if u.username == username)
    return LinkSealer.from_settings(web_archive.settings).seal(purpose, f"user:{user.id}", value)


def _search_by_mrn(page, mrn: str) -> None:
    """The search form with the MRN filter, as a person fills it (the filters fold open first)."""
    page.goto("/ui/search")
    page.get_by_text("Filters").click()
    page.get_by_label("MRN").fill(mrn)
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url(re.compile(r"/ui/search\?s=[A-Za-z0-9_-]+$"))
    assert mrn not in page.url


def _refused(page, *paths: str) -> None:
    for path in paths:
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        assert page.get_by_role("heading", name="Not allowed").is_visible(), path


@pytest.fixture(scope="module")
def approved_release(browser, server: str, web_archive, corpus_dir: Path) -> dict[str, str]:
    """A staff member requests a release from a patient's timeline and attaches the signed
    authorization; an HIM admin takes it into review and approves it. All through the pages."""
    mrn = web_archive.mrns["shoulder"]
    staff = _signed_in(browser, server, "staff")
    _search_by_mrn(staff, mrn)
    staff.get_by_role("link", name="timeline").first.click()
    staff.wait_for_url(re.compile(r"/ui/patients/[A-Za-z0-9_-]+$"))
    assert mrn not in staff.url
    _shot(staff, "staff-timeline")
    staff.locator(f"#pick-{web_archive.docs['shoulder']}").check()
    staff.get_by_role("button", name="Request a release of the chosen documents").click()
    staff.get_by_label("Who is asking").select_option("patient_directed")
    staff.get_by_label("Recipient", exact=True).fill("Dr. Test Recipient")
    staff.get_by_label("Release vendor").fill(VENDOR_ORG)
    staff.get_by_label("Purpose").fill("continuity of care")
    staff.get_by_role("button", name="Log the request").click()
    staff.wait_for_url(re.compile(r"/ui/releases/[0-9a-f]{32}$"))
    release_id = staff.url.rsplit("/", 1)[1]
    staff.get_by_label("Scan of the signed form").set_input_files(str(corpus_dir / AUTHORIZATION_SCAN))
    staff.get_by_label("Description of the information").fill("the consult note of the shoulder visit")
    staff.get_by_label("Who may disclose").fill("Test Hospital HIM")
    staff.get_by_label("Expires on").fill("2099-12-31")
    staff.get_by_label("Signed by", exact=True).fill("the patient")
    staff.get_by_label("Signed on").fill("2024-01-15")
    for statement in ("The right to revoke", "Treatment is not conditioned", "may be redisclosed"):
        staff.get_by_label(re.compile(statement)).check()
    staff.get_by_role("button", name="Attach").click()
    staff.wait_for_url(re.compile(r"#authorizations$"))
    assert staff.get_by_text("Every 164.508(c) element is present").is_visible()
    _shot(staff, "staff-release-request")
    staff.context.close()

    him = _signed_in(browser, server, "him_admin")
    him.goto("/ui/releases")
    him.get_by_role("link", name=release_id[:12]).click()
    him.get_by_role("button", name="Take into review").click()
    him.get_by_role("button", name="Approve and build the package").click()
    him.wait_for_load_state()
    status = him.locator("#release-status").inner_text()
    _shot(him, "him-release-approved")
    him.context.close()
    return {"id": release_id, "status": status}


def test_staff_search_open_document_hit_boxed_on_the_page_image(browser, server: str, web_archive) -> None:
    page = _signed_in(browser, server, "staff")
    assert page.url.endswith("/ui/search")
    page.get_by_label(re.compile("^Words")).fill('"chest pain"')
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url(re.compile(r"/ui/search\?s=[A-Za-z0-9_-]+$"))  # the search sealed, not in the URL
    assert "chest" not in page.url
    assert page.locator(".hit mark").first.is_visible()
    page.reload()  # the results come back from the sealed search, without resending a form
    assert page.locator(".hit mark").first.is_visible()
    expect(page.get_by_label(re.compile("^Words"))).to_have_value('"chest pain"')
    _shot(page, "staff-search")
    page.locator(f'.hit h2 a[href^="/ui/documents/{web_archive.docs["ed_note"]}"]').click()
    image = page.locator("#page-image")
    image.wait_for()
    image.evaluate("img => img.decode()")  # loaded and decoded (a function call: CSP forbids eval)
    natural = image.evaluate("img => img.naturalWidth")
    shown = image.bounding_box()
    assert natural > 0 and shown is not None
    assert natural <= 2 * shown["width"] + 1  # no more pixels than shown (srcset picks a fitting width)
    rects = page.locator("svg.boxes rect")
    assert rects.count() >= 2
    for i in range(rects.count()):
        box = rects.nth(i).bounding_box()
        assert box is not None and box["width"] > 2 and box["height"] > 2
        assert shown["x"] <= box["x"] and box["x"] + box["width"] <= shown["x"] + shown["width"] + 1
        assert shown["y"] <= box["y"] and box["y"] + box["height"] <= shown["y"] + shown["height"] + 1
    assert page.locator(".page-text mark").first.is_visible()
    _shot(page, "staff-viewer")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download original").click()
    assert Path(download.value.path()).read_bytes()[:4] in (b"II*\x00", b"MM\x00*")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download searchable PDF").click()
    with pdfplumber.open(download.value.path()) as searchable:  # the scan with its words selectable
        assert "chest pain" in " ".join(searchable.pages[0].extract_text().lower().split())
    _refused(page, "/ui/review", "/ui/admin/users", "/ui/holds")
    page.context.close()


def test_reading_works_with_javascript_off(browser, server: str, web_archive) -> None:
    """Search, the viewer with its boxes, paging and the batch view are plain HTML: no script needed."""
    page = _signed_in(browser, server, "staff", java_script_enabled=False)
    page.get_by_label(re.compile("^Words")).fill("mammogram")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator(f'.hit h2 a[href^="/ui/documents/{web_archive.docs["mammogram"]}"]').click()
    page.wait_for_url(re.compile(r"/ui/documents/"))
    shown = page.locator("#page-image").bounding_box()
    assert shown is not None and shown["height"] > 200  # the image loaded and laid out
    assert page.locator("svg.boxes rect").count() >= 1
    page.goto(f"/ui/documents/{web_archive.docs['ed_note']}?page=2")
    assert page.locator(".pagenav [aria-current=page]").inner_text() == "2"
    page.context.close()


def test_him_admin_approves_a_release(approved_release: dict[str, str], browser, server: str) -> None:
    assert approved_release["status"] == "Approved"
    page = _signed_in(browser, server, "him_admin")
    page.goto("/ui/review")
    _shot(page, "him-review-queue")
    _refused(page, "/ui/admin/users", "/ui/admin/tokens")
    page.context.close()


def test_vendor_downloads_its_package_and_reaches_nothing_else(
    approved_release: dict[str, str], browser, server: str, web_archive
) -> None:
    page = _signed_in(browser, server, "vendor")
    assert page.url.endswith("/ui/releases")
    assert [a.inner_text() for a in page.locator("nav[aria-label=Main] a").all()] == ["Releases"]
    page.get_by_role("link", name=approved_release["id"][:12]).click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the package (PDF)").click()
    assert Path(download.value.path()).read_bytes()[:5] == b"%PDF-"
    terms = page.locator("dl dt").all_inner_texts()
    assert "Recipient" in terms and "Documents" not in terms  # minimum necessary: no row of empty dashes
    assert "1 pages" not in page.locator("main").inner_text()
    _shot(page, "vendor-release")
    doc = web_archive.docs["ed_note"]
    _refused(
        page,
        "/ui/search",
        f"/ui/documents/{doc}",
        f"/ui/documents/{doc}/pages/1/image?w=600",
        "/ui/patients/" + _sealed(web_archive, "vendor", "patient", {"mrn": web_archive.mrns["ed_note"]}),
        "/ui/batches",
        "/ui/review",
        "/ui/releases/new",
    )
    page.context.close()


def test_operator_uploads_and_sees_every_page_archived(browser, server: str, corpus_dir: Path) -> None:
    page = _signed_in(browser, server, "scanner")
    assert page.url.endswith("/ui/batches")
    page.get_by_label(re.compile("^Scanned files")).set_input_files(str(corpus_dir / UPLOAD))
    page.get_by_label(re.compile("^Station")).fill("browser-station")
    page.get_by_role("button", name="Upload and process").click()
    page.wait_for_url(re.compile(r"/ui/batches/[0-9a-f]{32}$"))
    expect(page.locator("#batch-status")).to_have_text("Complete", timeout=120_000)  # htmx polling
    expect(page.locator("#page-count")).to_have_text("1 of 1 page archived")
    _shot(page, "operator-batch")
    _refused(page, "/ui/search", "/ui/releases", "/ui/admin/users")
    page.context.close()


def test_admin_pages_and_keyboard_sign_in(browser, server: str) -> None:
    context = browser.new_context(base_url=server)
    page = context.new_page()
    page.goto("/ui/sign-in")
    assert page.evaluate("() => document.activeElement.id") == "username"  # ready to type
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/ui/search"))
    page.goto("/ui/admin/users")
    page.keyboard.press("Tab")  # from the top of the page: the skip link comes first, visibly focused
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    _shot(page, "admin-users")
    page.goto("/ui/admin/tokens")
    page.get_by_label("Name").fill("station 7")
    page.get_by_label("Role").select_option("scanner")
    page.get_by_role("button", name="Make the token").click()
    assert re.fullmatch(r"cv_[0-9a-f]{32}_[A-Za-z0-9_-]{43}", page.locator("#new-token").inner_text())
    _shot(page, "admin-tokens")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    page.get_by_role("button", name="Verify the chain now").click()
    expect(page.get_by_role("heading", name="The chain is intact")).to_be_visible()
    _shot(page, "admin-audit")
    context.close()


MAIN_PAGES = {
    "staff": [
        "/ui/search?s={search}",  # sealed searches and patient references, as the pages link them
        "/ui/documents/{doc}?s={search}",
        "/ui/patients/{ref}",
        "/ui/releases",
    ],
    "him_admin": [
        "/ui/review",
        "/ui/releases",
        "/ui/releases/new",
        "/ui/holds",
        "/ui/disposition",
        "/ui/quarantine",
        "/ui/patient-index",
        "/ui/reports",
        "/ui/reports/scanning",
        "/ui/patients/{ref}/dob",
        "/ui/classifier",
    ],
    "scanner": ["/ui/batches", "/ui/coversheet"],
    "vendor": ["/ui/releases"],
    "admin": [
        "/ui/admin/users",
        "/ui/admin/tokens",
        "/ui/admin/audit",
        "/ui/admin/audit?action=user.sign_in",
        "/ui/admin/check",
        "/ui/quarantine",
    ],
}


def _serious_violations(page, axe: str) -> list[str]:
    """axe-core injected into the page (its context must bypass CSP): its serious and critical findings."""
    page.add_script_tag(content=axe)
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))"
    )
    return [
        f"{v['id']} ({v['impact']}, {v['nodes']})" for v in result if v["impact"] in ("serious", "critical")
    ]


def test_no_serious_accessibility_violations_on_the_main_pages(browser, server: str, web_archive) -> None:
    """axe-core on every main page of every role (and the sign-in page): no serious or critical issue."""
    axe = AXE.read_text()
    found: dict[str, list[str]] = {}
    checked = 0
    anonymous = browser.new_context(base_url=server, bypass_csp=True)
    pages = [(anonymous.new_page(), "/ui/sign-in")]
    for role, paths in MAIN_PAGES.items():
        page = _signed_in(browser, server, role, bypass_csp=True)  # so axe can be injected
        sealed = {
            "ref": _sealed(web_archive, role, "patient", {"mrn": web_archive.mrns["ed_note"]}),
            "search": _sealed(web_archive, role, "search", {"q": "pain"}),
        }
        for path in paths:
            pages.append((page, path.format(doc=web_archive.docs["ed_note"], **sealed)))
    for page, path in pages:
        page.goto(path)
        bad = _serious_violations(page, axe)
        if bad:
            found[path] = bad
        checked += 1
    assert checked == 1 + sum(len(p) for p in MAIN_PAGES.values())
    assert found == {}, found


# -- management reports ---------------------------------------------------------------------------------

REPORT_STATIONS = ("scan-01", "scan-02", "scan-03")
REPORT_TYPES = ("progress_note", "consult_note", "lab_report", "radiology_report", "discharge_summary")
SCREENSHOT_TO_DOCS = os.environ.get("CHARTVAULT_UPDATE_SCREENSHOTS") == "1"  # refresh the README's


def _seed_scanning(services, today) -> None:
    """Twelve weeks of complete batches from three stations (synthetic rows, counts from a formula),
    a few refusals, every document searchable some hours after it arrived: a catalog to chart."""
    from test_reports import _Catalog

    with services.parts.sessions() as s:
        c = _Catalog(s)
        c.add_patient()
        s.flush()
        for back in range(2, 86):
            day = today - timedelta(days=back)
            for i, station in enumerate(REPORT_STATIONS):
                files = (back * 7 + i * 3) % 4 + (0 if day.weekday() >= 5 else 1)
                if not files:
                    continue
                when = datetime(day.year, day.month, day.day, 8 + 2 * i, tzinfo=UTC)
                batch = c.batch(station, when)
                for n in range(files):
                    f = c.file(batch, when + timedelta(minutes=n), 1 + (back + n + i) % 6)
                    s.flush()
                    doc_type = REPORT_TYPES[(back + n + i) % len(REPORT_TYPES)]
                    c.doc(
                        f,
                        f.created_at,
                        f.page_count,
                        doc_type=doc_type,
                        indexed_at=f.created_at + timedelta(hours=1 + (back * 5 + n) % 9),
                    )
                if back % 9 == i:
                    reason = ("corrupt", "unsupported_type")[back % 2]
                    c.file(
                        batch, when + timedelta(minutes=30), None, status="quarantined", reason_code=reason
                    )
        s.commit()


@pytest.fixture(scope="module")
def reports_archive(tmp_path_factory) -> dict:
    """A data folder of its own with twelve weeks of scanning, an HIM administrator and their API token."""
    from chartvault.config import Settings
    from chartvault.services import Services

    settings = Settings(data_dir=tmp_path_factory.mktemp("reports") / "data", workers=1, _env_file=None)
    today = datetime.now(UTC).date()
    with Services(settings) as services:
        services.access.create_user("him_admin", "Test him_admin", "him_admin", password=PASSWORD)
        token = services.access.create_token(None, "reports test", username="him_admin").token
        _seed_scanning(services, today)
    return {"data_dir": settings.data_dir, "token": token, "today": today}


@pytest.fixture(scope="module")
def reports_server(reports_archive: dict) -> Iterator[str]:
    with _serve(reports_archive["data_dir"]) as base:
        yield base


def _bars_and_values(page, table: str) -> tuple[int, int]:
    """Bars drawn in a table's chart, and the non-blank cells of the columns it draws."""
    section = page.locator(f"#table-{table}")
    bars = section.locator("svg.chart rect.bar").count()
    values = section.evaluate(
        """s => [...s.querySelectorAll('tbody td')].filter(td =>
              ['files', 'pages', 'documents'].includes(td.dataset.column)
              && td.textContent.trim() !== '—').length"""
    )
    return bars, values


def test_him_admin_reads_a_report_changes_the_period_and_downloads_the_csv(
    browser, reports_server: str, reports_archive: dict
) -> None:
    page = _signed_in(browser, reports_server, "him_admin")
    refused_by_csp: list[str] = []
    page.on(
        "console", lambda m: refused_by_csp.append(m.text) if "Content Security Policy" in m.text else None
    )
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Management reports")).to_be_visible()
    page.get_by_role("link", name="Scanning", exact=True).click()
    page.wait_for_url(re.compile(r"/ui/reports/scanning$"))
    chart = page.get_by_role("img", name="Received per period", exact=True)
    expect(chart).to_be_visible()
    bars, values = _bars_and_values(page, "received")
    assert bars == values > 30  # thirteen weeks of files, pages and documents: one bar per value

    today = reports_archive["today"]
    first, last = today - timedelta(days=15), today - timedelta(days=2)
    page.get_by_label("From").fill(first.isoformat())
    page.get_by_label("To", exact=True).fill(last.isoformat())
    page.get_by_label("Group by").select_option("day")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"period=day"))
    expect(page.locator("#report-window")).to_contain_text(
        f"{first.isoformat()} to {last.isoformat()}, by day"
    )
    assert page.locator("#table-received tbody tr").count() == 14
    bars, values = _bars_and_values(page, "received")
    assert bars == values == 14 * 3
    stacked = page.locator("#table-by_station svg.chart rect.bar").count()
    assert stacked == page.locator("#table-by_station tbody tr").count()
    assert page.locator("#table-by_station .legend li").all_inner_texts() == list(REPORT_STATIONS)
    page.locator("#table-received svg.chart rect.bar").first.hover()  # a bar's title is its tooltip
    top = {"x": 0, "y": 0, "width": 1280, "height": 1250}  # the header, the picker and the first two charts
    shot = page.screenshot(path=str(SHOTS / "reports.png"), full_page=True, clip=top)
    if SCREENSHOT_TO_DOCS:
        (HERE.parent / "docs" / "screenshots" / "reports.png").write_bytes(shot)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download “Received per period” (CSV)").click()
    saved = Path(download.value.path()).read_bytes()
    api = httpx.get(
        f"{reports_server}/reports/scanning",
        params={
            "from": first.isoformat(),
            "to": last.isoformat(),
            "period": "day",
            "format": "csv",
            "table": "received",
        },
        headers={"Authorization": f"Bearer {reports_archive['token']}"},
    )
    assert api.status_code == 200 and saved == api.content
    assert download.value.suggested_filename == f"chartvault-scanning-received-{first}-{last}.csv"
    lines = saved.decode().splitlines()
    assert lines[0] == "period,files,pages,documents,refused" and len(lines) == 15

    page.get_by_label("From").fill("2020-01-01")
    page.get_by_label("To", exact=True).fill("2020-01-31")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#report-empty")).to_contain_text("Nothing to report from 2020-01-01 to 2020-01-31")
    assert page.locator("svg.chart").count() == 0
    assert refused_by_csp == []
    page.context.close()


def test_reports_read_with_javascript_off_and_pass_axe(browser, reports_server: str) -> None:
    """The report is plain HTML and SVG: no script needed; axe finds nothing serious on a full chart page."""
    page = _signed_in(browser, reports_server, "him_admin", java_script_enabled=False)
    page.goto("/ui/reports/backlog?period=week")
    expect(
        page.get_by_role("img", name="Received to searchable, per period made searchable", exact=True)
    ).to_be_visible()
    assert page.locator("#table-time_to_searchable svg.chart circle.point").count() > 10
    _shot(page, "reports-backlog-no-js")
    page.goto("/ui/reports/scanning?from=2020-01-01&to=2020-01-31")
    expect(page.locator("#report-empty")).to_be_visible()
    _shot(page, "reports-empty")
    page.goto("/ui/reports")
    _shot(page, "reports-list")
    page.context.close()
    checked = _signed_in(browser, reports_server, "him_admin", bypass_csp=True)
    axe = AXE.read_text()
    for path in ("/ui/reports", "/ui/reports/scanning?period=day", "/ui/reports/backlog"):
        checked.goto(path)
        assert _serious_violations(checked, axe) == [], path
    checked.context.close()


# -- the patient index ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index_server(tmp_path_factory) -> Iterator[str]:
    """A data folder of its own (loading a list changes how later documents link) with an HIM admin."""
    from chartvault.config import Settings
    from chartvault.services import Services

    settings = Settings(data_dir=tmp_path_factory.mktemp("index") / "data", workers=1, _env_file=None)
    with Services(settings) as services:
        services.access.create_user("him_admin", "Test him_admin", "him_admin", password=PASSWORD)
    with _serve(settings.data_dir) as base:
        yield base


def test_him_admin_loads_the_registration_list_and_sees_what_it_did(
    browser, index_server: str, tmp_path: Path
) -> None:
    """The list loads as a background job: the page the form leads to follows it (htmx, every 2 s) from
    running to its counts and refused lines; 40,000 more rows make it last long enough to be seen running."""
    registration = tmp_path / "registration.csv"
    more = "".join(f"{10_000_000 + i},Synthetic,Patient{i},,1970-01-01,U\n" for i in range(40_000))
    registration.write_text(
        "mrn,last_name,first_name,middle_name,dob,sex\n"
        "004417823,Holloway,Margaret,Anne,1952-03-14,F\n"
        "007730194,Ferreira,Tomas,,07/22/1968,M\n"
        "002268145,Lindqvist,Harald,,1944-13-02,M\n" + more  # no 13th month: refused by line number
    )
    page = _signed_in(browser, index_server, "him_admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patient index").click()
    expect(page.get_by_role("heading", name="Patient index", exact=True)).to_be_visible()
    page.get_by_label("Registration list (CSV)").set_input_files(str(registration))
    page.get_by_role("button", name="Load the list").click()
    page.wait_for_url(re.compile(r"/ui/patient-index/jobs/[0-9a-f]{32}$"))
    job_url = page.url
    if page.locator("#job-state").inner_text() in ("Waiting", "Running"):  # usually: the import takes a while
        _shot(page, "patient-index-loading")
    done = page.get_by_role("region", name="Registration list loaded")
    expect(done).to_contain_text("40,002 new patient(s)", timeout=120_000)  # polled, no reload
    expect(done).to_contain_text("1 row(s) refused")
    expect(page.locator("#job-state")).to_have_text("Done")
    assert page.url == job_url
    refused = page.get_by_role("table", name=re.compile("^Refused rows"))
    expect(refused.locator("tbody tr")).to_have_count(1)
    expect(refused.locator("tbody td").first).to_have_text("4")
    registered = page.get_by_role("row", name=re.compile("Patients from the registration list"))
    expect(registered).to_contain_text("40,002")
    assert "1944-13-02" not in page.content() and "Lindqvist" not in page.content()
    _shot(page, "patient-index")
    page.context.close()
    checked = _signed_in(browser, index_server, "him_admin", bypass_csp=True)
    for path in ("/ui/patient-index", job_url):
        checked.goto(path)
        assert _serious_violations(checked, AXE.read_text()) == [], path
    checked.context.close()


# -- corrections: a patient's date of birth, the classifier ------------------------------------------


def test_him_admin_corrects_a_date_of_birth_seeing_the_retention_it_moves(
    browser, server: str, web_archive
) -> None:
    """The DOB on record was misread as a child's (kept to majority + 3 years); HIM puts it right from
    the patient's page: a date after the visit is refused with the date kept, then the change is shown,
    then made."""

    from chartvault.services import Services

    mrn, doc = web_archive.mrns["mammogram"], web_archive.docs["mammogram"]
    with Services(web_archive.settings) as services:
        right = services.records.dob_correction(mrn).dob
        services.records.correct_dob(mrn, date(2012, 2, 21))
    assert right == "1968-02-21"
    axe = AXE.read_text()
    page = _signed_in(browser, server, "him_admin", bypass_csp=True)  # so axe can be injected
    page.goto("/ui/patients/" + _sealed(web_archive, "him_admin", "patient", {"mrn": mrn}))
    page.get_by_role("link", name="Date of birth and retention").click()
    expect(page.get_by_role("heading", name=f"Date of birth of MRN {mrn}")).to_be_visible()
    expect(page.locator("#dob-on-record")).to_have_text("2012-02-21")
    expect(page.get_by_role("table", name="Retention of each document now")).to_contain_text("2033-02-21")

    page.get_by_label(re.compile("^Corrected date of birth")).fill("2020-01-01")  # after the visit
    page.get_by_role("button", name="Show what changes").click()
    expect(page.get_by_role("alert")).to_have_text(
        "The date of birth is after the date of service of 1 of this patient's documents."
    )
    expect(page.get_by_label(re.compile("^Corrected date of birth"))).to_have_value("2020-01-01")
    assert _serious_violations(page, axe) == []
    _shot(page, "him-dob-refused")

    page.get_by_label(re.compile("^Corrected date of birth")).fill(right)
    page.get_by_role("button", name="Show what changes").click()
    preview = page.get_by_role("region", name="Check what the correction changes")
    expect(preview).to_contain_text("The retention of 1 of 1 archived document changes.")
    row = page.locator(f"tr.moves:has(a[href='/ui/documents/{doc}'])")
    expect(row).to_contain_text("2033-02-21")
    expect(row.locator("mark")).to_have_text("2029-04-13")
    expect(row).to_contain_text("ahima.minor → ahima.adult")
    expect(page.locator("#dob-on-record")).to_have_text("2012-02-21")  # nothing saved yet
    assert _serious_violations(page, axe) == []
    _shot(page, "him-dob-preview")

    page.get_by_role("button", name=f"Correct the date of birth to {right}").click()
    expect(page.get_by_role("status")).to_have_text(
        "Date of birth corrected and retention recomputed: 1 document got another date."
    )
    expect(page.locator("#dob-on-record")).to_have_text(right)
    expect(page.get_by_role("table", name="Retention of each document now")).to_contain_text("2029-04-13")
    _shot(page, "him-dob-corrected")
    page.context.close()
    with Services(web_archive.settings) as services:
        assert services.records.retention(doc)["retain_until"] == "2029-04-13"


@contextmanager
def _mrn_provenance(web_archive, doc: str, extra: dict):
    """The document's identifier confidences with ``extra`` (an MRN's provenance) for the test's length;
    yields a setter for other values; the row as it was afterwards."""
    from chartvault.archive.models import Document
    from chartvault.services import Services

    def put(values: dict) -> None:
        with Services(web_archive.settings) as services, services.parts.sessions() as s:
            row = s.get(Document, doc)
            row.identifier_confidence = {**kept[0], **values}
            s.commit()

    with Services(web_archive.settings) as services, services.parts.sessions() as s:
        row = s.get(Document, doc)
        kept = (dict(row.identifier_confidence or {}), row.review_status)
    put(extra)
    try:
        yield put
    finally:
        with Services(web_archive.settings) as services, services.parts.sessions() as s:
            row = s.get(Document, doc)
            row.identifier_confidence, row.review_status = kept
            s.commit()


def _misread(mrn: str) -> str:
    return ("9" if mrn[0] != "9" else "8") + mrn[1:]


def test_the_reviewer_sees_a_re_read_mrn_and_a_refused_one_beside_the_page(
    browser, server: str, web_archive
) -> None:
    """What the machine repaired or refused is shown where the reviewer compares it with the page: the MRN
    a re-read vote replaced (with what the first reading said), and a manifest's MRN that failed the check
    digit (never applied)."""
    doc = web_archive.docs["ed_note"]
    first_reading = _misread(web_archive.mrns["ed_note"])
    refused = [{"source": "manifest", "value": "000000001"}]
    provenance = {"mrn_source": "reread_vote", "mrn_read": first_reading, "mrn_refused": refused}
    with _mrn_provenance(web_archive, doc, provenance):
        page = _signed_in(browser, server, "him_admin", bypass_csp=True)
        page.goto(f"/ui/review/{doc}")
        expect(page.locator("#mrn-reread")).to_have_text(f"re-read from {first_reading}")
        shown = page.locator("#mrn-refused-manifest")
        expect(shown).to_contain_text("000000001")
        expect(shown).to_contain_text("fails the check digit")
        assert _serious_violations(page, AXE.read_text()) == []
        _shot(page, "him-review-reread-and-refused-mrn")
        page.context.close()


def test_the_reviewer_sees_an_mrn_the_labels_barcode_mended(browser, server: str, web_archive) -> None:
    """An MRN taken from the patient label's barcode where the text was misread says so, with what the
    text read, and one the barcode alone gave says that."""
    doc = web_archive.docs["ed_note"]
    text_read = _misread(web_archive.mrns["ed_note"])
    with _mrn_provenance(web_archive, doc, {"mrn_source": "label_barcode", "mrn_read": text_read}) as put:
        page = _signed_in(browser, server, "him_admin", bypass_csp=True)
        page.goto(f"/ui/review/{doc}")
        expect(page.locator("#mrn-barcode")).to_have_text(
            f"from the label's barcode; the text read {text_read}"
        )
        assert _serious_violations(page, AXE.read_text()) == []
        _shot(page, "him-review-barcode-mrn")
        put({"mrn_source": "label_barcode"})
        page.reload()
        expect(page.locator("#mrn-barcode")).to_have_text("from the label's barcode alone")
        page.context.close()


def test_him_admin_retrains_the_classifier_after_correcting_a_type(browser, server: str, web_archive) -> None:
    """A type corrected in review waits for the next training; the Classifier page retrains now, follows the
    training while it runs (htmx) and shows what the new model learned from."""
    from chartvault.services import Services

    doc = web_archive.docs["shoulder"]
    with Services(web_archive.settings) as services:
        original = services.documents.get(doc).doc_type
        learned = services.review.classifier_status().corrections_learned
    new_type = "Operative report" if original != "operative_report" else "Consult note"
    page = _signed_in(browser, server, "him_admin", bypass_csp=True)
    page.goto(f"/ui/review/{doc}")
    page.get_by_label("Document type").select_option(label=new_type)
    page.get_by_role("button", name="Save the type").click()
    page.wait_for_url(re.compile(r"/ui/review"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Classifier").click()
    expect(page.get_by_role("heading", name="Document-type classifier")).to_be_visible()
    waiting = int(page.locator("#corrections-waiting").inner_text())
    assert waiting >= 1
    before = page.locator("#model-version").inner_text()
    assert _serious_violations(page, AXE.read_text()) == []
    _shot(page, "him-classifier")

    page.get_by_role("button", name="Retrain the classifier now").click()
    expect(page.locator("#training-state")).to_have_text("Retraining")
    expect(page.get_by_role("button", name="Retrain the classifier now")).to_be_disabled()
    _shot(page, "him-classifier-retraining")
    expect(page.locator("#training-state")).to_have_text("Retrained", timeout=120_000)  # htmx polling
    result = page.locator("#training-result")
    expect(result).to_contain_text("staff correction")
    after = page.locator("#model-version").inner_text()
    assert after != before
    expect(page.locator("#corrections-waiting")).to_have_text("0")
    expect(page.get_by_role("button", name="Retrain the classifier now")).to_be_enabled()
    assert _serious_violations(page, AXE.read_text()) == []
    _shot(page, "him-classifier-retrained")
    said = result.inner_text()
    page.context.close()
    with Services(web_archive.settings) as services:
        status = services.review.classifier_status()
        assert status.version == after and status.corrections_waiting == 0
        assert learned is None or status.corrections_learned >= learned + 1
        assert f"{status.corrections_learned} of them staff correction" in said
        services.review.correct_type(doc, original)  # its type as it was, for the other tests


# -- disposition, the archive check, the audit entries, the quarantine ---------------------------------


@pytest.fixture(scope="module")
def records_archive(tmp_path_factory) -> RecordsArchive:
    """Charts past retention (one held), a current one, refused files: disposition destroys, so its own."""
    return build_records_archive(tmp_path_factory.mktemp("records-browser"))


@pytest.fixture(scope="module")
def records_server(records_archive: RecordsArchive) -> Iterator[str]:
    with _serve(records_archive.data_dir) as base:
        yield base


def test_him_admin_destroys_what_is_due_and_reads_the_certificate(
    browser, records_server: str, records_archive: RecordsArchive
) -> None:
    page = _signed_in(browser, records_server, "him_admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Disposition").click()
    expect(page.get_by_role("heading", name="Disposition", exact=True)).to_be_visible()
    eligible = page.get_by_role("table", name=re.compile("^Eligible for destruction"))
    expect(eligible.locator("tbody tr")).to_have_count(2)
    held = page.get_by_role("table", name=re.compile("^Past retention but held"))
    expect(held).to_contain_text(records_archive.held[:12])
    expect(held).to_contain_text("held")
    _shot(page, "disposition-plan")
    page.get_by_label("Approved by").fill("HIM Director")
    page.get_by_label("Witness").fill("Records clerk")
    page.get_by_label("Reason").fill("2026 annual retention schedule")
    page.get_by_label("Type 2 to confirm").fill("3")  # a slip: the wrong count destroys nothing
    page.get_by_role("button", name="Destroy 2 documents").click()
    expect(page.get_by_role("alert")).to_contain_text("type 2, the number of documents")
    _shot(page, "disposition-wrong-count")
    expect(page.get_by_label("Approved by")).to_have_value("HIM Director")  # what was typed stays
    page.get_by_label("Type 2 to confirm").fill("2")
    page.get_by_role("button", name="Destroy 2 documents").click()
    page.wait_for_url(re.compile(r"/ui/disposition/[0-9a-f]{32}$"))
    expect(page.get_by_role("heading", name="Certificate of destruction")).to_be_visible()
    destroyed = page.get_by_role("table", name=re.compile("^Destroyed"))
    for doc_id in records_archive.old:
        expect(destroyed).to_contain_text(doc_id)
    assert records_archive.held not in page.content() and records_archive.patient_name not in page.content()
    _shot(page, "disposition-certificate")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the certificate (JSON)").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert sorted(i["document_id"] for i in saved["items"]) == sorted(records_archive.old)
    assert (
        saved["department_manager"] == "HIM Director" and saved["reason"] == "2026 annual retention schedule"
    )
    page.get_by_role("link", name="All dispositions").click()
    runs = page.get_by_role("table", name="Past dispositions")
    expect(runs.get_by_role("link", name=saved["certificate_of_destruction"][:12])).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("^Eligible for destruction"))).to_contain_text("None.")
    _shot(page, "disposition-after")
    _refused(page, "/ui/admin/check", "/ui/admin/audit")
    page.context.close()


def test_admin_runs_the_archive_check_and_browses_the_audit_entries(
    browser, records_server: str, records_archive: RecordsArchive
) -> None:
    page = _signed_in(browser, records_server, "admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Archive check").click()
    page.get_by_role("button", name="Quick check").click()
    expect(page.get_by_role("heading", name=re.compile("^The archive is"))).to_be_visible()
    expect(page.locator("#finding-unlinked td").first).to_have_text("0")
    expect(page.get_by_text("No backup of this archive has been made")).to_be_visible()
    _shot(page, "admin-check-quick")
    data_dir = records_archive.settings.data_dir  # type: ignore[attr-defined]
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(data_dir)}
    backup = [sys.executable, "-m", "chartvault.cli", "backup", "create", str(data_dir.parent / "backups")]
    assert subprocess.run(backup, env=env, capture_output=True).returncode == 0  # beside the running server
    page.goto("/ui/admin/check")  # not a reload: that would send the check's form again
    expect(page.get_by_role("table").filter(has_text="Snapshot")).to_contain_text("complete")
    _shot(page, "admin-check-backups")
    page.get_by_role("button", name="Full check with fixity").click()  # a background job: its page follows it
    page.wait_for_url(re.compile(r"/ui/admin/check/jobs/[0-9a-f]{32}$"))
    job_url = page.url
    if page.locator("#job-state").inner_text() in ("Waiting", "Running"):
        _shot(page, "admin-check-running")
    expect(page.locator("#check-result")).to_contain_text("bytes verified", timeout=60_000)
    expect(page.locator("#job-state")).to_have_text("Done")
    expect(page.locator("#finding-corrupt td").first).to_have_text("0")
    assert page.url == job_url
    _shot(page, "admin-check-full")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").select_option("archive.check")
    page.get_by_role("button", name="Show entries").click()
    page.wait_for_url(re.compile(r"action=archive.check"))
    rows = page.locator("#audit-entries tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("archive.check")
    assert "Test admin" not in page.locator("#audit-entries").inner_text()  # ids, never names
    _shot(page, "admin-audit-entries")
    rows.first.get_by_role("link", name=re.compile("^user:")).click()  # that actor's entries
    page.wait_for_url(re.compile(r"actor=user"))
    expect(page.get_by_label("Actor")).to_have_value(re.compile("^user:"))
    page.get_by_role("button", name="Verify the chain now").click()
    expect(page.get_by_role("heading", name="The chain is intact")).to_be_visible()
    page.context.close()
    checked = _signed_in(browser, records_server, "admin", bypass_csp=True)
    checked.goto("/ui/admin/check")
    checked.get_by_role("button", name="Quick check").click()
    checked.locator("#check-result").wait_for()
    assert _serious_violations(checked, AXE.read_text()) == []
    checked.goto(job_url)  # the full check's page, done
    assert _serious_violations(checked, AXE.read_text()) == []
    checked.context.close()


def test_admin_follows_the_background_jobs_and_cancels_a_running_one(
    browser, records_server: str, records_archive: RecordsArchive
) -> None:
    """The jobs page lists what runs in the background of every server process (a registration import
    under way in another one, here) with its counts; Cancel asks it to stop at its next commit."""
    from conftest import job_row

    running = job_row(
        records_archive.settings, "registration_import", result={"rows_read": 25_000, "refused": 3}
    )
    page = _signed_in(browser, records_server, "admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Background jobs")).to_be_visible()
    row = page.locator(f"#job-{running}")
    expect(row).to_contain_text("Running")
    expect(row).to_contain_text("25,000 rows read, 3 refused")
    _shot(page, "admin-jobs")
    row.get_by_role("button", name=re.compile("^Cancel the registration import job")).click()
    expect(page.locator("#cancel-asked")).to_be_visible()
    row = page.locator(f"#job-{running}")
    expect(row).to_contain_text("cancel asked")
    expect(row.get_by_role("button")).to_have_count(0)  # asked once: nothing more to press
    _shot(page, "admin-jobs-cancel-asked")
    page.context.close()
    checked = _signed_in(browser, records_server, "admin", bypass_csp=True)
    checked.goto("/ui/admin/jobs")
    assert _serious_violations(checked, AXE.read_text()) == []
    checked.context.close()


def test_quarantine_is_read_by_him_and_purged_by_an_admin(
    browser, records_server: str, records_archive: RecordsArchive
) -> None:
    from chartvault.archive.models import BatchFile
    from chartvault.services import Services

    first, second, third = records_archive.quarantined
    with Services(records_archive.settings) as services, services.parts.sessions() as s:
        old = datetime.now(UTC) - timedelta(days=120)
        s.execute(sa_update(BatchFile).where(BatchFile.id == third).values(created_at=old, updated_at=old))
        s.commit()
    him = _signed_in(browser, records_server, "him_admin")
    him.get_by_role("navigation", name="Main").get_by_role("link", name="Quarantine").click()
    table = him.get_by_role("table", name=re.compile("quarantined files"))
    expect(table.locator("tbody tr")).to_have_count(3)
    assert "WAYFARER" not in him.content()  # the names the files came with are never shown
    assert him.get_by_role("link", name=re.compile("^Purge file")).count() == 0
    _shot(him, "quarantine-him")
    him.context.close()

    page = _signed_in(browser, records_server, "admin")
    page.goto("/ui/quarantine")
    page.get_by_role("link", name=f"Purge file {second[:12]}").click()
    expect(page.get_by_role("heading", name=f"Purge file {second[:12]}?")).to_be_visible()
    _shot(page, "quarantine-confirm-one")
    page.get_by_role("button", name="Delete this file's bytes").click()
    expect(page.locator("#purge-done")).to_contain_text("Purged 1 quarantined file")
    expect(page.locator(f"#file-{second}")).to_contain_text("purged")
    page.get_by_label("Files refused more than").fill("90")
    page.get_by_role("button", name="List what would be purged").click()
    preview = page.locator("#purge-preview")
    expect(preview).to_contain_text(third)
    expect(preview).not_to_contain_text(first)
    _shot(page, "quarantine-preview")
    page.get_by_label("Type 1 to confirm").fill("1")
    page.get_by_role("button", name="Purge 1 file").click()
    expect(page.locator("#purge-done")).to_contain_text("Purged 1 quarantined file")
    expect(page.locator(f"#file-{third}")).to_contain_text("purged")
    expect(page.locator(f"#file-{first}")).to_contain_text("kept")
    _shot(page, "quarantine-after")
    page.context.close()

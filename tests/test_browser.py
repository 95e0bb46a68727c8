"""Each role's journey in a real browser (Debian's chromium, driven by Playwright) against a real
``chartvault serve`` on loopback, over real ingested corpus documents.

Staff search and open a document with the hit boxed on the page image; a staff member requests a
release and an HIM admin approves it; the vendor downloads the package and reaches nothing else; a
scanning operator uploads a file and watches every page get archived. Each role is refused the pages
it may not see. axe-core (vendored, injected) must find no serious or critical violation on the main
pages. Screenshots of each main page go to ``tests/.screenshots/`` (not committed).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pdfplumber
import pytest
from webfixtures import PASSWORD, VENDOR_ORG

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


@pytest.fixture(scope="module")
def server(web_archive) -> Iterator[str]:
    """``chartvault serve`` on a free loopback port over the fixture archive; its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "CHARTVAULT_DATA_DIR": str(web_archive.data_dir),
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
    staff.goto(f"/ui/patients/{mrn}")
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
    page.wait_for_url(re.compile(r"q=%22chest"))
    assert page.locator(".hit mark").first.is_visible()
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
    page.goto("/ui/search?q=mammogram")
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
    _shot(page, "vendor-release")
    doc = web_archive.docs["ed_note"]
    _refused(
        page,
        "/ui/search",
        f"/ui/documents/{doc}",
        f"/ui/documents/{doc}/pages/1/image?w=600",
        f"/ui/patients/{web_archive.mrns['ed_note']}",
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
    context.close()


MAIN_PAGES = {
    "staff": ["/ui/search?q=pain", "/ui/documents/{doc}?q=pain", "/ui/patients/{mrn}", "/ui/releases"],
    "him_admin": ["/ui/review", "/ui/releases", "/ui/releases/new", "/ui/holds", "/ui/disposition"],
    "scanner": ["/ui/batches", "/ui/coversheet"],
    "vendor": ["/ui/releases"],
    "admin": ["/ui/admin/users", "/ui/admin/tokens"],
}


def test_no_serious_accessibility_violations_on_the_main_pages(browser, server: str, web_archive) -> None:
    """axe-core on every main page of every role (and the sign-in page): no serious or critical issue."""
    axe = AXE.read_text()
    found: dict[str, list[str]] = {}
    checked = 0
    anonymous = browser.new_context(base_url=server, bypass_csp=True)
    pages = [(anonymous.new_page(), "/ui/sign-in")]
    for role, paths in MAIN_PAGES.items():
        page = _signed_in(browser, server, role, bypass_csp=True)  # so axe can be injected
        for path in paths:
            pages.append(
                (page, path.format(doc=web_archive.docs["ed_note"], mrn=web_archive.mrns["ed_note"]))
            )
    for page, path in pages:
        page.goto(path)
        page.add_script_tag(content=axe)
        result = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))"
        )
        bad = [
            f"{v['id']} ({v['impact']}, {v['nodes']})"
            for v in result
            if v["impact"] in ("serious", "critical")
        ]
        if bad:
            found[path] = bad
        checked += 1
    assert checked == 1 + sum(len(p) for p in MAIN_PAGES.values())
    assert found == {}, found

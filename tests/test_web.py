"""The web pages over a real app and real ingested documents: sessions, CSRF, the policy table for
pages, page images, highlights from word boxes, and the audit entries pages write."""

from __future__ import annotations

import io
import re
import stat
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute
from PIL import Image
from sqlalchemy import select, update
from webfixtures import (
    FILES,
    PASSWORD,
    ROLES,
    csrf_of,
    patient_path,
    search_form,
    sign_in,
    viewer_path,
    web_client,
)

from chartvault.archive.models import AuditEvent, Page, WebSession
from chartvault.ocr.render import upright_box
from chartvault.policy import POLICY, PUBLIC, is_page
from chartvault.search.pagemarks import Box, marked_text, match_spec, word_boxes
from chartvault.services.throttle import FailureThrottle, TooManyAttempts

pytestmark = pytest.mark.slow  # each test here drives a real server, browser or pipeline


def _fill(path: str) -> str:
    return (
        path.replace("{page_no}", "1")
        .replace("{decision}", "review")
        .replace("{action}", "disable")
        .replace("{", "x")
        .replace("}", "")
    )


def _audit(settings, action: str) -> list[AuditEvent]:
    from chartvault.services import Services

    with Services(settings) as services, services.parts.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# -- the policy table covers every page ---------------------------------------------------------------


def test_every_page_is_in_the_policy_and_the_api_schema_has_none(web_archive) -> None:
    from chartvault.web.routes import ROUTERS

    pages = {
        (m, r.path) for router in ROUTERS for r in router.routes if isinstance(r, APIRoute) for m in r.methods
    }
    assert pages and all(is_page(path) for _, path in pages)
    assert pages <= set(POLICY), f"pages with no policy entry: {sorted(pages - set(POLICY))}"
    assert {k for k in POLICY if is_page(k[1])} <= pages, "policy entries for pages that do not exist"
    with web_client(web_archive.settings) as client:
        schema_paths = set(client.app.openapi()["paths"])
    assert not any(is_page(p) for p in schema_paths)


def test_page_matrix_every_role_and_anonymous(web_archive) -> None:
    """Each GET page as each role: allowed ones are not refused, the rest answer 403 (anonymous: sign in)."""
    gets = sorted(path for method, path in POLICY if method == "GET" and is_page(path))
    for role in (None, *ROLES):
        with web_client(web_archive.settings, role) as client:
            for path in gets:
                resp = client.get(_fill(path), follow_redirects=False)
                where = f"GET {path} as {role}: {resp.status_code}"
                roles = POLICY[("GET", path)]
                if roles is PUBLIC:
                    assert resp.status_code in (200, 303), where
                elif role is None:
                    assert resp.status_code == 303 and "/ui/sign-in" in resp.headers["location"], where
                elif role in roles:
                    assert resp.status_code not in (401, 403), where
                else:
                    assert resp.status_code == 403 and "Not allowed" in resp.text, where
    forbidden = _audit(web_archive.settings, "session.use")
    assert forbidden and all(e.outcome == "forbidden" and e.actor.startswith("user:") for e in forbidden)


# -- sessions ----------------------------------------------------------------------------------------


def test_session_cookie_flags_and_sign_out(web_archive) -> None:
    with web_client(web_archive.settings) as client:
        resp = sign_in(client, "staff")
        cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("cv_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        secret = client.cookies["cv_session"]
        page = client.get("/ui/search")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        out = client.post("/ui/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert out.status_code == 303
        client.cookies.set("cv_session", secret)  # a copied cookie is dead after sign-out
        assert client.get("/ui/search", follow_redirects=False).status_code == 303
    with web_client(web_archive.settings, base_url="https://127.0.0.1") as tls:
        cookie = next(c for c in sign_in(tls, "staff").headers.get_list("set-cookie") if "cv_session=" in c)
        assert "Secure" in cookie


def test_signing_in_again_ends_the_session_the_browser_held(web_archive) -> None:
    """Signing in replaced the cookie but left the earlier session live until it idled out: whoever had
    copied it (or the person before, on a shared workstation) kept it for up to 15 minutes more."""
    with web_client(web_archive.settings, "staff") as client:
        first = client.cookies["cv_session"]
        form = client.get("/ui/sign-in", follow_redirects=False)
        assert form.status_code == 303  # signed in: the form is not shown, but it can still be posted
        token = csrf_of(client.get("/ui/account").text)  # a signed-in browser's forms carry its session's
        again = client.post(
            "/ui/sign-in",
            data={"csrf": token, "username": "staff", "password": PASSWORD},
            follow_redirects=False,
        )
        assert again.status_code == 303 and again.cookies["cv_session"] != first
        client.cookies.clear()
        client.cookies.set("cv_session", first)
        assert client.get("/ui/search", follow_redirects=False).status_code == 303  # the old one is dead


def test_session_cookies_can_be_made_secure_behind_a_tls_proxy(web_archive) -> None:
    """Behind a TLS proxy that does not say so (forwarded headers from an address uvicorn does not trust)
    the app sees http and sent the session cookie without Secure: a browser sends it over plain http
    too. CHARTVAULT_WEB_COOKIE_SECURE=true makes every cookie Secure; false never (a test rig)."""
    forced = web_archive.settings.model_copy(update={"web_cookie_secure": True})
    with web_client(forced) as client:
        form = client.get("/ui/sign-in")
        assert "Secure" in form.headers["set-cookie"]
        secret = form.cookies["cv_sign_in"]  # a client keeps a Secure cookie off plain http: sent by hand
        client.cookies.clear()
        resp = client.post(
            "/ui/sign-in",
            data={"csrf": csrf_of(form.text), "username": "staff", "password": PASSWORD},
            headers={"Cookie": f"cv_sign_in={secret}"},
            follow_redirects=False,
        )
        cookie = next(c for c in resp.headers.get_list("set-cookie") if "cv_session=" in c)
        assert "Secure" in cookie
    never = web_archive.settings.model_copy(update={"web_cookie_secure": False})
    with web_client(never, base_url="https://127.0.0.1") as tls:
        cookie = next(c for c in sign_in(tls, "staff").headers.get_list("set-cookie") if "cv_session=" in c)
        assert "Secure" not in cookie


def test_api_answers_are_never_cached_only_static_files_may_be(web_archive) -> None:
    """API answers carry patient data: a browser trying them at /docs, or a proxy, must keep none of them
    (pages already said no-store; the API said nothing, so a browser could keep a timeline on disk)."""
    doc, mrn = web_archive.docs["mammogram"], web_archive.mrns["ed_note"]
    with web_client(web_archive.settings) as client:
        token = client.app.state.services.access.create_token("admin", "cache probe").token
        api = {"Authorization": f"Bearer {token}"}
        batch = client.get("/batches", headers=api).json()["items"][0]["id"]
        answers = {
            url: client.get(url, headers=api)
            for url in (
                f"/documents/{doc}",
                f"/documents/{doc}/pages/1/text",
                f"/documents/{doc}/similar",
                f"/documents/{doc}/original",
                f"/documents/{doc}/rendition",
                "/search?q=chest",
                f"/search?mrn={mrn}",
                f"/patients/{mrn}/timeline",
                "/batches",
                f"/batches/{batch}",
                "/review",
                "/documents/0123456789abcdef0123456789abcdef",  # an error answer too
                "/health",
            )
        }
        answers["/search (no token)"] = client.get("/search?q=chest")
        for url, resp in answers.items():
            assert resp.status_code in (200, 401, 404), f"{url}: {resp.status_code}"
            assert resp.headers.get("cache-control") == "no-store", url
            assert resp.headers.get("pragma") == "no-cache", url
        assert answers[f"/documents/{doc}/original"].content[:5] == b"%PDF-"
        assert client.get("/ui/sign-in").headers["cache-control"] == "no-store"  # pages, as before
        for static in ("/docs/static/swagger-ui.css", "/ui/static/app.css"):
            resp = client.get(static)
            assert resp.status_code == 200 and "cache-control" not in resp.headers, static


def test_idle_and_disabled_sessions_end(web_archive) -> None:
    from chartvault.services import Services

    with web_client(web_archive.settings, "staff") as client:
        assert client.get("/ui/search").status_code == 200
        with Services(web_archive.settings) as services, services.parts.sessions() as s:
            s.execute(
                update(WebSession)
                .where(WebSession.ended_at.is_(None))
                .values(last_seen_at=datetime.now(UTC) - timedelta(minutes=16))
            )
            s.commit()
        resp = client.get("/ui/search", follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"] == "/ui/sign-in?next=/ui/search"
    ended = _audit(web_archive.settings, "session.end")
    assert any(e.detail == {"reason": "idle"} for e in ended)


def test_csrf_is_required_on_every_form(web_archive) -> None:
    with web_client(web_archive.settings, "admin") as client:
        page = client.get("/ui/admin/users")
        token = csrf_of(page.text)
        form = {"username": "mallory", "display_name": "M", "role": "admin", "password": "x" * 20}
        assert client.post("/ui/admin/users", data=form).status_code == 403
        assert client.post("/ui/admin/users", data={**form, "csrf": "forged"}).status_code == 403
        evil = client.post(
            "/ui/admin/users", data={**form, "csrf": token}, headers={"Origin": "https://evil.example"}
        )
        assert evil.status_code == 403
        cross = client.post(
            "/ui/admin/users", data={**form, "csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert cross.status_code == 403
        users = client.get("/ui/admin/users").text
        assert "mallory" not in users
        made = client.post("/ui/admin/users", data={**form, "csrf": token}, follow_redirects=False)
        assert made.status_code == 303 and "mallory" in client.get("/ui/admin/users").text


def test_failed_sign_ins_are_throttled_and_audited_without_secrets(web_archive) -> None:
    with web_client(web_archive.settings) as client:
        for _ in range(web_archive.settings.web_sign_in_failures):
            assert sign_in(client, "scanner", "wrong password, surely").status_code == 401
        refused = sign_in(client, "scanner")  # the right password, but too late
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "Too many failed attempts" in refused.text
        assert sign_in(client, "staff").status_code == 303  # another username is not locked out
    attempts = _audit(web_archive.settings, "user.sign_in")
    assert [e.outcome for e in attempts].count("throttled") == 1
    assert all("wrong password" not in str(e.detail) and e.target_id != "scanner" for e in attempts)


def test_a_flood_of_throttled_sign_ins_writes_one_audit_entry(settings) -> None:
    """Every throttled sign-in wrote an audit entry (a MAC-chained row in a write transaction): a stranger
    posting the form as fast as it answers wrote 150 a second, without end, drowning the log and holding
    the catalog's writer. Throttled attempts from one address are recorded once a window."""
    with web_client(settings) as client:
        for _ in range(settings.web_sign_in_failures):
            assert sign_in(client, "nobody", "wrong password, surely").status_code == 401
        for _ in range(40):
            assert sign_in(client, "nobody", "wrong password, surely").status_code == 429
    attempts = [e.outcome for e in _audit(settings, "user.sign_in")]
    assert attempts.count("refused") == settings.web_sign_in_failures
    assert attempts.count("throttled") == 1


def test_failure_throttle_window_moves_on() -> None:
    now = [1000.0]
    throttle = FailureThrottle(3, 60, clock=lambda: now[0])
    for _ in range(3):
        throttle.check("u")
        throttle.fail("u")
    with pytest.raises(TooManyAttempts) as refused:
        throttle.check("u")
    assert refused.value.retry_after_s == 60
    throttle.check("v")  # keys are independent
    now[0] += 61
    throttle.check("u")


# -- page images and highlights -------------------------------------------------------------------------


def test_page_image_is_rendered_at_the_width_asked_cached_privately_and_audited(
    web_archive, monkeypatch
) -> None:
    # Other work in the process (sniffing, OCR) sets Pillow's global pixel limit to its own value: the
    # viewer checks the configured limit the original was accepted under, whatever the global says.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000_000)
    doc = web_archive.docs["ed_note"]
    with web_client(web_archive.settings, "staff") as client:
        for width in (600, 1200):
            resp = client.get(f"/ui/documents/{doc}/pages/1/image?w={width}")
            assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(resp.content)).size[0] == width
        huge = client.get(f"/ui/documents/{doc}/pages/1/image?w=2000")
        native = Image.open(io.BytesIO(huge.content)).size[0]
        assert native <= 2000  # never more pixels than the original has
        assert client.get(f"/ui/documents/{doc}/pages/1/image?w=5000").status_code == 422
        assert client.get(f"/ui/documents/{doc}/pages/9/image?w=600").status_code == 404
        assert client.get("/ui/documents/nope/pages/1/image?w=600").status_code == 404
    cache = web_archive.data_dir / "cache"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    reads = [e for e in _audit(web_archive.settings, "document.page_read") if e.target_id == doc]
    images = [e.detail for e in reads if e.detail.get("as") == "image"]
    assert {"page": 1, "as": "image", "width": 600, "cached": False} in images
    assert all(e.actor.startswith("user:") for e in reads)


def test_search_hit_is_boxed_on_the_scanned_page_where_ocr_read_it(web_archive) -> None:
    from chartvault.services import Services

    doc = web_archive.docs["ed_note"]
    with web_client(web_archive.settings, "staff") as client:
        results = search_form(client, q="chest pain")
        assert results.status_code == 200 and f"/ui/documents/{doc}" in results.text
        assert (
            "<mark>chest</mark>" in results.text.lower() or "<mark>chest pain</mark>" in results.text.lower()
        )
        opened = re.search(rf'href="(/ui/documents/{doc}\?s=[^"&]+)"', results.text)
        assert opened, "the hit carries no sealed search to the viewer"
        viewer = client.get(opened.group(1))
    assert viewer.status_code == 200
    rects = [
        tuple(map(float, r))
        for r in re.findall(
            r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', viewer.text
        )
    ]
    assert rects, "no highlight on the page image"
    with Services(web_archive.settings) as services, services.parts.sessions() as s:
        page = s.scalars(select(Page).where(Page.document_id == doc, Page.page_no == 1)).one()
        size = (page.width, page.height)
        on_image = [  # where OCR read them, turned back by the page's deskew (tests/test_viewer_boxes.py)
            upright_box((w[2], w[3], w[4], w[5]), size, page.deskew_deg)
            for w in page.words
            if w[0].lower().strip(".,:;") in ("chest", "pain")
        ]
        expected = [(100 * x / page.width, 100 * y / page.height) for x, y, _, _ in on_image]
    assert len(rects) >= 2
    for left, top, _, _ in rects:
        assert any(abs(left - x) < 0.01 and abs(top - y) < 0.01 for x, y in expected)
    assert "<mark>chest</mark>" in viewer.text.lower() or "<mark>chest pain</mark>" in viewer.text.lower()


def test_text_layer_pages_are_boxed_in_points(web_archive) -> None:
    doc = web_archive.docs["mammogram"]
    with web_client(web_archive.settings, "staff") as client:
        viewer = client.get(viewer_path(client, doc, "mammogram"))
    rects = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', viewer.text)
    assert rects
    for x, y, w, h in rects:  # on the page, and word-sized (a points/pixels mix-up would not be)
        assert 0 <= float(x) < 100 and 0 <= float(y) < 100 and 0 < float(w) < 40 and 0 < float(h) < 5


def test_word_boxes_follow_the_highlighter() -> None:
    words = [
        ["Left", 90, 10, 10, 40, 12],
        ["temporal", 91, 55, 10, 70, 12],
        ["lobe.", 92, 130, 10, 40, 12],
        ["temporary", 93, 10, 40, 80, 12],
    ]
    phrase = word_boxes(words, match_spec('"temporal lobe"'))
    assert phrase == [Box(55, 10, 70, 12), Box(130, 10, 40, 12)]
    assert [b.left for b in word_boxes(words, match_spec("tempor*"))] == [55, 10]
    assert word_boxes(words, match_spec("NOT temporal")) == []
    assert marked_text("a <b> temporal", match_spec("temporal")) == "a &lt;b&gt; <mark>temporal</mark>"


def test_document_pages_write_the_api_read_entries(web_archive) -> None:
    doc = web_archive.docs["shoulder"]
    with web_client(web_archive.settings, "staff") as client:
        assert client.get(f"/ui/documents/{doc}").status_code == 200
        original = client.get(f"/ui/documents/{doc}/original")
        assert original.status_code == 200 and original.content[:4] in (b"II*\x00", b"MM\x00*")
        timeline = client.get(patient_path(client, web_archive.mrns["shoulder"]))
        assert timeline.status_code == 200 and doc in timeline.text
    for action in ("document.read", "document.download", "patient.timeline"):
        entries = _audit(web_archive.settings, action)
        assert any(e.actor.startswith("user:") for e in entries), action


def test_forgotten_documents_leave_no_cached_page_behind(web_archive) -> None:
    """Disposition and misfile corrections call ``forget``: no rendered page or original copy is left."""
    from chartvault.services import Services

    doc = web_archive.docs["mammogram"]
    with web_client(web_archive.settings, "staff") as client:
        assert client.get(f"/ui/documents/{doc}/pages/1/image?w=700").status_code == 200
    cache = web_archive.data_dir / "cache"
    assert any((cache / "pages" / doc).iterdir())
    with Services(web_archive.settings) as services:
        sha = services.documents.get(doc).sha256
        assert (cache / "originals" / sha).exists()
        services.pages.forget([doc])
    assert not (cache / "pages" / doc).exists() and not (cache / "originals" / sha).exists()


def test_him_pages_correct_a_type_hold_a_patient_and_print_a_cover_sheet(web_archive) -> None:
    doc, mrn = web_archive.docs["mammogram"], web_archive.mrns["mammogram"]
    with web_client(web_archive.settings, "him_admin") as client:
        token = csrf_of(client.get("/ui/holds").text)
        typed = client.post(
            f"/ui/documents/{doc}/classification", data={"csrf": token, "doc_type": "radiology_report"}
        )
        assert typed.status_code == 200  # followed back to the queue
        held = client.post(
            "/ui/holds",
            data={"csrf": token, "matter": "M-1", "scope": "patient", "value": mrn, "reason": "litigation"},
        )
        assert held.status_code == 200 and "M-1" in held.text and "litigation" in held.text
        hold_id = re.search(r'action="/ui/holds/([0-9a-f]+)/release"', held.text).group(1)
        released = client.post(f"/ui/holds/{hold_id}/release", data={"csrf": token, "reason": "settled"})
        assert released.status_code == 200 and f"/ui/holds/{hold_id}/release" not in released.text
        assert client.get("/ui/disposition").status_code == 200
        refused = client.post(
            f"/ui/documents/{doc}/review/resolve", data={"csrf": token, "mrn": mrn}, follow_redirects=False
        )
        assert refused.status_code == 422 and "two identifiers" in refused.text  # the attestation is required
    with web_client(web_archive.settings, "scanner") as client:
        token = csrf_of(client.get("/ui/coversheet").text)
        pdf = client.post("/ui/coversheet", data={"csrf": token, "mrn": "00123", "type": "consent"})
        assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
        bad = client.post("/ui/coversheet", data={"csrf": token, "mrn": "00123", "type": "nonsense"})
        assert bad.status_code == 422 and "type" in bad.text
    placed = _audit(web_archive.settings, "hold.place")
    assert placed and placed[-1].actor.startswith("user:")


def test_batch_and_hold_reads_are_audited_by_id_never_by_name(web_archive) -> None:
    """A batch lists the names its files came with (a scan is often named after its patient) and the
    holds page shows the MRNs held: both are reads of what they show, audited with ids, never the names."""
    import json

    settings = web_archive.settings
    names = [rel.rsplit("/", 1)[-1] for rel in FILES.values()]
    mrn = web_archive.mrns["shoulder"]
    earlier = {e.id for e in _audit(settings, "batch.read")}  # other tests' reads of the session's archive
    with web_client(settings, "him_admin") as client:
        batch = client.app.state.services.documents.get(web_archive.docs["shoulder"]).batch_id
        assert f'href="/ui/batches/{batch}"' in client.get("/ui/batches").text
        page = client.get(f"/ui/batches/{batch}")
        assert page.status_code == 200 and all(name in page.text for name in names)
        assert client.get(f"/ui/batches/{batch}/progress").status_code == 200
        assert client.get(f"/ui/batches/{batch}/progress").status_code == 200  # the live part polls
        token = csrf_of(client.get("/ui/holds").text)
        held = client.post(
            "/ui/holds",
            data={"csrf": token, "matter": "M-audit", "scope": "patient", "value": mrn, "reason": "audit"},
        )
        assert held.status_code == 200 and mrn in held.text
        hold_id = re.search(r'action="/ui/holds/([0-9a-f]+)/release"', held.text).group(1)
        client.post(f"/ui/holds/{hold_id}/release", data={"csrf": token, "reason": "done"})
        api_token = client.app.state.services.access.create_token("staff", "batch reader").token
        api = {"Authorization": f"Bearer {api_token}"}
        assert client.get(f"/batches/{batch}", headers=api).status_code == 200
        assert batch in [b["id"] for b in client.get("/batches", headers=api).json()["items"]]
    docs = set(web_archive.docs.values())
    reads = [e for e in _audit(settings, "batch.read") if e.target_id == batch and e.id not in earlier]
    # The page and its live part (twice) showed the person the same view: one entry; the API token, one.
    kinds = [e.actor.split(":")[0] for e in reads]
    assert kinds.count("user") == 1 and kinds.count("token") == 1, kinds
    assert all(e.target_type == "batch" and set(e.detail["documents"]) == docs for e in reads)
    listed = [e for e in _audit(settings, "batch.list") if batch in e.detail["batches"]]
    assert {e.actor.split(":")[0] for e in listed} >= {"user", "token"}
    holds = [e for e in _audit(settings, "hold.list") if hold_id in e.detail["holds"]]
    assert holds and all(e.actor.startswith("user:") for e in holds)
    for entry in [*reads, *listed, *holds]:
        written = json.dumps(entry.detail) + str(entry.target_id)
        assert mrn not in written and not any(name in written for name in names), entry.action


def test_an_incomplete_authorization_shows_what_is_missing_and_blocks_approval(web_archive) -> None:
    mrn = web_archive.mrns["ed_note"]
    with web_client(web_archive.settings, "staff") as staff:
        form = staff.get("/ui/releases/new")
        made = staff.post(
            "/ui/releases",
            data={
                "csrf": csrf_of(form.text),
                "mrn": mrn,
                "requester_type": "third_party_authorized",
                "recipient": "Law Office",
                "purpose": "legal",
                "types": "ed_note",
            },
            follow_redirects=False,
        )
        assert made.status_code == 303
        release = made.headers["location"]
        page = staff.get(release)
        attached = staff.post(
            f"{release}/authorization",
            data={"csrf": csrf_of(page.text), "description_of_phi": "ED notes", "signer": "the patient"},
            files={"image": ("", b"", "application/octet-stream")},
        )
        assert attached.status_code == 200
        assert (
            "Elements missing" in attached.text and "Who may disclose it — <strong>missing" in attached.text
        )
    with web_client(web_archive.settings, "him_admin") as him:
        token = csrf_of(him.get(release).text)
        assert him.post(f"{release}/review", data={"csrf": token}).status_code == 200
        refused = him.post(f"{release}/approve", data={"csrf": token, "access_days": "30"})
        assert refused.status_code == 422
        assert "missing_disclosing_party" in refused.text and "In review" in refused.text


def test_a_person_changes_their_own_password_and_is_signed_out_everywhere(web_archive) -> None:
    from chartvault.services import Services

    with Services(web_archive.settings) as services:
        services.access.create_user("changer", "Change Me", "staff", password="the first passphrase")
    with web_client(web_archive.settings) as client, web_client(web_archive.settings) as other:
        assert sign_in(client, "changer", "the first passphrase").status_code == 303
        assert sign_in(other, "changer", "the first passphrase").status_code == 303
        token = csrf_of(client.get("/ui/account").text)
        wrong = {
            "csrf": token,
            "current": "not the password",
            "new": "a second passphrase",
            "again": "a second passphrase",
        }
        assert client.post("/ui/account/password", data=wrong).status_code == 422
        right = {**wrong, "current": "the first passphrase"}
        done = client.post("/ui/account/password", data=right, follow_redirects=False)
        assert done.status_code == 303 and "password_changed" in done.headers["location"]
        assert other.get("/ui/search", follow_redirects=False).status_code == 303  # the other browser too
        assert sign_in(client, "changer", "the first passphrase").status_code == 401
        assert sign_in(client, "changer", "a second passphrase").status_code == 303
    with web_client(web_archive.settings, "him_admin") as him:
        page = him.get(patient_path(him, web_archive.mrns["shoulder"]) + "/disclosures")
        assert page.status_code == 200 and "Accounting of disclosures" in page.text

"""The CSRF token is checked on every state-changing page, whatever the body's type.

A multipart form carries its token in the body, read by the pages that take uploads once the files are
staged (``chartvault.web.uploads``). Any other page reads a urlencoded form or the ``X-CSRF-Token``
header. A multipart body sent to a page that takes no upload was read by nobody: no token was ever
checked, and an action that needs no field (revoke a token, disable a user, retrain, sign out) went
through on the session cookie alone, wherever the same-origin headers were absent.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from webfixtures import PASSWORD, csrf_of, web_client

from chartvault.archive.models import Job
from chartvault.config import Settings
from chartvault.services import Services

FORM = {"nothing": ("x.txt", b"x", "text/plain")}  # any multipart body, no csrf field


@pytest.fixture
def site(tmp_path) -> tuple[Settings, str]:
    settings = Settings(data_dir=tmp_path / "data", workers=1, _env_file=None)
    with Services(settings) as services:
        for role in ("him_admin", "admin", "staff"):
            services.access.create_user(role, f"Test {role}", role, password=PASSWORD)
        token_id = services.access.create_token("staff", "a station", username="staff").id
    return settings, token_id


@pytest.mark.slow  # two apps, sign-ins (password hashing): about 3 s
def test_a_multipart_body_without_the_token_is_refused_on_pages_that_take_no_upload(
    site: tuple[Settings, str],
) -> None:
    settings, token_id = site
    with web_client(settings, "admin") as admin:
        for path in (
            f"/ui/admin/tokens/{token_id}/revoke",
            "/ui/admin/users/staff/disable",
            "/ui/classifier",
            "/ui/admin/audit",
            "/ui/sign-out",
        ):
            refused = admin.post(path, files=FORM, follow_redirects=False)
            assert refused.status_code == 403, (path, refused.status_code)
            assert "csrf_refused" in refused.text or "did not come from this site" in refused.text, path
        assert admin.get("/ui/admin/users").status_code == 200  # still signed in
    with Services(settings) as services:
        assert [t.revoked_at for t in services.access.tokens().tokens if t.id == token_id] == [None]
        assert {u.username: u.disabled_at for u in services.access.users().users}["staff"] is None
        with services.parts.sessions() as s:
            assert s.scalars(select(Job)).all() == []  # no retraining was started


def test_uploads_and_forms_with_their_token_still_go_through(site: tuple[Settings, str]) -> None:
    settings, token_id = site
    with web_client(settings, "admin") as admin:
        token = csrf_of(admin.get("/ui/admin/tokens").text)
        revoked = admin.post(
            f"/ui/admin/tokens/{token_id}/revoke", data={"csrf": token}, follow_redirects=False
        )
        assert revoked.status_code == 303
        # htmx: the token as a header, whatever the body
        by_header = admin.post("/ui/admin/audit", files=FORM, headers={"X-CSRF-Token": token})
        assert by_header.status_code == 200
    with web_client(settings, "him_admin") as him:
        page = him.get("/ui/patient-index")
        sent = him.post(
            "/ui/patient-index",
            data={"csrf": csrf_of(page.text)},
            files={"registration": ("reg.csv", b"mrn,last_name,first_name,dob\n", "text/csv")},
            follow_redirects=False,
        )
        assert sent.status_code == 303 and "/ui/patient-index/jobs/" in sent.headers["location"]
        forged = him.post("/ui/patient-index", data={"csrf": "forged"}, files=FORM)
        assert forged.status_code == 403

"""The records and admin pages over a real app and a real archive: disposition behind its typed
confirmation (held documents never destroyed) and its certificate, the archive check finding a deleted
object, the audit entries filtered and paged, the quarantine and its purge. Who may not, is refused."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from recordsfixtures import chart_pdf, doc_row, ingest
from sqlalchemy import select, update
from webfixtures import (
    PASSWORD,
    ROLES,
    RecordsArchive,
    build_records_archive,
    csrf_of,
    follow_job,
    web_client,
)

from chartvault.archive.lifecycle import document_ref
from chartvault.archive.models import AuditEvent, BatchFile, Disposition, Document
from chartvault.config import Settings
from chartvault.policy import POLICY
from chartvault.services import Services

pytestmark = pytest.mark.slow  # a real archive (pipeline, store locks waited out) per module

NEW_POSTS = {
    "/ui/disposition": {"as_of": "", "plan": "x", "confirm": "2", "approved_by": "M", "reason": "R"},
    "/ui/quarantine/purge": {"days": "1", "files": "x", "confirm": "1"},
    "/ui/admin/check": {"fixity": "quick"},
}
NEW_GETS = ("/ui/disposition", "/ui/quarantine", "/ui/admin/check", "/ui/admin/audit")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> RecordsArchive:
    return build_records_archive(tmp_path_factory.mktemp("records-web"))


def _status(archive: RecordsArchive, doc_id: str) -> str:
    with Services(archive.settings) as services, services.parts.sessions() as s:
        doc = s.get(Document, doc_id)
        assert doc is not None
        return doc.status


def _entries(settings, action: str) -> list[AuditEvent]:
    with Services(settings) as services, services.parts.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def _plan_fields(html: str) -> dict[str, str]:
    """The hidden fields of the disposition form as the page gave them."""
    return {
        "csrf": csrf_of(html),
        "as_of": re.search(r'name="as_of" value="([^"]*)"', html).group(1),
        "plan": re.search(r'name="plan" value="([0-9a-f]{64})"', html).group(1),
    }


def test_roles_that_may_not_are_refused_the_new_pages_and_forms(archive: RecordsArchive) -> None:
    before = [
        len(_entries(archive.settings, a))
        for a in ("disposition.execute", "quarantine.purge", "archive.check")
    ]
    for role in ROLES:
        with web_client(archive.settings, role) as client:
            token = csrf_of(client.get("/ui/account").text)
            for path in NEW_GETS:
                resp = client.get(path)
                if role in POLICY[("GET", path)]:
                    assert resp.status_code == 200, (role, path)
                else:
                    assert resp.status_code == 403 and "Not allowed" in resp.text, (role, path)
            for path, form in NEW_POSTS.items():
                if role not in POLICY[("POST", path)]:
                    resp = client.post(path, data={**form, "csrf": token})
                    assert resp.status_code == 403 and "Not allowed" in resp.text, (role, path)
            menu = re.findall(r'<nav aria-label="Main">(.*?)</nav>', client.get("/ui/account").text, re.S)[0]
            for label, path in (("Quarantine", "/ui/quarantine"), ("Archive check", "/ui/admin/check")):
                assert (f'href="{path}"' in menu) == (role in POLICY[("GET", path)]), (role, label)
    after = [
        len(_entries(archive.settings, a))
        for a in ("disposition.execute", "quarantine.purge", "archive.check")
    ]
    assert after == before  # no refused form did anything


def test_disposition_needs_the_typed_count_and_never_destroys_the_held(archive: RecordsArchive) -> None:
    with web_client(archive.settings, "him_admin") as client:
        page = client.get("/ui/disposition")
        assert page.status_code == 200
        eligible = page.text.split('id="eligible"')[1].split("</table>")[0]
        held = page.text.split('id="held"')[1].split("</table>")[0]
        assert all(d[:12] in eligible for d in archive.old) and archive.held[:12] not in eligible
        assert archive.held[:12] in held and "held" in held
        assert "Type 2 to confirm" in page.text and archive.patient_name not in page.text
        fields = {**_plan_fields(page.text), "approved_by": "HIM Director", "reason": "2026 annual schedule"}

        wrong = client.post("/ui/disposition", data={**fields, "confirm": "3"})
        assert wrong.status_code == 422 and "type 2, the number of documents" in wrong.text
        unapproved = client.post("/ui/disposition", data={**fields, "approved_by": "", "confirm": "2"})
        assert unapproved.status_code == 422 and "department manager" in unapproved.text
        stale = client.post("/ui/disposition", data={**fields, "plan": "0" * 64, "confirm": "2"})
        assert stale.status_code == 409 and "changed since the page was shown" in stale.text
        tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
        later = client.post("/ui/disposition", data={**fields, "as_of": tomorrow, "confirm": "2"})
        assert later.status_code == 422 and "later day is a preview" in later.text
        assert all(_status(archive, d) != "disposed" for d in [*archive.old, archive.held])

        done = client.post("/ui/disposition", data={**fields, "confirm": "2"}, follow_redirects=False)
        assert done.status_code == 303
        certificate_url = done.headers["location"]
        disposition_id = certificate_url.rsplit("/", 1)[1]
        cert = client.get(certificate_url)
        assert cert.status_code == 200 and "Certificate of destruction" in cert.text
        destroyed = cert.text.split('id="destroyed"')[1].split("</table>")[0]
        assert all(d in destroyed for d in archive.old) and archive.held not in cert.text
        assert "HIM Director" in cert.text and "2026 annual schedule" in cert.text
        assert "Synthetic Community Hospital" in cert.text and archive.patient_name not in cert.text

        download = client.get(f"{certificate_url}/certificate")
        assert download.status_code == 200 and download.headers["content-type"] == "application/json"
        assert f"certificate-of-destruction-{disposition_id}.json" in download.headers["content-disposition"]
        assert download.json()["certificate_of_destruction"] == disposition_id
        after = client.get("/ui/disposition")
        assert f'href="/ui/disposition/{disposition_id}"' in after.text
        assert "Eligible for destruction (0)" in after.text and "Past retention but held (1)" in after.text

    assert [_status(archive, d) for d in archive.old] == ["disposed", "disposed"]
    assert _status(archive, archive.held) != "disposed" and _status(archive, archive.current) != "disposed"
    with Services(archive.settings) as services, services.parts.sessions() as s:
        row = s.get(Disposition, disposition_id)
        assert row is not None and row.status == "complete" and row.approved_by == "HIM Director"
        assert hashlib.sha256(download.content).hexdigest() == row.certificate_sha256  # the archived bytes
    (run,) = _entries(archive.settings, "disposition.execute")
    assert run.actor.startswith("user:") and run.detail == {"destroyed": 2, "refused": 0}


def test_archive_check_reports_a_deleted_object_as_missing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", workers=1, _env_file=None)
    with Services(settings) as services:
        (kept,) = ingest(
            services, chart_pdf(tmp_path / "a.pdf", mrn="00720001", dob="01/02/1970", dos="03/04/2024")
        )
        (gone,) = ingest(
            services, chart_pdf(tmp_path / "b.pdf", mrn="00720002", dob="01/02/1970", dos="03/04/2024")
        )
        services.access.create_user("admin", "Test admin", "admin", password=PASSWORD)
    with web_client(settings, "admin") as client:
        page = client.get("/ui/admin/check")
        assert page.status_code == 200 and "Quick check" in page.text and "check-result" not in page.text
        started = client.post(
            "/ui/admin/check", data={"csrf": csrf_of(page.text), "fixity": "full"}, follow_redirects=False
        )
        assert started.status_code == 303
        assert re.fullmatch(r"/ui/admin/check/jobs/[0-9a-f]{32}", started.headers["location"])
        healthy = follow_job(client, started.headers["location"])
        assert "The archive is consistent" in healthy.text and 'id="job-state">Done<' in healthy.text
        unlinked = healthy.text.split('id="finding-unlinked"')[1].split("</tr>")[0]
        assert '<span class="badge good">0</span>' in unlinked
        with Services(settings) as services:
            services.parts.store.delete_version(document_ref(doc_row(services, gone)), bypass_governance=True)
        for fixity in ("quick", "full"):
            broken = client.post("/ui/admin/check", data={"csrf": csrf_of(page.text), "fixity": fixity})
            if fixity == "full":  # a job: its page, followed to the end
                assert broken.status_code == 200 and "/jobs/" in broken.url.path
                broken = follow_job(client, broken.url.path)
            else:  # answered in the request, as before
                assert broken.status_code == 409
            assert "The archive is not consistent" in broken.text
            missing = broken.text.split('id="finding-missing"')[1].split("</tr>")[0]
            assert f"document:{gone}" in missing and kept not in missing and ">1</span>" in missing
    checks = [e for e in _entries(settings, "archive.check") if e.actor.startswith("user:")]
    assert [e.outcome for e in checks] == ["ok", "inconsistent", "inconsistent"]
    assert len({e.detail["objects"] for e in checks}) == 1 and checks[0].detail["objects"] >= 2
    assert [e.detail["fixity"] for e in checks] == [True, False, True]


def test_audit_entries_filter_and_page_newest_first(archive: RecordsArchive) -> None:
    with Services(archive.settings) as services:
        for i in range(57):
            services.parts.audit_log.record("test:pager", "document.read", "document", f"doc-{i:03d}")
    with web_client(archive.settings, "admin") as client:
        first = client.get("/ui/admin/audit", params={"actor": "test:pager"})
        assert first.status_code == 200 and "Verify the chain now" in first.text
        targets = re.findall(r"<code>(doc-\d{3})</code>", first.text)
        assert targets == [f"doc-{i:03d}" for i in range(56, 6, -1)]  # 50, newest first
        older = (
            re.search(r'href="([^"]+)" rel="next">Older entries', first.text).group(1).replace("&amp;", "&")
        )
        second = client.get(older)
        assert re.findall(r"<code>(doc-\d{3})</code>", second.text) == [
            f"doc-{i:03d}" for i in range(6, -1, -1)
        ]
        assert "Older entries" not in second.text
        newer = (
            re.search(r'href="([^"]+)" rel="prev">Newer entries', second.text).group(1).replace("&amp;", "&")
        )
        assert re.findall(r"<code>(doc-\d{3})</code>", client.get(newer).text) == targets

        one = client.get("/ui/admin/audit", params={"document": "doc-042"})
        assert re.findall(r"<code>(doc-\d{3})</code>", one.text) == ["doc-042"]
        holds = client.get("/ui/admin/audit", params={"action": "hold.place"})
        rows = holds.text.split('id="audit-entries"')[1].split("</table>")[0]
        assert rows.count("<tr>") == 2 and "hold.place" in rows  # the header row and the one hold
        tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
        none = client.get("/ui/admin/audit", params={"actor": "test:pager", "from": tomorrow})
        assert "No entries match the filter" in none.text
        today = datetime.now(UTC).date().isoformat()
        dated = client.get("/ui/admin/audit", params={"actor": "test:pager", "from": today, "to": today})
        assert len(re.findall(r"<code>(doc-\d{3})</code>", dated.text)) == 50
        backwards = client.get("/ui/admin/audit", params={"from": tomorrow, "to": today})
        assert backwards.status_code == 422
        everything = client.get("/ui/admin/audit").text
        assert "Test staff" not in everything and archive.patient_name not in everything
        verified = client.post("/ui/admin/audit", data={"csrf": csrf_of(everything)})
        assert verified.status_code == 200 and "The chain is intact" in verified.text
        assert 'id="audit-entries"' in verified.text
    reads = [e for e in _entries(archive.settings, "audit.read") if e.actor.startswith("user:")]
    assert reads and {"filters": ["actor"], "entries": 50} in [e.detail for e in reads]


def _refused_at(archive: RecordsArchive, file_id: str, days_ago: int) -> None:
    with Services(archive.settings) as services, services.parts.sessions() as s:
        when = datetime.now(UTC) - timedelta(days=days_ago)
        s.execute(update(BatchFile).where(BatchFile.id == file_id).values(created_at=when, updated_at=when))
        s.commit()


def test_quarantine_lists_without_names_and_purges_only_what_was_asked(archive: RecordsArchive) -> None:
    first, second, third = archive.quarantined
    with Services(archive.settings) as services, services.parts.sessions() as s:
        rows = {r.id: r for r in s.scalars(select(BatchFile).where(BatchFile.id.in_(archive.quarantined)))}
        paths = {f: archive.data_dir / rows[f].staged_path for f in archive.quarantined}
    _refused_at(archive, third, days_ago=45)
    assert all(p.exists() for p in paths.values())
    with web_client(archive.settings, "him_admin") as him:
        listed = him.get("/ui/quarantine")
        assert listed.status_code == 200 and all(f in listed.text for f in archive.quarantined)
        assert rows[first].sha256[:16] in listed.text and rows[first].reason in listed.text
        assert archive.file_name not in listed.text and "WAYFARER" not in listed.text
        assert "Purge…" not in listed.text and "/ui/quarantine/purge" not in listed.text
    with web_client(archive.settings, "admin") as admin:
        listed = admin.get("/ui/quarantine")
        assert f'href="/ui/quarantine?file={second}"' in listed.text
        confirm = admin.get("/ui/quarantine", params={"file": second})
        assert "Delete this file" in confirm.text and rows[second].sha256 in confirm.text
        one = admin.post(
            "/ui/quarantine/purge",
            data={"csrf": csrf_of(confirm.text), "file": second},
            follow_redirects=False,
        )
        assert one.status_code == 303 and one.headers["location"] == "/ui/quarantine?purged=1"
        assert not paths[second].exists() and paths[first].exists() and paths[third].exists()

        preview = admin.get("/ui/quarantine", params={"days": 30})
        box = preview.text.split('id="purge-preview"')[1].split("</section>")[0]
        assert third in box and first not in box and "Type 1 to confirm" in box
        fingerprint = re.search(r'name="files" value="([0-9a-f]{64})"', box).group(1)
        form = {"csrf": csrf_of(preview.text), "days": "30", "files": fingerprint}
        wrong = admin.post("/ui/quarantine/purge", data={**form, "confirm": "2"})
        assert wrong.status_code == 422 and "Nothing was purged" in wrong.text and paths[third].exists()
        _refused_at(archive, first, days_ago=40)  # another file comes of age after the list was shown
        moved = admin.post("/ui/quarantine/purge", data={**form, "confirm": "1"})
        assert moved.status_code == 409 and "look at it again" in moved.text
        assert paths[third].exists() and paths[first].exists()
        _refused_at(archive, first, days_ago=0)
        done = admin.post("/ui/quarantine/purge", data={**form, "confirm": "1"}, follow_redirects=False)
        assert done.status_code == 303
        assert not paths[third].exists() and paths[first].exists()
        after = admin.get(done.headers["location"])
        assert "Purged 1 quarantined file" in after.text
        assert after.text.count('<span class="badge">purged</span>') == 2
    purges = _entries(archive.settings, "quarantine.purge")
    assert [e.detail["files"] for e in purges] == [[second], [third]]
    assert all(e.actor.startswith("user:") for e in purges)

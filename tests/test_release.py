"""Release of information end to end: requests, authorizations, approval, stamped packages, disclosures.

Everything goes through the real app with tokens of different roles; packages are
read back with pdfplumber. No mocks: where a test needs a state that only time
would bring (an access window that has run out), it writes that state to the catalog.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pdfplumber
import pytest
from conftest import api_client
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from PIL import Image
from recordsfixtures import chart_pdf, hostile_pdf, ingest
from s3fixtures import *  # noqa: F403 - s3_settings
from sqlalchemy import select

from chartvault.api.auth import POLICY
from chartvault.api.routes.releases import router as releases_router
from chartvault.archive.models import AuditEvent, Document, ReleaseRequest
from chartvault.archive.objectstore import ObjectRef
from chartvault.config import Settings
from chartvault.release.package import REDISCLOSURE_NOTICE, PackageSource, build_package
from chartvault.services import Services

MRN, OTHER_MRN = "00610001", "00610002"


@dataclass
class Roi:
    client: TestClient
    vault: Services
    tokens: dict[str, dict[str, str]]  # who -> Authorization header
    docs: dict[str, str]  # label -> document id

    def as_(self, who: str) -> dict[str, str]:
        return self.tokens[who]

    def call(self, who: str, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, path, headers=self.as_(who), **kw)


def _header(vault: Services, role: str, vendor: str | None = None) -> dict[str, str]:
    """A token of a new named user of ``role`` (releases are decided by named users)."""
    username = f"roi-{role}-{uuid.uuid4().hex[:8]}"
    vault.access.create_user(username, f"ROI {role}", role, vendor=vendor)
    token = vault.access.create_token(None, f"roi {role}", username=username).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def roi(settings, tmp_path: Path) -> Iterator[Roi]:
    """The app, tokens for every party, and four archived born-digital documents of two patients."""
    with api_client(settings) as c:
        vault: Services = c.app.state.services
        tokens = {
            "staff": _header(vault, "staff"),
            "staff2": _header(vault, "staff"),
            "him": _header(vault, "him_admin"),
            "vendor_a": _header(vault, "vendor", "Acme Copy"),
            "vendor_b": _header(vault, "vendor", "Bravo Records"),
            "scanner": _header(vault, "scanner"),
        }
        c.headers.pop("Authorization")
        paths = [
            chart_pdf(tmp_path / "ds2024.pdf", mrn=MRN, dob="03/04/1970", dos="05/06/2024"),
            chart_pdf(
                tmp_path / "pn2023.pdf",
                mrn=MRN,
                dob="03/04/1970",
                dos="01/02/2023",
                title="PROGRESS NOTE",
                body="Subjective: doing well. Objective: afebrile. Assessment and plan: continue care.",
            ),
            chart_pdf(tmp_path / "ds2021.pdf", mrn=MRN, dob="03/04/1970", dos="07/08/2021"),
            chart_pdf(
                tmp_path / "other.pdf", mrn=OTHER_MRN, dob="09/10/1980", dos="05/07/2024", name="OTHER, PAT"
            ),
        ]
        ids = ingest(vault, *paths)
        assert len(ids) == 4
        yield Roi(c, vault, tokens, dict(zip(["ds2024", "pn2023", "ds2021", "other"], ids, strict=True)))


def elements(**changes: Any) -> dict[str, Any]:
    """A complete, valid set of 164.508(c) elements; ``changes`` set or (with None) drop fields."""
    today = date.today()
    base: dict[str, Any] = {
        "description_of_phi": "Discharge summaries and progress notes, 2021-2024",
        "disclosing_party": "Synthetic Community Hospital, HIM department",
        "recipient": "Example Law Office",
        "purposes": ["legal review at the request of the individual"],
        "expires_at": (today + timedelta(days=365)).isoformat(),
        "signed_at": today.isoformat(),
        "signer": "the individual",
        "statements": {"revoke": True, "conditioning": True, "redisclosure": True},
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def scan_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (400, 500), 255).save(buf, format="PNG", dpi=(50, 50))
    return buf.getvalue()


def request_release(roi: Roi, who: str = "staff", **body: Any) -> dict[str, Any]:
    payload = {
        "mrn": MRN,
        "requester_type": "third_party_authorized",
        "recipient": "Example Law Office",
        "recipient_address": "1 Example Plaza, Springfield",
        "purpose": "legal review",
        "vendor": "Acme Copy",
    } | body
    if "criteria" not in payload and "document_ids" not in payload:
        payload["document_ids"] = [roi.docs["ds2024"], roi.docs["pn2023"]]
    r = roi.call(who, "POST", "/releases", json=payload)
    assert r.status_code == 201, r.text
    return r.json()


def upload_authorization(roi: Roi, release_id: str, els: dict[str, Any], who: str = "staff") -> Any:
    return roi.call(
        who,
        "POST",
        f"/releases/{release_id}/authorization",
        files={"image": ("authorization.png", scan_png(), "image/png")},
        data={"elements": json.dumps(els)},
    )


def approved_release(roi: Roi, **body: Any) -> dict[str, Any]:
    """Request (staff), authorize, review and approve (HIM): an approved release for vendor Acme."""
    rel = request_release(roi, **body)
    assert upload_authorization(roi, rel["id"], elements()).status_code == 201
    assert roi.call("him", "POST", f"/releases/{rel['id']}/review").status_code == 200
    r = roi.call("him", "POST", f"/releases/{rel['id']}/approve")
    assert r.status_code == 200, r.text
    return r.json()


# -- the whole flow ------------------------------------------------------------------------------


@pytest.mark.slow
def test_release_end_to_end_through_the_api(roi: Roi) -> None:
    rel = request_release(roi)
    rid = rel["id"]
    assert rel["status"] == "requested" and rel["requested_by"].startswith("token:")
    due = datetime.fromisoformat(rel["due_at"]) - datetime.fromisoformat(rel["received_at"])
    assert due == timedelta(days=30)

    up = upload_authorization(roi, rid, elements())
    assert up.status_code == 201, up.text
    assert up.json()["problems"] == [] and len(up.json()["image_sha256"]) == 64

    # A vendor cannot see the release before it is approved; staff cannot review or approve.
    assert roi.call("vendor_a", "GET", f"/releases/{rid}").status_code == 404
    assert roi.call("staff", "POST", f"/releases/{rid}/approve").status_code == 403
    assert roi.call("him", "POST", f"/releases/{rid}/review").json()["status"] == "in_review"

    # Separation of duties: the HIM token that requested a release cannot approve it.
    own = request_release(roi, who="him")
    assert upload_authorization(roi, own["id"], elements(), who="him").status_code == 201
    assert roi.call("him", "POST", f"/releases/{own['id']}/review").status_code == 200
    refused = roi.call("him", "POST", f"/releases/{own['id']}/approve")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "separation_of_duties"
    assert roi.call("him", "GET", f"/releases/{own['id']}").json()["status"] == "in_review"

    approved = roi.call("him", "POST", f"/releases/{rid}/approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved"
    assert body["approved_document_ids"] == [roi.docs["ds2024"], roi.docs["pn2023"]]
    assert body["package"]["pages"] == 2 and len(body["package"]["sha256"]) == 64

    listed = roi.call("vendor_a", "GET", "/releases").json()["items"]
    assert [r["id"] for r in listed] == [rid]

    pkg = roi.call("vendor_a", "GET", f"/releases/{rid}/package")
    assert pkg.status_code == 200, pkg.text
    assert pkg.headers["content-type"] == "application/pdf"
    assert pkg.headers["x-content-sha256"] == body["package"]["sha256"]
    assert roi.call("staff", "GET", f"/releases/{rid}").json()["status"] == "fulfilled"

    with pdfplumber.open(io.BytesIO(pkg.content)) as pdf:
        texts = [page.extract_text() or "" for page in pdf.pages]
    assert len(texts) == 2
    for n, text in enumerate(texts, start=1):
        flat = " ".join(text.split())
        assert f"page {n} of 2" in flat
        assert rid in flat
        assert REDISCLOSURE_NOTICE in flat
    assert "DISCHARGE SUMMARY" in texts[0] and "MRN: 00610001" in texts[0]  # the text layer is kept
    assert "PROGRESS NOTE" in texts[1]

    accounting = roi.call("him", "GET", f"/patients/{MRN}/disclosures")
    assert accounting.status_code == 200
    (line,) = accounting.json()["disclosures"]
    assert line["release_id"] == rid and line["recipient"] == "Example Law Office"  # the final recipient
    assert line["recipient_address"] == "1 Example Plaza, Springfield"
    assert line["purpose"] == "legal review" and line["vendor"] == "Acme Copy"
    assert line["method"] == "stream" and line["date"][:10] == date.today().isoformat()
    assert "2 page(s)" in line["description"] and "TESTER" not in line["description"]
    assert line["exemption_basis"] == "authorization" and line["accountable"] is False
    assert roi.call("him", "GET", f"/patients/{OTHER_MRN}/disclosures").json()["disclosures"] == []
    assert roi.call("staff", "GET", f"/patients/{MRN}/disclosures").status_code == 403
    assert roi.call("vendor_a", "GET", f"/patients/{MRN}/disclosures").status_code == 403

    # Every step is audited under its caller, with ids only; the package is kept six years.
    with roi.vault.parts.sessions() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.target_id == rid)).all()
        sod = s.scalars(select(AuditEvent).where(AuditEvent.target_id == own["id"])).all()
        pkg_row = s.get(ReleaseRequest, rid)
        assert pkg_row is not None and pkg_row.package_key
        ref = ObjectRef(pkg_row.package_key, pkg_row.package_sha256 or "", pkg_row.package_size or 0)
    actions = {e.action for e in events if e.outcome == "ok"}
    assert {"release.request", "release.approve", "release.fetch", "disclosure.record"} <= actions
    assert any(e.action == "release.fetch" and e.actor.startswith("token:") for e in events)
    assert "Example Law Office" not in json.dumps([e.detail for e in events])
    assert any(
        e.action == "release.approve"
        and e.outcome == "refused"
        and e.detail["reason"] == "separation_of_duties"
        for e in sod
    )
    _mode, until = roi.vault.parts.store.retention(ref)
    assert until is not None and until > datetime.now(UTC) + timedelta(days=365 * 6 - 2)

    # A second fetch is an access of the same disclosure; a staff preview is a read, not a disclosure.
    assert roi.call("vendor_a", "GET", f"/releases/{rid}/package").status_code == 200
    preview = roi.call("him", "GET", f"/releases/{rid}/package")
    assert preview.status_code == 200 and "x-disclosure-id" not in preview.headers
    (line,) = roi.call("him", "GET", f"/patients/{MRN}/disclosures").json()["disclosures"]
    assert line["accesses"] == 2
    assert roi.call("him", "POST", f"/releases/{rid}/close").json()["status"] == "closed"
    assert roi.call("vendor_a", "GET", f"/releases/{rid}/package").status_code == 404


@pytest.mark.slow
def test_request_by_the_patient_is_recorded_but_exempt(roi: Roi) -> None:
    rel = request_release(roi, requester_type="patient", recipient="The individual", vendor="Acme Copy")
    assert roi.call("him", "POST", f"/releases/{rel['id']}/review").status_code == 200
    assert (
        roi.call("him", "POST", f"/releases/{rel['id']}/approve").status_code == 200
    )  # 164.524: no 508 form
    assert roi.call("vendor_a", "GET", f"/releases/{rel['id']}/package").status_code == 200
    (line,) = roi.call("him", "GET", f"/patients/{MRN}/disclosures").json()["disclosures"]
    assert line["accountable"] is False and line["exemption_basis"] == "to_individual"
    only = roi.call("him", "GET", f"/patients/{MRN}/disclosures", params={"accountable_only": True})
    assert only.json()["disclosures"] == []


# -- vendor scoping ------------------------------------------------------------------------------


@pytest.mark.slow
def test_vendor_sees_and_fetches_only_its_own_live_releases(roi: Roi) -> None:
    a = approved_release(roi)
    b = approved_release(roi, vendor="Bravo Records")

    assert roi.call("vendor_b", "GET", f"/releases/{a['id']}/package").status_code == 404
    assert roi.call("vendor_b", "GET", f"/releases/{a['id']}").status_code == 404
    assert [r["id"] for r in roi.call("vendor_b", "GET", "/releases").json()["items"]] == [b["id"]]
    assert roi.call("vendor_a", "GET", f"/releases/{b['id']}/package").status_code == 404

    # Nothing around the release: documents, originals and search are refused to vendors.
    assert roi.call("vendor_a", "GET", f"/documents/{roi.docs['ds2024']}").status_code == 403
    assert roi.call("vendor_a", "GET", f"/documents/{roi.docs['ds2024']}/original").status_code == 403
    assert roi.call("vendor_a", "GET", "/search", params={"q": "discharge"}).status_code == 403
    assert roi.call("vendor_a", "POST", f"/releases/{a['id']}/approve").status_code == 403

    # Revoked: stops at once, even before any fetch.
    assert roi.call(
        "him", "POST", f"/releases/{b['id']}/revoke", json={"reason": "request withdrawn"}
    ).json()["revoked"]
    assert roi.call("vendor_b", "GET", f"/releases/{b['id']}/package").status_code == 404
    assert roi.call("vendor_b", "GET", "/releases").json()["items"] == []
    assert roi.call("him", "GET", f"/releases/{b['id']}/package").status_code == 409

    # Expired: the access window has run out (written to the catalog rather than waited for).
    with roi.vault.parts.sessions() as s:
        row = s.get(ReleaseRequest, a["id"])
        assert row is not None
        row.access_expires_at = datetime.now(UTC) - timedelta(minutes=1)
        s.commit()
    assert roi.call("vendor_a", "GET", f"/releases/{a['id']}/package").status_code == 404
    assert roi.call("vendor_a", "GET", f"/releases/{a['id']}").status_code == 404
    assert roi.call("staff", "GET", f"/releases/{a['id']}").json()["status"] == "expired"
    assert roi.call("him", "GET", f"/patients/{MRN}/disclosures").json()["disclosures"] == []


@pytest.mark.slow
def test_a_vendor_sees_what_it_needs_to_send_the_package_and_no_more(roi: Roi) -> None:
    """A vendor's view of its release held which documents of the chart went in, who at the hospital
    asked and decided (user and token ids) and the HIM's reason for an extension: nothing a copy service
    needs to send the package to its recipient (minimum necessary). Staff still see all of it."""
    rel = request_release(roi)
    assert (
        roi.call(
            "him", "POST", f"/releases/{rel['id']}/extend", json={"reason": "chart at offsite storage"}
        ).status_code
        == 200
    )
    assert upload_authorization(roi, rel["id"], elements()).status_code == 201
    assert roi.call("him", "POST", f"/releases/{rel['id']}/review").status_code == 200
    assert roi.call("him", "POST", f"/releases/{rel['id']}/approve").status_code == 200
    hidden = (
        "document_ids",
        "approved_document_ids",
        "criteria",
        "extension_reason",
        "requested_by",
        "requested_by_user",
        "decided_by",
        "decided_by_user",
    )
    listed = roi.call("vendor_a", "GET", "/releases").json()["items"]
    one = roi.call("vendor_a", "GET", f"/releases/{rel['id']}").json()
    for view in (listed[0], one):
        assert view["id"] == rel["id"] and view["package"] is not None and view["recipient"]
        assert {k: view[k] for k in hidden} == dict.fromkeys(hidden), view
    staff = roi.call("staff", "GET", f"/releases/{rel['id']}").json()
    assert staff["approved_document_ids"] and staff["requested_by_user"] and staff["extension_reason"]


@pytest.mark.slow
def test_revoking_the_authorization_stops_the_release(roi: Roi) -> None:
    rel = approved_release(roi)
    r = roi.call("him", "POST", f"/releases/{rel['id']}/revoke", json={"authorization_revoked": True})
    assert r.status_code == 200 and r.json()["revoked"]
    assert roi.call("vendor_a", "GET", f"/releases/{rel['id']}/package").status_code == 404
    auths = roi.call("him", "GET", f"/releases/{rel['id']}").json()["authorizations"]
    assert all(a["revoked_at"] for a in auths)


# -- approval refusals ---------------------------------------------------------------------------


YESTERDAY = (date.today() - timedelta(days=1)).isoformat()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"expires_at": YESTERDAY}, "expired"),
        ({"revoked_at": YESTERDAY}, "revoked"),
        ({"recipient": None}, "missing_recipient"),
        ({"description_of_phi": "  "}, "missing_description_of_phi"),
        ({"expires_at": None}, "missing_expiration"),
        ({"signer": None}, "missing_signer"),
        ({"signed_by_representative": True}, "missing_representative_authority"),
        ({"statements": {"revoke": True, "conditioning": True}}, "missing_statement_redisclosure"),
        ({"statements": {"revoke": True, "redisclosure": True}}, "missing_statement_conditioning"),
    ],
)
def test_approval_refused_for_a_defective_authorization(roi: Roi, changes: dict[str, Any], code: str) -> None:
    rel = request_release(roi)
    assert upload_authorization(roi, rel["id"], elements(**changes)).status_code == 201
    assert roi.call("him", "POST", f"/releases/{rel['id']}/review").status_code == 200
    r = roi.call("him", "POST", f"/releases/{rel['id']}/approve")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "approval_refused"
    assert code in [p["code"] for p in err["problems"]]
    assert "Example Law Office" not in r.text and MRN not in r.text  # codes and ids only
    state = roi.call("him", "GET", f"/releases/{rel['id']}").json()
    assert state["status"] == "in_review" and state["package"] is None
    assert roi.call("vendor_a", "GET", f"/releases/{rel['id']}/package").status_code == 404


@pytest.mark.slow
def test_approval_refused_without_an_authorization(roi: Roi) -> None:
    rel = request_release(roi)
    roi.call("him", "POST", f"/releases/{rel['id']}/review")
    r = roi.call("him", "POST", f"/releases/{rel['id']}/approve")
    assert r.status_code == 422
    assert [p["code"] for p in r.json()["error"]["problems"]] == ["missing_authorization"]


@pytest.mark.slow
def test_sensitive_document_needs_an_authorization_that_names_it(roi: Roi) -> None:
    with roi.vault.parts.sessions() as s:  # the classifier has no such type yet: HIM filed it by hand
        doc = s.get(Document, roi.docs["pn2023"])
        assert doc is not None
        doc.doc_type = "psychotherapy_note"
        s.commit()
    rel = request_release(roi)
    upload_authorization(roi, rel["id"], elements())
    roi.call("him", "POST", f"/releases/{rel['id']}/review")
    r = roi.call("him", "POST", f"/releases/{rel['id']}/approve")
    assert r.status_code == 422
    assert [p["code"] for p in r.json()["error"]["problems"]] == ["uncovered_psychotherapy_note"]

    # Even the patient's own request needs it (psychotherapy notes are outside the right of access).
    own = request_release(roi, requester_type="patient", recipient="The individual")
    roi.call("him", "POST", f"/releases/{own['id']}/review")
    r = roi.call("him", "POST", f"/releases/{own['id']}/approve")
    assert [p["code"] for p in r.json()["error"]["problems"]] == ["missing_authorization"]

    # A separate authorization naming psychotherapy notes: approved.
    upload_authorization(roi, rel["id"], elements(covers_psychotherapy_notes=True))
    ok = roi.call("him", "POST", f"/releases/{rel['id']}/approve")
    assert ok.status_code == 200, ok.text


# -- deadlines -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_due_date_one_extension_and_overdue_listing(roi: Roi) -> None:
    rel = request_release(roi)
    received = datetime.fromisoformat(rel["received_at"])
    assert datetime.fromisoformat(rel["due_at"]) == received + timedelta(days=30)

    assert roi.call("him", "POST", f"/releases/{rel['id']}/extend", json={"reason": " "}).status_code == 422
    ext = roi.call("him", "POST", f"/releases/{rel['id']}/extend", json={"reason": "records off site"})
    assert ext.status_code == 200, ext.text
    assert datetime.fromisoformat(ext.json()["due_at"]) == received + timedelta(days=60)
    assert ext.json()["extended"] and ext.json()["extension_reason"] == "records off site"
    again = roi.call("him", "POST", f"/releases/{rel['id']}/extend", json={"reason": "still looking"})
    assert again.status_code == 409
    assert "only one extension" in again.json()["error"]["message"]
    assert roi.call("staff", "POST", f"/releases/{rel['id']}/extend", json={"reason": "x"}).status_code == 403

    late = request_release(roi, received_at=(datetime.now(UTC) - timedelta(days=31)).isoformat())
    assert late["overdue"] is True
    overdue = roi.call("staff", "GET", "/releases", params={"overdue": True}).json()["items"]
    assert [r["id"] for r in overdue] == [late["id"]]
    # Past due, an extension is too late (it had to be given within the first 30 days).
    assert roi.call("him", "POST", f"/releases/{late['id']}/extend", json={"reason": "x"}).status_code == 409
    # Deciding it takes it off the overdue list.
    deny = roi.call("him", "POST", f"/releases/{late['id']}/deny", json={"reason": "not a valid request"})
    assert deny.status_code == 200 and deny.json()["status"] == "denied"
    assert roi.call("staff", "GET", "/releases", params={"overdue": True}).json()["items"] == []
    denied = roi.call("staff", "GET", "/releases", params={"status": "denied"}).json()["items"]
    assert [r["id"] for r in denied] == [late["id"]]


@pytest.mark.slow
def test_requester_cannot_deny_and_decisions_follow_the_states(roi: Roi) -> None:
    own = request_release(roi, who="him")
    r = roi.call("him", "POST", f"/releases/{own['id']}/deny", json={"reason": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "separation_of_duties"
    rel = request_release(roi)
    upload_authorization(roi, rel["id"], elements())
    r = roi.call("him", "POST", f"/releases/{rel['id']}/approve")  # not reviewed yet
    assert r.status_code == 409
    assert roi.call("him", "POST", f"/releases/{rel['id']}/review").status_code == 200
    assert roi.call("him", "POST", f"/releases/{rel['id']}/review").status_code == 409
    assert roi.call("him", "POST", "/releases/nope/approve").status_code == 404


# -- minimum necessary ---------------------------------------------------------------------------


@pytest.mark.slow
def test_criteria_resolve_to_matching_documents_at_approval(roi: Roi) -> None:
    with roi.vault.parts.sessions() as s:
        types = {k: s.get(Document, v).doc_type for k, v in roi.docs.items()}  # type: ignore[union-attr]
    assert types == {
        "ds2024": "discharge_summary",
        "pn2023": "progress_note",
        "ds2021": "discharge_summary",
        "other": "discharge_summary",
    }
    criteria = {"from": "2022-01-01", "to": "2024-12-31", "types": ["discharge_summary"]}
    rel = request_release(roi, criteria=criteria)
    assert rel["document_ids"] is None and rel["approved_document_ids"] is None
    upload_authorization(roi, rel["id"], elements())
    roi.call("him", "POST", f"/releases/{rel['id']}/review")
    body = roi.call("him", "POST", f"/releases/{rel['id']}/approve").json()
    # Only this patient's discharge summary inside the dates (not 2021's, not the progress note,
    # not the other patient's discharge summary of the same week).
    assert body["approved_document_ids"] == [roi.docs["ds2024"]]
    assert body["package"]["pages"] == 1

    wide = request_release(roi, criteria={"from": "2021-01-01"})
    upload_authorization(roi, wide["id"], elements())
    roi.call("him", "POST", f"/releases/{wide['id']}/review")
    body = roi.call("him", "POST", f"/releases/{wide['id']}/approve").json()
    assert body["approved_document_ids"] == [roi.docs["ds2021"], roi.docs["pn2023"], roi.docs["ds2024"]]

    bad = roi.call("staff", "POST", "/releases", json=_body(criteria={}))
    assert bad.status_code == 422
    bad = roi.call("staff", "POST", "/releases", json=_body(criteria={"types": ["recipe"]}))
    assert bad.status_code == 422
    # Explicit ids must be this patient's live documents.
    bad = roi.call("staff", "POST", "/releases", json=_body(document_ids=[roi.docs["other"]]))
    assert bad.status_code == 422 and roi.docs["other"] in bad.json()["error"]["message"]
    assert MRN not in bad.json()["error"]["message"]


def _body(**changes: Any) -> dict[str, Any]:
    base = {
        "mrn": MRN,
        "requester_type": "third_party_authorized",
        "recipient": "Example Law Office",
        "purpose": "legal review",
    }
    return base | changes


# -- the package ---------------------------------------------------------------------------------


def test_package_turns_images_into_stamped_pages(tmp_path: Path) -> None:
    png = tmp_path / "scan.png"
    Image.new("L", (850, 1100), 255).save(png, dpi=(100, 100))
    tif = tmp_path / "scan.tif"
    frames = [Image.new("1", (850, 1100), 1) for _ in range(3)]
    frames[0].save(tif, save_all=True, append_images=frames[1:], dpi=(100, 100))
    pdf_path = chart_pdf(tmp_path / "a.pdf", mrn=MRN, dob="03/04/1970", dos="05/06/2024")
    built = build_package(
        "rel123",
        [
            PackageSource("d1", png, "image/png", 1, 1),
            PackageSource("d2", tif, "image/tiff", 2, 2),  # frames 2-3 of the file
            PackageSource("d3", pdf_path, "application/pdf", 1, 1),
        ],
        tmp_path / "out.pdf",
    )
    assert built.pages == 4
    with pdfplumber.open(built.path) as pdf:
        assert [round(p.width) for p in pdf.pages] == [612, 612, 612, 612]  # 850 px at 100 dpi
        for n, page in enumerate(pdf.pages, start=1):
            text = " ".join((page.extract_text() or "").split())
            assert f"Release rel123 - page {n} of 4" in text and REDISCLOSURE_NOTICE in text
        assert len(pdf.pages[0].images) == 1
        assert "DISCHARGE SUMMARY" in pdf.pages[3].extract_text()


def test_package_carries_no_active_content_of_an_uploaded_pdf(tmp_path: Path) -> None:
    """A scanner's PDF went into the package the hospital sends out as it was: its page-open JavaScript,
    JavaScript and program-launching links and attached files reached the vendor and the recipient under
    the hospital's stamp. The package keeps the pages' text, images and notes, and nothing that runs."""
    import pikepdf

    built = build_package(
        "rel9",
        [PackageSource("d1", hostile_pdf(tmp_path / "h.pdf", MRN), "application/pdf", 1, 1)],
        tmp_path / "out.pdf",
    )
    raw = built.path.read_bytes()
    for active in (
        b"/JavaScript",
        b"/JS",
        b"/Launch",
        b"/OpenAction",
        b"/AA",
        b"/FileAttachment",
        b"evil.example",
    ):
        assert active not in raw, active
    with pikepdf.open(built.path) as pdf:
        assert len(pdf.pages) == 1
    with pdfplumber.open(built.path) as pdf:
        assert "DISCHARGE SUMMARY" in pdf.pages[0].extract_text()
    assert hashlib.sha256(raw).hexdigest() == built.sha256 and len(raw) == built.size


# -- policy and CLI ------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_release_route_is_in_the_policy_and_refuses_without_a_token(roi: Roi) -> None:
    routes = [(m, r.path) for r in releases_router.routes if isinstance(r, APIRoute) for m in r.methods]
    assert len(routes) == 14  # with POST /patients/disclosures, the MRN in its body
    for method, path in routes:
        assert (method, path) in POLICY, (method, path)
        url = path.replace("{release_id}", "x").replace("{mrn}", MRN)
        assert roi.client.request(method, url).status_code == 401
        assert roi.call("scanner", method, url).status_code == 403


@pytest.mark.slow
def test_cli_release_list_and_disclosures(roi: Roi, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from chartvault.cli import app

    rel = approved_release(roi)
    assert roi.call("vendor_a", "GET", f"/releases/{rel['id']}/package").status_code == 200
    late = request_release(roi, received_at=(datetime.now(UTC) - timedelta(days=40)).isoformat())
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(roi.vault.settings.data_dir))
    runner = CliRunner()
    res = runner.invoke(app, ["release", "list", "--overdue", "--json"])
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in json.loads(res.stdout)["items"]] == [late["id"]]
    res = runner.invoke(app, ["release", "list"])
    assert res.exit_code == 0 and "2 release(s)" in res.stdout
    res = runner.invoke(app, ["disclosures", MRN, "--json"])
    assert res.exit_code == 0, res.output
    (line,) = json.loads(res.stdout)["disclosures"]
    assert line["release_id"] == rel["id"] and line["recipient"] == "Example Law Office"
    res = runner.invoke(app, ["disclosures", MRN])
    assert res.exit_code == 0 and "1 disclosure(s)" in res.stdout


# -- presigned URLs (S3 store) -------------------------------------------------------------------


@pytest.mark.slow
def test_presigned_redirect_needs_the_s3_store(roi: Roi) -> None:
    rel = approved_release(roi)
    r = roi.call("vendor_a", "GET", f"/releases/{rel['id']}/package", params={"redirect": "presigned"})
    assert r.status_code == 409
    assert roi.call("him", "GET", f"/patients/{MRN}/disclosures").json()["disclosures"] == []


@pytest.mark.slow
def test_presigned_redirect_on_s3_records_the_disclosure_first(s3_settings: Settings, tmp_path: Path) -> None:
    import hashlib

    import httpx

    settings = Settings(
        data_dir=tmp_path / "data",
        workers=1,
        _env_file=None,
        object_store="s3",
        s3_endpoint=s3_settings.s3_endpoint,
        s3_access_key=s3_settings.s3_access_key,
        s3_secret_key=s3_settings.s3_secret_key,
        s3_secure=s3_settings.s3_secure,
        s3_cert_check=s3_settings.s3_cert_check,
        s3_bucket=f"cv-roi-{uuid.uuid4().hex[:16]}",
    )
    with api_client(settings) as c:
        vault: Services = c.app.state.services
        staff, him = _header(vault, "staff"), _header(vault, "him_admin")
        vendor = _header(vault, "vendor", "Acme Copy")
        (doc_id,) = ingest(vault, chart_pdf(tmp_path / "a.pdf", mrn=MRN, dob="03/04/1970", dos="05/06/2024"))
        rel = c.post("/releases", headers=staff, json=_body(document_ids=[doc_id], vendor="Acme Copy")).json()
        c.post(
            f"/releases/{rel['id']}/authorization",
            headers=staff,
            files={"image": ("authorization.png", scan_png(), "image/png")},
            data={"elements": json.dumps(elements())},
        )
        c.post(f"/releases/{rel['id']}/review", headers=him)
        approved = c.post(f"/releases/{rel['id']}/approve", headers=him).json()
        r = c.get(
            f"/releases/{rel['id']}/package",
            headers=vendor,
            params={"redirect": "presigned"},
            follow_redirects=False,
        )
        assert r.status_code == 307, r.text
        url = r.headers["location"]
        assert "X-Amz-Expires=" in url and int(url.split("X-Amz-Expires=")[1].split("&")[0]) <= 900
        (line,) = c.get(f"/patients/{MRN}/disclosures", headers=him).json()["disclosures"]
        assert line["method"] == "presigned_url" and line["release_id"] == rel["id"]
        body = httpx.get(url).content
        assert hashlib.sha256(body).hexdigest() == approved["package"]["sha256"]


# -- separation of duties per person, disclosures, misfiles after approval ------------------------


def _user_token(vault: Services, username: str, role: str, *, by: Services | None = None) -> dict[str, str]:
    token = (by or vault).access.create_token(None, f"{username} token", username=username).token
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
def test_separation_of_duties_compares_people_not_tokens(roi: Roi) -> None:
    vault, c = roi.vault, roi.client
    vault.access.create_user("him-ann", "Ann", "him_admin")
    vault.access.create_user("him-bob", "Bob", "him_admin")
    ann = _user_token(vault, "him-ann", "him_admin")
    rel = c.post("/releases", headers=ann, json=_body(document_ids=[roi.docs["ds2024"]])).json()
    assert rel["requested_by_user"] is not None
    upload_authorization(roi, rel["id"], elements())
    c.post(f"/releases/{rel['id']}/review", headers=roi.as_("him"))

    # Ann's second token, made through POST /tokens by Ann herself: still Ann.
    second = c.post("/tokens", headers=ann, json={"name": "ann again"})
    assert second.status_code == 201 and second.json()["role"] == "him_admin"
    ann2 = {"Authorization": f"Bearer {second.json()['token']}"}
    r = c.post(f"/releases/{rel['id']}/approve", headers=ann2)
    assert r.status_code == 403 and r.json()["error"]["code"] == "separation_of_duties"

    # A token Ann's admin-self would make for someone else is refused to non-admins...
    assert c.post("/tokens", headers=ann, json={"name": "for bob", "user": "him-bob"}).status_code == 403
    # ...and one made by the requester for another user may not decide either.
    vault.access.create_user("adm-ann", "Ann (admin)", "admin")
    adm = _user_token(vault, "adm-ann", "admin")
    own = c.post("/releases", headers=adm, json=_body(document_ids=[roi.docs["pn2023"]])).json()
    upload_authorization(roi, own["id"], elements())
    c.post(f"/releases/{own['id']}/review", headers=roi.as_("him"))
    for_bob = c.post("/tokens", headers=adm, json={"name": "for bob", "user": "him-bob"})
    assert for_bob.status_code == 201
    bob_by_ann = {"Authorization": f"Bearer {for_bob.json()['token']}"}
    r = c.post(f"/releases/{own['id']}/deny", headers=bob_by_ann, json={"reason": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "separation_of_duties"

    # Bob with his own token decides; a token of no user decides nothing.
    bob = _user_token(vault, "him-bob", "him_admin")
    legacy = {"Authorization": f"Bearer {vault.access.create_token('him_admin', 'legacy').token}"}
    r = c.post(f"/releases/{own['id']}/deny", headers=legacy, json={"reason": "x"})
    assert r.status_code == 403 and "no user" in r.json()["error"]["message"]
    approved = c.post(f"/releases/{rel['id']}/approve", headers=bob)
    assert approved.status_code == 200 and approved.json()["decided_by_user"] is not None

    # A disabled user's tokens stop working.
    vault.access.disable_user("him-bob")
    assert c.get("/releases", headers=bob).status_code == 401


@pytest.mark.slow
def test_staff_marking_it_sent_is_the_disclosure_and_a_vendor_fetch_an_access(roi: Roi) -> None:
    rel = approved_release(roi)
    rid = rel["id"]
    assert roi.call("him", "GET", f"/releases/{rid}/package").status_code == 200  # a preview
    assert roi.call("staff", "GET", f"/releases/{rid}").json()["status"] == "approved"
    assert roi.call("him", "GET", f"/patients/{MRN}/disclosures").json()["disclosures"] == []
    sent = roi.call("him", "POST", f"/releases/{rid}/sent")
    assert sent.status_code == 200 and sent.json()["status"] == "fulfilled" and sent.json()["sent_at"]
    assert roi.call("vendor_a", "GET", f"/releases/{rid}/package").status_code == 200
    (line,) = roi.call("him", "GET", f"/patients/{MRN}/disclosures").json()["disclosures"]
    assert line["method"] == "sent" and line["accesses"] == 2
    with roi.vault.parts.sessions() as s:
        previews = s.scalars(select(AuditEvent).where(AuditEvent.action == "release.preview")).all()
        assert [p.detail["documents"] for p in previews] == [rel["approved_document_ids"]]


@pytest.mark.slow
def test_refiling_after_approval_suspends_and_rerecords_the_disclosure(roi: Roi) -> None:
    pending = approved_release(roi, criteria={"types": ["discharge_summary"]}, document_ids=None)
    fetched = approved_release(roi, document_ids=[roi.docs["ds2024"], roi.docs["pn2023"]])
    assert roi.call("vendor_a", "GET", f"/releases/{fetched['id']}/package").status_code == 200

    roi.vault.records.correct_misfile(roi.docs["ds2024"], OTHER_MRN, "belongs to the other patient")

    for rel in (pending, fetched):
        r = roi.call("vendor_a", "GET", f"/releases/{rel['id']}/package")
        assert r.status_code == 409 and r.json()["error"]["code"] == "release_suspended", r.text
        assert "approve it again" in r.json()["error"]["message"]
        view = roi.call("staff", "GET", f"/releases/{rel['id']}").json()
        assert view["suspended"] and view["status"] == "in_review"

    # The patient whose record left sees it in their accounting, flagged for a privacy review.
    (moved,) = roi.call("him", "GET", f"/patients/{OTHER_MRN}/disclosures").json()["disclosures"]
    assert moved["document_ids"] == [roi.docs["ds2024"]] and moved["privacy_review"]
    assert moved["release_id"] == fetched["id"] and moved["accountable"]
    (original,) = roi.call("him", "GET", f"/patients/{MRN}/disclosures").json()["disclosures"]
    assert original["privacy_review"] and moved["corrects_disclosure_id"] == original["id"]

    # Approved again: the package is rebuilt from the corrected record and may leave again.
    again = roi.call("him", "POST", f"/releases/{pending['id']}/approve")
    assert again.status_code == 200, again.text
    assert roi.docs["ds2024"] not in again.json()["approved_document_ids"] and not again.json()["suspended"]
    assert roi.call("vendor_a", "GET", f"/releases/{pending['id']}/package").status_code == 200

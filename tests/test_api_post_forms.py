"""The API's search forms (FHIR's ``POST [type]/_search``): ``POST /search``, ``POST /patients/timeline``,
``POST /patients/disclosures`` and the DOB routes take the MRN, the name and the words in a JSON body, so a
program need not put them in a URL (proxies' access logs keep whole URLs). Each answers, pages and is
audited exactly as its GET twin, for the same roles; the ``{mrn}`` routes stay, deprecated."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from webfixtures import web_client

from chartvault.archive.models import AuditEvent
from chartvault.policy import POLICY

pytestmark = pytest.mark.slow  # the real app over the ingested archive

# Where a parameter names a patient (a path's {name} is a report's): the MRN, the name, a search's words.
NAMES_A_PATIENT = {("path", "mrn"), ("query", "mrn"), ("query", "name"), ("query", "q")}
# The routes whose MRN (or name) is in the URL, and their twins that take it in the body.
TWINS = {
    ("GET", "/search"): ("POST", "/search"),
    ("GET", "/patients/{mrn}/timeline"): ("POST", "/patients/timeline"),
    ("GET", "/patients/{mrn}/disclosures"): ("POST", "/patients/disclosures"),
    ("POST", "/patients/{mrn}/dob-correction"): ("POST", "/patients/dob-correction"),
    ("POST", "/patients/{mrn}/dob"): ("POST", "/patients/dob"),
}


def _last(client, action: str) -> tuple:
    """The newest audit entry of ``action``, as what it says (actor, target, outcome, detail)."""
    with client.app.state.services.parts.sessions() as s:
        e = s.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id.desc())
        ).first()
        assert e is not None, action
        return (e.actor, e.target_type, e.target_id, e.outcome, e.detail)


def _as(client, role: str) -> dict[str, str]:
    token = client.app.state.services.access.create_token(role, f"post forms {role}").token
    return {"Authorization": f"Bearer {token}"}


def test_post_search_answers_pages_and_is_audited_as_get(web_archive) -> None:
    mrn, doc = web_archive.mrns["ed_note"], web_archive.docs["ed_note"]
    with web_client(web_archive.settings) as client:
        staff = _as(client, "staff")
        name = client.app.state.services.documents.get(doc).identifiers.name.value.split(",")[0]
        for fields in (
            {"mrn": mrn},
            {"q": "chest pain"},
            {"name": name},
            {"q": "pain", "type": "ed_note", "from": "2000-01-01", "to": "2030-12-31", "sort": "date_desc"},
            {"mrn": "00000001"},  # no such patient: audited under a keyed hash, either way
        ):
            got = client.get("/search", params=fields, headers=staff)
            audited = _last(client, "search")
            posted = client.post("/search", json=fields, headers=staff)
            assert got.status_code == posted.status_code == 200, (fields, posted.text)
            assert posted.json() == got.json(), fields
            assert _last(client, "search") == audited, fields
        assert (
            client.post("/search", json={"mrn": mrn}, headers=staff).json()["hits"][0]["document_id"] == doc
        )

        broad = {"from": "1900-01-01", "limit": 1}
        first = client.post("/search", json=broad, headers=staff).json()
        assert first["total"] > 1 and first["next_cursor"]
        by_get = client.get("/search", params={**broad, "cursor": first["next_cursor"]}, headers=staff)
        by_post = client.post("/search", json={**broad, "cursor": first["next_cursor"]}, headers=staff)
        assert by_post.json() == by_get.json() and by_post.json()["hits"] != first["hits"]
        forged = client.post("/search", json={"q": "pain", "cursor": first["next_cursor"]}, headers=staff)
        assert forged.status_code == 422 and forged.json()["error"]["code"] == "bad_cursor"

        for bad in ({}, {"limit": 0}, {"offset": 10**9}, {"from": "yesterday"}, {"sort": "random"}):
            assert client.post("/search", json=bad, headers=staff).status_code == 422, bad
        assert client.post("/search", json={"mrn": mrn}, headers=_as(client, "scanner")).status_code == 403
        assert client.post("/search", json={"mrn": mrn}).status_code == 401


def test_post_timeline_and_disclosures_answer_and_are_audited_as_get(web_archive) -> None:
    mrn = web_archive.mrns["shoulder"]
    with web_client(web_archive.settings) as client:
        staff, him = _as(client, "staff"), _as(client, "him_admin")
        got = client.get(f"/patients/{mrn}/timeline", headers=staff)
        audited = _last(client, "patient.timeline")
        posted = client.post("/patients/timeline", json={"mrn": mrn}, headers=staff)
        assert got.status_code == posted.status_code == 200 and posted.json() == got.json()
        assert posted.json()["total"] >= 1 and _last(client, "patient.timeline") == audited
        assert client.post("/patients/timeline", json={}, headers=staff).status_code == 422

        for body in ({"mrn": mrn}, {"mrn": mrn, "accountable_only": True}):
            params = {"accountable_only": body.get("accountable_only", False)}
            got = client.get(f"/patients/{mrn}/disclosures", params=params, headers=him)
            audited = _last(client, "disclosure.accounting")
            posted = client.post("/patients/disclosures", json=body, headers=him)
            assert got.status_code == posted.status_code == 200 and posted.json() == got.json()
            assert _last(client, "disclosure.accounting") == audited
        assert client.post("/patients/disclosures", json={"mrn": mrn}, headers=staff).status_code == 403

        preview = client.post(f"/patients/{mrn}/dob-correction", json={}, headers=him)
        audited = _last(client, "patient.retention_read")
        by_body = client.post("/patients/dob-correction", json={"mrn": mrn}, headers=him)
        assert preview.status_code == by_body.status_code == 200 and by_body.json() == preview.json()
        assert _last(client, "patient.retention_read") == audited
        assert client.post("/patients/dob-correction", json={"mrn": mrn}, headers=staff).status_code == 403


def test_every_route_with_patient_data_in_its_url_has_a_twin_for_the_same_roles(web_archive) -> None:
    """In the OpenAPI document, each operation taking an MRN or a name in its path or query has a POST twin
    taking it in the body, allowed to exactly the same roles; the ``{mrn}`` ones are deprecated."""
    with web_client(web_archive.settings) as client:
        paths = client.app.openapi()["paths"]
    in_url = {
        (method.upper(), path)
        for path, ops in paths.items()
        for method, op in ops.items()
        if any((p["in"], p["name"]) in NAMES_A_PATIENT for p in op.get("parameters", []))
    }
    assert in_url == set(TWINS), in_url
    for (method, path), (twin_method, twin) in TWINS.items():
        assert twin_method.lower() in paths[twin], twin
        body = paths[twin][twin_method.lower()]["requestBody"]
        assert body["required"] and "application/json" in body["content"], twin
        assert POLICY[(twin_method, twin)] == POLICY[(method, path)], twin
        assert paths[path][method.lower()].get("deprecated", False) == ("{mrn}" in path), path
        assert not paths[twin][twin_method.lower()].get("deprecated", False), twin

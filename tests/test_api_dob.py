"""A patient's DOB correction over the API (``POST /patients/{mrn}/dob-correction``, ``POST
/patients/{mrn}/dob``) and the CLI's ``retention correct-dob --dry-run``: the web page's preview and
correction, for the same roles, audited the same way, refused for the same impossible dates.

A born-digital chart (no OCR time) through the real pipeline on SQLite; the real app through FastAPI's
TestClient with tokens of each role. Every name, number and date is invented.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import api_client
from recordsfixtures import chart_pdf
from sqlalchemy import select
from typer.testing import CliRunner

from chartvault.archive.models import AuditEvent, Document, Patient
from chartvault.config import Settings
from chartvault.services import Services

MRN, DOB, DOS = "00420003", "1970-03-04", "2020-05-06"
CHILD = "2015-01-01"  # a child at the visit: majority (2033-01-01) + 3 years beats 10 years after it


@pytest.fixture
def chart(settings: Settings, tmp_path: Path) -> str:
    """One archived chart of an adult: kept 10 years after the visit (2030-05-06, ``ahima.adult``)."""
    pdf = chart_pdf(tmp_path / "chart.pdf", mrn=MRN, dob="03/04/1970", dos="05/06/2020")
    with Services(settings) as services:
        (doc_id,) = services.intake.ingest([pdf], source="test").files[0].documents
    return doc_id


def _retention(settings: Settings, doc_id: str) -> tuple[date | None, date | None, str | None]:
    with Services(settings) as services, services.parts.sessions() as s:
        doc = s.get(Document, doc_id)
        patient = s.scalars(select(Patient).where(Patient.mrn == MRN)).one()
        assert doc is not None
        return patient.dob, doc.retain_until, doc.retention_rule


def _audit(settings: Settings, action: str) -> list[AuditEvent]:
    with Services(settings) as services, services.parts.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _preview(client, mrn: str, dob: str | None = None):
    """The preview, the date in a JSON body (none: the retention now only)."""
    return client.post(f"/patients/{mrn}/dob-correction", json={"dob": dob} if dob else {})


def test_no_date_of_birth_travels_in_a_url(settings: Settings, chart: str) -> None:
    """Before: the preview was GET /patients/{mrn}/dob-correction?dob=..., so a reverse proxy's access log
    kept a patient's MRN with a date of birth. Now the date goes in a POST body; no API operation takes a
    DOB in its query, and no page form that sends a date of birth is a GET."""
    with api_client(settings, "him_admin") as client:
        old = client.get(f"/patients/{MRN}/dob-correction", params={"dob": CHILD})
        assert old.status_code == 405, old.text
        assert _preview(client, MRN, CHILD).json()["new_dob"] == CHILD
        paths = client.app.openapi()["paths"]
    in_query = [
        (method, path, p["name"])
        for path, ops in paths.items()
        for method, op in ops.items()
        for p in op.get("parameters", [])
        if p["in"] == "query" and "dob" in p["name"].lower()
    ]
    assert in_query == []
    templates = Path(__file__).resolve().parents[1] / "chartvault" / "web" / "templates"
    for template in templates.glob("*.html"):
        for form in re.findall(r"<form\b[^>]*>.*?</form>", template.read_text(), flags=re.S):
            if 'method="post"' not in form.split(">", 1)[0]:
                assert not re.search(r'name="dob"', form), template.name


def test_the_preview_shows_each_document_moving_and_saves_nothing(settings: Settings, chart: str) -> None:
    before = _retention(settings, chart)
    assert before == (date(1970, 3, 4), date(2030, 5, 6), "ahima.adult")
    with api_client(settings, "him_admin") as client:
        now = _preview(client, MRN)
        preview = _preview(client, MRN, CHILD)
    assert now.status_code == 200 and now.json()["new_dob"] is None and now.json()["changed"] == 0
    assert preview.status_code == 200
    body = preview.json()
    assert (body["mrn"], body["dob"], body["new_dob"], body["changed"]) == (MRN, DOB, CHILD, 1)
    (moves,) = body["documents"]
    assert moves["document_id"] == chart and moves["changed"] is True
    assert (moves["retain_until"], moves["rule"]) == ("2030-05-06", "ahima.adult")
    assert (moves["new_retain_until"], moves["new_rule"]) == ("2036-01-01", "ahima.minor")
    assert _retention(settings, chart) == before  # nothing saved
    read = _audit(settings, "patient.retention_read")
    assert len(read) == 2 and all(e.actor.startswith("token:") for e in read)


def _correct(client, mrn: str, body: dict, in_body: bool):
    """The correction, the MRN in the path (deprecated: proxies' logs keep it) or in the body."""
    if in_body:
        return client.post("/patients/dob", json={"mrn": mrn, **body})
    return client.post(f"/patients/{mrn}/dob", json=body)


@pytest.mark.parametrize("in_body", [False, True], ids=["mrn-in-path", "mrn-in-body"])
def test_the_correction_moves_the_retention_and_is_audited_without_a_date(
    settings: Settings, chart: str, in_body: bool
) -> None:
    with api_client(settings, "him_admin") as client:
        done = _correct(client, MRN, {"dob": CHILD}, in_body)
    assert done.status_code == 200, done.text
    assert done.json() == {"mrn": MRN, "dob": CHILD, "documents_changed": [chart]}
    assert _retention(settings, chart) == (date(2015, 1, 1), date(2036, 1, 1), "ahima.minor")
    (corrected,) = _audit(settings, "patient.dob_corrected")
    assert corrected.outcome == "ok" and corrected.detail == {"documents_changed": 1}
    assert corrected.actor.startswith("token:")
    assert CHILD not in json.dumps(corrected.detail) and MRN not in (corrected.target_id or "")


def test_impossible_dates_and_unknown_patients_are_refused_and_change_nothing(
    settings: Settings, chart: str
) -> None:
    before = _retention(settings, chart)
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    with api_client(settings, "admin") as client:
        for dob, code in [(tomorrow, "dob_future"), ("2021-01-01", "dob_after_service")]:
            for answer in (
                _preview(client, MRN, dob),
                client.post("/patients/dob-correction", json={"mrn": MRN, "dob": dob}),
                _correct(client, MRN, {"dob": dob}, in_body=False),
                _correct(client, MRN, {"dob": dob}, in_body=True),
            ):
                assert answer.status_code == 422, answer.text
                assert answer.json()["error"]["code"] == code and dob not in answer.text
        assert _preview(client, MRN, "1970-02-30").status_code == 422
        assert client.post(f"/patients/{MRN}/dob", json={}).status_code == 422
        assert _preview(client, "00999999").status_code == 404
        assert client.post("/patients/00999999/dob", json={"dob": CHILD}).status_code == 404
        assert _correct(client, "00999999", {"dob": CHILD}, in_body=True).status_code == 404
        assert client.post("/patients/dob", json={"dob": CHILD}).status_code == 422  # no MRN
    assert _retention(settings, chart) == before
    refused = [e.detail for e in _audit(settings, "patient.dob_corrected") if e.outcome == "refused"]
    assert refused == [{"problem": "future"}] * 2 + [{"problem": "after_service"}] * 2


def test_only_the_him_roles_may_preview_or_correct(settings: Settings, chart: str) -> None:
    before = _retention(settings, chart)
    for role in ("staff", "scanner", "vendor"):
        with api_client(settings, role, vendor="Acme Copy" if role == "vendor" else None) as client:
            assert _preview(client, MRN, CHILD).status_code == 403
            assert client.post(f"/patients/{MRN}/dob", json={"dob": CHILD}).status_code == 403
    assert _retention(settings, chart) == before
    assert _audit(settings, "patient.dob_corrected") == []


def test_the_cli_dry_run_answers_as_the_api_and_changes_nothing(
    settings: Settings, chart: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chartvault.cli import app

    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    shown = runner.invoke(app, ["retention", "correct-dob", MRN, CHILD, "--dry-run", "--json"])
    assert shown.exit_code == 0, shown.output
    with api_client(settings, "him_admin") as client:
        assert json.loads(shown.stdout) == _preview(client, MRN, CHILD).json()
    table = runner.invoke(app, ["retention", "correct-dob", MRN, CHILD, "--dry-run"])
    assert (
        "1 document(s) would change" in table.output
        and "2030-05-06 (ahima.adult) -> 2036-01-01" in table.output
    )
    assert _retention(settings, chart)[0] == date(1970, 3, 4)
    refused = runner.invoke(app, ["retention", "correct-dob", MRN, "2021-01-01", "--dry-run"])
    assert refused.exit_code == 2 and "after the date of service" in refused.output
    done = runner.invoke(app, ["retention", "correct-dob", MRN, CHILD, "--json"])
    assert done.exit_code == 0 and json.loads(done.stdout)["documents_changed"] == [chart]


def test_the_preview_records_the_documents_it_showed_and_a_refusal_as_refused(
    settings: Settings, chart: str
) -> None:
    """The preview shows the DOB on record and each document's id, date of service and retention: a read
    of the patient's record like a timeline, audited with the ids shown. Before: a count of documents,
    'ok' even when the date was refused and nothing was shown, and nothing at all for an unknown MRN (a
    silent probe of who is in the index)."""
    with api_client(settings, "him_admin") as client:
        assert _preview(client, MRN, CHILD).status_code == 200
        assert _preview(client, MRN, "2021-01-01").status_code == 422
        assert _preview(client, "00999999").status_code == 404
    shown, refused, unknown = _audit(settings, "patient.retention_read")
    with Services(settings) as services:
        patient = services.audit.patient_ref(MRN).split(":", 1)[1]  # the correction's entries name it so
        probe = services.audit.patient_ref("00999999")
    assert (shown.target_id, shown.outcome) == (patient, "ok")
    assert shown.detail == {"results": 1, "documents": [chart], "part": 1, "parts": 1, "dob_given": True}
    assert (refused.target_id, refused.outcome) == (patient, "refused")
    assert refused.detail == {"problem": "after_service", "dob_given": True}
    assert (unknown.target_id, unknown.outcome) == (probe, "not_found")
    assert probe.startswith("hmac:")
    written = json.dumps([[e.target_id, e.detail] for e in (shown, refused, unknown)])
    for phi in (MRN, "00999999", CHILD, "2021-01-01", DOB):
        assert phi not in written


def test_a_dob_before_1880_is_refused_as_the_registration_list_refuses_it(
    settings: Settings, chart: str
) -> None:
    """Before: the year 1 or 1800 was previewed and saved (the registration import and cover sheets refuse
    such a date; here it drove the retention rules)."""
    before = _retention(settings, chart)
    with api_client(settings, "him_admin") as client:
        for dob in ("0001-01-01", "1800-01-01", "1879-12-31"):
            for answer in (
                _preview(client, MRN, dob),
                client.post("/patients/dob-correction", json={"mrn": MRN, "dob": dob}),
                _correct(client, MRN, {"dob": dob}, in_body=False),
                _correct(client, MRN, {"dob": dob}, in_body=True),
            ):
                assert answer.status_code == 422, answer.text
                assert answer.json()["error"]["code"] == "dob_too_early" and dob not in answer.text
        assert _preview(client, MRN, "1880-01-01").status_code == 200
    assert _retention(settings, chart) == before

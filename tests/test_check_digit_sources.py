"""MRNs that do not come from OCR, checked as OCR's are, and an MRN read back by the check digit shown as one
(``CHARTVAULT_MRN_CHECK_DIGIT``, ``chartvault.classify.checkdigit``).

A manifest's MRN, a reviewer's and a registration row's that fail the facility's check digit are typos: the
reviewer and the row are refused, the manifest's document is held for a person and linked to no one. A
document whose pages read only a failing number, read back by one look-alike digit, says so where the
reviewer sees it. Born-digital chart pages (a text layer: read by the same identifier code as OCR text,
without tesseract's time) go through the real pipeline on SQLite with the setting off and on; the API, the
web pages and the CLI run on the same data folder. The cover sheet's case, printed and scanned, is in
``test_barcodes_coversheet.py``. Every name, number and date is invented.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import api_client, as_json
from recordsfixtures import chart_pdf
from sqlalchemy import select
from typer.testing import CliRunner
from webfixtures import PASSWORD, csrf_of, web_client

from chartvault.archive.models import AuditEvent, Patient
from chartvault.config import Settings
from chartvault.errors import InvalidInput
from chartvault.ingest.manifest import parse_manifest
from chartvault.services import Services

# Nine-digit MRNs ending in a Luhn check digit: a patient's number, and the same with one digit turned into
# its look-alike (8 -> 3), which exactly one look-alike change makes valid again.
CHECKED, MISREAD = "004417820", "004417320"
NAME, DOB, DOS = "HOLLOWAY, MARGARET A", "03/14/1952", "05/06/2024"
READ_BACK_NOTE = f"read back by check digit from {MISREAD}"


@dataclass
class Archive:
    settings: Settings
    check: str
    read_back: str  # its page printed MISREAD; no patient was in the index yet
    manifest: str  # its page printed CHECKED, its manifest gave MISREAD; CHECKED is in the index
    manifest_batch: str
    resolvable: str  # a page printing CHECKED, for the reviewer's refusals
    refiled: str  # as read_back, for a refile


def _one(services: Services, path: Path, **batch: object) -> tuple[str, str]:
    """Ingest one file as a batch: (batch id, document id)."""
    summary = services.intake.ingest([path], source="test", **batch)  # type: ignore[arg-type]
    (doc_id,) = summary.files[0].documents
    return summary.batch_id, doc_id


@pytest.fixture(scope="module", params=["none", "luhn"])
def archive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Archive:
    check = request.param
    base = tmp_path_factory.mktemp(f"check-{check}")
    settings = Settings(
        data_dir=base / "data", workers=1, watch_settle_s=0, mrn_check_digit=check, _env_file=None
    )

    def chart(name: str, mrn: str) -> Path:
        return chart_pdf(base / f"{name}.pdf", mrn=mrn, dob=DOB, dos=DOS, name=NAME, title="PROGRESS NOTE")

    with Services(settings) as services:
        _, read_back = _one(services, chart("read_back", MISREAD))
        _, refiled = _one(services, chart("refiled", MISREAD))
        _, resolvable = _one(services, chart("plain", CHECKED))  # opens the patient CHECKED
        manifest_batch, manifest = _one(
            services, chart("manifest", CHECKED), manifest=parse_manifest({"mrn": MISREAD})
        )
        for role in ("him_admin", "staff"):
            services.access.create_user(role, f"Test {role}", role, password=PASSWORD)
    return Archive(settings, check, read_back, manifest, manifest_batch, resolvable, refiled)


# ------------------------------------------------------------------------------------------ the manifest


def test_a_manifest_mrn_failing_the_check_holds_the_document_linked_to_no_one(archive: Archive) -> None:
    with Services(archive.settings) as services:
        doc = as_json(services.documents.get(archive.manifest))
        flags = as_json(services.intake.batch(archive.manifest_batch))["flags"]
        with services.parts.sessions() as s:
            patients = list(s.scalars(select(Patient.mrn)))
    codes = [r["code"] for r in doc["review_reasons"]]
    if archive.check == "none":  # as before: the manifest's MRN wins, the page's disagreeing is flagged
        assert doc["identifiers"]["mrn"]["value"] == MISREAD and "mrn_check_digit_failed" not in codes
        assert [f["code"] for f in flags] == ["mrn_mismatch"]
        return
    # The typo is not applied; the MRN the page printed is kept, and the patient it names is in the index
    # (MRN and DOB agree), but the document waits for a person who confirms the MRN.
    assert CHECKED in patients and MISREAD not in patients
    assert doc["identifiers"]["mrn"]["value"] == CHECKED
    assert doc["patient_id"] is None and doc["review_status"] == "pending"
    assert codes == ["mrn_check_digit_failed"]
    assert "manifest" in doc["review_reasons"][0]["message"]
    assert [f["code"] for f in flags] == ["mrn_check_digit_failed"]
    assert MISREAD not in json.dumps(doc["review_reasons"]) + json.dumps(flags)  # codes and ids, no value
    with api_client(archive.settings) as client:
        (held,) = [i for i in client.get("/review").json()["items"] if i["document_id"] == archive.manifest]
        assert [r["code"] for r in held["reasons"]] == ["mrn_check_digit_failed"]
    with web_client(archive.settings, "him_admin") as client:
        assert "The MRN the manifest gives fails the facility" in client.get("/ui/review").text.replace(
            "&#39;", "'"
        )


def test_the_refused_manifest_mrn_is_shown_to_the_reviewer_and_kept_nowhere_else(archive: Archive) -> None:
    """The reviewer compares the refused number with the page: the document's answer (to the roles that may
    read it) and the review page show it; reasons, flags and the audit never carry it. Resolving ends it."""
    with api_client(archive.settings, "staff") as client:
        doc = client.get(f"/documents/{archive.manifest}").json()
    refused = doc["identifiers"]["mrn_refused"]
    with web_client(archive.settings, "him_admin") as client:
        page = client.get(f"/ui/review/{archive.manifest}").text
    if archive.check == "none":  # applied as before: nothing refused
        assert refused == [] and 'id="mrn-refused-' not in page
        return
    assert refused == [{"source": "manifest", "value": MISREAD}]
    assert f'<dt>MRN the manifest gave</dt><dd id="mrn-refused-manifest">{MISREAD} ' in page
    assert 'fails the check digit</span> <span class="muted">not applied' in page and CHECKED in page
    with Services(archive.settings) as services, services.parts.sessions() as s:
        details = [str(e.detail) for e in s.scalars(select(AuditEvent))]
        flags = as_json(services.intake.batch(archive.manifest_batch))["flags"]
    assert MISREAD not in " ".join(details) + json.dumps(flags) + json.dumps(doc["review_reasons"])
    with Services(archive.settings) as services:
        services.review.resolve(archive.manifest)  # the reviewer confirms the MRN the page printed
        after = as_json(services.documents.get(archive.manifest))["identifiers"]
    assert after["mrn_refused"] == [] and after["mrn"]["value"] == CHECKED


# ------------------------------------------------------------------------------------------ the read-back


def test_an_mrn_read_back_by_the_check_digit_is_shown_with_what_the_page_read(archive: Archive) -> None:
    with Services(archive.settings) as services:
        mrn = as_json(services.documents.get(archive.read_back))["identifiers"]["mrn"]
    with web_client(archive.settings, "him_admin") as client:
        page = client.get(f"/ui/review/{archive.read_back}")
    assert page.status_code == 200
    if archive.check == "none":
        assert (mrn["value"], mrn["source"], mrn["read_as"]) == (MISREAD, None, None)
        assert "read back by check digit" not in page.text
        return
    assert (mrn["value"], mrn["source"], mrn["read_as"]) == (CHECKED, "check_digit_read_back", MISREAD)
    assert READ_BACK_NOTE in page.text and CHECKED in page.text  # the reviewer sees both values


def test_a_reviewer_giving_the_mrn_clears_the_read_back_mark(archive: Archive) -> None:
    with Services(archive.settings) as services:
        services.review.resolve(archive.read_back, CHECKED if archive.check == "luhn" else MISREAD)
        mrn = as_json(services.documents.get(archive.read_back))["identifiers"]["mrn"]
    assert mrn["source"] is None and mrn["read_as"] is None and mrn["confidence"] == 1.0


def test_a_refile_clears_the_read_back_mark(archive: Archive) -> None:
    to = CHECKED if archive.check == "luhn" else MISREAD  # without the setting the misread opened a patient
    with Services(archive.settings) as services:
        services.records.correct_misfile(archive.refiled, to, "label misread")
        mrn = as_json(services.documents.get(archive.refiled))["identifiers"]["mrn"]
    assert (mrn["value"], mrn["source"], mrn["read_as"], mrn["confidence"]) == (to, None, None, 1.0)


# ------------------------------------------------------------------------------------------ the reviewer


def test_a_reviewer_mrn_failing_the_check_is_refused_everywhere_and_nothing_changes(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc_id = archive.resolvable
    with Services(archive.settings) as services:
        before = as_json(services.documents.get(doc_id))
    if archive.check == "none":  # without the setting any MRN a person types is taken
        with Services(archive.settings) as services:
            services.review.resolve(doc_id, MISREAD)
            assert services.documents.get(doc_id).identifiers.mrn.value == MISREAD  # type: ignore[union-attr]
        return

    with Services(archive.settings) as services, pytest.raises(InvalidInput) as refused:
        services.review.resolve(doc_id, MISREAD)
    assert refused.value.code == "mrn_check_digit_failed" and MISREAD not in str(refused.value)
    assert "check digit (luhn)" in str(refused.value)

    with api_client(archive.settings, "him_admin") as client:
        answer = client.post(f"/documents/{doc_id}/review/resolve", json={"mrn": MISREAD})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "mrn_check_digit_failed"
    assert MISREAD not in answer.text

    with web_client(archive.settings, "him_admin") as client:
        token = csrf_of(client.get(f"/ui/review/{doc_id}").text)
        sent = {"csrf": token, "mrn": MISREAD, "dob": "", "two_identifiers": "1"}
        page = client.post(f"/ui/documents/{doc_id}/review/resolve", data=sent, follow_redirects=False)
    assert page.status_code == 422 and "fails the facility&#39;s check digit (luhn)" in page.text

    from chartvault.cli import app

    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(archive.settings.data_dir))
    monkeypatch.setenv("CHARTVAULT_MRN_CHECK_DIGIT", "luhn")
    shown = CliRunner().invoke(app, ["resolve", doc_id, "--mrn", MISREAD])
    assert shown.exit_code == 2 and "check digit (luhn)" in shown.output

    with Services(archive.settings) as services, services.parts.sessions() as s:
        assert as_json(services.documents.get(doc_id)) == before  # nothing changed
        resolved = s.scalars(select(AuditEvent).where(AuditEvent.action == "document.review_resolve")).all()
    assert all(e.target_id != doc_id for e in resolved)


def test_a_refile_to_an_mrn_failing_the_check_is_refused_everywhere_and_nothing_changes(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``misfile --to-mrn``, the review page's refile form and the service refuse a mistyped target MRN as
    the reviewer's is refused (no API route refiles)."""
    if archive.check == "none":  # nothing to refuse without the setting (the refile itself: test_records)
        return
    doc_id = archive.resolvable
    with Services(archive.settings) as services:
        before = as_json(services.documents.get(doc_id))
        with pytest.raises(InvalidInput) as refused:
            services.records.correct_misfile(doc_id, f" {MISREAD} ", "label misread")
    assert refused.value.code == "mrn_check_digit_failed" and MISREAD not in str(refused.value)

    with web_client(archive.settings, "him_admin") as client:
        token = csrf_of(client.get(f"/ui/review/{doc_id}").text)
        sent = {"csrf": token, "to_mrn": MISREAD, "reason": "label misread", "pages": ""}
        page = client.post(f"/ui/documents/{doc_id}/misfile", data=sent, follow_redirects=False)
    assert page.status_code == 422 and "fails the facility&#39;s check digit (luhn)" in page.text
    assert "nothing was changed" in page.text

    from chartvault.cli import app

    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(archive.settings.data_dir))
    monkeypatch.setenv("CHARTVAULT_MRN_CHECK_DIGIT", "luhn")
    shown = CliRunner().invoke(app, ["misfile", doc_id, "--to-mrn", MISREAD, "--reason", "label misread"])
    assert shown.exit_code == 2 and "check digit (luhn)" in shown.output and MISREAD not in shown.output

    with Services(archive.settings) as services, services.parts.sessions() as s:
        assert as_json(services.documents.get(doc_id)) == before  # nothing changed
        misfiles = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "document.misfile_correction", AuditEvent.target_id == doc_id
            )
        ).all()
    assert [(e.outcome, e.detail["refused"]) for e in misfiles] == [("refused", "mrn_check_digit_failed")] * 3


# ------------------------------------------------------------------------------ the registration list


def test_a_registration_row_whose_mrn_fails_the_check_is_refused(archive: Archive) -> None:
    rows = (
        "mrn,last_name,first_name,dob\n009912007,Okafor,Chidi,1990-01-30\n009912002,Okafor,Ada,1991-02-03\n"
    )
    with Services(archive.settings) as services:
        result = services.patients.import_registration(rows.encode())
    # 009912007 passes Luhn; 009912002 is the same number with its check digit mistyped.
    if archive.check == "none":
        assert (result.imported, result.refused) == (2, 0)
        return
    assert (result.imported, result.refused) == (1, 1)
    (error,) = result.errors
    assert (error.line, error.code) == (3, "mrn_check_digit")
    assert "009912002" not in error.message and "check digit" in error.message


# ------------------------------------------------------------------------------ printing a cover sheet


def test_a_cover_sheet_is_not_printed_for_an_mrn_failing_the_check(
    archive: Archive, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every page scanned behind a mistyped sheet would be held for review: the mistake is caught when the
    sheet is asked for, on the page and on the command line."""
    from chartvault.cli import app

    with web_client(archive.settings, "him_admin") as client:
        token = csrf_of(client.get("/ui/coversheet").text)
        sheets = {
            mrn: client.post("/ui/coversheet", data={"csrf": token, "mrn": mrn, "type": "consent"})
            for mrn in (CHECKED, MISREAD)
        }
    assert sheets[CHECKED].status_code == 200 and sheets[CHECKED].content.startswith(b"%PDF")
    monkeypatch.setenv("CHARTVAULT_MRN_CHECK_DIGIT", archive.check)
    printed = CliRunner().invoke(
        app, ["coversheet", "--mrn", MISREAD, "--type", "consent", "--out", str(tmp_path / "s.pdf")]
    )
    if archive.check == "none":
        assert sheets[MISREAD].status_code == 200 and printed.exit_code == 0
        return
    assert sheets[MISREAD].status_code == 422 and "check digit" in sheets[MISREAD].text
    assert MISREAD not in sheets[MISREAD].text.replace(f'value="{MISREAD}"', "")  # only in the form's field
    assert printed.exit_code == 2 and "check digit" in printed.output
    assert not (tmp_path / "s.pdf").exists()

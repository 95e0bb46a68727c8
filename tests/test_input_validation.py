"""Input accepted as is no more: manifest MRNs, station and operator names; duplicates of another patient."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import api_client
from recordsfixtures import chart_pdf
from sqlalchemy import select

from chartvault.archive.models import Batch, Document
from chartvault.config import Settings
from chartvault.ingest.manifest import ManifestError, parse_manifest

BAD_MRNS = {
    "nul": "00123\x0045",
    "bidi override": "\u202e00123456",
    "zero width": "001234\u200b56",
    "5,000 digits": "1" * 5000,
    "letters only": "ABCDEFGH",
    "too short": "12345",
}


@pytest.mark.parametrize("what", sorted(BAD_MRNS))
def test_manifest_mrns_are_checked_against_the_pattern(what: str) -> None:
    for manifest in ({"mrn": BAD_MRNS[what]}, {"files": [{"name": "a.pdf", "mrn": BAD_MRNS[what]}]}):
        with pytest.raises(ManifestError) as refused:
            parse_manifest(manifest)
        assert "'mrn'" in str(refused.value) and BAD_MRNS[what][:5] not in str(refused.value)


def test_todays_corpus_mrns_pass_and_the_pattern_is_a_setting(corpus: list[dict]) -> None:
    for e in corpus:
        assert parse_manifest({"mrn": e["patient"]["mrn"]}).mrn == e["patient"]["mrn"]
    assert parse_manifest({"mrn": "AB-1234"}, mrn_pattern=r"[A-Z]{2}-\d{4}").mrn == "AB-1234"
    with pytest.raises(ValueError):
        Settings(mrn_pattern="[unclosed", _env_file=None)


def _upload(c, fields: dict[str, str], tmp_path: Path):
    pdf = chart_pdf(tmp_path / "one.pdf", mrn="00810001", dob="01/02/1970", dos="03/04/2024")
    return c.post("/batches", files={"files": ("one.pdf", pdf.read_bytes(), "application/pdf")}, data=fields)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"station": "scan\x00-01"}, "station"),
        ({"operator": "op\u202e7"}, "operator"),
        ({"station": "s" * 500}, "station"),
        ({"manifest": json.dumps({"mrn": "\u202e00810001"})}, "mrn"),
        ({"manifest": json.dumps({"mrn": "9" * 5000})}, "mrn"),
    ],
)
def test_api_refuses_bad_fields_with_422_naming_the_field(settings, tmp_path: Path, fields, named) -> None:
    with api_client(settings, role="scanner") as c:
        r = _upload(c, fields, tmp_path)
        assert r.status_code == 422, r.text
        assert named in r.json()["error"]["message"]
        with c.app.state.services.parts.sessions() as s:
            assert s.scalars(select(Batch)).all() == []  # nothing recorded
        assert not [p for p in (settings.data_dir / "staging").rglob("*") if p.is_file()]


def test_duplicate_with_another_patients_manifest_is_flagged_for_review(vault, tmp_path: Path) -> None:
    pdf = chart_pdf(tmp_path / "dup.pdf", mrn="00810001", dob="01/02/1970", dos="03/04/2024")
    first = vault.intake.ingest([pdf], source="test", manifest=parse_manifest({"mrn": "00810001"}))
    doc_id = first.files[0].documents[0]
    same = vault.intake.ingest([pdf], source="test", manifest=parse_manifest({"mrn": "00810001"}))
    assert same.files[0].status == "duplicate" and not same.needs_review
    other = vault.intake.ingest([pdf], source="test", manifest=parse_manifest({"mrn": "00810002"}))
    assert other.files[0].status == "duplicate"
    assert other.needs_review
    flag = next(f for f in other.flags if f["code"] == "duplicate_mrn_mismatch")
    assert flag["document_id"] == doc_id and "00810002" not in json.dumps(flag)
    with vault.parts.sessions() as s:
        doc = s.get(Document, doc_id)
        assert doc.review_status == "pending"
        assert [r["code"] for r in doc.review_reasons] == ["duplicate_mrn_mismatch"]
    assert [i.document_id for i in vault.review.queue(50, 0).items] == [doc_id]


TYPED_MRNS = {
    "direction override": "\u202e00810001",
    "control character": "00810\x0101",
    "nul": "00810\x0001",
    "space inside": "008 10001",
    "zero width": "0081\u200b0001",
}


@pytest.mark.slow  # one born-digital chart ingested: about 3 s
def test_a_reviewers_typed_mrn_is_held_to_the_apis_characters_on_every_face(vault, tmp_path: Path) -> None:
    """The API's body refused these (letters, digits and '-' only); the web review page hands the service
    the field as typed, and the service only measured its length: a direction override became the
    document's MRN (and a new patient's, with no registration list). Now the service refuses them."""
    from chartvault.errors import InvalidInput

    pdf = chart_pdf(tmp_path / "held.pdf", mrn="00810001", dob="01/02/1970", dos="03/04/2024")
    doc_id = vault.intake.ingest([pdf], source="test").files[0].documents[0]
    for what, mrn in TYPED_MRNS.items():
        with pytest.raises(InvalidInput, match="mrn must be") as refused:
            vault.review.resolve(doc_id, mrn=mrn)
        assert mrn not in str(refused.value), what
    with vault.parts.sessions() as s:
        assert s.get(Document, doc_id).mrn == "00810001"
    assert vault.review.resolve(doc_id, mrn=" 00810001 ").document_id == doc_id  # trimmed, as before


@pytest.mark.slow  # a fresh catalog, an app and a sign-in: about 3 s
def test_a_page_upload_holds_its_manifest_to_the_facilitys_mrn_pattern(tmp_path: Path) -> None:
    """Before: the batch page parsed its manifest against the default pattern, not CHARTVAULT_MRN_PATTERN
    as the API does: an MRN of another site's shape was taken from the page and refused by the API."""
    from webfixtures import PASSWORD, csrf_of, sign_in, web_client

    from chartvault.archive.models import Batch

    settings = Settings(data_dir=tmp_path / "data", mrn_pattern=r"M\d{7}", _env_file=None)
    scan = ("scan.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")
    with web_client(settings) as client:
        services = client.app.state.services
        services.access.create_user("ana", "Ana", "scanner", password=PASSWORD)
        token = services.access.create_token("scanner", "station", username="ana").token
        assert sign_in(client, "ana").status_code == 303
        form = csrf_of(client.get("/ui/batches").text)
        for mrn, taken in (("0012345678", False), ("M1234567", True)):
            manifest = json.dumps({"mrn": mrn})
            page = client.post(
                "/ui/batches",
                data={"csrf": form, "manifest": manifest},
                files={"files": scan},
                follow_redirects=False,
            )
            api = client.post(
                "/batches",
                data={"manifest": manifest},
                files={"files": scan},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert (page.status_code, api.status_code) == ((303, 202) if taken else (422, 422)), mrn
            assert mrn not in page.text and mrn not in api.text
        with services.parts.sessions() as s:
            assert len(s.scalars(select(Batch)).all()) == 2  # the two taken; nothing of the refused ones

"""The review queue: uncertain types and possible misfiles are held for a person, who corrects or resolves.

Real corpus scans through the real pipeline (tesseract, zxing); the API through FastAPI's TestClient.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import api_client, as_json, ingest_files
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from chartvault.archive.models import AuditEvent, ClassificationCorrection, Document, Page
from chartvault.classify import DOC_TYPES
from chartvault.classify import model as mdl
from chartvault.classify.types import Extracted, Identifiers
from chartvault.ingest.stages import _misfile_pages, _split

PATIENT_A = "files/8682b39b19b6.tif"  # 2-page ED note
PATIENT_B = "files/25d10e037353.png"  # 1-page consult note, another patient
UNTITLED = "files/f0cc3dee49ee.png"  # 1-page discharge summary without a printed title: typed by the model


def corpus_entry(corpus: list[dict], rel: str) -> dict:
    entry = next((e for e in corpus if e["path"] == rel), None)
    if entry is None:
        pytest.skip(f"corpus file {rel} not found")
    return entry


def frames(path: Path) -> list[Image.Image]:
    out = []
    with Image.open(path) as im:
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            out.append(im.convert("L"))
    return out


def ingest(vault, path: Path) -> str:
    return ingest_files(vault, path, source="cli")


# --------------------------------------------------------------------------------------------------------
# Misfiles


@pytest.mark.slow
def test_page_of_another_patient_holds_the_document_unlinked(
    vault, corpus: list[dict], tmp_path: Path
) -> None:
    a, b = corpus_entry(corpus, PATIENT_A), corpus_entry(corpus, PATIENT_B)
    pages = [*frames(a["file"]), *frames(b["file"])]  # page 3 belongs to patient B
    batch = tmp_path / "misfiled.tif"
    pages[0].save(batch, save_all=True, append_images=pages[1:], compression="tiff_lzw", dpi=(300, 300))
    batch_id = ingest(vault, batch)

    assert as_json(vault.intake.batch(batch_id))["status"] == "complete"
    with vault.parts.sessions() as s:
        (doc,) = s.scalars(select(Document).where(Document.batch_id == batch_id)).all()
        assert doc.object_key is not None and doc.status in ("archived", "indexed")  # the original is safe
        assert doc.mrn == a["patient"]["mrn"]  # the majority
        assert doc.patient_id is None  # held: not filed under a guess
        assert doc.review_status == "pending"
        codes = [r["code"] for r in doc.review_reasons]
        assert "possible_misfile" in codes
        flags = {p.page_no: p.flags for p in doc.pages}
        assert flags[1] is None and flags[2] is None
        assert flags[3][0]["code"] == "possible_misfile" and "mrn" in flags[3][0]["fields"]
        # Flags and reasons carry field names and ids, never the values read.
        assert b["patient"]["mrn"] not in str(flags[3]) + str(doc.review_reasons)
        doc_id = doc.id

    queue = as_json(vault.review.queue())
    (item,) = queue["items"]
    assert item["document_id"] == doc_id and not item["patient_linked"]
    assert [fp["page_no"] for fp in item["flagged_pages"]] == [3]
    assert a["patient"]["mrn"] not in str(queue) and b["patient"]["mrn"] not in str(queue)

    # A person confirms the document (page 3 to be refiled separately): resolved and linked.
    result = as_json(vault.review.resolve(doc_id))
    assert result["review_status"] == "resolved" and result["patient_linked"]
    assert as_json(vault.review.queue())["total"] == 0


@pytest.mark.slow
def test_consistent_document_is_linked_and_not_held(vault, corpus: list[dict]) -> None:
    a = corpus_entry(corpus, PATIENT_A)
    batch_id = ingest(vault, a["file"])
    with vault.parts.sessions() as s:
        (doc,) = s.scalars(select(Document).where(Document.batch_id == batch_id)).all()
        assert doc.patient_id is not None and doc.review_status is None
        assert all(p.flags is None for p in doc.pages)


def _page(no: int, mrn: str | None, dob: str | None, conf: float = 0.97, blank: bool = False) -> tuple:
    ids = Identifiers(mrn=Extracted(mrn, conf) if mrn else None, dob=Extracted(dob, conf) if dob else None)
    return Page(page_no=no, blank=blank, identifiers=ids.to_dict()), ids


def test_misfile_rule_compares_mrn_and_dob_of_clean_reads_only() -> None:
    from datetime import date

    doc = Document(mrn="0012345", dob=date(1980, 1, 5))
    pages = [
        _page(1, "0012345", "1980-01-05"),
        _page(2, "0099999", "1980-01-05"),  # another MRN
        _page(3, "0012345", "1975-03-02"),  # another DOB
        _page(4, "0099999", None, conf=0.6),  # a doubtful read never holds a document
        _page(5, None, None),  # nothing read: nothing to disagree with
    ]
    flagged = [(p.page_no, fields) for p, fields in _misfile_pages(doc, pages)]
    assert flagged == [(2, ["mrn"]), (3, ["dob"])]


def test_segments_split_at_cover_sheets_and_skip_leading_blanks() -> None:
    cover = [{"format": "QRCode", "text": "CVCS1|mrn=0012345|type=consent"}]
    bad = [{"format": "QRCode", "text": "CVCS1|mrn=0012345|type=unknown_kind"}]
    pages = [
        Page(page_no=1, blank=True),
        Page(page_no=2, barcodes=cover),
        Page(page_no=3),
        Page(page_no=4, blank=True),  # back of page 3: stays in the document, as a blank page
        Page(page_no=5, barcodes=bad),
        Page(page_no=6),
    ]
    segs = _split(pages)
    assert [
        (sg.cover_page.page_no if sg.cover_page else None, [p.page_no for p in sg.pages]) for sg in segs
    ] == [
        (2, [3, 4]),
        (5, [6]),
    ]
    assert segs[0].cover is not None and segs[0].cover.mrn == "0012345" and not segs[0].invalid
    assert segs[1].cover is None and segs[1].invalid
    assert [[p.page_no for p in sg.pages] for sg in _split([Page(page_no=1), Page(page_no=2)])] == [[1, 2]]


# --------------------------------------------------------------------------------------------------------
# Low confidence -> review -> staff correction over the API -> training


@pytest.fixture
def strict_client(settings):
    # Every rules/model type below 0.99 is held: makes a real scan land in the queue deterministically.
    strict = settings.model_copy(update={"review_confidence_threshold": 0.99})
    with api_client(strict) as c:
        yield c


def wait_for_batch(client: TestClient, batch_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = client.get(f"/batches/{batch_id}").json()
        if report["done"] and report["status"] != "processing":
            return report
        time.sleep(0.5)
    raise AssertionError("batch did not finish in time")


@pytest.mark.slow
def test_review_queue_and_correction_over_the_api(strict_client: TestClient, corpus: list[dict]) -> None:
    c = strict_client
    e = corpus_entry(corpus, UNTITLED)
    with open(e["file"], "rb") as fh:
        r = c.post("/batches", files=[("files", (e["file"].name, fh, "image/png"))])
    assert r.status_code == 202
    report = wait_for_batch(c, r.json()["batch_id"])
    (doc_id,) = report["files"][0]["documents"]

    queue = c.get("/review", params={"limit": 10}).json()
    assert queue["total"] == 1
    (item,) = queue["items"]
    assert item["document_id"] == doc_id
    assert item["classification_source"] in ("model", "rules")
    assert [x["code"] for x in item["reasons"]] == ["low_confidence"]
    assert c.get("/review", params={"offset": 1}).json()["items"] == []
    assert c.get("/review", params={"limit": 0}).status_code == 422

    before = c.get(f"/documents/{doc_id}").json()
    assert before["review_status"] == "pending"
    new_type = "correspondence" if before["doc_type"] != "correspondence" else "consult_note"

    bad = c.post(f"/documents/{doc_id}/classification", json={"doc_type": "recipe"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert c.post("/documents/nope/classification", json={"doc_type": new_type}).status_code == 404

    r = c.post(f"/documents/{doc_id}/classification", json={"doc_type": new_type})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "document_id": doc_id,
        "doc_type": new_type,
        "old_type": before["doc_type"],
        "review_status": "resolved",
    }
    after = c.get(f"/documents/{doc_id}").json()
    assert after["doc_type"] == new_type and after["classification_source"] == "staff"
    assert after["doc_type_confidence"] == 1.0 and after["review_status"] == "resolved"
    assert c.get("/review").json()["total"] == 0

    # Re-queued for indexing: the search by type finds it under the new type.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        hits = c.get("/search", params={"type": new_type}).json()["hits"]
        if any(h["document_id"] == doc_id for h in hits):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("corrected document not re-indexed under its new type")

    vault = c.app.state.services
    with vault.parts.sessions() as s:
        (corr,) = s.scalars(select(ClassificationCorrection)).all()
        assert (corr.document_id, corr.old_type, corr.new_type) == (doc_id, before["doc_type"], new_type)
        assert corr.corrected_by.startswith("token:")  # the calling token, never anonymous
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "document.classify")).all()
        assert [ev.target_id for ev in events] == [doc_id]
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "review.list")).first() is not None

    # The correction feeds the next training: the document's text, under the staff's type.
    corrections = vault.parts.classifier.corrections()
    assert len(corrections) == 1 and corrections[0][1] == new_type
    assert e["patient"]["mrn"] in corrections[0][0]
    base_texts, base_labels = mdl.training_data()
    info = as_json(vault.review.train_classifier())
    assert "path" not in info  # pages and the API name no file of the server; the console does
    info["path"] = str(vault.review.model_file())
    assert info["corrections"] == 1 and info["n_train"] == len(base_texts) + 1
    expected = mdl.training_version([*base_texts, corrections[0][0]], [*base_labels, new_type])
    assert info["version"] == expected  # trained on exactly base + the corrected text
    saved = mdl.load(Path(info["path"]), expected_version=expected)
    assert saved.n_train == info["n_train"]
    assert Path(info["path"]).with_suffix(".json").read_text().count(expected) == 1
    assert vault.parts.classifier.current().version == expected  # what the pipeline uses from now on


def test_review_routes_refuse_bad_requests(settings) -> None:
    with api_client(settings) as c:
        assert c.get("/review").json() == {"total": 0, "limit": 50, "offset": 0, "items": []}
        assert c.post("/documents/nope/review/resolve").status_code == 404
        r = c.post("/documents/nope/review/resolve", json={"mrn": "00 12; DROP"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = c.post("/documents/nope/classification", json={})
        assert r.status_code == 422
        assert set(DOC_TYPES) <= set(c.get("/openapi.json").text.split('"'))


@pytest.mark.slow
def test_cli_classifier_train_and_review(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from chartvault.cli import app

    env = {
        "CHARTVAULT_DATA_DIR": str(tmp_path / "data"),
        "CHARTVAULT_MODEL_DIR": str(tmp_path / "models"),
        "CHARTVAULT_WORKERS": "1",
    }
    runner = CliRunner()
    r = runner.invoke(app, ["classifier", "train", "--json"], env=env)
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    texts, labels = mdl.training_data()
    assert info["corrections"] == 0 and info["n_train"] == len(texts)
    assert info["version"] == mdl.training_version(texts, labels)
    assert Path(info["path"]).parent == tmp_path / "models"  # no corrections: the shared base model
    assert json.loads(Path(info["path"]).with_suffix(".json").read_text())["version"] == info["version"]
    r = runner.invoke(app, ["review", "--json"], env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)["total"] == 0
    r = runner.invoke(app, ["classify", "nope", "--type", "consent"], env=env)
    assert r.exit_code == 4

"""Searchable PDF renditions: the builder (real tesseract on corpus scans, read back by pdfplumber and
pdfium), the stage and its store objects (SQLite + local store, SeaweedFS S3), crash/resume, check,
downloads (API, CLI) audited, and release packages built from renditions."""

from __future__ import annotations

import hashlib
import io
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pdfplumber
import pypdfium2 as pdfium
import pytest
from conftest import api_client, ingest_files, pick
from PIL import Image, ImageChops
from recordsfixtures import *  # noqa: F403 - rv, records_settings
from recordsfixtures import MIN_LOCK_S, chart_pdf, doc_row, hostile_pdf, ingest
from s3fixtures import *  # noqa: F403 - s3_settings
from sqlalchemy import select

from chartvault.archive.check import check_store
from chartvault.archive.lifecycle import document_ref
from chartvault.archive.models import AuditEvent, Document
from chartvault.archive.objectstore import RetentionLockedError
from chartvault.archive.renditions import rendition_ref
from chartvault.config import Settings
from chartvault.filetypes import FileKind
from chartvault.ingest.manifest import parse_manifest
from chartvault.ocr.pages import scan_page
from chartvault.ocr.rendition import RenditionPage, build_rendition, word_matrices
from chartvault.ocr.types import OcrOptions, PageText
from chartvault.services import Services

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _page(p: PageText) -> RenditionPage:
    words = [[w.text, w.conf, w.left, w.top, w.width, w.height] for w in p.words]
    return RenditionPage(p.page_no, words, p.width, p.height, p.rotation, p.deskew_deg)


def _shared(a: list[str], b: list[str]) -> int:
    """How many words the two lists have in common, counting repeats."""
    return sum((Counter(a) & Counter(b)).values())


def _doc_ids(v: Services, batch_id: str) -> list[str]:
    with v.parts.sessions() as s:
        return list(s.scalars(select(Document.id).where(Document.batch_id == batch_id).order_by(Document.id)))


# -- the builder -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fax_page(corpus: list[dict], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A bilevel (G4) corpus scan read as the pipeline reads it, and as it is (no deskew)."""
    entry = pick(corpus, "tiff_g4", pages=1)
    work = tmp_path_factory.mktemp("ocr")
    read = scan_page(entry["file"], FileKind.TIFF, 1, OcrOptions(), work).page
    plain = scan_page(entry["file"], FileKind.TIFF, 1, OcrOptions(preprocess=False), work).page
    out = tmp_path_factory.mktemp("rendition") / "r.pdf"
    built = build_rendition(entry["file"], FileKind.TIFF, [_page(read)], out, created=CREATED)
    return {"entry": entry, "read": read, "plain": plain, "built": built}


@pytest.mark.slow
def test_rendition_words_sit_on_the_scan_and_extract_as_read(fax_page: dict[str, Any]) -> None:
    read, plain, built = fax_page["read"], fax_page["plain"], fax_page["built"]
    assert read.deskew_deg != 0.0  # the corpus page is skewed: the harder case
    with pdfplumber.open(built.path) as pdf:
        page = pdf.pages[0]
        words = page.extract_words()
        text = page.extract_text()
    # Every OCR word is in the text layer, as one word (pdfplumber orders them by line, tesseract by block).
    assert sorted(w["text"] for w in words) == sorted(w.text for w in read.words)
    # Positions: against tesseract's boxes on the untouched scan (the page read without deskew),
    # matched by words that occur once on both; scale pixels by the scan's dpi.
    scale = 72.0 / (plain.dpi or 300)
    ref = {w.text: w for w in plain.words if [x.text for x in plain.words].count(w.text) == 1}
    errors = []
    for w in words:
        r = ref.get(w["text"])
        if r is None or len(w["text"]) < 4 or [x["text"] for x in words].count(w["text"]) != 1:
            continue
        errors.append(max(abs(w["x0"] - r.left * scale), abs(w["bottom"] - (r.top + r.height) * scale)))
    assert len(errors) >= 50
    assert statistics.median(errors) < 1.5, statistics.median(errors)
    assert sorted(errors)[int(len(errors) * 0.9)] < 4.0
    # The phrase a person would search for reads back whole.
    first_line = " ".join(w.text for w in read.words[:3])
    assert first_line in text


def test_bilevel_page_image_is_the_original_pixels(fax_page: dict[str, Any]) -> None:
    built, entry = fax_page["built"], fax_page["entry"]
    pdf = pdfium.PdfDocument(str(built.path))
    try:
        images = [o for o in pdf[0].get_objects() if o.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE]
        assert len(images) == 1
        assert images[0].get_filters() == ["CCITTFaxDecode"]  # lossless, 1 bit
        decoded = images[0].get_bitmap(render=False).to_pil().convert("L")
    finally:
        pdf.close()
    with Image.open(entry["file"]) as original:
        assert original.mode == "1"
        assert ImageChops.difference(original.convert("L"), decoded).getbbox() is None


def test_jpeg_is_passed_through_and_the_file_carries_pdfa_identification(
    corpus: list[dict], tmp_path: Path
) -> None:
    entry = pick(corpus, "jpeg")
    page = RenditionPage(1, [["MRN", 90.0, 100, 100, 200, 40]], 2550, 3300)
    built = build_rendition(entry["file"], FileKind.JPEG, [page], tmp_path / "j.pdf", created=CREATED)
    data = built.path.read_bytes()
    assert entry["file"].read_bytes() in data  # the JPEG's own bytes: no second lossy encode
    assert built.sha256 == hashlib.sha256(data).hexdigest()
    # What PDF/A-2b asks of the file that was checked here (no validator is installed: see README).
    assert data.startswith(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3")
    assert b"<pdfaid:part>2</pdfaid:part>" in data and b"<pdfaid:conformance>B</pdfaid:conformance>" in data
    assert b"/OutputIntents" in data and b"/S /GTS_PDFA1" in data and b"/DestOutputProfile" in data
    assert b"/FontFile2" in data  # the text layer's font is embedded
    assert re.search(rb"/ID \[<[0-9a-f]{32}> <[0-9a-f]{32}>\]", data)
    assert b"/Encrypt" not in data and b"/JavaScript" not in data
    # Deterministic: the same inputs give the same bytes (a rebuild lands on the same object).
    again = build_rendition(entry["file"], FileKind.JPEG, [page], tmp_path / "k.pdf", created=CREATED)
    assert again.sha256 == built.sha256


def test_turned_page_words_are_placed_in_the_unturned_scan() -> None:
    # A 100x200 px scan read after a quarter turn clockwise: the recognised image is 200x100.
    page = RenditionPage(1, [["word", 90.0, 20, 10, 40, 10]], 200, 100, rotation=90)
    [(text, m)] = word_matrices(page, (100.0, 200.0))  # 1 px = 1 pt
    # Turned back, the box's baseline-left corner (20, 20) is at (y, h0 - x) = (20, 180) px of the scan
    # from its top-left, i.e. (20, 20) pt from the bottom-left.
    assert text == "word"
    assert (round(m[4], 6), round(m[5], 6)) == (20.0, 20.0)
    # The word runs up the scan (so left to right on the page shown with /Rotate 90) over its 40 px,
    # and its 10 px height runs to the scan's left (up on the page shown).
    assert (m[0], round(m[1] * 4 * 0.5, 6), round(m[2], 6), m[3]) == (0.0, 40.0, -10.0, 0.0)


# -- the stage, the store, check and resume ----------------------------------------------------------


@pytest.fixture(scope="module")
def archived(corpus: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A scanned TIFF and a born-digital PDF through the whole pipeline (SQLite, local store)."""
    data = tmp_path_factory.mktemp("vault") / "data"
    settings = Settings(data_dir=data, workers=2, watch_settle_s=0, _env_file=None)
    scan = pick(corpus, "tiff_g4", pages=2)
    digital = pick(corpus, "pdf_text", pages=1)
    with Services(settings) as v:
        batch = ingest_files(v, scan["file"], digital["file"])
        ids = _doc_ids(v, batch)
        docs = {doc_row(v, i).mime: i for i in ids}
        yield {"v": v, "settings": settings, "scan": docs["image/tiff"], "digital": docs["application/pdf"]}


@pytest.mark.slow
def test_scanned_document_gets_a_locked_rendition_and_born_digital_is_its_own(
    archived: dict[str, Any],
) -> None:
    v = archived["v"]
    scan, digital = doc_row(v, archived["scan"]), doc_row(v, archived["digital"])
    assert scan.rendition_form == "pdf" and digital.rendition_form == "original"
    assert digital.rendition_key is None  # no second object for a born-digital PDF
    ref = rendition_ref(scan)
    assert ref is not None and ref.key != scan.object_key
    store = v.parts.store
    body = b"".join(store.open(ref))  # sha256-verified as read
    assert hashlib.sha256(body).hexdigest() == scan.rendition_sha256 and len(body) == scan.rendition_size
    # Under the original's lock and labels.
    _mode, until = store.retention(ref)
    assert until is not None and until >= scan.object_retain_until
    assert store.tags(ref)["form"] == "rendition" and store.tags(ref)["batch"] == scan.batch_id
    with pdfplumber.open(io.BytesIO(body)) as pdf:
        assert len(pdf.pages) == scan.page_count
        assert all(len(p.extract_words()) > 20 for p in pdf.pages)
    report = check_store(v.parts.sessions, store)
    assert report.consistent, report.as_dict()
    assert report.objects_checked == 3  # two originals and one rendition


def test_hold_reaches_the_rendition(archived: dict[str, Any]) -> None:
    v = archived["v"]
    scan = doc_row(v, archived["scan"])
    hold = v.records.place_hold(matter="M-1", reason="litigation", document_ids=[scan.id], scope="documents")
    ref = rendition_ref(scan)
    assert ref is not None and v.parts.store.legal_hold(ref)
    v.records.release_hold(hold["id"], reason="settled")
    assert not v.parts.store.legal_hold(ref)


def test_check_finds_a_corrupt_missing_or_orphaned_rendition(archived: dict[str, Any]) -> None:
    v = archived["v"]
    doc = doc_row(v, archived["scan"])
    obj = v.parts.store.root / (doc.rendition_key or "")
    good = obj.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # one flipped byte, same size
    obj.chmod(0o644)
    try:
        obj.write_bytes(bytes(bad))
        assert check_store(v.parts.sessions, v.parts.store).corrupt == [f"rendition:{doc.id}"]
        obj.unlink()
        assert check_store(v.parts.sessions, v.parts.store).missing == [f"rendition:{doc.id}"]
    finally:
        obj.write_bytes(good)
        obj.chmod(0o400)
    with v.parts.sessions() as s:  # the row forgets its object: the object is an orphan
        row = s.get(Document, doc.id)
        assert row is not None
        row.rendition_key = None
        s.commit()
    report = check_store(v.parts.sessions, v.parts.store)
    assert report.orphans == [doc.rendition_key] and not report.corrupt
    with v.parts.sessions() as s:
        row = s.get(Document, doc.id)
        assert row is not None
        row.rendition_key = doc.rendition_key
        s.commit()
    assert check_store(v.parts.sessions, v.parts.store).consistent


def test_resume_builds_a_missing_rendition_onto_the_same_object(archived: dict[str, Any]) -> None:
    v = archived["v"]
    before = doc_row(v, archived["scan"])
    with v.parts.sessions() as s:  # a crash after the store write, before the catalog commit
        doc = s.get(Document, archived["scan"])
        assert doc is not None
        doc.rendition_form = doc.rendition_key = doc.rendition_version = doc.rendition_sha256 = None
        doc.rendition_size = None
        s.commit()
    broken = v.records.check(fixity=False)
    assert broken["renditions_missing"] == [archived["scan"]] and not broken["consistent"]
    assert v.intake.resume() == []  # no unfinished batch: only the rendition is missing
    after = doc_row(v, archived["scan"])
    assert after.rendition_form == "pdf"
    assert (after.rendition_key, after.rendition_sha256) == (before.rendition_key, before.rendition_sha256)
    assert check_store(v.parts.sessions, v.parts.store).consistent  # no orphan left behind


def test_server_start_builds_missing_renditions_in_the_background(archived: dict[str, Any]) -> None:
    # After an upgrade or a crash between archive and rendition, nobody should have to remember a resume.
    import time

    from chartvault.services.background import BackgroundWork

    v = archived["v"]
    with v.parts.sessions() as s:
        doc = s.get(Document, archived["scan"])
        assert doc is not None
        doc.rendition_form = doc.rendition_key = doc.rendition_version = doc.rendition_sha256 = None
        doc.rendition_size = None
        s.commit()
    work = BackgroundWork(v)
    work.start()
    try:
        deadline = time.monotonic() + 60
        while not work.idle() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert work.idle(), "the start-up sweep did not finish"
    finally:
        work.stop()
    assert doc_row(v, archived["scan"]).rendition_form == "pdf"
    assert v.records.check(fixity=False)["renditions_missing"] == []


# -- downloads ---------------------------------------------------------------------------------------


def test_rendition_download_through_api_and_cli_is_audited(
    archived: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from chartvault.cli import app

    scan_id, digital_id = archived["scan"], archived["digital"]
    with api_client(archived["settings"], role="staff") as c:
        r = c.get(f"/documents/{scan_id}/rendition")
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert hashlib.sha256(r.content).hexdigest() == r.headers["x-content-sha256"]
        assert c.get(f"/documents/{scan_id}").json()["rendition"] == "pdf"
        same = c.get(f"/documents/{digital_id}/rendition")  # born-digital: the original itself
        assert same.content == c.get(f"/documents/{digital_id}/original").content
        assert c.get("/documents/nope/rendition").status_code == 404
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(archived["settings"].data_dir))
    out = tmp_path / "r.pdf"
    res = CliRunner().invoke(app, ["get", scan_id, "--rendition", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == r.content
    with archived["v"].parts.sessions() as s:
        rows = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "document.download", AuditEvent.target_id == scan_id
            )
        ).all()
    forms = [(e.actor.split(":")[0], (e.detail or {}).get("form")) for e in rows]
    assert ("token", "rendition") in forms and ("cli", "rendition") in forms


# -- release packages ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_release_package_of_scans_is_searchable_on_every_page(settings: Settings, corpus: list[dict]) -> None:
    from test_release import Roi, _header, elements, upload_authorization

    scan = pick(corpus, "tiff_g4", pages=2)
    mrn = scan["patient"]["mrn"]
    with api_client(settings) as c:
        vault: Services = c.app.state.services
        tokens = {
            who: _header(vault, role, vendor)
            for who, role, vendor in (
                ("staff", "staff", None),
                ("him", "him_admin", None),
                ("vendor_a", "vendor", "Acme Copy"),
            )
        }
        c.headers.pop("Authorization")
        batch = ingest_files(vault, scan["file"], manifest=parse_manifest({"mrn": mrn}))
        [doc_id] = _doc_ids(vault, batch)
        roi = Roi(c, vault, tokens, {"scan": doc_id})
        payload = {
            "mrn": mrn,
            "requester_type": "third_party_authorized",
            "recipient": "Example Law Office",
            "recipient_address": "1 Example Plaza, Springfield",
            "purpose": "legal review",
            "vendor": "Acme Copy",
            "document_ids": [doc_id],
        }
        rel = roi.call("staff", "POST", "/releases", json=payload).json()
        assert upload_authorization(roi, rel["id"], elements()).status_code == 201
        assert roi.call("him", "POST", f"/releases/{rel['id']}/review").status_code == 200
        approved = roi.call("him", "POST", f"/releases/{rel['id']}/approve")
        assert approved.status_code == 200, approved.text
        pkg = roi.call("vendor_a", "GET", f"/releases/{rel['id']}/package")
        assert pkg.status_code == 200
        doc = doc_row(vault, doc_id)
        with vault.parts.sessions() as s:
            texts = [p.text or "" for p in s.get(Document, doc_id).pages]  # type: ignore[union-attr]
    with pdfplumber.open(io.BytesIO(pkg.content)) as pdf:
        assert len(pdf.pages) == doc.page_count
        for page, ocr_text in zip(pdf.pages, texts, strict=True):
            extracted = " ".join(page.extract_text().split())
            # A phrase of the page's OCR text (its first line) is found on that page of the package...
            phrase = " ".join(ocr_text.splitlines()[0].split())
            assert len(phrase) > 10 and phrase in extracted
            # ...and the page is still stamped.
            assert f"Release {rel['id']}" in extracted


# -- the rendition under the original's lock, holds and disposition, on each store ---------------------


def _scanned(pdf: Path, out: Path) -> Path:
    """A born-digital chart page printed and scanned: a 200-dpi bilevel G4 TIFF (no text layer)."""
    doc = pdfium.PdfDocument(str(pdf))
    try:
        image = doc[0].render(scale=200 / 72).to_pil().convert("L")
    finally:
        doc.close()
    image.point(lambda v: 255 if v > 160 else 0).convert("1").save(
        out, format="TIFF", compression="group4", dpi=(200, 200)
    )
    return out


@pytest.mark.slow
def test_rendition_follows_lock_holds_and_disposition_on_each_store(rv: Services, tmp_path: Path) -> None:
    pdf = chart_pdf(tmp_path / "a.pdf", mrn="00440001", dob="03/04/1950", dos="05/06/2005")
    (doc_id,) = ingest(rv, _scanned(pdf, tmp_path / "a.tif"))
    doc = doc_row(rv, doc_id)
    ref = rendition_ref(doc)
    assert ref is not None and doc.rendition_form == "pdf"
    store = rv.parts.store
    body = b"".join(store.open(ref))
    assert hashlib.sha256(body).hexdigest() == doc.rendition_sha256 == ref.sha256
    with pdfplumber.open(io.BytesIO(body)) as rendered:
        assert "00440001" in rendered.pages[0].extract_text()
    mode, until = store.retention(ref)
    assert mode == "GOVERNANCE" and until is not None and until == store.retention(document_ref(doc))[1]
    # A hold on the patient holds the rendition's version too; released, it is lifted from both.
    hold = rv.records.place_hold("M-9", "patient", "litigation", value="00440001")
    assert store.legal_hold(ref) and store.legal_hold(document_ref(doc))
    with pytest.raises(RetentionLockedError):
        store.delete_version(ref, bypass_governance=True)
    rv.records.release_hold(hold["id"], "settled")
    assert not store.legal_hold(ref)
    # Past retention (2005 + 10 years) and past the minimum lock: disposition destroys both objects.
    time.sleep(MIN_LOCK_S + 0.5)
    result = rv.records.dispose([doc_id], approved_by="HIM manager")
    assert result.destroyed == [doc_id], result.refused
    assert store.versions(ref) == [] and store.versions(document_ref(doc)) == []
    (item,) = rv.records.certificate(result.disposition_id)["items"]
    assert item["rendition_key"] == ref.key and item["rendition_versions_deleted"]
    assert check_store(rv.parts.sessions, store).consistent


def test_scanned_pdf_keeps_its_own_page_image_and_gets_the_words(corpus: list[dict], tmp_path: Path) -> None:
    entry = pick(corpus, "pdf_image", pages=1)
    read = scan_page(entry["file"], FileKind.PDF, 1, OcrOptions(), tmp_path / "ocr").page
    built = build_rendition(entry["file"], FileKind.PDF, [_page(read)], tmp_path / "r.pdf", created=CREATED)
    again = build_rendition(entry["file"], FileKind.PDF, [_page(read)], tmp_path / "s.pdf", created=CREATED)
    assert again.sha256 == built.sha256  # pdfium's random document ID is replaced by a content hash
    with pdfplumber.open(built.path) as pdf:
        extracted = [w["text"] for w in pdf.pages[0].extract_words()]
    # Words whose OCR boxes overlap (tesseract's "JAMES" and "J" here) can read back as one.
    assert _shared(extracted, [w.text for w in read.words]) >= 0.97 * len(read.words)

    def image_streams(path: Path) -> list[bytes]:
        doc = pdfium.PdfDocument(str(path))
        try:
            page = doc[0]
            return [
                bytes(o.get_data(decode_simple=False))
                for o in page.get_objects(max_depth=3)
                if o.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE
            ]
        finally:
            doc.close()

    assert image_streams(built.path) == image_streams(entry["file"])  # the scan's own encoded bytes


def test_misfile_split_replaces_the_mixed_rendition_with_the_parts(vault: Services, tmp_path: Path) -> None:
    a = {"mrn": "00450001", "dob": "03/04/1970", "dos": "05/06/2024", "name": "ALPHA, ANN"}
    b = {"mrn": "00450002", "dob": "07/08/1980", "dos": "05/06/2024", "name": "BETA, BOB"}
    pages = [
        Image.open(_scanned(chart_pdf(tmp_path / f"{i}.pdf", **p), tmp_path / f"{i}.tif"))
        for i, p in enumerate((a, b))
    ]
    mixed_tif = tmp_path / "mixed.tif"
    pages[0].save(
        mixed_tif, format="TIFF", compression="group4", save_all=True, append_images=pages[1:], dpi=(200, 200)
    )
    ingest(vault, chart_pdf(tmp_path / "b.pdf", **b, title="PROGRESS NOTE"))  # patient B is known
    (mixed,) = ingest(vault, mixed_tif)
    old = rendition_ref(doc_row(vault, mixed))
    assert old is not None
    result = vault.records.correct_misfile(
        mixed, b["mrn"], "page 2 is another patient's", pages=[2], break_glass=True
    )
    assert vault.parts.store.versions(old) == []  # the mixed rendition went with the mixed original
    for part_id, mrn in zip(result.new_documents, (a["mrn"], b["mrn"]), strict=True):
        ref = rendition_ref(doc_row(vault, part_id))
        assert ref is not None
        with pdfplumber.open(io.BytesIO(b"".join(vault.parts.store.open(ref)))) as pdf:
            assert len(pdf.pages) == 1 and mrn in pdf.pages[0].extract_text()
    staying = doc_row(vault, result.new_documents[0])  # patient A's pages: linked, not a lost chart
    assert staying.patient_id is not None and staying.review_status is None
    assert vault.records.check(fixity=False)["consistent"]


@pytest.mark.slow
def test_a_born_digital_pdf_that_would_run_something_gets_an_inert_rendition(tmp_path: Path) -> None:
    """A born-digital PDF was its own rendition: the searchable PDF staff download carried the sender's
    JavaScript, launch links and attachments. It gets an inert copy now; the original stays as it came."""
    from chartvault.ocr.inert import active_content

    hostile = hostile_pdf(tmp_path / "outside-records.pdf", "00424242")
    settings = Settings(data_dir=tmp_path / "data", workers=1, watch_settle_s=0, _env_file=None)
    with Services(settings) as v:
        (doc_id,) = _doc_ids(v, ingest_files(v, hostile))
        doc = doc_row(v, doc_id)
        assert doc.rendition_form == "pdf" and doc.rendition_key != doc.object_key
        original = b"".join(v.parts.store.open(document_ref(doc)))
        rendition = b"".join(v.parts.store.open(rendition_ref(doc)))
    assert original == hostile.read_bytes()  # the record, byte for byte
    (tmp_path / "rendition.pdf").write_bytes(rendition)
    assert active_content(hostile) and active_content(tmp_path / "rendition.pdf") == []
    with pdfplumber.open(tmp_path / "rendition.pdf") as pdf:
        assert "DISCHARGE SUMMARY" in pdf.pages[0].extract_text()

"""Barcodes (zxing-cpp) and ChartVault cover sheets: payload, printing, reading, and batch splitting.

Real images, real zxing, real tesseract: cover sheets are printed to PDF by the code under test, rendered
at scanner resolution and stacked with corpus pages into one multi-page file that goes through the Vault.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
import zxingcpp
from conftest import as_json, ingest_files
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from chartvault.archive.models import Document, Page
from chartvault.classify.coversheet import (
    CoverSheet,
    CoverSheetError,
    decode_payload,
    encode_payload,
    find_cover_sheet,
    is_cover_payload,
    parse_payload,
    render_pdf,
)
from chartvault.filetypes import FileKind
from chartvault.ocr.barcodes import page_barcodes, read_barcodes

# Two corpus files of different patients (relative to the corpus): a 2-page ED note, a 1-page consult.
PATIENT_A = "files/8682b39b19b6.tif"
PATIENT_B = "files/25d10e037353.png"


def corpus_entry(corpus: list[dict], rel: str) -> dict:
    entry = next((e for e in corpus if e["path"] == rel), None)
    if entry is None:
        pytest.skip(f"corpus file {rel} not found")
    return entry


def cover_image(sheet: CoverSheet, dpi: int = 300) -> Image.Image:
    """The printed cover sheet as a scanner would send it: the PDF rendered at scanner resolution."""
    doc = pdfium.PdfDocument(render_pdf(sheet))
    try:
        return doc[0].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
    finally:
        doc.close()


def frames(path: Path) -> list[Image.Image]:
    """Every page of an image file as 8-bit grayscale."""
    out = []
    with Image.open(path) as im:
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            out.append(im.convert("L"))
    return out


def write_tiff(pages: list[Image.Image], out: Path) -> Path:
    pages[0].save(out, save_all=True, append_images=pages[1:], compression="tiff_lzw", dpi=(300, 300))
    return out


def write_pdf(pages: list[Image.Image], out: Path) -> Path:
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=300)
    return out


# --------------------------------------------------------------------------------------------------------
# Payload


def test_payload_round_trip_keeps_leading_zeros() -> None:
    text = encode_payload("0012345678", "consent", date(1980, 1, 5))
    assert text == "CVCS1|mrn=0012345678|type=consent|dob=1980-01-05"
    assert parse_payload(text) == CoverSheet("0012345678", "consent", date(1980, 1, 5))
    assert parse_payload("CVCS1|type=legal|mrn=E0073032") == CoverSheet("E0073032", "legal", None)
    assert CoverSheet("000001", "billing").payload() == "CVCS1|mrn=000001|type=billing"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("CVCS2|mrn=1|type=consent", "unsupported"),
        ("HELLO|mrn=1|type=consent", "not a cover sheet"),
        ("CVCS1|mrn=0012345|type=recipe", "type"),
        ("CVCS1|mrn=00 12|type=consent", "mrn"),
        ("CVCS1|mrn=|type=consent", "missing"),
        ("CVCS1|type=consent", "missing"),
        ("CVCS1|mrn=0012345|type=consent|dob=1980-13-01", "dob"),
        (
            "CVCS1|mrn=0012345|type=consent|dob=" + (date.today() + timedelta(days=30)).isoformat(),
            "dob",
        ),  # a month ahead: the cases are made at collection, a run may pass midnight
        ("CVCS1|mrn=0012345|type=consent|room=12", "unknown"),
        ("CVCS1|mrn=0012345|mrn=0012346|type=consent", "repeated"),
        ("CVCS1|mrn0012345|type=consent", "unknown"),
    ],
)
def test_invalid_payloads_refused_with_a_reason_naming_no_value(payload: str, reason: str) -> None:
    with pytest.raises(CoverSheetError) as exc:
        parse_payload(payload)
    assert reason in str(exc.value)
    assert "0012345" not in str(exc.value)
    assert decode_payload(payload) is None


def test_find_cover_sheet_among_page_barcodes() -> None:
    good = {"format": "QRCode", "text": "CVCS1|mrn=0012345|type=consent"}
    label = {"format": "Code128", "text": "0012345"}
    assert find_cover_sheet([label]) == (None, False)
    assert find_cover_sheet([label, good, {**good, "format": "Code128"}]) == (
        CoverSheet("0012345", "consent"),
        False,
    )
    bad = {"format": "Code128", "text": "CVCS1|mrn=0012345|type=nonsense"}
    assert find_cover_sheet([bad]) == (None, True)
    other = {"format": "Code128", "text": "CVCS1|mrn=0099999|type=consent"}
    assert find_cover_sheet([good, other])[0] is None  # two sheets disagree: trust neither
    assert find_cover_sheet(None) == (None, False)
    assert is_cover_payload("CVCS9|x") and not is_cover_payload("0012345")


# --------------------------------------------------------------------------------------------------------
# Reading barcodes


def test_printed_cover_sheet_reads_back_from_pdf_and_scan(tmp_path: Path) -> None:
    sheet = CoverSheet("0012345678", "history_and_physical", date(1980, 1, 5))
    pdf = tmp_path / "cover.pdf"
    pdf.write_bytes(render_pdf(sheet))
    found = page_barcodes(pdf, FileKind.PDF, 1)
    assert find_cover_sheet(found)[0] == sheet
    scan = cover_image(sheet).convert("1").convert("L")  # bilevel, like a G4 fax scan
    formats = {b["format"] for b in read_barcodes(scan)}
    assert formats == {"QRCode", "Code128"}


def test_code128_code39_and_qr_on_a_chart_page() -> None:
    page = Image.new("L", (2550, 3300), 255)
    draw = ImageDraw.Draw(page)
    draw.text((150, 150), "PATIENT LABEL  MRN: 0012345678", font=ImageFont.load_default(size=48), fill=0)
    for i, (fmt, text, scale) in enumerate(
        [("Code128", "0012345678", 4), ("Code39", "ACCT12345", 4), ("QRCode", "https://example.org/x", 8)]
    ):
        code = zxingcpp.create_barcode(text, getattr(zxingcpp.BarcodeFormat, fmt))
        img = Image.fromarray(np.asarray(code.to_image(scale=1))).convert("L")
        img = img.resize((img.width * scale, max(img.height * scale, 160)), Image.NEAREST)
        page.paste(img, (200, 400 + i * 700))
    found = read_barcodes(page)
    assert [(b["format"], b["text"]) for b in found] == [
        ("Code128", "0012345678"),
        ("Code39", "ACCT12345"),
        ("QRCode", "https://example.org/x"),
    ]


def test_page_without_barcodes_and_corpus_pages(corpus: list[dict]) -> None:
    assert read_barcodes(Image.new("L", (1000, 1400), 255)) == []
    entry = corpus_entry(corpus, PATIENT_A)
    assert page_barcodes(entry["file"], FileKind.TIFF, 2) == []


def test_worker_ocr_task_carries_barcodes(tmp_path: Path) -> None:
    from chartvault.ingest.tasks import OcrTask
    from chartvault.ocr.types import OcrOptions

    pdf = tmp_path / "cover.pdf"
    pdf.write_bytes(render_pdf(CoverSheet("0012345", "consent")))
    out = OcrTask("cover.pdf", "pdf", 1, OcrOptions()).run(tmp_path)
    assert out.page is not None and out.error is None
    assert any(b["text"] == "CVCS1|mrn=0012345|type=consent" for b in out.barcodes or [])
    assert out.barcode_ms >= 0


def test_coversheet_command_writes_a_readable_pdf(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chartvault.cli import app

    out = tmp_path / "sheet.pdf"
    runner = CliRunner()
    args = ["coversheet", "--mrn", "000777", "--type", "consent"]
    r = runner.invoke(app, [*args, "--dob", "1950-02-03", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes().startswith(b"%PDF")
    sheet = find_cover_sheet(page_barcodes(out, FileKind.PDF, 1))[0]
    assert sheet == CoverSheet("000777", "consent", date(1950, 2, 3))
    bad = runner.invoke(app, [*args[:-1], "recipe", "--out", str(out)])
    assert bad.exit_code == 2


# --------------------------------------------------------------------------------------------------------
# A batch split at cover sheets, through the Vault


@pytest.mark.slow
@pytest.mark.parametrize("container", ["tiff", "pdf"])
def test_batch_is_split_at_cover_sheets(vault, corpus: list[dict], tmp_path: Path, container: str) -> None:
    a, b = corpus_entry(corpus, PATIENT_A), corpus_entry(corpus, PATIENT_B)
    pa, pb = a["patient"], b["patient"]
    cover_a = CoverSheet(pa["mrn"], "ed_note", date.fromisoformat(pa["dob"]))
    cover_b = CoverSheet(pb["mrn"], "correspondence")  # the sheet decides the type, not the content
    pages = [cover_image(cover_a), *frames(a["file"]), cover_image(cover_b), *frames(b["file"])]
    assert len(pages) == 5
    writer = write_tiff if container == "tiff" else write_pdf
    batch_file = writer(pages, tmp_path / f"batch.{'tif' if container == 'tiff' else 'pdf'}")

    batch_id = ingest_files(vault, batch_file)

    report = as_json(vault.intake.batch(batch_id))
    assert report["status"] == "complete", report
    (f,) = report["files"]
    assert f["status"] == "archived" and len(f["documents"]) == 2
    assert all(p["status"] in ("archived", "indexed") for p in f["pages"])

    with vault.parts.sessions() as s:
        docs = s.scalars(
            select(Document).where(Document.batch_id == batch_id).order_by(Document.first_page)
        ).all()
        got = [(d.first_page, d.page_count, d.mrn, d.doc_type, d.classification_source) for d in docs]
        assert got == [
            (2, 2, pa["mrn"], "ed_note", "cover_sheet"),
            (5, 1, pb["mrn"], "correspondence", "cover_sheet"),
        ]
        assert [d.doc_type_confidence for d in docs] == [1.0, 1.0]
        assert docs[0].dob == cover_a.dob
        # Both documents point at the one stored original (content-addressed, stored once).
        assert docs[0].object_key == docs[1].object_key and docs[0].sha256 == docs[1].sha256
        # Patient A: cover MRN + DOB agree with the pages: linked. Neither is held for review.
        assert docs[0].patient_id is not None
        assert [d.review_status for d in docs] == [None, None]
        covers = s.scalars(
            select(Page).where(Page.file_id == docs[0].file_id, Page.document_id.is_(None))
        ).all()
        assert [p.page_no for p in covers] == [1, 4]
        assert all(p.flags == [{"code": "cover_sheet"}] for p in covers)
        assert all(p.status == "archived" for p in covers)
        assert covers[0].barcodes and covers[0].barcodes[0]["text"] == cover_a.payload()
        doc_ids = [d.id for d in docs]

    # Staff see each document's own pages, never the cover sheets.
    shown = as_json(vault.documents.get(doc_ids[0], with_text=True))
    assert [p["page_no"] for p in shown["pages"]] == [2, 3] and shown["page_count"] == 2
    assert all("COVER SHEET" not in p["text"].upper() for p in shown["pages"])
    assert pa["mrn"] in shown["pages"][1]["text"]
    assert shown["classification_source"] == "cover_sheet"
    assert as_json(vault.documents.get(doc_ids[1]))["pages"][0]["page_no"] == 5

    # The original comes back byte for byte for either document.
    original = vault.documents.original(doc_ids[1])
    assert b"".join(vault.documents.stream(doc_ids[1], original)) == batch_file.read_bytes()

    # Sending the same batch file again is recognised as a duplicate, not stored again.
    again = ingest_files(vault, batch_file)
    (f2,) = as_json(vault.intake.batch(again))["files"]
    assert f2["status"] == "duplicate" and f2["duplicate_of"] in doc_ids


@pytest.mark.slow
def test_a_cover_sheet_mrn_failing_the_check_digit_holds_its_document(tmp_path: Path) -> None:
    """A cover sheet printed with a mistyped MRN ('004417320': the Luhn-checked '004417820' with one digit
    wrong) in front of a chart page whose label prints the right one: without the facility's check digit
    the sheet's MRN wins as before; with it (Luhn) the sheet's MRN is not applied and the document waits
    for a person, linked to no one, though the page's MRN and name would have opened a patient record."""
    from test_patients import render_page

    from chartvault.config import Settings
    from chartvault.services import Services

    typo, right = "004417320", "004417820"
    chart = render_page(tmp_path / "chart.png", ["Patient Name: HOLLOWAY, MARGARET A", f"MRN: {right}"])
    batch = write_tiff([cover_image(CoverSheet(typo, "consult_note")), *frames(chart)], tmp_path / "b.tif")
    for check in ("none", "luhn"):
        settings = Settings(
            data_dir=tmp_path / check, workers=1, watch_settle_s=0, mrn_check_digit=check, _env_file=None
        )
        with Services(settings) as services:
            batch_id = ingest_files(services, batch, source="cli")
            with services.parts.sessions() as s:
                (doc,) = s.scalars(select(Document).where(Document.batch_id == batch_id)).all()
                codes = [r["code"] for r in doc.review_reasons or []]
                got = (doc.mrn, doc.doc_type, doc.classification_source, doc.first_page)
        if check == "none":
            assert got == (typo, "consult_note", "cover_sheet", 2) and "mrn_check_digit_failed" not in codes
            continue
        assert got == (right, "consult_note", "cover_sheet", 2)  # the sheet still splits and types
        assert codes == ["mrn_check_digit_failed"] and "cover sheet" in doc.review_reasons[0]["message"]
        assert doc.patient_id is None and doc.review_status == "pending"
        assert typo not in str(doc.review_reasons)
        # kept for the reviewer beside what was read, to compare with the page
        assert doc.identifier_confidence["mrn_refused"] == [{"source": "cover_sheet", "value": typo}]
        with Services(settings) as services:
            shown = as_json(services.documents.get(doc.id))["identifiers"]["mrn_refused"]
        assert shown == [{"source": "cover_sheet", "value": typo}]


def test_batch_report_json_of_a_split_file_is_serialisable(vault) -> None:
    # No batch: only the shape of what an empty queue returns.
    assert json.loads(json.dumps(as_json(vault.review.queue()))) == {
        "total": 0,
        "limit": 50,
        "offset": 0,
        "items": [],
    }

"""The patient label's barcode as evidence of the page's MRN (``classify.labelcodes``), read from the label
bands of the decoded page (``ocr.barcodes``) by the OCR worker, and shown to the reviewer.

The real-image fixture is the fax page of ``test_identifiers_reread.py`` (an invented patient whose thermal
label prints ``Unit #: 00192303``, which the whole page's pass reads as ``90192303``), with a label barcode
of the printed number stuck beside the label, bars of 2 and 3 printed pixels as on thermal labels.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from chartvault.classify import merge_identifiers
from chartvault.classify.labelcodes import (
    CONFIDENCE_AGREES,
    CONFIDENCE_ALONE,
    CONFIDENCE_MENDED,
    label_mrns,
    with_label_barcodes,
)
from chartvault.classify.types import Extracted, Identifiers
from chartvault.filetypes import FileKind
from chartvault.ingest.tasks import OcrTask
from chartvault.ocr.barcodes import SCAN_DPI, read_barcodes, reduced, scan_decoded
from chartvault.ocr.types import OcrOptions

FAX_PAGE = Path(__file__).parent / "fixtures" / "fax_thermal_label.png"
PRINTED = "00192303"
MISREAD = "90192303"
PATTERN = r"\d{8}"
BARCODE = "label_barcode"


def _code(text: str, fmt: str = "Code128") -> dict[str, str]:
    return {"format": fmt, "text": text}


def _ids(mrn: str | None, confidence: float = 0.97, **more: Extracted) -> Identifiers:
    return Identifiers(mrn=Extracted(mrn, confidence) if mrn else None, **more)


# ------------------------------------------------------------------------------------ the rules alone


def test_a_barcode_that_says_what_the_text_read_confirms_it() -> None:
    got = with_label_barcodes(_ids(PRINTED, 0.45), [_code(PRINTED)])
    assert got.mrn == Extracted(PRINTED, CONFIDENCE_AGREES)


def test_a_barcode_one_digit_from_the_reading_mends_it_and_says_so() -> None:
    got = with_label_barcodes(_ids(MISREAD), [_code(PRINTED)], mrn_pattern=PATTERN)
    assert got.mrn == Extracted(PRINTED, CONFIDENCE_MENDED, read_as=MISREAD, source=BARCODE)
    # A letter inserted or dropped by OCR is an edit too ('MRO09865171' for 'MR09865171').
    got = with_label_barcodes(_ids("MRO09865171"), [_code("MR09865171")])
    assert got.mrn is not None and (got.mrn.value, got.mrn.read_as) == ("MR09865171", "MRO09865171")


def test_a_repair_the_barcode_bears_out_is_the_barcodes_value() -> None:
    reread = Identifiers(mrn=Extracted(PRINTED, 0.6, read_as=MISREAD, source="reread_vote"))
    got = with_label_barcodes(reread, [_code(PRINTED)])
    assert got.mrn == Extracted(PRINTED, CONFIDENCE_MENDED, read_as=MISREAD, source=BARCODE)


def test_a_barcode_alone_is_a_candidate_below_what_opens_a_patient() -> None:
    from chartvault.archive.patients import NEW_PATIENT_MIN_CONFIDENCE

    got = with_label_barcodes(_ids(None), [_code(PRINTED)], mrn_pattern=PATTERN)
    assert got.mrn == Extracted(PRINTED, CONFIDENCE_ALONE, source=BARCODE)
    assert CONFIDENCE_ALONE < NEW_PATIENT_MIN_CONFIDENCE


@pytest.mark.parametrize(
    ("codes", "why"),
    [
        ([_code("49078739801")], "far from the number read: the account's, or another label's"),
        ([_code(MISREAD[:-1] + "5", "QRCode")], "a 2D code is not a label's linear barcode"),
        ([_code("CVCS1|mrn=00192305|type=consent")], "a cover sheet's payload"),
        ([_code("90192305"), _code("90192306")], "two candidates, neither the number read"),
        ([_code("0019230")], "off the facility's pattern"),
        ([_code("INV-2291")], "not an identifier's shape"),
    ],
)
def test_barcodes_that_may_not_be_the_mrn_change_nothing(codes: list[dict[str, str]], why: str) -> None:
    ids = _ids(MISREAD)
    assert with_label_barcodes(ids, codes, mrn_pattern=PATTERN) is ids, why


def test_the_account_or_encounter_number_printed_on_the_page_is_not_an_mrn() -> None:
    ids = _ids(None, account=Extracted("00192305", 0.97), encounter=Extracted("00192306", 0.9))
    assert label_mrns([_code("00192305"), _code("00192306")], ids) == []
    assert with_label_barcodes(ids, [_code("00192305")]) is ids


def test_a_number_failing_the_facilitys_check_digit_is_not_taken() -> None:
    luhn_ok, luhn_bad = "79927398713", "79927398718"
    assert with_label_barcodes(_ids(None), [_code(luhn_bad)], mrn_check_digit="luhn").mrn is None
    got = with_label_barcodes(_ids(luhn_bad), [_code(luhn_ok)], mrn_check_digit="luhn")
    assert got.mrn is not None and (got.mrn.value, got.mrn.read_as) == (luhn_ok, luhn_bad)


def test_code_39_start_and_stop_marks_are_not_part_of_the_number() -> None:
    got = with_label_barcodes(_ids(MISREAD), [_code(f"*{PRINTED}*", "Code39")])
    assert got.mrn is not None and got.mrn.value == PRINTED


def test_a_document_whose_mrn_only_barcodes_gave_keeps_the_mark() -> None:
    mended = Identifiers(mrn=Extracted(PRINTED, CONFIDENCE_MENDED, read_as=MISREAD, source=BARCODE))
    alone = Identifiers(mrn=Extracted(PRINTED, CONFIDENCE_ALONE, source=BARCODE))
    doc = merge_identifiers([mended, alone])
    assert doc.mrn is not None and (doc.mrn.value, doc.mrn.source, doc.mrn.read_as) == (
        PRINTED,
        BARCODE,
        MISREAD,
    )
    only_alone = merge_identifiers([alone, alone])
    assert only_alone.mrn is not None and (only_alone.mrn.source, only_alone.mrn.read_as) == (BARCODE, None)
    read_too = merge_identifiers([mended, _ids(PRINTED)])  # a page printed it readably: no mark
    assert read_too.mrn is not None and (read_too.mrn.source, read_too.mrn.read_as) == (None, None)


def test_the_identify_stage_records_a_barcode_alone_for_the_reviewer() -> None:
    from chartvault.archive.models import BatchFile, Document
    from chartvault.ingest.stages import _apply_identifiers

    doc = Document(id="d" * 32)
    alone = Identifiers(mrn=Extracted(PRINTED, CONFIDENCE_ALONE, source=BARCODE))
    assert _apply_identifiers(BatchFile(mrn_hint=None), doc, merge_identifiers([alone]), None, "none") == []
    assert doc.mrn == PRINTED
    assert doc.identifier_confidence == {"mrn": CONFIDENCE_ALONE, "mrn_source": BARCODE}


# ---------------------------------------------------------------------------------- on a real page


def _with_label_barcode(tmp_path: Path, module_px: int) -> Path:
    """The fax page with a Code 128 of the printed MRN stuck in its top band, right of the label."""
    symbol = zxingcpp.create_barcode(PRINTED, zxingcpp.BarcodeFormat.Code128)
    bars = Image.fromarray(symbol.to_image(scale=1, add_quiet_zones=True)).convert("L")
    bars = bars.resize((bars.width * module_px, 90), Image.Resampling.NEAREST)
    page = Image.open(FAX_PAGE).convert("L")
    page.paste(bars, (1450, 420))
    out = tmp_path / "page.png"
    page.convert("1").save(out, dpi=(300, 300))
    return out


@pytest.mark.parametrize("module_px", [2, 3])
def test_a_label_barcode_lost_at_the_page_scan_is_found_in_the_label_band(
    tmp_path: Path, module_px: int
) -> None:
    page = Image.open(_with_label_barcode(tmp_path, module_px)).convert("L")
    if module_px == 2:  # why the band is read again: at the page scan's resolution the bars merge
        assert read_barcodes(reduced(page, 300, SCAN_DPI)) == []
    assert _code(PRINTED) in scan_decoded(page, 300, few_words=False)


def test_a_page_without_a_barcode_is_still_read_as_it_was() -> None:
    page = Image.open(FAX_PAGE).convert("L")
    assert scan_decoded(page, 300, few_words=False) == []


@pytest.mark.slow  # real OCR of a page with its label pass and MRN re-read (about eight seconds)
def test_the_ocr_worker_takes_the_labels_barcode_over_the_fax_misread(tmp_path: Path) -> None:
    _with_label_barcode(tmp_path, 2)
    outcome = OcrTask("page.png", FileKind.PNG.value, 1, OcrOptions(), mrn_pattern=PATTERN).run(tmp_path)
    assert outcome.error is None and outcome.identifiers is not None
    mrn = outcome.identifiers["mrn"]
    assert (mrn["value"], mrn["source"], mrn["confidence"]) == (PRINTED, BARCODE, CONFIDENCE_MENDED)
    assert mrn["read_as"] == MISREAD  # what the text pass read, for the reviewer
    assert outcome.barcodes == [_code(PRINTED)]


def test_a_page_whose_scan_found_a_linear_code_is_not_searched_again(
    tmp_path: Path, barcode_reads: list[tuple[int, int]]
) -> None:
    page = Image.open(_with_label_barcode(tmp_path, 3)).convert("L")
    assert scan_decoded(page, 300, few_words=False) == [_code(PRINTED)]
    assert barcode_reads == [(850, 1100)]  # found at ~100 dpi: the bands are not read again

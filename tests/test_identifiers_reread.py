"""The MRN's word read again in several renderings of its pixels, and the readings' vote.

The fixture is a synthetic fax page of the bench's generator (``bench.generated --split tuning --seed 13``,
``tuning-thermal_unit_2digit-006``, stored bilevel): an invented patient whose thermal label prints
``Unit #: 00192303``, which the whole page's pass reads as ``90192303`` with a keyed MRN's full confidence.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chartvault.classify import extract_identifiers
from chartvault.classify.labelpass import DISAGREEING_READINGS
from chartvault.classify.reread import (
    CONFIDENCE_OUTVOTED,
    CONFIDENCE_UNANIMOUS,
    REREAD_BELOW,
    mrn_words,
    voted,
)
from chartvault.classify.types import Extracted, Identifiers
from chartvault.filetypes import FileKind
from chartvault.ingest.tasks import OcrTask
from chartvault.ocr import extract_page
from chartvault.ocr.types import OcrOptions, Word

FAX_PAGE = Path(__file__).parent / "fixtures" / "fax_thermal_label.png"
PRINTED = "00192303"
PATTERN = r"\d{8}"
REREAD = "reread_vote"


def _ids(mrn: str, confidence: float = 0.97) -> Identifiers:
    return Identifiers(mrn=Extracted(mrn, confidence))


def test_the_whole_page_pass_misreads_the_fax_label_number(tmp_path: Path) -> None:
    """The fixture still shows what the re-reading is for (a wrong digit, fully confident)."""
    page = extract_page(FAX_PAGE, FileKind.PNG, 1, OcrOptions(), tmp_path)
    first = extract_identifiers(
        page.text, words=page.words, page_size=(page.width, page.height), mrn_pattern=PATTERN
    )
    assert first.mrn is not None and first.mrn.value != PRINTED and first.mrn.confidence > 0.9
    assert mrn_words(first, page.words), "the misread word is one tesseract was unsure of"


def test_the_ocr_worker_reads_the_printed_number_by_the_vote(tmp_path: Path) -> None:
    shutil.copy(FAX_PAGE, tmp_path / "page.png")
    outcome = OcrTask("page.png", FileKind.PNG.value, 1, OcrOptions(), mrn_pattern=PATTERN).run(tmp_path)
    assert outcome.error is None and outcome.identifiers is not None
    assert outcome.identifiers["mrn"]["value"] == PRINTED
    assert outcome.identifiers["mrn"]["source"] == REREAD  # marked, with what the first pass read
    assert outcome.identifiers["mrn"]["read_as"] not in (None, PRINTED)
    # Out-voted, not unanimous: below what opens a new patient, enough to confirm a known one.
    assert outcome.identifiers["mrn"]["confidence"] <= CONFIDENCE_UNANIMOUS
    assert outcome.page is not None and "reread" in outcome.page.cpu_ms


def test_readings_that_agree_on_another_number_replace_the_first() -> None:
    """The number voted for is marked as the re-read's, with the first reading beside it."""
    readings = [["Unit #: 00192303"] * 5 + ["Unit #: 90192303"]]
    got = voted(_ids("90192303"), Extracted("90192303", 0.97), readings, mrn_pattern=PATTERN)
    assert got.mrn == Extracted(PRINTED, CONFIDENCE_UNANIMOUS, read_as="90192303", source=REREAD)
    three = [["00192303", "00192303", "00192303", "", "", "0192303"]]
    got = voted(_ids("90192303"), Extracted("90192303", 0.97), three, mrn_pattern=PATTERN)
    assert got.mrn == Extracted(PRINTED, CONFIDENCE_OUTVOTED, read_as="90192303", source=REREAD)
    assert got.to_dict()["mrn"] == {
        "value": PRINTED,
        "confidence": CONFIDENCE_OUTVOTED,
        "read_as": "90192303",
        "source": REREAD,
    }
    assert Identifiers.from_dict(got.to_dict()) == got  # as the worker sends it and the catalog keeps it


def test_a_first_reading_the_renderings_back_is_kept_as_it_was() -> None:
    readings = [["E2161037", "E2161037", "E2161087", "E2161037", "", "E2I61037"]]
    ids = _ids("E2161037")
    assert voted(ids, ids.mrn, readings, mrn_pattern=r"E\d{7}") is ids


@pytest.mark.parametrize(
    "readings",
    [
        [["00192303", "00192303", "90192303", "90192303", "", ""]],  # a tie
        [["80192303", "00192303", "10192303", "90192303", "70192303", ""]],  # nobody agrees
    ],
)
def test_a_first_reading_the_renderings_do_not_back_is_doubtful(readings: list[list[str]]) -> None:
    got = voted(_ids("90192303"), Extracted("90192303", 0.97), readings, mrn_pattern=PATTERN)
    assert got.mrn == Extracted("90192303", DISAGREEING_READINGS)


def test_one_stray_reading_among_noise_leaves_the_first_reading_alone() -> None:
    """A fax crop the renderings read as noise (tuning-thermal_unit_2digit-007 at seed 11): one reading of
    another number is no evidence against a first reading that was right."""
    readings = [["inate", "", "(17764882 |", "f : : : ; ‘ ‘ i", "ppaaerh", "ee"]]
    ids = _ids("17764881", 0.88)
    assert voted(ids, ids.mrn, readings, mrn_pattern=PATTERN) is ids


def test_a_voted_number_off_the_pattern_or_failing_the_check_digit_is_not_taken() -> None:
    readings = [["E2161037"] * 6]
    got = voted(_ids("E2161027"), Extracted("E2161027", 0.97), readings, mrn_pattern=r"E216102\d")
    assert got.mrn == Extracted("E2161027", DISAGREEING_READINGS)
    luhn_ok = "79927398713"  # passes Luhn; the readings' 79927398718 does not
    got = voted(_ids(luhn_ok), Extracted(luhn_ok, 0.97), [["79927398718"] * 6], mrn_check_digit="luhn")
    assert got.mrn == Extracted(luhn_ok, DISAGREEING_READINGS)


def test_an_mrn_the_label_pass_changed_is_not_voted_on() -> None:
    ids = _ids("00192303", 0.9)
    assert voted(ids, Extracted("90192303", 0.97), [["10192303"] * 6]) is ids


def test_only_the_unsure_words_that_carry_the_mrn_are_read_again() -> None:
    words = [
        Word("Unit", 96.0, 10, 10, 80, 30),
        Word("#:", 90.0, 95, 10, 30, 30),
        Word("90192303", 76.0, 130, 10, 200, 30),
        Word("90192303", REREAD_BELOW, 130, 900, 200, 30),  # the footer's copy, read with confidence
        Word("49078739801", 40.0, 400, 10, 260, 30),
    ]
    assert mrn_words(_ids("90192303"), words) == [words[2]]
    assert mrn_words(Identifiers(), words) == []


# ---------------------------------------------------------------------- the mark, from page to reviewer


def _reread_page(first: str = "90192303") -> Identifiers:
    """A page whose MRN the renderings voted for (what ``voted`` returns for it)."""
    return Identifiers(mrn=Extracted(PRINTED, CONFIDENCE_UNANIMOUS, read_as=first, source=REREAD))


def test_a_document_whose_mrn_rests_on_the_re_read_keeps_the_mark() -> None:
    from chartvault.classify import merge_identifiers

    merged = merge_identifiers([_reread_page(), _reread_page("80192303"), _reread_page()])
    assert merged.mrn is not None and merged.mrn.value == PRINTED
    assert (merged.mrn.source, merged.mrn.read_as) == (REREAD, "90192303")  # the commonest first reading
    checked = merge_identifiers([_reread_page()], mrn_check_digit="luhn", mrn_pattern=PATTERN)
    assert checked.mrn is not None and checked.mrn.value == PRINTED  # passes Luhn: not read back
    assert (checked.mrn.source, checked.mrn.read_as) == (REREAD, "90192303")


def test_a_page_that_read_the_mrn_as_printed_takes_the_mark_off() -> None:
    from chartvault.classify import merge_identifiers

    merged = merge_identifiers([_reread_page(), Identifiers(mrn=Extracted(PRINTED, 0.97))])
    assert merged.mrn is not None and merged.mrn.value == PRINTED
    assert (merged.mrn.source, merged.mrn.read_as) == (None, None)
    other = merge_identifiers([_reread_page(), _ids("12345678"), _ids("12345678")])
    assert other.mrn is not None and other.mrn.value == "12345678" and other.mrn.source is None


def test_the_identify_stage_records_the_re_read_for_the_reviewer() -> None:
    from chartvault.archive.models import BatchFile, Document
    from chartvault.classify import merge_identifiers
    from chartvault.ingest.stages import _apply_identifiers

    doc = Document(id="d" * 32)
    refused = _apply_identifiers(
        BatchFile(mrn_hint=None), doc, merge_identifiers([_reread_page()]), None, "none"
    )
    assert refused == [] and doc.mrn == PRINTED
    assert doc.identifier_confidence == {
        "mrn": CONFIDENCE_UNANIMOUS,
        "mrn_source": REREAD,
        "mrn_read": "90192303",
    }


@pytest.mark.slow  # a real OCR'd page through the whole pipeline (about seven seconds)
def test_a_re_read_mrn_is_shown_to_the_reviewer_until_a_person_gives_the_mrn(tmp_path: Path) -> None:
    from conftest import api_client
    from webfixtures import PASSWORD, web_client

    from chartvault.config import Settings
    from chartvault.services import Services

    settings = Settings(data_dir=tmp_path / "data", workers=1, mrn_pattern=PATTERN, _env_file=None)
    with Services(settings) as services:
        summary = services.intake.ingest([FAX_PAGE], source="test")
        (doc_id,) = summary.files[0].documents
        services.access.create_user("him_admin", "Test him_admin", "him_admin", password=PASSWORD)
    with api_client(settings, "staff") as client:
        mrn = client.get(f"/documents/{doc_id}").json()["identifiers"]["mrn"]
    assert (mrn["value"], mrn["source"]) == (PRINTED, REREAD) and mrn["read_as"] not in (None, PRINTED)
    with web_client(settings, "him_admin") as client:
        page = client.get(f"/ui/review/{doc_id}")  # held: a voted MRN opens no patient record
        assert page.status_code == 200
        assert f'id="mrn-reread">re-read from {mrn["read_as"]}</span>' in page.text and PRINTED in page.text
    with Services(settings) as services:
        services.review.resolve(doc_id, PRINTED)
        after = services.documents.get(doc_id).identifiers.mrn
    assert after is not None and (after.value, after.source, after.read_as) == (PRINTED, None, None)


@pytest.mark.parametrize(
    ("readings", "replaced"),
    [
        (["00192303", "00192303", "00192303", "90192303", "", ""], False),  # 3 against 1: contested
        (["00192303", "00192303", "00192303", "90192303", "90192303", ""], False),  # 3 against 2
        (["00192303", "00192303", "00192303", "00192303", "90192303", ""], True),  # 4 against 1
    ],
)
def test_a_first_reading_some_renderings_repeat_gives_way_only_to_four(
    readings: list[str], replaced: bool
) -> None:
    """Found on the blind label sets: three renderings against one overturned right first readings
    (``blind-plain_mixed_case-008``, 1 against 3); no misread that the vote mended had a rendering
    repeating it, but one (``blind-thermal_keys_above-000`` at seed 13) had four against one."""
    got = voted(_ids("90192303"), Extracted("90192303", 0.97), [readings], mrn_pattern=PATTERN)
    assert got.mrn is not None
    if replaced:
        assert (got.mrn.value, got.mrn.source) == (PRINTED, REREAD)
    else:
        assert got.mrn == Extracted("90192303", DISAGREEING_READINGS)  # kept, doubtful: held for review

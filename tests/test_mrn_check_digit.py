"""MRN check digits (``CHARTVAULT_MRN_CHECK_DIGIT``, ``chartvault.classify.checkdigit``): a number read from a
page that fails the facility's check digit is a misread, and never opens a patient record.

The schemes against their published examples; the page reader, the label pass and the document merge with
the setting on and off (what the patient index does with the result: ``test_patients.py``). Every name,
number and date is invented (the published check-digit examples are test numbers).
"""

from __future__ import annotations

import json
import re
import typing
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from chartvault.archive.patients import NEW_PATIENT_MIN_CONFIDENCE
from chartvault.classify import extract_identifiers, merge_identifiers
from chartvault.classify.checkdigit import (
    CHECK_DIGITS,
    CHECK_FAILED,
    CheckDigit,
    check_digit_of,
    luhn_valid,
    mod11_valid,
    passes,
    read_back,
)
from chartvault.classify.labelpass import with_label_reads
from chartvault.classify.types import Extracted, Identifiers
from chartvault.config import Settings
from chartvault.ocr.labels import LabelRead
from chartvault.ocr.types import Word

TODAY = date(2024, 6, 1)
PAGE = (2550, 3300)
# A facility whose nine-digit MRNs end in a Luhn check digit: the patient's number, and what a fax made of
# it (one look-alike digit, 8 -> 3; exactly one look-alike change makes it valid again: the 3 back to 8).
TRUE_MRN, MISREAD = "004417820", "004417320"
# Another misread (8 -> 9) that several look-alike changes would make valid: nothing says which one.
AMBIGUOUS = "004417920"


# ------------------------------------------------------------------------------------------ the schemes


def test_luhn_against_its_published_examples() -> None:
    assert luhn_valid("79927398713")  # the example of the Luhn algorithm's usual descriptions
    assert all(not luhn_valid(f"7992739871{d}") for d in "012456789")
    assert luhn_valid("4111111111111111") and luhn_valid("4012888888881881")  # card issuers' test numbers
    assert check_digit_of("7992739871", "luhn") == "3"
    assert not luhn_valid("7") and not luhn_valid("79927398 713")


def test_mod11_against_the_nhs_number_examples() -> None:
    # NHS Data Dictionary "NHS NUMBER": weights 10..2 on the first nine digits, check = 11 - (sum mod 11).
    assert mod11_valid("9434765919") and mod11_valid("4010232137")
    assert not mod11_valid("9434765918") and not mod11_valid("4010232138")
    assert check_digit_of("943476591", "mod11") == "9" and check_digit_of("401023213", "mod11") == "7"
    # 9,9,9,1,2,3,4,5,6 weighted 10..2 sum to 320, 320 mod 11 = 1: the check would be 10, so no tenth digit
    # makes a valid number (none is issued), and a remainder of 0 gives 0, not 11.
    assert check_digit_of("999123456", "mod11") is None
    assert not any(mod11_valid(f"999123456{d}") for d in "0123456789")
    # 1*2 + 3*3 = 11, remainder 0: the check digit is 0 (11 - 0 is taken as 0)
    assert check_digit_of("000000031", "mod11") == "0" and mod11_valid("0000000310")


def test_the_check_digit_is_computed_over_the_digits_only() -> None:
    assert passes("79927398713", "luhn") and passes("M79927398713", "luhn")
    assert passes("MR079927398713", "luhn")
    assert passes("9434765919", "mod11") and passes("E009434765919", "mod11")  # leading zeros weigh nothing
    assert not passes("M79927398718", "luhn")
    assert all(passes(v, "none") for v in ("79927398718", "M1", ""))


def test_the_setting_is_validated_and_names_the_same_schemes() -> None:
    assert Settings(_env_file=None).mrn_check_digit == "none"
    assert Settings(mrn_check_digit="mod11", _env_file=None).mrn_check_digit == "mod11"
    with pytest.raises(ValidationError):
        Settings(mrn_check_digit="crc32", _env_file=None)
    field = Settings.model_fields["mrn_check_digit"]
    assert typing.get_args(field.annotation) == CHECK_DIGITS == typing.get_args(CheckDigit)
    assert field.description and "luhn" in field.description and "mod11" in field.description


def test_the_setting_reaches_the_ocr_worker_in_its_task(tmp_path: Path) -> None:
    from chartvault.ingest.pipeline import PipelineOptions
    from chartvault.ingest.tasks import OcrTask

    settings = Settings(data_dir=tmp_path, mrn_check_digit="mod11", _env_file=None)
    options = PipelineOptions.from_settings(settings)
    assert options.mrn_check_digit == "mod11"
    task = OcrTask("p.png", "png", 1, options.ocr, options.mrn_pattern, options.mrn_check_digit)
    assert OcrTask.from_json(json.loads(json.dumps(task.to_json()))) == task  # as Celery carries it
    older = {k: v for k, v in task.to_json().items() if k != "mrn_check_digit"}  # sent before the setting
    assert OcrTask.from_json(older).mrn_check_digit == "none"


def test_a_misread_is_read_back_only_when_one_look_alike_digit_alone_makes_it_valid() -> None:
    assert passes(TRUE_MRN, "luhn") and not passes(MISREAD, "luhn") and not passes(AMBIGUOUS, "luhn")
    assert read_back(MISREAD, "luhn", None) == TRUE_MRN
    assert read_back(AMBIGUOUS, "luhn", None) is None
    assert read_back(MISREAD, "none", None) is None
    # the facility's pattern must hold too: a prefix the pattern wants is not invented
    assert read_back(MISREAD, "luhn", re.compile(r"M\d{9}")) is None
    assert read_back("M" + MISREAD, "luhn", re.compile(r"M\d{9}")) == "M" + TRUE_MRN


# --------------------------------------------------------------------------------------- reading a page


def _page(*label: str, check: CheckDigit, pattern: str | None = r"\d{9}") -> Identifiers:
    text = "\n".join([*label, "", "HISTORY OF PRESENT ILLNESS: knee pain after a fall."])
    return extract_identifiers(text, mrn_pattern=pattern, mrn_check_digit=check, today=TODAY)


LABEL = ("Patient Name: HOLLOWAY, MARGARET A", "MRN: {}", "DOB: 03/14/1952")


def _label(mrn: str) -> list[str]:
    return [line.format(mrn) for line in LABEL]


def test_a_keyed_mrn_failing_the_check_is_not_a_clean_read() -> None:
    plain = _page(*_label(MISREAD), check="none")
    assert plain.mrn == Extracted(MISREAD, 0.97)  # without the setting: as clean as any keyed number
    checked = _page(*_label(MISREAD), check="luhn")
    assert checked.mrn is not None and checked.mrn.value == MISREAD  # the page says what it read
    assert checked.mrn.confidence <= CHECK_FAILED < NEW_PATIENT_MIN_CONFIDENCE
    right = _page(*_label(TRUE_MRN), check="luhn")
    assert right.mrn == Extracted(TRUE_MRN, 0.97)  # a number that passes keeps its confidence


def test_a_number_that_passes_wins_over_a_keyed_one_that_fails() -> None:
    # The label's keyed MRN misread; the addressograph imprint under it printed the number without a key.
    lines = [*_label(MISREAD), "HOLLOWAY, MARGARET A   " + TRUE_MRN + "   F   03/14/1952"]
    assert _page(*lines, check="none").mrn.value == MISREAD  # type: ignore[union-attr]
    got = _page(*lines, check="luhn").mrn
    assert got is not None and got.value == TRUE_MRN
    # Two unkeyed numbers on an imprint, the misread one beside the name: the one that passes is chosen,
    # with or without a pattern, and stays doubtful (the page printed two numbers).
    imprint = [f"HOLLOWAY, MARGARET A   {MISREAD}   F   03/14/1952", f"123 MAIN ST   {TRUE_MRN}"]
    for pattern in (None, r"\d{9}"):
        assert _page(*imprint, check="none", pattern=pattern).mrn.value == MISREAD  # type: ignore[union-attr]
        got = _page(*imprint, check="luhn", pattern=pattern).mrn
        assert got is not None and got.value == TRUE_MRN and got.confidence < NEW_PATIENT_MIN_CONFIDENCE


def test_two_readings_of_a_label_do_not_doubt_the_one_that_passes() -> None:
    """The first pass misread the label's number, the zone's second look read it right: the check digit
    says which reading is right, so the second is not left doubtful as two disagreeing readings are."""

    def words(y: int, text: str) -> list[Word]:
        out, x = [], 1500
        for token in text.split(" "):
            out.append(Word(token, 90.0, x, y, 30 * len(token), 40))
            x += 30 * (len(token) + 1)
        return out

    first_words = words(150, "Wed Ree #: " + MISREAD) + words(200, "DOB: 03/14/1952")
    zone = words(150, "Med Rec #: " + TRUE_MRN) + words(200, "DOB: 03/14/1952")
    read = LabelRead("top_right", "", zone, (1147, 0, 2550, 990))
    text = "\n".join(w.text for w in first_words)
    joined = {}
    for check in ("none", "luhn"):
        first = extract_identifiers(
            text, words=first_words, page_size=PAGE, mrn_pattern=r"\d{9}", mrn_check_digit=check, today=TODAY
        )
        joined[check] = with_label_reads(
            first, "", first_words, PAGE, [read], mrn_pattern=r"\d{9}", mrn_check_digit=check, today=TODAY
        ).mrn
    # Without the setting nothing says which reading is right: the right number is not read cleanly.
    assert joined["none"] is not None
    assert joined["none"].value != TRUE_MRN or joined["none"].confidence < NEW_PATIENT_MIN_CONFIDENCE
    assert joined["luhn"] is not None and joined["luhn"].value == TRUE_MRN
    assert joined["luhn"].confidence >= 0.9


# ------------------------------------------------------------------------------------- the document


def _ids(mrn: str, conf: float) -> Identifiers:
    return Identifiers(mrn=Extracted(mrn, conf), dob=Extracted("1952-03-14", 0.97))


def test_pages_agreeing_on_a_failing_mrn_never_add_up_to_a_clean_reading() -> None:
    pages = [_ids(AMBIGUOUS, CHECK_FAILED)] * 3
    assert merge_identifiers(pages).mrn.confidence > NEW_PATIENT_MIN_CONFIDENCE  # type: ignore[union-attr]
    merged = merge_identifiers(pages, mrn_check_digit="luhn", mrn_pattern=r"\d{9}").mrn
    assert merged is not None and merged.value == AMBIGUOUS and merged.confidence <= CHECK_FAILED


def test_a_passing_mrn_outvotes_failing_misreads_of_it() -> None:
    # Pages read as they are without the setting (rows stored before it was set are merged again so).
    pages = [_ids(MISREAD, 0.97), _ids(MISREAD, 0.97), _ids(TRUE_MRN, 0.9)]
    assert merge_identifiers(pages).mrn.value == MISREAD  # type: ignore[union-attr]
    merged = merge_identifiers(pages, mrn_check_digit="luhn").mrn
    assert merged == Extracted(TRUE_MRN, 0.9)  # the misreads are not another patient's number


def test_a_document_whose_pages_all_fail_is_read_back_below_a_clean_reading() -> None:
    pages = [_ids(MISREAD, CHECK_FAILED), _ids(MISREAD, CHECK_FAILED)]
    merged = merge_identifiers(pages, mrn_check_digit="luhn", mrn_pattern=r"\d{9}").mrn
    assert merged is not None and merged.value == TRUE_MRN
    assert merged.confidence < NEW_PATIENT_MIN_CONFIDENCE
    off_pattern = merge_identifiers(pages, mrn_check_digit="luhn", mrn_pattern=r"M\d{9}").mrn
    assert off_pattern is not None and off_pattern.value == MISREAD


def test_a_read_back_mrn_keeps_what_the_pages_read() -> None:
    """The read-back is a guess: the merged MRN carries the pages' reading beside it (``read_as``), so the
    review page can show both; a number that passes, or no setting, carries none. Pages never store it."""
    pages = [_ids(MISREAD, CHECK_FAILED), _ids(MISREAD, CHECK_FAILED)]
    merged = merge_identifiers(pages, mrn_check_digit="luhn", mrn_pattern=r"\d{9}").mrn
    assert merged is not None and (merged.value, merged.read_as) == (TRUE_MRN, MISREAD)
    for check, mrn in (("none", MISREAD), ("luhn", TRUE_MRN), ("luhn", AMBIGUOUS)):
        kept = merge_identifiers([_ids(mrn, 0.9)], mrn_check_digit=check, mrn_pattern=r"\d{9}").mrn
        assert kept is not None and (kept.value, kept.read_as) == (mrn, None), (check, mrn)
    page = _page(*_label(MISREAD), check="luhn")
    assert "read_as" not in page.to_dict()["mrn"]  # stored page rows keep their shape
    assert Identifiers.from_dict(page.to_dict()) == page


def test_pages_agreeing_on_an_mrn_off_the_site_pattern_keep_its_doubt() -> None:
    """A fax inserts the same letter on every page ('MRO09865171' for 'MR09865171', bench draw tuning seed
    13, grid_top-003): the agreeing pages are one misread repeated, not independent evidence, so the
    number may not reach the score that opens a patient record. Numbers of the site's shape still gain."""
    off, on = "MRO09865171", "MR09865171"
    merged = merge_identifiers([_ids(off, 0.6)] * 2, mrn_pattern=r"MR\d{8}").mrn
    assert merged is not None and merged.value == off and merged.confidence < NEW_PATIENT_MIN_CONFIDENCE
    agreed = merge_identifiers([_ids(on, 0.6)] * 2, mrn_pattern=r"MR\d{8}").mrn
    assert agreed is not None and agreed.confidence > NEW_PATIENT_MIN_CONFIDENCE
    unset = merge_identifiers([_ids(off, 0.6)] * 2).mrn  # no site pattern: nothing to be off
    assert unset is not None and unset.confidence > NEW_PATIENT_MIN_CONFIDENCE

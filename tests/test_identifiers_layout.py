"""Identifiers found by position, shape and consistency from OCR word boxes (no OCR here: the boxes are laid
out by hand, as tesseract reports them for a monospaced print at 300 dpi).

Every name, number and date below is invented.
"""

from __future__ import annotations

from datetime import date

import pytest

from chartvault.classify import extract_identifiers, merge_identifiers
from chartvault.classify.layout import blocks, page_rows
from chartvault.classify.types import Extracted, Identifiers
from chartvault.ocr.types import Word

TODAY = date(2024, 6, 1)
PAGE = (2550, 3300)  # letter at 300 dpi
CHAR_W, HEIGHT = 22, 40  # one monospaced character cell; a space is one cell wide


def line(y: int, text: str, x: int = 300) -> list[Word]:
    """The words of one printed line: every character one cell wide, so two spaces make a field gap."""
    out, col = [], 0
    for token in text.split(" "):
        if token:
            out.append(Word(token, 92.0, x + col * CHAR_W, y, len(token) * CHAR_W - 4, HEIGHT))
        col += len(token) + 1
    return out


def page(*lines: tuple[int, str] | tuple[int, str, int]) -> tuple[str, list[Word]]:
    """Words of a page (y, text[, x]) and the text tesseract would give (one line per printed line)."""
    words = [w for spec in lines for w in line(*spec)]
    return "\n".join(spec[1] for spec in lines), words


def body(y0: int = 1100, n: int = 25) -> list[tuple[int, str]]:
    """Report prose filling the middle of the page, with a date and numbers of its own."""
    text = "The patient was seen on 02/11/2019 and her pain has improved with 600 mg of ibuprofen daily"
    return [(y0 + 60 * i, text) for i in range(n)]


def read(*lines: tuple[int, str] | tuple[int, str, int], pattern: str | None = None) -> Identifiers:
    text, words = page(*lines)
    return extract_identifiers(text, words=words, page_size=PAGE, mrn_pattern=pattern, today=TODAY)


HEADER = [(150, "RIVERBEND GENERAL HOSPITAL"), (200, "1200 River Road, Springfield, OR 97477"),
          (250, "Tel (541) 555-0100  Fax (541) 555-0101")]  # fmt: skip


def test_addressograph_line_without_keys_yields_name_mrn_sex_and_dob() -> None:
    ids = read(*HEADER, (400, "DOE, JANE Q  001234567  F  03/14/52"), *body())
    assert ids.name.value == "DOE, JANE Q"
    assert ids.mrn.value == "001234567"  # a string: leading zeros kept
    assert ids.sex.value == "F"
    assert ids.dob.value == "1952-03-14"  # 2052 is in the future: the century before
    assert ids.mrn.confidence < 0.8  # a shape alone is weaker evidence than a key: no misfile flag on it


@pytest.mark.parametrize(
    "imprint",
    [
        ["001234567  DOE, JANE Q", "03/14/52  F  71", "05/02/23  DR SMITH"],  # MRN first, visit beside doctor
        ["DOE, JANE Q  F  03-14-1952  001234567", "ADM 05-02-2023"],  # reordered, keyed admit date
        ["DOE, JANE Q", "001234567  F  03/14/1952", "05/02/2023"],  # the later of two dates is the visit
    ],
)
def test_addressograph_variants(imprint: list[str]) -> None:
    ids = read(*HEADER, *((400 + 50 * i, ln, 1500) for i, ln in enumerate(imprint)), *body())
    assert (ids.name.value, ids.mrn.value, ids.sex.value) == ("DOE, JANE Q", "001234567", "F")
    assert ids.dob.value == "1952-03-14"
    assert ids.date_of_service.value == "2023-05-02"


def test_imprint_in_the_report_body_is_not_a_label() -> None:
    ids = read(*HEADER, *body(800, 10), (1700, "DOE, JANE Q  001234567  F  03/14/52"), *body(1800, 10))
    assert ids.mrn is None and ids.dob is None


def test_lone_date_or_number_in_a_band_is_not_an_identifier() -> None:
    ids = read(*HEADER, (400, "Printed 05/02/2023"), (450, "Form 20231187"), *body())
    assert ids.mrn is None and ids.dob is None and ids.date_of_service is None


def test_thermal_label_beside_the_hospital_name() -> None:
    label = ["DOE, JANE Q   F", "Patient ID: 001234567", "Birthdate: 3/14/15 (8y)", "Visit Date: 5/2/23"]
    lines = [(150 + 50 * i, ln, 1500) for i, ln in enumerate(label)]
    ids = read(*HEADER, *lines, *body())
    rows = page_rows(*page(*HEADER, *lines), PAGE)
    assert "RIVERBEND GENERAL HOSPITAL    DOE, JANE Q  F" in [r.text for r in rows]  # two columns, one row
    assert ids.name.value == "DOE, JANE Q" and ids.mrn.value == "001234567" and ids.sex.value == "F"
    assert ids.dob.value == "2015-03-14"  # the printed age decides the century
    assert ids.date_of_service.value == "2023-05-02"


def test_label_at_the_bottom_corner() -> None:
    label = ["Chart #: E0012345", "DOE, JANE Q", "D.O.B. 14-MAR-1952   F", "Date of Service: 05/02/2023"]
    ids = read(*HEADER, *body(), *((2800 + 50 * i, ln, 200) for i, ln in enumerate(label)))
    assert (ids.mrn.value, ids.name.value, ids.dob.value) == ("E0012345", "DOE, JANE Q", "1952-03-14")
    assert ids.date_of_service.value == "2023-05-02"


def test_form_grid_with_keys_above_values() -> None:
    keys = "MR #          PATIENT          BIRTH DATE   AGE/SEX   ADM DATE"
    values = "001234567     DOE, JANE Q      3/14/52      71/F      5/2/23"
    ids = read(*HEADER, (400, keys), (450, values), *body())
    assert (ids.mrn.value, ids.name.value, ids.sex.value) == ("001234567", "DOE, JANE Q", "F")
    assert ids.mrn.confidence >= 0.9  # read through its key, not by shape
    assert (ids.dob.value, ids.date_of_service.value) == ("1952-03-14", "2023-05-02")


def test_facility_pattern_picks_the_mrn_among_unkeyed_numbers() -> None:
    imprint = ("V0098812345  001234567", "DOE, JANE Q  F  03/14/1952")
    lines = [(400 + 50 * i, ln) for i, ln in enumerate(imprint)]
    assert read(*HEADER, *lines, *body(), pattern=r"\d{9}").mrn.value == "001234567"
    assert read(*HEADER, *lines, *body(), pattern=r"V\d{10}").mrn.value == "V0098812345"
    unsure = read(*HEADER, *lines, *body())  # no pattern: the first, with its rival lowering trust
    assert unsure.mrn.confidence < 0.6


def test_keyed_account_is_never_a_keyless_mrn() -> None:
    ids = read(
        *HEADER, (400, "DOE, JANE Q  F  03/14/1952  001234567"), (450, "HAR 7766554433  ADM 05/02/2023")
    )
    assert ids.mrn.value == "001234567" and ids.account.value == "7766554433"


def test_keyed_mrn_of_another_shape_loses_to_one_of_the_site_pattern() -> None:
    lines = [
        (400, "DOE, JANE Q  M001234567  F  03/14/1952"),
        (1200, "Outside records MRN: 55443322 reviewed"),
    ]
    assert read(*HEADER, *lines, *body(1300, 5), pattern=r"M\d{9}").mrn.value == "M001234567"
    assert read(*HEADER, *lines, *body(1300, 5)).mrn.value == "55443322"  # no pattern: the key wins


@pytest.mark.parametrize(
    ("dob", "age", "dos", "want"),
    [
        ("05/01/25", "", "06/01/2024", "1925-05-01"),  # 2025 would be after the visit
        ("05/01/15", "", "06/01/2023", "2015-05-01"),  # the latest century before the visit
        ("05/01/15", "108Y", "06/01/2023", "1915-05-01"),  # the age settles it
        ("05/01/20", "3Y", "06/01/2023", "2020-05-01"),
    ],
)
def test_two_digit_birth_years(dob: str, age: str, dos: str, want: str) -> None:
    ids = read(*HEADER, (400, f"DOB: {dob}  AGE: {age}" if age else f"DOB: {dob}"), (450, f"DOS: {dos}"))
    assert ids.dob.value == want


def test_birth_date_disagreeing_with_age_or_after_the_visit_is_distrusted() -> None:
    agree = read(*HEADER, (400, "DOB: 03/14/1952  AGE: 71Y"), (450, "DOS: 05/02/2023")).dob
    disagree = read(*HEADER, (400, "DOB: 03/14/1952  AGE: 12Y"), (450, "DOS: 05/02/2023")).dob
    after = read(*HEADER, (400, "DOB: 03/14/2023"), (450, "DOS: 05/02/2022")).dob
    assert agree.confidence > disagree.confidence
    assert after.confidence < 0.6


def test_sex_after_a_field_gap_is_not_a_middle_initial() -> None:
    gap = read(*HEADER, (400, "DOE, JANE  F  001234567  03/14/1952"))
    initial = read(*HEADER, (400, "DOE, JANE M  001234567  03/14/1952"))
    assert (gap.name.value, gap.sex.value) == ("DOE, JANE", "F")
    assert (initial.name.value, initial.sex) == ("DOE, JANE M", None)


def test_clinician_names_are_not_the_patient() -> None:
    ids = read(*HEADER, (400, "SMITH, JOHN MD  001234567  05/02/2023"), (450, "Att: BROWN, ANNA  F"))
    assert ids.name is None


def test_rows_gaps_and_blocks() -> None:
    text, words = page(*HEADER, (400, "DOE, JANE Q  001234567", 1500), (450, "F  03/14/52", 1500), *body())
    rows = page_rows(text, words, PAGE)
    assert [r.band for r in rows[:5]] == [True] * 5 and not rows[10].band
    assert rows[3].text == "DOE, JANE Q  001234567"
    label = [b for b in blocks(rows) if any("DOE" in s.text for s in b)]
    assert [s.text for s in label[0]] == ["DOE, JANE Q  001234567", "F  03/14/52"]
    assert all(not s.prose or s.row >= 5 for b in blocks(rows) for s in b)


def test_plain_text_without_word_boxes_still_reads_an_imprint() -> None:
    text = "\n".join(["RIVERBEND GENERAL HOSPITAL", "DOE, JANE Q  001234567  F  03/14/52", "PROGRESS NOTE"])
    ids = extract_identifiers(text, today=TODAY)
    assert (ids.mrn.value, ids.dob.value, ids.sex.value) == ("001234567", "1952-03-14", "F")


def test_repetition_across_pages_earns_a_keyless_value_its_trust() -> None:
    one = read(*HEADER, (400, "DOE, JANE Q  001234567  F  03/14/52"), *body())
    merged = merge_identifiers([one, one, one])
    assert merged.mrn.value == "001234567" and merged.mrn.confidence > 0.95 > one.mrn.confidence
    mixed = merge_identifiers([one, Identifiers(mrn=Extracted("009999999", 0.97))])
    assert mixed.mrn.confidence < one.mrn.confidence


def test_sex_round_trips_and_older_rows_still_load() -> None:
    ids = read(*HEADER, (400, "DOE, JANE Q  001234567  F  03/14/52"))
    assert Identifiers.from_dict(ids.to_dict()) == ids
    assert Identifiers.from_dict({"mrn": {"value": "001234567", "confidence": 0.9}}).sex is None


def test_overlapping_word_boxes_do_not_split_a_keyed_name() -> None:
    # Tesseract's box of a trailing initial can start inside the previous word's box (a negative gap):
    # the gaps of that row must still read as single spaces, and a wide gap after 'LAST,' never cuts.
    words = [
        Word("Patient", 92, 300, 500, 138, 32),
        Word("Name:", 92, 452, 500, 124, 31),
        Word("IVANOVA,", 92, 593, 500, 186, 36),
        Word("LAURA", 92, 797, 500, 171, 31),
        Word("F", 92, 942, 496, 28, 47),
        Word("MRN:", 92, 300, 560, 100, 31),
        Word("00880830", 92, 420, 560, 186, 31),
    ]
    ids = extract_identifiers("", words=words, page_size=PAGE, today=TODAY)
    assert ids.name.value == "IVANOVA, LAURA F"
    assert (
        extract_identifiers("Patient Name: IVANOVA,   LAURA F\nMRN: 00880830").name.value
        == "IVANOVA, LAURA F"
    )


def test_prose_ending_in_a_key_word_is_not_a_form_grid() -> None:
    # Found on a held-out page: a report line ending 'The patient' sat in the label band, the line under it
    # began 'and the', and the grid reader paired them into the name 'THE, AND' that beat the label's name.
    label = "EMPI E0045354 | DOE, JANE Q | DOB 03/14/1952 | Sex F | DOS 10/02/2015"
    ids = read(
        *HEADER,
        (400, label),
        (500, "fraction at 30 minutes was calculated to be 32% (normal is above 35%). The patient", 120),
        (550, "experienced 2/10 pain at 5 minutes after the injection of the agent, and the"),
        *body(),
    )
    assert ids.name is not None and ids.name.value == "DOE, JANE Q"


def test_form_grid_whose_key_lost_its_spaces_to_ocr() -> None:
    # Found on tuning pages: tesseract printed 'DATEOFBIRTH', and one unknown word in the key row made the
    # grid reader give up on the whole row (no MRN: the value under 'MED REC #' was never paired with it).
    keys = "PATIENT NAME     MED REC #  | DATEOFBIRTH | SEX | DATE OF SERVICE"
    values = "DOE, JANE Q      |0004581    |03/14/1952   |F   | 05/02/2023"
    ids = read(*HEADER, (400, keys), (450, values), *body())
    assert ids.mrn is not None and ids.mrn.value == "0004581"
    assert ids.dob is not None and ids.dob.value == "1952-03-14"


def test_grid_border_before_a_number_is_not_a_digit() -> None:
    # '|0004581' on a ruled form: the bar is the cell border. Read as a '1' it made an 8-digit number that
    # the facility's 7-digit pattern refused, so the page had no MRN at all.
    imprint = "DOE, JANE Q  |0004581  |03/14/1952  |F"
    ids = read(*HEADER, (400, imprint), *body(), pattern=r"\d{7}")
    assert ids.mrn is not None and ids.mrn.value == "0004581"
    assert read(*HEADER, (400, imprint), *body()).mrn.value == "0004581"  # no pattern: the border too


def test_a_junk_glyph_close_to_a_word_does_not_make_every_space_a_field_gap() -> None:
    # tesseract read a '__' hard against the initial: measured against that narrow gap, every word space of
    # the row looked like a field gap, and the name stopped before its initial
    words = [line(400, "Name: PEMBERTON, GIDEON M")[i] for i in range(4)]
    m = words[-1]
    junk = Word("__", 47.0, m.left + m.width + 10, 392, 24, 52)
    sex = line(400, "Sex: F", x=junk.left + junk.width + 3 * CHAR_W)
    text, body_words = page(*HEADER, *body())
    ids = extract_identifiers(
        "Name: PEMBERTON, GIDEON M __  Sex: F\n" + text,
        words=[*words, junk, *sex, *body_words],
        page_size=PAGE,
        today=TODAY,
    )
    assert ids.name is not None and ids.name.value == "PEMBERTON, GIDEON M"
    row = next(r for r in page_rows("", [*words, junk, *sex], PAGE) if "PEMBERTON" in r.text)
    assert "GIDEON M" in row.text and "  Sex:" in row.text  # the gap before the next field is still one


@pytest.mark.parametrize("damaged", ["D.O.B.", "1D.0.B.", '0.0.8."'])
def test_form_grid_with_combined_keys_and_a_key_ocr_damaged(damaged: str) -> None:
    # Found on the blind layouts (bench.generated --split blind): 'SEX/AGE' and 'ACCT/FIN' cells, and OCR's
    # '1D.0.B.' for 'D.O.B.', made the grid reader give up on the row; without the site's pattern the account
    # number under 'ACCT/FIN' was taken for the MRN.
    keys = f"NAME            {damaged:14s}SEX/AGE   ACCT/FIN      ADMIT       MR NO"
    values = "DOE, JANE Q     14-MAR-1952   F/71      7766554433    5/2/2023    001234567"
    ids = read(*HEADER, (400, keys), (450, values), *body())
    assert ids.mrn is not None and (ids.mrn.value, ids.mrn.confidence >= 0.9) == ("001234567", True)
    assert ids.account is not None and ids.account.value == "7766554433"
    assert ids.date_of_service is not None and ids.date_of_service.value == "2023-05-02"


def test_a_key_row_with_a_value_beside_a_key_is_no_grid() -> None:
    # Three keys, and a number where a damaged key would be: keys and values on one row, read as such.
    ids = read(*HEADER, (400, "NAME  DOE, JANE Q   MRN 001234567   SEX F"), *body())
    assert ids.mrn is not None and ids.mrn.value == "001234567"
    assert ids.name is not None and ids.name.value == "DOE, JANE Q"


@pytest.mark.parametrize(
    ("printed", "name", "sex"),
    [
        ("Whitmore, Jane A   39Y F", "WHITMORE, JANE A", "F"),
        ("Van Der Berg, Linda   72YF", "VAN DER BERG, LINDA", "F"),
        ("O'Brien-Marsh, Esme C'   9YM", "O'BRIEN-MARSH, ESME C", "M"),  # a speck after the initial
        ("Donnelly, KasiaB   36Y F", "DONNELLY, KASIA B", "F"),  # the initial glued to the first name
    ],
)
def test_a_mixed_case_name_line_of_a_label(printed: str, name: str, sex: str) -> None:
    # Found on the blind layouts: 'Whitmore, Jane A' (as some systems print a label's name) was never read,
    # and an age glued to the sex ('39YF') gave neither.
    label = [printed, "Med Rec No. 001234567", "Birth Date 14-MAR-1952"]
    ids = read(*HEADER, *body(), *((2800 + 50 * i, ln, 200) for i, ln in enumerate(label)))
    assert ids.name is not None and ids.name.value == name
    assert ids.sex is not None and ids.sex.value == sex
    assert ids.mrn is not None and ids.mrn.value == "001234567"


def test_mixed_case_words_with_a_comma_that_are_no_name_line() -> None:
    # An address in the header block beside numbers, and a name inside a sentence: neither is a name.
    ids = read(
        (150, "Riverbend General Hospital"),
        (200, "1200 Valley Pike, Harrow, KY 40601  MRN 001234567"),
        (250, "Seen by Smith, John today  DOB 03/14/1952"),
        *body(),
    )
    assert ids.name is None


def test_a_combined_key_read_as_one_word_names_its_first_value() -> None:
    # Found on the second blind layouts: 'DOB/AGE' over '03-04-1952 / 72', one OCR word for two keys: the
    # value went to 'AGE' and the page had no birth date.
    keys = "PATIENT NAME   MEDICAL RECORD #   DOB/AGE        SEX   VISIT DATE"
    values = "DOE, JANE Q    001234567          03-14-1952 / 72   F     05-02-2023"
    ids = read(*HEADER, (400, keys), (450, values), *body())
    assert ids.dob is not None and (ids.dob.value, ids.dob.confidence >= 0.9) == ("1952-03-14", True)
    assert ids.mrn is not None and ids.mrn.value == "001234567"

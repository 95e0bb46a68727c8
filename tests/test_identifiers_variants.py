"""Identifier label variants and date formats of the domain README (A4), ICD-10-CM codes in context, and one
rendered label block read back through real tesseract.

Every variant is checked inside a realistic header (hospital name, label block, title), not alone on a line.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from chartvault.classify import extract_identifiers, merge_identifiers
from chartvault.classify.identifiers import extract_icd_codes
from chartvault.classify.labelpass import RELOOK_DOB_BELOW
from chartvault.classify.types import Extracted, Identifiers

TODAY = date(2024, 6, 1)


def header(*label_lines: str, title: str = "PROGRESS NOTE") -> str:
    return "\n".join(
        ["RIVERBEND GENERAL HOSPITAL", "1200 River Road, Springfield", *label_lines, "", title, "",
         "SUBJECTIVE: Doing well. Follow-up in 3 months."]
    )  # fmt: skip


MRN_LABELS = [
    *("MRN:", "MRN", "MR#:", "MR #", "MR#", "Med Rec No:", "Med Rec No.", "Med Rec #:"),
    *("Medical Record Number:", "Medical Record No:", "Unit #:", "Chart #:", "Patient ID:", "EMPI:"),
]


@pytest.mark.parametrize("label", MRN_LABELS)
@pytest.mark.parametrize("mrn", ["0012345678", "000123", "E0073032"])
def test_mrn_labels_keep_the_string(label: str, mrn: str) -> None:
    ids = extract_identifiers(header("DOE, JANE A", f"{label} {mrn}   DOB: 01/05/1980"), today=TODAY)
    assert ids.mrn is not None and ids.mrn.value == mrn  # a string: leading zeros and prefix kept
    assert ids.mrn.confidence >= 0.9


DATE_FORMATS = {
    "01/05/1980": "1980-01-05",  # MM/DD/YYYY
    "1/5/1980": "1980-01-05",
    "1980-01-05": "1980-01-05",  # ISO
    "05-JAN-1980": "1980-01-05",  # DD-MON-YYYY
    "05-Jan-1980": "1980-01-05",
    "January 5, 1980": "1980-01-05",  # Month D, YYYY
    "Jan 5, 1980": "1980-01-05",
    "Sept. 30, 1980": "1980-09-30",
}
DOB_LABELS = ["DOB:", "DOB", "D.O.B.:", "D.O.B.", "Birth Date:", "Birthdate:", "Date of Birth:"]


@pytest.mark.parametrize("label", DOB_LABELS)
@pytest.mark.parametrize(("printed", "iso"), list(DATE_FORMATS.items()))
def test_dob_labels_and_date_formats(label: str, printed: str, iso: str) -> None:
    ids = extract_identifiers(header(f"MRN: 0012345678   {label} {printed}   SEX: F"), today=TODAY)
    assert ids.dob is not None and ids.dob.value == iso


DOS_LABELS = ["DOS:", "D.O.S.:", "Date of Service:", "Service Date:", "Visit Date:", "Date of Visit:"]
DOS_FORMATS = [("03/14/2022", "2022-03-14"), ("14-MAR-2022", "2022-03-14"), ("2022-03-14", "2022-03-14"),
               ("March 14, 2022", "2022-03-14")]  # fmt: skip


@pytest.mark.parametrize("label", DOS_LABELS)
@pytest.mark.parametrize(("printed", "iso"), DOS_FORMATS)
def test_date_of_service_labels(label: str, printed: str, iso: str) -> None:
    text = header("MRN: 0012345678  DOB: 01/05/1980", f"{label} {printed}")
    ids = extract_identifiers(text, today=TODAY)
    assert ids.date_of_service is not None and ids.date_of_service.value == iso
    assert ids.dob is not None and ids.dob.value == "1980-01-05"  # never confused with the DOS


@pytest.mark.parametrize(
    ("line", "field", "want"),
    [
        ("ACCT #: 0098765432", "account", "0098765432"),
        ("Account Number: 0098765432", "account", "0098765432"),
        ("FIN: 0098765432", "account", "0098765432"),
        ("HAR: 0098765432", "account", "0098765432"),
        ("Encounter #: 000456789", "encounter", "000456789"),
        ("ENC: 000456789", "encounter", "000456789"),
        ("Visit #: 000456789", "encounter", "000456789"),
        ("CSN: 000456789", "encounter", "000456789"),
    ],
)
def test_account_and_encounter_labels(line: str, field: str, want: str) -> None:
    ids = extract_identifiers(header("MRN: 0012345678", line), today=TODAY)
    assert getattr(ids, field) is not None and getattr(ids, field).value == want
    assert ids.mrn.value == "0012345678"


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("PATIENT: DOE, JANE A", "DOE, JANE A"),
        ("Patient Name: Jane A. Doe", "DOE, JANE A"),
        ("NAME: VAN DER BERG, EDWARD", "VAN DER BERG, EDWARD"),
        ("Pt Name: O'Neil, Mary", "O'NEIL, MARY"),
    ],
)
def test_patient_name_labels(line: str, want: str) -> None:
    ids = extract_identifiers(header(line, "MRN: 0012345678  DOB: 01/05/1980"), today=TODAY)
    assert ids.name is not None and ids.name.value == want


def test_label_block_on_one_line_with_bars() -> None:
    text = header("DOE, JANE A | MR#: 0000456123 | D.O.B.: 05-JAN-1980 | ACCT #: 77001234 | DOS: 2022-03-14")
    ids = extract_identifiers(text, today=TODAY)
    assert (ids.mrn.value, ids.dob.value, ids.account.value, ids.date_of_service.value) == (
        "0000456123",
        "1980-01-05",
        "77001234",
        "2022-03-14",
    )
    assert ids.name.value == "DOE, JANE A"


# --------------------------------------------------------------------------------------------------------
# ICD-10-CM codes


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Dx: E11.9, I10", ["E11.9", "I10"]),
        ("DIAGNOSIS: Type 2 diabetes mellitus (E11.65); essential hypertension (I10)", ["E11.65", "I10"]),
        ("ICD-10-CM: M1A.0710  C4A.9  Z3A.39", ["M1A.0710", "C4A.9", "Z3A.39"]),
        ("ICD: U07.1", ["U07.1"]),
        ("IMPRESSION: Closed fracture of right femoral neck, S72.001A.", ["S72.001A"]),
        ("DISCHARGE DIAGNOSES:\n1. Community-acquired pneumonia, J18.9\n2. COPD exacerbation J44.1\n\nPLAN:",
         ["J18.9", "J44.1"]),
        ("Assessment and Plan: O24.419 gestational diabetes", ["O24.419"]),
    ],
)  # fmt: skip
def test_icd_codes_in_context(text: str, want: list[str]) -> None:
    assert extract_icd_codes(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "Hemoglobin A1C 8.1 % on 03/02; E11.9 mentioned in the body only",  # no diagnosis context
        "Dx: diabetes, A1C 9.2",  # A1C: a lab test, not a code (and no such category)
        "Dx: B12 deficiency",  # a vitamin
        "PREOPERATIVE DIAGNOSIS: T12 compression fracture",  # a spinal level
        "Diagnosis: pending. Room B12, bed 3",
        "Dx: E11.9X.2",  # not a valid shape
        "Dx: e11.9",  # lower case: not printed codes
        "DIAGNOSIS:\n\nE11.9",  # a blank line ends the section
    ],
)
def test_icd_lookalikes_ignored(text: str) -> None:
    assert extract_icd_codes(text) == []


def test_icd_codes_per_page_and_merged_per_document() -> None:
    p1 = extract_identifiers(header("MRN: 0012345678", "Dx: E11.9, I10"), today=TODAY)
    p2 = extract_identifiers(header("MRN: 0012345678", "ICD-10: I10; E78.5"), today=TODAY)
    assert p1.icd_codes == ["E11.9", "I10"] and p2.icd_codes == ["I10", "E78.5"]
    assert merge_identifiers([p1, p2]).icd_codes == ["E11.9", "I10", "E78.5"]
    round_trip = Identifiers.from_dict(p1.to_dict())
    assert round_trip == p1
    assert Identifiers.from_dict({"mrn": {"value": "1", "confidence": 0.5}}).icd_codes == []  # older rows


def test_merge_majority_and_leading_zeros() -> None:
    pages = [Identifiers(mrn=Extracted("0012345", 0.97)) for _ in range(2)]
    pages.append(Identifiers(mrn=Extracted("12345", 0.97)))  # a different string, not the same number
    merged = merge_identifiers(pages)
    assert merged.mrn.value == "0012345" and merged.mrn.confidence < 0.97


def test_a_page_that_lost_the_middle_initial_agrees_with_the_pages_that_read_it() -> None:
    name = [Extracted("INGRAM, FARAH", 0.96), Extracted("INGRAM, FARAH B", 0.96)]
    merged = merge_identifiers([Identifiers(name=n) for n in name])
    assert merged.name == Extracted("INGRAM, FARAH B", round(1 - 0.04 * 0.04, 3))  # agreement, not a conflict
    # two initials: the page without one cannot say which it lost, and the disagreement shows in the score
    name.append(Extracted("INGRAM, FARAH E", 0.96))
    merged = merge_identifiers([Identifiers(name=n) for n in name])
    assert merged.name is not None and merged.name.confidence < 0.5


# --------------------------------------------------------------------------------------------------------
# A rendered label block, OCR'd by tesseract


def test_rendered_label_block_read_by_tesseract(tmp_path: Path) -> None:
    from chartvault.filetypes import FileKind
    from chartvault.ocr import extract_page
    from chartvault.ocr.types import OcrOptions

    lines = [
        "RIVERBEND GENERAL HOSPITAL",
        "PATIENT: DOE, JANE A",
        "MR#: 0000456123        D.O.B.: 05-JAN-1980",
        "Med Rec No: 0000456123    Birth Date: January 5, 1980",
        "ACCT #: 77001234        Date of Service: 2022-03-14",
        "",
        "DISCHARGE SUMMARY",
        "DISCHARGE DIAGNOSES: Type 2 diabetes mellitus (E11.9); hypertension (I10).",
        "Hemoglobin A1C 8.1 percent at admission.",
    ]
    page = Image.new("L", (2550, 3300), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=44)
    for i, ln in enumerate(lines):
        draw.text((180, 200 + i * 80), ln, font=font, fill=0)
    path = tmp_path / "label.png"
    page.save(path, dpi=(300, 300))
    text = extract_page(path, FileKind.PNG, 1, OcrOptions(), tmp_path / "work").text
    ids = extract_identifiers(text, today=TODAY)
    assert ids.mrn.value == "0000456123"
    assert ids.dob.value == "1980-01-05"
    assert ids.account.value == "77001234"
    assert ids.date_of_service.value == "2022-03-14"
    assert ids.name.value == "DOE, JANE A"
    assert ids.icd_codes == ["E11.9", "I10"]


# What fax-quality OCR made of corner labels on tuning pages (bench.generated --split tuning): a 'J' read as
# a bracket, 'U' as 'LI', a leading zero as the letter O, 't' of 'Date' as 'l' or its 'e' as 'a'.
@pytest.mark.parametrize(
    ("line", "field", "want", "repaired"),
    [
        ("Birthdate: 13-]UL-2010", "dob", "2010-07-13", True),
        ("Birthdate; 14-OCT-1949", "dob", "1949-10-14", False),
        ("Visit Date; 24-JLIN-2016", "date_of_service", "2016-06-24", True),
        ("Visit Dale: O8-MAY-2021", "date_of_service", "2021-05-08", True),
        ("Visit Data: 03-OCT-2017", "date_of_service", "2017-10-03", False),
    ],
)
def test_fax_damaged_keys_and_month_names(line: str, field: str, want: str, repaired: bool) -> None:
    label = ["Name: Aaron N. Novak", "Med Rec #: M290855347", line]
    if field == "date_of_service":
        label.insert(2, "Birthdate: 21-NOV-1985")
    got = getattr(extract_identifiers(header(*label), today=TODAY), field)
    assert got is not None and got.value == want
    assert (got.confidence < 0.9) == repaired  # a date whose letters were repaired is trusted less


@pytest.mark.parametrize("key", ["Mad Ree #:", "Med Ree #:", "Mad Rec #:"])
def test_fax_damaged_med_rec_key(key: str) -> None:
    ids = extract_identifiers(header("Name: Aaron N. Novak", f"{key} 3960855419", "Birthdate: 21-NOV-1985"))
    assert ids.mrn is not None and ids.mrn.value == "3960855419" and ids.mrn.confidence >= 0.9


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("Name: Eamon R, Kowalczyk", "KOWALCZYK, EAMON R"),  # the initial's period read as a comma
        ("Name: Aaron N, Novak", "NOVAK, AARON N"),
        ("NAME: KOWALCZYK, EAMON R", "KOWALCZYK, EAMON R"),  # a real 'LAST, FIRST M' stays as it is
    ],
)
def test_first_initial_comma_last_is_first_middle_last(line: str, want: str) -> None:
    ids = extract_identifiers(header(line, "MRN: 0012345678  DOB: 01/05/1980"), today=TODAY)
    assert ids.name is not None and ids.name.value == want


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("Patient: WHITGOMBE, \u2018DESMOND S  MR#: 71624260", "WHITGOMBE, DESMOND S"),  # a speck: a quote
        ("Patient: GALLOWAY, ORLA) MR#: 90194666", "GALLOWAY, ORLA J"),  # a glued 'J' read as a bracket
        ("Name: WHITCOMBE, ALMA}  Sex: M", "WHITCOMBE, ALMA J"),
        ("Patient: INGRAM, FARAH B_ MR#: MR00871140", "INGRAM, FARAH B"),  # a '_' the LSTM added
        ("Name: PEMBERTON, GIDEON M __  Sex: F", "PEMBERTON, GIDEON M"),
        ("Name: PRENDERGAST -CASTELLANO, NADIA L", "PRENDERGAST-CASTELLANO, NADIA L"),  # a spaced hyphen
        ("Name: O'NEIL, MAEVE", "O'NEIL, MAEVE"),  # an apostrophe inside a name stays
        ("Name: LEE (HONG), ANNA", None),  # brackets that open and close are not a misread letter
    ],
)
def test_names_through_ocr_specks_and_a_bracketed_initial(line: str, want: str | None) -> None:
    ids = extract_identifiers(header(line, "MRN: 0012345678  DOB: 01/05/1980"), today=TODAY)
    assert (ids.name.value if ids.name else None) == want


@pytest.mark.parametrize(
    ("printed", "want"),
    [
        ("eASTWOOD, NOEMI R", "EASTWOOD, NOEMI R"),  # the surname's first letter read small (fax)
        ("GALLOWAY, ORLA)", "GALLOWAY, ORLA J"),  # a glued 'J' read as a bracket
        ("PRENDERGAST -CASTELLANO, NADIA L", "PRENDERGAST-CASTELLANO, NADIA L"),
    ],
)
def test_a_thermal_name_line_without_a_key_through_ocr_damage(printed: str, want: str) -> None:
    text = "\n".join(
        [f"St. Aurelia Medical Center   {printed}", "88 Cathedral Way   MRN: M183685000  CSN: 686210954",
         "Tel (207) 555-0142   DOB: 01/27/1994 21y M", "", "PROGRESS NOTE", "", "SUBJECTIVE: Doing well."]
    )  # fmt: skip
    ids = extract_identifiers(text, today=TODAY)
    assert ids.name is not None and ids.name.value == want


@pytest.mark.parametrize(
    ("printed", "pattern", "want"),
    [
        ("Med Rec #: F6659611", r"E\d{7}", "E6659611"),  # a fax read the prefix E as F
        ("MRN: HR00056354", r"MR\d{8}", "MR00056354"),
        ("MRN: F6659611", r"F\d{7}", "F6659611"),  # a site whose prefix is F: nothing to repair
        ("MRN: X6659611", r"E\d{7}", "X6659611"),  # no look-alike of E: left off the pattern, not guessed
    ],
)
def test_a_prefix_letter_misread_as_its_look_alike_is_read_back_to_the_site_pattern(
    printed: str, pattern: str, want: str
) -> None:
    text = header("DOE, JANE A", f"{printed}   DOB: 01/05/1980")
    ids = extract_identifiers(text, mrn_pattern=pattern, today=TODAY)
    assert ids.mrn is not None and ids.mrn.value == want
    if want != printed.split()[-1]:
        assert ids.mrn.confidence < 0.9  # a repair is trusted less than a clean reading


def test_a_keyless_imprint_number_with_a_misread_prefix_is_read_back_to_the_site_pattern() -> None:
    text = "\n".join(
        ["Calder Bay Health        F6659611  A00068244",
         "Tel (206) 555-0163      DOE, JANE A   F  04/09/1941 77Y",
         "", "CLINIC NOTE", "", "SUBJECTIVE: Doing well."]
    )  # fmt: skip
    ids = extract_identifiers(text, mrn_pattern=r"E\d{7}", today=TODAY)
    assert ids.mrn is not None and ids.mrn.value == "E6659611"


@pytest.mark.parametrize(
    ("printed", "field", "want"),
    [
        ("Adm: 03/15/2923", "date_of_service", "2023-03-15"),  # a fax read the 0 of the year as a 9
        ("Adm: 04/10/7015", "date_of_service", "2015-04-10"),  # and a 2 as a 7
        ("DOB: 07/07/7977", "dob", "1977-07-07"),
        ("Adm: 03/15/8888", "date_of_service", None),  # no single look-alike makes a year it can be
        ("DOB: 05/01/2090", "dob", None),  # a real year, only in the future: wrong for a DOB, not misread
    ],
)
def test_a_year_no_date_can_have_is_read_back_by_one_look_alike_digit(
    printed: str, field: str, want: str | None
) -> None:
    other = "DOB: 01/05/1980" if field == "date_of_service" else "DOS: 03/14/2022"
    ids = extract_identifiers(header("MRN: 0012345678", f"{other}   {printed}"), today=TODAY)
    got = getattr(ids, field)
    assert (got.value if got else None) == want
    if got is not None:
        assert (
            got.confidence < RELOOK_DOB_BELOW
        )  # trusted less than any clean reading; a DOB is looked at again


# What fax OCR made of keys on the blind layouts (bench.generated --split blind): a key's '.' read as ',',
# 'DOB' as 'DOR' or 'ROR', 'Service' as 'Serviee', 'Admit' as 'Admil'.
@pytest.mark.parametrize(
    ("line", "field", "want"),
    [
        ("Med Rec No, 5680419437", "mrn", "5680419437"),
        ("Unit No: 0012345 | DOE, JANE | 56Y F | DOR: 5/14/62", "dob", "1962-05-14"),
        ("Unit No: 0012345 | DOE, JANE | 56Y F | ROR: 5/14/62", "dob", "1962-05-14"),
        ("Date of Serviee: 05/02/2023", "date_of_service", "2023-05-02"),
        ("Admil.:  3/23/2016", "date_of_service", "2016-03-23"),
    ],
)
def test_keys_fax_damaged_on_other_labels(line: str, field: str, want: str) -> None:
    label = ["Name: Aaron N. Novak", line] if field != "dob" else [line, "Adm: 05/02/2018"]
    got = getattr(extract_identifiers(header(*label), today=TODAY), field)
    assert got is not None and got.value == want
    assert got.confidence >= 0.9  # read through its key


@pytest.mark.parametrize("line", ["dor: 5/14/62", "Dor: 5/14/62", "DOR 5/14/62"])
def test_a_dob_misread_key_needs_capitals_and_a_colon(line: str) -> None:
    text = header("Name: Aaron N. Novak", "MRN: 0012345") + f"\nRange of motion {line} good."
    assert extract_identifiers(text, today=TODAY).dob is None


@pytest.mark.parametrize(
    ("line", "field", "want"),
    [
        ("DOB: 04MAR1952  72Y  F", "dob", "1952-03-04"),  # compact day-month-year, as some labels print it
        ("DOB: O4MAR52  72Y  F", "dob", "1952-03-04"),
        ("Adm Date: 12SEP2019", "date_of_service", "2019-09-12"),
    ],
)
def test_compact_dates(line: str, field: str, want: str) -> None:
    label = ["DOE, JANE A", "Med Rec #: 0012345", line]
    if field == "date_of_service":
        label.insert(2, "DOB: 03/04/1952")
    got = getattr(extract_identifiers(header(*label), today=TODAY), field)
    assert got is not None and got.value == want


def test_a_dose_glued_to_a_number_is_no_compact_date() -> None:
    assert extract_identifiers(header("DOE, JANE A", "MRN: 0012345", "DOB: 5mg2020"), today=TODAY).dob is None


# What OCR made of the second blind layouts (bench.generated --split blind2): keys and dates of labels that
# print 'DOB/Age:', 'Admitted:', 'Svc Date:' and day-month-year dates, through fax and smudge.
@pytest.mark.parametrize(
    ("line", "field", "want"),
    [
        ("DOB/Age: 03/04/1952 / 72Y  Sex: F", "dob", "1952-03-04"),
        ("Admitted: 09/12/2019", "date_of_service", "2019-09-12"),
        ("Sve Date: 2019-02-12", "date_of_service", "2019-02-12"),
        ("DOS: 18.May 2019", "date_of_service", "2019-05-18"),
        ("DOS: 04. May 2024", "date_of_service", "2024-05-04"),
        ("Adm Date: 090CT2023", "date_of_service", "2023-10-09"),
        ("Pt Namo: Hollister, Calvin D | MRN#: 55768713", "name", "HOLLISTER, CALVIN D"),
    ],
)
def test_keys_and_dates_of_other_labels(line: str, field: str, want: str) -> None:
    label = ["DOE, JANE A", "Med Rec #: 0012345", line]
    if field == "date_of_service":
        label.insert(2, "DOB: 03/04/1952")
    if field == "name":
        label = [line]
    got = getattr(extract_identifiers(header(*label), today=TODAY), field)
    assert got is not None and got.value == want


def test_an_imprint_name_without_a_comma() -> None:
    # 'LAST FIRST M' embossed without a comma, beside keyless numbers and dates: the surname first.
    from chartvault.classify.keyless import BARE_NAME

    label = ["ST. AURELIA MEDICAL CENTER", "OKONKWO GRETA W", "M992481736  25APR1999  F", "V0091  03JUN2020"]
    report = ["DR HALVORSEN", "", "HISTORY AND PHYSICAL", "", "CHIEF COMPLAINT: Cough for two weeks."]
    text = "\n".join([*label, *report])
    ids = extract_identifiers(text, today=TODAY)
    assert ids.name is not None and (ids.name.value, ids.name.confidence) == ("OKONKWO, GRETA W", BARE_NAME)
    assert ids.dob is not None and ids.dob.value == "1999-04-25"
    assert ids.mrn is not None and ids.mrn.value == "M992481736"


@pytest.mark.parametrize("title", ["RADIOLOGY REPORT", "DISCHARGE SUMMARY", "MEDICAL CENTER"])
def test_a_title_in_capitals_is_no_imprint_name(title: str) -> None:
    text = "\n".join([title, "M992481736  25APR1999  F", "", "CHIEF COMPLAINT: Cough for two weeks."])
    assert extract_identifiers(text, today=TODAY).name is None


def test_the_age_of_a_dob_age_key_is_the_value_after_the_date() -> None:
    # 'DOB/Age: 03/04/1952 / 72Y': read as 'Age: 03' the age was 3, which the birth date contradicted.
    label = ["DOE, JANE A", "Hosp #: 0012345", "DOB/Age: 03/04/1952 / 72Y", "Admitted: 05/02/2024"]
    ids = extract_identifiers(header(*label), today=TODAY)
    assert ids.dob is not None and (ids.dob.value, ids.dob.confidence >= 0.9) == ("1952-03-04", True)
    assert ids.mrn is not None and (ids.mrn.value, ids.mrn.confidence >= 0.9) == ("0012345", True)

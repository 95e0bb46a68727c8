"""Text helpers the document-type rules and the trained model share: printed titles, and the label,
header and footer lines that every page prints whatever its type (so neither may learn from them).

Kept apart from ``doctype`` and ``model`` so each imports this and neither imports the other.
"""

from __future__ import annotations

import re

__all__ = ["TITLE_WEIGHT", "is_label_line", "strip_label_lines", "title_votes"]

# A title is looked for in the first lines of the page (after hospital name, address and patient label).
TITLE_SEARCH_LINES = 22
TITLE_WEIGHT = 14.0  # a printed title decides unless the body contradicts it strongly

_PREFIX = r"(?:[A-Z][A-Z/&\-]*[ ]){0,3}"  # 'CARDIOLOGY CONSULTATION', 'BRIEF OPERATIVE NOTE'
_SUFFIX = r"(?:[ ](?:NOTE|REPORT|RECORD|FORM|SHEET|VISIT|SUMMARY|EXAMINATION|EXAM))?"

# (doc_type, full-line title pattern). Matched case-insensitively against a whole short line.
# fmt: off
_TITLES: list[tuple[str, str]] = [
    ("discharge_summary", _PREFIX + r"(?:DISCHARGE|DEATH|TRANSFER)[ ]SUMMARY(?:[ ]REPORT)?"),
    ("discharge_summary", r"(?:HOSPITAL[ ])?DISCHARGE[ ](?:NOTE|RECORD|REPORT)"),
    ("operative_report",
     _PREFIX + r"(?:OPERATIVE|OPERATION|SURGICAL|SURGERY|OP|PROCEDURE)[ ](?:NOTE|REPORT|RECORD)"),
    ("operative_report", r"REPORT[ ]OF[ ](?:OPERATION|PROCEDURE|SURGERY)"),
    ("operative_report", r"(?:BRIEF[ ])?OP(?:ERATIVE)?[ ]NOTE"),
    ("history_and_physical", _PREFIX + r"HISTORY[ ]?(?:AND|&)[ ]?PHYSICAL" + _SUFFIX),
    ("history_and_physical", _PREFIX + r"H[ ]?(?:&|AND)[ ]?P" + _SUFFIX),
    ("history_and_physical", r"(?:ADMISSION|ADMIT|ADMITTING)[ ](?:NOTE|HISTORY)"),
    ("consult_note", _PREFIX + r"CONSULT(?:ATION)?(?:[ ](?:NOTE|REPORT|REQUEST))?"),
    ("consult_note", _PREFIX + r"CONSULTATIVE[ ](?:NOTE|REPORT|EVALUATION)"),
    ("radiology_report",
     _PREFIX + r"(?:RADIOLOGY|IMAGING|X-?RAY|CT|MRI|ULTRASOUND|SONOGRAPHY|MAMMOGRA(?:M|PHY)|"
     r"NUCLEAR[ ]MEDICINE|FLUOROSCOPY)[ ](?:REPORT|RESULTS?|EXAMINATION|CONSULTATION)"),
    ("radiology_report", r"(?:DIAGNOSTIC[ ])?(?:RADIOLOGY|IMAGING)(?:[ ]REPORT)?"),
    ("progress_note",
     _PREFIX + r"(?:PROGRESS|CLINIC|OFFICE|FOLLOW[- ]?UP|SOAP|VISIT|OUTPATIENT)[ ]NOTES?"),
    ("progress_note", r"(?:OFFICE|CLINIC|FOLLOW[- ]?UP|RETURN)[ ]VISIT"),
    ("progress_note", r"PROGRESS[ ]NOTES?|INTERVAL[ ]NOTE"),
    ("ed_note",
     r"(?:EMERGENCY|ER|ED)(?:[ ](?:DEPARTMENT|DEPT\.?|ROOM|MEDICINE))?[ ](?:PHYSICIAN[ ]|PROVIDER[ ]|"
     r"TREATMENT[ ]|VISIT[ ])?(?:NOTE|REPORT|RECORD|SUMMARY|DOCUMENTATION|CHART)"),
    ("ed_note", r"EMERGENCY[ ](?:DEPARTMENT|ROOM)"),
    ("lab_report", _PREFIX + r"(?:LABORATORY|LAB)[ ](?:REPORT|RESULTS?|SUMMARY|DATA)"),
    ("lab_report", r"CUMULATIVE[ ](?:LAB(?:ORATORY)?[ ])?(?:REPORT|SUMMARY)"),
    ("pathology_report",
     _PREFIX + r"(?:PATHOLOGY|CYTOLOGY|AUTOPSY|HISTOPATHOLOGY|BIOPSY)[ ](?:REPORT|CONSULTATION)"),
    ("pathology_report", r"(?:SURGICAL[ ])?PATHOLOGY"),
    ("consent", _PREFIX + r"CONSENT(?:[ ](?:FORM|TO|FOR)[A-Z ,/&\-]*)?"),
    ("consent", r"CONDITIONS[ ]OF[ ](?:ADMISSION|TREATMENT|SERVICE)"),
    ("advance_directive",
     r"(?:ADVANCE[ ](?:HEALTH[ ]CARE[ ])?DIRECTIVES?|LIVING[ ]WILL|HEALTH[ ]?CARE[ ]PROXY|POLST|MOLST|"
     r"DURABLE[ ]POWER[ ]OF[ ]ATTORNEY[A-Z ]*|DO[ ]NOT[ ]RESUSCITATE[A-Z ]*|DNR[ ]ORDER)"),
    ("correspondence",
     r"(?:FAX[ ]COVER(?:[ ]SHEET)?|FACSIMILE[ ]TRANSMITTAL|(?:[A-Z]+[ ]){0,2}LETTER|MEMORANDUM)"),
    ("billing",
     r"(?:EXPLANATION[ ]OF[ ]BENEFITS|ITEMIZED[ ](?:STATEMENT|BILL)|PATIENT[ ]STATEMENT|STATEMENT[ ]OF[ ]"
     r"ACCOUNT|UB-?04|CMS-?1500|HCFA-?1500|BILLING[ ]STATEMENT|INVOICE)"),
    ("roi_authorization",
     r"(?:AUTHORIZATION[ ](?:FOR|TO)[ ](?:THE[ ])?(?:RELEASE|USE|DISCLOS)[A-Z ,/&\-]*|"
     r"REQUEST[ ]FOR[ ](?:MEDICAL[ ])?RECORDS|RELEASE[ ]OF[ ]INFORMATION[A-Z ]*)"),
    ("legal",
     r"(?:SUBPOENA(?:[ ]DUCES[ ]TECUM)?|COURT[ ]ORDER|AFFIDAVIT[A-Z ]*|NOTICE[ ]OF[ ]DEPOSITION|"
     r"LETTERS?[ ]OF[ ]GUARDIANSHIP|IN[ ]THE[ ][A-Z ]*COURT[A-Z ,]*)"),
    # Chart sections without a type of their own: recognised so they are not forced into a clinical type.
    ("other",
     r"(?:FACE[ ]SHEET|ADMISSION[ ]RECORD|REGISTRATION(?:[ ]FORM)?|(?:PHYSICIAN'?S?|DOCTOR'?S?|"
     r"ADMISSION|POST-?OP(?:ERATIVE)?)[ ]ORDERS|ORDER[ ]SHEET|MEDICATION[ ]ADMINISTRATION[ ]RECORD|"
     r"NURS(?:ING|ES'?)[ ](?:NOTES?|ASSESSMENT)|ANESTHESIA[ ]RECORD|DEATH[ ]CERTIFICATE)"),
]
# fmt: on
# Letters OCR misreads inside capitalised titles ('PHYSlCAL', 'C0NSULTATION').
_TITLE_OCR_FIX = str.maketrans({"0": "O", "1": "I", "l": "I", "|": "I", "5": "S", "8": "B"})
_TITLE_RES = [
    (t, re.compile(r"[ ]*" + p + r"[ ]*\.?[ ]*", re.I)) for t, p in _TITLES
]  # no colon: that is a heading


# Lines of the patient label / header / footer: printed on every page whatever the type, so they must not
# vote ('ADMIT DATE:' would otherwise count for H&P, 'Encounter:' for others).
# Every key synonym of the domain notes (A4) counts, and so do keyless label lines: a 'LAST, FIRST M'
# name at the start of a line, and an imprint's physician ('DR SMITH').
_LABEL_LINE = re.compile(
    r"(?i)(?:\bMRN\b|\bMR[ ]?#|Med[ ]Rec|\bD\.?O\.?B\b|Birth[ ]?Date|Date[ ]of[ ]Birth|\bACCT\b|Account[ ]?#|"
    r"\bFIN\b|\bENC\b|Encounter[ ]?[:#]|VISIT[ ]?#|Visit[ ]Date|Date[ ]of[ ]Service|\bDOS\b|"
    r"ADM(?:IT)?[ ]DATE|\bAdm(?:/Disch)?\b[:.]?[ ]*\d|\bUnit[ ]?#|\bChart[ ]?#|Patient[ ]ID\b|\bEMPI\b|"
    r"\bHAR\b|\bCSN\b|\bSex[ ]?:|"
    r"^\s*(?:PATIENT|NAME|Patient[ ]Name)[ ]?:|^\s*(?:ATTENDING|PHYSICIAN|Att)[ ]?:|\(continued\)|"
    r"Page[ ]\d+[ ]of[ ]\d+|^\s*Tel\b|\bFax[ ]\(|CONFIDENTIAL)"
)
_KEYLESS_LABEL_LINE = re.compile(
    r"^\s*(?:[A-Z0-9]{6,}\s+)?[A-Z][A-Z'\-]+(?:[ ][A-Z][A-Z'\-]+){0,2}[ ]?,[ ]*[A-Z][A-Z'\-]+(?:[ ][A-Z]\.?)?"
    r"(?:\s|$)|\bDR\.?[ ]+[A-Z]{2,}\b"
)
# An imprint line of values only: a birth date with sex and age ('F 03/14/1952 72Y', '03/14/52 M 72'), or the
# MRN beside an account number ('MR00123456 0012345678'). Every token is a date, a number (perhaps with a
# short letter prefix), a sex letter or an age; at least one is a date or a long number, so a line of lab
# values or a numbered list item is not taken.
_VALUE_TOKEN = r"(?:\d{1,2}[/-]\d{1,2}[/-]\d{2,4}|[A-Z]{0,3}\d{5,}|\d{1,3}[ ]?(?:Y|YR|YRS|YO)?|[MF])"
_VALUES_ONLY_LINE = re.compile(rf"^\s*{_VALUE_TOKEN}(?:[ \t]+{_VALUE_TOKEN})+\s*$")
_LONG_VALUE = re.compile(r"\d{1,2}[/-]\d{1,2}[/-]\d{2,4}|[A-Z]{0,3}\d{5,}")
_HEADER_ZONE = 14
_LABEL_LINE_MAX = 100  # a longer line is report text that happens to quote a label
_STRIP_LINE_MAX = 160  # ... unless it holds several keys: a footer strip
# Page furniture that can sit anywhere when pages are joined into one text (continuation headers, footers).
_FURNITURE_LINE = re.compile(r"(?i)\(continued\)|Page[ ]\d+[ ]of[ ]\d+|CONFIDENTIAL[ ]PATIENT[ ]INFORMATION")


def is_label_line(line: str) -> bool:
    """A line of a patient label, header or footer (keyed or keyless), judged on the line alone.

    A footer strip that prints the whole label on one line may run past ``_LABEL_LINE_MAX``: it is still a
    label line when it carries two keys or more ('Patient: ... MR#: ... D.O.B.: ...').
    """
    if len(line) > _LABEL_LINE_MAX:
        return len(line) <= _STRIP_LINE_MAX and len(_LABEL_LINE.findall(line)) >= 2
    return bool(_LABEL_LINE.search(line) or _KEYLESS_LABEL_LINE.search(line) or _values_only(line))


def _values_only(line: str) -> bool:
    return bool(_VALUES_ONLY_LINE.match(line) and _LONG_VALUE.search(line))


def strip_label_lines(lines: list[str]) -> list[str]:
    """Drop the patient-label, header and footer lines so only the report itself is scored."""
    n = len(lines)
    return [
        ln
        for i, ln in enumerate(lines)
        if not (((i < _HEADER_ZONE or i >= n - 3) and is_label_line(ln)) or _FURNITURE_LINE.search(ln))
    ]


def title_votes(lines: list[str]) -> dict[str, float]:
    """A short line near the top that is entirely a document title ('DISCHARGE SUMMARY')."""
    votes: dict[str, float] = {}
    for ln in lines[:TITLE_SEARCH_LINES]:
        s = ln.strip().translate(_TITLE_OCR_FIX)
        if not s or len(s) > 60 or len(s.split()) > 8:
            continue
        letters = [c for c in s if c.isalpha()]
        if not letters or sum(c.isupper() for c in letters) < 0.8 * len(letters):
            continue  # titles are printed in capitals; this also skips hospital names and prose
        for doc_type, rx in _TITLE_RES:
            if rx.fullmatch(s):
                votes[doc_type] = max(votes.get(doc_type, 0.0), TITLE_WEIGHT)
                break
        if votes:
            break  # the first title line wins; later ones are section headings
    return votes

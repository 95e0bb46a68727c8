"""ICD-10-CM codes printed in a diagnosis context on a chart page (domain README A4, code shapes)."""

from __future__ import annotations

import re

__all__ = ["extract_icd_codes"]

# ICD-10-CM (domain README A4): letter, digit, digit-or-letter, then optionally a dot and 1-4 alphanumerics.
# The shape alone also matches lab names ('A1C'), vitamins ('B12') and room numbers, so a code counts only
# in a diagnosis context: on a line labelled Dx / Diagnosis / ICD / Impression / Assessment, or on the few
# lines under such a heading. A third character that is a letter exists only in a handful of categories.
_ICD_CONTEXT = re.compile(
    r"(?i)(?<![A-Za-z])(?:Dx|DX|Diagnos[ie]s|Diag\.?|ICD(?:[ -]?10)?(?:[ -]?CM)?(?:[ ]?codes?)?|"
    r"Impressions?|Assessment(?:[ ]+and[ ]+plan)?|A/P)(?![A-Za-z])"
)
_ICD_CODE = re.compile(
    r"(?<![A-Za-z0-9.\-])([A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?)(?![A-Za-z0-9]|\.[0-9A-Za-z])"
)
_ICD_ALPHA_THIRD = frozenset({"C4A", "C7A", "C7B", "D3A", "M1A", "Z3A"})
# A lab value or unit right after the token ('A1C 9.2 %', 'B12 level') means it is a test, not a code.
_ICD_NOT_AFTER = re.compile(
    r"(?i)^[ \t]*(?::?[ \t]*[<>=]?[ \t]*\d|levels?\b|deficien|%|mg|ng|pg|units?\b|is\b|was\b|were\b|of\b|"
    r"-[ ]?[A-Z]\d|to[ ]+[A-Z]\d|(?:compression|burst|vertebra|body|level|nerve|interspace|disc|pedicle|"
    r"lamina|spinous|screw|fusion|fracture)s?\b)"
)
# Spinal levels (T10-T12) and vitamin B12 are not ICD-10-CM categories but read like codes in diagnoses.
_ICD_NOT_CODES = frozenset({"T08", "T09", "T10", "T11", "T12", "T13", "B12"})  # B12: the vitamin
_ICD_WINDOW = 240  # characters after a label on one line (dictated texts run whole reports into one line)
_ICD_NOT_BEFORE = re.compile(r"(?i)(?:vitamin|vit\.?|hemoglobin|hgb|room|rm|bed|suite|unit)[ \t#:]*$")
# OCR reads the letter I of a code as the digit 1 ('(110)' for '(I10)'); fixed only for a code printed alone
# in parentheses, where no number of that shape (a dose, a value) plausibly stands.
_ICD_OCR_PAREN = re.compile(r"\((1\d{2}(?:\.[0-9A-Z]{1,4})?)\)")
_ICD_SECTION_LINES = 8
_ICD_HEADING = re.compile(r"^[ \t]*[A-Z][A-Za-z /&\-]{2,40}:[ \t]*")


def _icd_ok(code: str) -> bool:
    """Shape check beyond the regex: a letter third character only in the categories that have one."""
    if code in _ICD_NOT_CODES:
        return False
    return not code[2].isalpha() or code[:3] in _ICD_ALPHA_THIRD


def extract_icd_codes(text: str) -> list[str]:
    """ICD-10-CM codes printed in a diagnosis context, deduplicated in page order.

    Codes need a label on the same line ('Dx: E11.9', 'ICD-10: I10, E78.5') or must sit in the lines below
    a diagnosis heading ('DISCHARGE DIAGNOSES:' then a numbered list), up to the next heading or blank line.
    """
    out: list[str] = []
    if not text:
        return out
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    in_section = 0
    for line in lines:
        labels = list(_ICD_CONTEXT.finditer(line))
        if labels:
            windows = [line[m.end() : m.end() + _ICD_WINDOW] for m in labels]
            in_section = _ICD_SECTION_LINES
        elif in_section and line.strip() and not _ICD_HEADING.match(line):
            windows = [line]
            in_section -= 1
        else:
            in_section = 0
            continue
        for raw in windows:
            scan = _ICD_OCR_PAREN.sub(lambda m: "(I" + m.group(1)[1:] + ")", raw)
            for m in _ICD_CODE.finditer(scan):
                code = m.group(1)
                if not _icd_ok(code) or _ICD_NOT_AFTER.match(scan[m.end() :]):
                    continue
                if _ICD_NOT_BEFORE.search(scan[: m.start()]) or code in out:
                    continue
                out.append(code)
    return out

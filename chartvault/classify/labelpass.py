"""When a page's label deserves a second OCR look, and how that look joins the first reading.

Why here: what counts as a confident MRN and birth date is the identifier reader's knowledge, while the
re-reading of pixels belongs to ``chartvault.ocr.labels``. The OCR worker asks ``needs_label_pass`` with the
first pass's identifiers; if the zones were read again, ``with_label_reads`` reads the page once per zone
with that zone's words in place of the first pass's words there (so the rest of the page, such as a date
of service printed elsewhere, still informs the reading), and keeps, field by field, the most confident
value. A second read of the same print that disagrees with the first is one of two readings of one label,
not evidence of another patient, so the stronger reading is kept without a rivalry discount; but when the
first pass's words in the zone hold a number of the same shape as the zone's MRN (the site's pattern, or
the same length without one) and a different one, nothing says which reading is right, and the MRN is kept
as doubtful (``DISAGREEING_READINGS``): it may confirm a patient already known, never open a new one.
Where the facility's MRNs carry a check digit, a first-pass number that fails it is a misread and no such
doubt: the check digit says which reading is right.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from chartvault.classify.checkdigit import CheckDigit, passes
from chartvault.classify.identifiers import extract_identifiers
from chartvault.classify.keyless import clean_id
from chartvault.classify.types import Extracted, Identifiers
from chartvault.ocr.labels import LabelRead
from chartvault.ocr.types import Word

__all__ = ["DISAGREEING_READINGS", "RELOOK_BELOW", "RELOOK_DOB_BELOW", "needs_label_pass", "with_label_reads"]

# An MRN read with less confidence than this sends the page's label zones to a second look: keyed values
# read cleanly score 0.9 and more, a keyless one of the facility's pattern 0.88; one without a pattern to
# confirm it (0.75), with OCR repairs (0.75 and less) or off the pattern (0.6) is worth reading again.
RELOOK_BELOW = 0.85
# A birth date, below this: a keyless or two-digit-year date scores 0.68-0.82 however well it is read, so
# only a missing date, or one read with several repairs or doubts, is worth the CPU of a second look.
RELOOK_DOB_BELOW = 0.6
_FIELDS = ("mrn", "name", "dob", "sex", "date_of_service", "account", "encounter")
# The MRN's confidence when the two passes read the label's number differently (below what opens a patient
# record, ``archive.patients.NEW_PATIENT_MIN_CONFIDENCE``, and below what counts against a page as a misfile).
DISAGREEING_READINGS = 0.5
_NUMBER_TOKEN = re.compile(r"[A-Za-z0-9|£€][A-Za-z0-9|\-]{4,24}")


def needs_label_pass(ids: Identifiers) -> bool:
    """Whether the page's MRN or birth date is missing or not confidently read, or its name is missing.

    The name line alone is reason enough: it is what staff see, and what finds a patient by name and birth
    date when the number is doubtful; a page that lost it almost always printed it (a continuation page
    without a label has no MRN either, and is looked at again for that).
    """
    return (
        ids.name is None
        or ids.mrn is None
        or ids.mrn.confidence < RELOOK_BELOW
        or ids.dob is None
        or ids.dob.confidence < RELOOK_DOB_BELOW
    )


def with_label_reads(
    first: Identifiers,
    text: str,
    words: Sequence[Word],
    page_size: tuple[int, int],
    reads: Sequence[LabelRead],
    *,
    mrn_pattern: str | None = None,
    mrn_check_digit: CheckDigit = "none",
    today: date | None = None,
) -> Identifiers:
    """``first`` (the page's identifiers from its first pass) with what the label zones read again add.

    ``words`` and ``page_size`` are the first pass's; each read replaces the first pass's words inside its
    zone. ICD codes stay the first pass's (they come from the report text, not the label).
    """
    out = Identifiers(**{f: getattr(first, f) for f in _FIELDS}, icd_codes=list(first.icd_codes))
    for read in reads:
        kept = [w for w in words if not _inside(w, read.box)]
        again = extract_identifiers(
            text,
            words=kept + read.words,
            page_size=page_size,
            mrn_pattern=mrn_pattern,
            mrn_check_digit=mrn_check_digit,
            today=today,
        )
        replaced = [w for w in words if _inside(w, read.box)]
        if again.mrn is not None and _read_otherwise(
            again.mrn.value, read.words, replaced, mrn_pattern, mrn_check_digit
        ):
            again.mrn = Extracted(again.mrn.value, min(again.mrn.confidence, DISAGREEING_READINGS))
        for f in _FIELDS:
            setattr(out, f, _stronger(getattr(out, f), getattr(again, f)))
    return out


def _read_otherwise(
    mrn: str,
    zone_words: Sequence[Word],
    first_words: Sequence[Word],
    pattern: str | None,
    check_digit: CheckDigit = "none",
) -> bool:
    """Whether the first pass read, where the zone read ``mrn``, another number that could as well be it
    (not one that fails the check digit ``mrn`` passes)."""
    shape = re.compile(pattern) if pattern else None
    checked = passes(mrn, check_digit)
    at = [w for w in zone_words if any(_number(t) == mrn for t in _NUMBER_TOKEN.findall(w.text))]
    for w in (f for f in first_words if any(_overlap(f, z) for z in at)):
        for token in _NUMBER_TOKEN.findall(w.text):
            other = _number(token)
            if other is None or other == mrn or (checked and not passes(other, check_digit)):
                continue
            if shape.fullmatch(other) if shape else len(other) == len(mrn):
                return True
    return False


def _number(token: str) -> str | None:
    cleaned = clean_id(token.strip("|"), min_digits=5)
    return cleaned[0] if cleaned else None


def _overlap(a: Word, b: Word) -> bool:
    """Boxes that share most of the narrower one's width on the same line."""
    width = min(a.left + a.width, b.left + b.width) - max(a.left, b.left)
    height = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    return width > 0.5 * min(a.width, b.width) and height > 0.5 * min(a.height, b.height)


def _inside(w: Word, box: tuple[int, int, int, int]) -> bool:
    cx, cy = w.left + w.width / 2, w.top + w.height / 2
    return box[0] <= cx < box[2] and box[1] <= cy < box[3]


def _stronger(have: Extracted | None, new: Extracted | None) -> Extracted | None:
    """The more confident of two readings; the first one on a tie."""
    if new is None or (have is not None and have.confidence >= new.confidence):
        return have
    return new

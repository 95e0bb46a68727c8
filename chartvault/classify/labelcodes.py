"""A page's MRN checked against the linear barcode of its patient label.

Why: thermal patient labels usually carry a Code 128 (older ones Code 39) of the MRN or of the account
number (domain notes, "Labels"). A barcode decodes exactly or not at all: Code 128 carries a check symbol,
so where OCR reads a fax's broken '3' as '8' with a confident score, the symbol beside it still says '3'.
Tesseract's word confidence does not tell such misreads apart (wrong MRNs were read at 89-94, right ones as
low as 13), so a wrong digit would otherwise link the page to another patient or open one who does not
exist.

Which barcode is the MRN is not written on the label, so a payload counts only when it has an MRN's shape
(the facility's pattern when one is set, its check digit when its MRNs carry one), is no cover sheet, and
is not the account or encounter number the page printed beside a key. Then, against the page's reading:

- the barcode says what the text read: the MRN is confirmed (``CONFIDENCE_AGREES``); when that reading
  was itself a repair (the re-read's vote), it is the barcode's value now, marked as below;
- the barcode is the text's reading with at most ``MAX_EDITS`` characters changed: the text was misread,
  the barcode's value is taken (``CONFIDENCE_MENDED``), marked ``label_barcode`` with ``read_as`` what the
  text read, so the reviewer sees both;
- the text gave no MRN: the barcode's value is a candidate below what opens a patient record
  (``CONFIDENCE_ALONE``): it may be the account number of a label that printed none readably, so it can
  only find a patient the index already has (with the birth date agreeing);
- otherwise (a number unlike the one read: an account's, or another patient's label) nothing changes.

Pure functions; nothing here logs payloads (they are identifiers).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from chartvault.classify.checkdigit import CheckDigit, passes
from chartvault.classify.coversheet import is_cover_payload
from chartvault.classify.types import Extracted, Identifiers
from chartvault.schemas.documents import MRN_SOURCE_BARCODE

__all__ = [
    "CONFIDENCE_AGREES",
    "CONFIDENCE_ALONE",
    "CONFIDENCE_MENDED",
    "MAX_EDITS",
    "label_mrns",
    "with_label_barcodes",
]

LINEAR_FORMATS = frozenset({"Code128", "Code39"})
CONFIDENCE_AGREES = 0.99
CONFIDENCE_MENDED = 0.95
CONFIDENCE_ALONE = 0.6  # below archive.patients.NEW_PATIENT_MIN_CONFIDENCE (0.65)
MAX_EDITS = 2
# Without the facility's pattern: a few letters of prefix and 5 to 12 digits, as the keyed MRN reader takes.
_MRN_SHAPE = re.compile(r"[A-Za-z]{0,3}[0-9]{5,12}")


def label_mrns(
    barcodes: Sequence[dict[str, str]] | None,
    ids: Identifiers,
    *,
    mrn_pattern: str | None = None,
    mrn_check_digit: CheckDigit = "none",
) -> list[str]:
    """The page's linear barcode payloads that may be its MRN (see the module docstring), in page order."""
    shape = re.compile(mrn_pattern) if mrn_pattern else _MRN_SHAPE
    others = {v.value.upper() for v in (ids.account, ids.encounter) if v is not None}
    out: list[str] = []
    for code in barcodes or ():
        if code.get("format") not in LINEAR_FORMATS:
            continue
        text = code.get("text", "").strip().strip("*").strip()  # Code 39's start/stop marks, if passed on
        if not text or is_cover_payload(text) or text.upper() in others or text in out:
            continue
        if shape.fullmatch(text) and passes(text, mrn_check_digit):
            out.append(text)
    return out


def with_label_barcodes(
    ids: Identifiers,
    barcodes: Sequence[dict[str, str]] | None,
    *,
    mrn_pattern: str | None = None,
    mrn_check_digit: CheckDigit = "none",
) -> Identifiers:
    """``ids`` with the MRN confirmed, mended or supplied by the label's barcode (module docstring)."""
    payloads = label_mrns(barcodes, ids, mrn_pattern=mrn_pattern, mrn_check_digit=mrn_check_digit)
    if not payloads:
        return ids
    read = ids.mrn
    if read is not None and read.value in payloads:
        if read.source is not None and read.read_as is not None:  # a repair (the re-read's) borne out
            return replace(ids, mrn=_mended(read.value, read.read_as))
        return replace(ids, mrn=replace(read, confidence=max(read.confidence, CONFIDENCE_AGREES)))
    if len(payloads) != 1:
        return ids  # two candidate numbers and neither is the one read: no way to choose
    payload = payloads[0]
    if read is None:
        return replace(ids, mrn=Extracted(payload, CONFIDENCE_ALONE, source=MRN_SOURCE_BARCODE))
    if _edits(read.value.upper(), payload.upper(), MAX_EDITS) <= MAX_EDITS:
        return replace(ids, mrn=_mended(payload, read.read_as or read.value))
    return ids


def _mended(value: str, read_as: str) -> Extracted:
    return Extracted(value, CONFIDENCE_MENDED, read_as=read_as, source=MRN_SOURCE_BARCODE)


def _edits(a: str, b: str, cap: int) -> int:
    """Levenshtein distance between ``a`` and ``b``, or ``cap + 1`` as soon as it must exceed ``cap``."""
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > cap:
            return cap + 1
        previous = current
    return previous[-1]

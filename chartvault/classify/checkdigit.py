"""MRN check digits: a number read that fails the facility's check digit is a misread, not a new patient.

Many hospitals' record numbers end in a check digit (``Settings.mrn_check_digit``). The digit is the last of
the MRN's digits and is computed over the digits only: a letter prefix ('M', 'MR') and the letters of the
pattern are left out, and leading zeros count as zeros (they change neither scheme's sum), so '004417823'
and '4417823' carry the same check digit.

* ``luhn``: the Luhn algorithm (ISO/IEC 7812-1, annex B; US patent 2,950,048): from the rightmost digit
  (the check digit) leftwards, every second digit is doubled and 9 taken from a product over 9; the number is
  valid when the sum of all digits so treated is a multiple of 10 ('79927398713').
* ``mod11``: modulus 11 as on the NHS number (NHS Data Dictionary, "NHS NUMBER"): the digits before the
  check digit are weighted 2, 3, 4, ... from the right (on a ten-digit NHS number 10 down to 2 from the
  left); the check digit is ``(11 - sum % 11) % 11``, and a number whose sum would need 10 is invalid
  (no 'X' is issued): '9434765919' and '4010232137' are valid.

Both schemes catch every single-digit substitution, which is what a fax misread is (a wrong MRN read at
89-94 tesseract confidence: word confidence cannot tell it). A number that fails is not a clean read: its
confidence drops below what opens a patient record (``archive.patients.NEW_PATIENT_MIN_CONFIDENCE``), a
number that passes wins over it, and a document whose pages read only failing numbers may have its MRN read
back when exactly one look-alike digit (``dates.DIGIT_LOOK_ALIKES``) changed makes it valid and fits the
pattern: at a confidence that lets it link to a patient the index has (the DOB or name must agree), never
open one.
"""

from __future__ import annotations

import re
from typing import Literal

from chartvault.classify.candidates import Cand
from chartvault.classify.dates import DIGIT_LOOK_ALIKES

__all__ = [
    "CHECK_DIGITS",
    "CHECK_FAILED",
    "READ_BACK",
    "CheckDigit",
    "check_digit_of",
    "checked",
    "luhn_valid",
    "mod11_valid",
    "passes",
    "read_back",
    "settled_mrn",
]

CheckDigit = Literal["none", "luhn", "mod11"]
CHECK_DIGITS: tuple[CheckDigit, ...] = ("none", "luhn", "mod11")

# A number that fails the check digit: below a disagreeing second reading of the label
# (``labelpass.DISAGREEING_READINGS``, 0.5), so a reading that passes wins the label pass's comparison.
CHECK_FAILED = 0.45
# A number read back by one look-alike digit: below a clean reading and below what opens a patient record.
READ_BACK = 0.55


def _luhn_sum(digits: str) -> int:
    """The Luhn sum of ``digits`` as they stand, the last one undoubled."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total


def _mod11_check(payload: str) -> int | None:
    """The mod 11 check digit of ``payload`` (weights 2, 3... from the right); None if it is 10."""
    total = sum(int(c) * w for w, c in enumerate(reversed(payload), start=2))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def luhn_valid(digits: str) -> bool:
    """Whether a string of two or more digits ends in its Luhn check digit."""
    return len(digits) >= 2 and digits.isdigit() and _luhn_sum(digits) % 10 == 0


def mod11_valid(digits: str) -> bool:
    """Whether a string of two or more digits ends in its modulus 11 check digit (module docstring)."""
    return len(digits) >= 2 and digits.isdigit() and _mod11_check(digits[:-1]) == int(digits[-1])


def check_digit_of(payload: str, scheme: CheckDigit) -> str | None:
    """The digit ``scheme`` appends to the digits ``payload``; None for 'none', or where mod 11 needs 10."""
    if scheme == "luhn":
        return str((10 - _luhn_sum(payload + "0") % 10) % 10)
    if scheme == "mod11":
        check = _mod11_check(payload)
        return None if check is None else str(check)
    return None


def passes(mrn: str, scheme: CheckDigit) -> bool:
    """Whether an MRN (letters and all, as read) carries a valid check digit; always True for 'none'."""
    if scheme == "none":
        return True
    digits = "".join(c for c in mrn if c.isdigit())
    return luhn_valid(digits) if scheme == "luhn" else mod11_valid(digits)


def read_back(mrn: str, scheme: CheckDigit, shape: re.Pattern[str] | None) -> str | None:
    """``mrn`` with one digit read as its look-alike when exactly one such change passes the check digit
    (and fits the facility's pattern, when one is set); None when none does or several do."""
    if scheme == "none":
        return None
    fits = {
        candidate
        for i, c in enumerate(mrn)
        for alt in DIGIT_LOOK_ALIKES.get(c, "")
        if passes(candidate := mrn[:i] + alt + mrn[i + 1 :], scheme)
        and (shape is None or shape.fullmatch(candidate))
    }
    return fits.pop() if len(fits) == 1 else None


def checked(cands: list[Cand], scheme: CheckDigit) -> list[Cand]:
    """MRN candidates of one page with those failing the check digit made doubtful: confidence at most
    ``CHECK_FAILED``, the weakest kind of evidence (as a number off the pattern), and behind a passing one
    of the same standing whatever their confidences, so that a number that passes wins over them."""
    if scheme == "none":
        return cands
    return [
        c
        if passes(c.value, scheme)
        else Cand(c.value, min(c.conf, CHECK_FAILED), c.line, 0, c.header, fails_check=True)
        for c in cands
    ]


def settled_mrn(
    value: str, conf: float, scheme: CheckDigit, shape: re.Pattern[str] | None
) -> tuple[str, float]:
    """A document's MRN and confidence once the check digit had its say: a passing number as it is; a
    failing one read back by one look-alike digit (``READ_BACK``), or kept as doubtful (``CHECK_FAILED``)."""
    if passes(value, scheme):
        return value, conf
    back = read_back(value, scheme, shape)
    if back is not None:
        return back, min(conf, READ_BACK)
    return value, min(conf, CHECK_FAILED)

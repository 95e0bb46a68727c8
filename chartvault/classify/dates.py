"""Printed dates on chart pages: every layout labels use, OCR confusions, and two-digit years left open.

A two-digit year ('03/14/52') cannot be resolved from the token alone: a birth year needs the printed age
or the date of service, a visit year needs today. So parsing keeps the year open (``RawDate.year is None``)
and the caller resolves it with whatever the page says (``chartvault.classify.identifiers``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = [
    "DATE_TOKEN",
    "DIGIT_LOOK_ALIKES",
    "RawDate",
    "age_on",
    "fix_digits",
    "parse_date",
    "parse_raw_date",
]

# OCR confusions corrected only inside a field known to be numeric (MRN, account, dates...).
_DIGIT_FIX = str.maketrans("OoQlIi|!SsBZz", "0001111155822")
CONFUSABLE = frozenset("OoQlIi|!SsBZz")

# fmt: off
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")
# fmt: on
_MONTHS = {name[:3]: i + 1 for i, name in enumerate(_MONTH_NAMES)}
_MONTHS |= {name: i + 1 for i, name in enumerate(_MONTH_NAMES)}
_MONTHS["sept"] = 9

# A day before a month name may carry one OCR confusion ('O8'), never two ('IS May 2021' is prose); a month
# name may start with a bracket or bar for its 'J' (']UL').
_DAY = r"(?:\d[0-9OoIlSB|]?|[OoIlSB|]\d)"
_MONTH_WORD = r"[A-Za-z\]\[|0][A-Za-z]{2,8}"  # fax: "0CT" for OCT
# What OCR makes of month names on faxes, undone before the month is looked up ('JLIN' -> 'JUN').
_MONTH_FIXES = (("]", "j"), ("[", "j"), ("|", "j"), ("li", "u"), ("0", "o"))

DATE_TOKEN = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}"  # ISO
    r"|[0-9OoIlSB|]{1,2}[ ]?[/\-.][ ]?[0-9OoIlSB|]{1,2}[ ]?[/\-.][ ]?[0-9OoIlSB|]{2,4}"  # 05/01/1980, 5-1-80
    r"|" + _DAY + r"(?:[ \-]|\.[ ]?)?" + _MONTH_WORD + r"\.?[ \-,]*\d{2,4}"  # 05-JAN-1980, 5 Jan 1980
    r"|[A-Za-z]{3,9}\.?[ ]+\d{1,2}(?:st|nd|rd|th)?,?[ ]+\d{2,4})"  # January 5, 1980 / Jan 5, 1980
    r"(?![0-9])"
)


def fix_digits(raw: str) -> tuple[str, int]:
    """Map OCR letter/digit confusions to digits; return the fixed string and how many were fixed."""
    fixed = raw.translate(_DIGIT_FIX)
    return fixed, sum(1 for a, b in zip(raw, fixed, strict=True) if a != b)


def year4(yy: int, *, ref: date, past_only: bool) -> list[int]:
    """Candidate four-digit years for a two-digit year, most plausible first."""
    cands = [2000 + yy, 1900 + yy]
    if past_only:
        return [y for y in cands if y <= ref.year] or [1900 + yy]
    return [y for y in cands if y <= ref.year + 1] or [1900 + yy]


@dataclass(frozen=True, slots=True)
class RawDate:
    """A calendar date as printed; ``year`` is None while a two-digit year (``yy``) is unresolved."""

    year: int | None
    yy: int
    month: int
    day: int
    ocr_fixes: int

    def resolve(self, year: int) -> date | None:
        try:
            return date(year, self.month, self.day)
        except ValueError:
            return None

    def options(self) -> list[date]:
        """Every real date this can be: one for a four-digit year, this century's and the last for two."""
        years = [self.year] if self.year is not None else [2000 + self.yy, 1900 + self.yy]
        return [d for d in (self.resolve(y) for y in years) if d is not None]


def parse_raw_date(token: str) -> RawDate | None:
    """Parse one date token in any supported layout; None when it is not a real calendar date."""
    tok = token.strip().rstrip(".,")
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", tok)
    if m:
        y, mo, d = (int(g) for g in m.groups())
        return _checked(RawDate(y, y % 100, mo, d, 0))
    m = re.fullmatch(r"([0-9OoIlSB|]{1,2}) ?[/\-.] ?([0-9OoIlSB|]{1,2}) ?[/\-.] ?([0-9OoIlSB|]{2,4})", tok)
    if m:
        parts, nfix = [], 0
        for g in m.groups():
            f, n = fix_digits(g)
            parts.append(f)
            nfix += n
        if not all(p.isdigit() for p in parts) or len(parts[2]) == 3:
            return None
        mo, d, y = (int(p) for p in parts)
        if len(parts[2]) == 2:
            return _checked(RawDate(None, y, mo, d, nfix))
        return _checked(RawDate(y, y % 100, mo, d, nfix))
    m = re.fullmatch(_DAY_FIRST, tok)
    month = _month(m.group(2)) if m else None
    if m and month is not None and len(m.group(3)) != 3:
        day, day_fixes = fix_digits(m.group(1))
        ys = m.group(3)
        y = int(ys)
        return _checked(
            RawDate(None if len(ys) == 2 else y, y % 100, month[0], int(day), month[1] + day_fixes)
        )
    m = re.fullmatch(r"([A-Za-z]{3,9})\.? +(\d{1,2})(?:st|nd|rd|th)?,? +(\d{2,4})", tok)
    if m and m.group(1).lower() in _MONTHS and len(m.group(3)) != 3:
        mo, d, ys = _MONTHS[m.group(1).lower()], int(m.group(2)), m.group(3)
        y = int(ys)
        return _checked(RawDate(None if len(ys) == 2 else y, y % 100, mo, d, 0))
    return None


_DAY_FIRST = re.compile("(" + _DAY + r")(?:[ \-]|\.[ ]?)?(" + _MONTH_WORD + r")\.?[ \-,]*(\d{2,4})")


def _month(word: str) -> tuple[int, int] | None:
    """(month number, OCR repairs) of a printed month name, or None when it names no month."""
    w = word.lower()
    if w in _MONTHS:
        return _MONTHS[w], 0
    for bad, good in _MONTH_FIXES:
        w = w.replace(bad, good)
    return (_MONTHS[w], 1) if w in _MONTHS else None


def _checked(rd: RawDate) -> RawDate | None:
    if not (1 <= rd.month <= 12 and 1 <= rd.day <= 31):
        return None
    if rd.year is not None and (rd.year < 1850 or rd.resolve(rd.year) is None):
        return None
    if rd.year is None and not rd.options():
        return None
    return rd


def parse_date(token: str, *, ref: date | None = None, past_only: bool = False) -> date | None:
    """Parse a printed date (MM/DD/YYYY, M/D/YY, ISO, DD-MON-YYYY, 'Month D, YYYY') into a real date.

    Two-digit years go to the latest century that is not after ``ref`` (today by default); with
    ``past_only`` the date must not be after ``ref`` at all (dates of birth).
    """
    rd = parse_raw_date(token)
    if rd is None:
        return None
    ref = ref or date.today()
    years = [rd.year] if rd.year is not None else year4(rd.yy, ref=ref, past_only=past_only)
    for y in years:
        d = rd.resolve(y)
        if d is not None and (not past_only or d <= ref):
            return d
    return None


def age_on(dob: date, when: date) -> int:
    """Completed years of age on ``when``."""
    return when.year - dob.year - ((when.month, when.day) < (dob.month, dob.day))


# Digits a fax or small print turns into one another: the round ones (0 6 8 9, 3 8, 5 6) and those with a
# slanted stroke (1 2 7).
DIGIT_LOOK_ALIKES = {"0": "689", "1": "7", "2": "7", "3": "8", "5": "6", "6": "058", "7": "12", "8": "0369",
                     "9": "08"}  # fmt: skip
YEAR_READ_BACK = 0.55  # below every clean reading, and below the label pass's birth-date threshold


def year_read_back(rd: RawDate, earliest: int, latest: int) -> RawDate | None:
    """``rd`` with one digit of its four-digit year read as a look-alike ('2923' -> 2023, '7015' -> 2015) when
    exactly one such change gives a real date between ``earliest`` and ``latest``; else None."""
    if rd.year is None:
        return None
    printed = f"{rd.year:04d}"
    years = {
        int(printed[:i] + alt + printed[i + 1 :])
        for i, digit in enumerate(printed)
        for alt in DIGIT_LOOK_ALIKES.get(digit, "")
    }
    fits = [y for y in years if earliest <= y <= latest and rd.resolve(y) is not None]
    if len(fits) != 1:
        return None
    return RawDate(fits[0], fits[0] % 100, rd.month, rd.day, rd.ocr_fixes + 1)

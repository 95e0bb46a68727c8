"""Identifiers printed without a key: addressograph imprints, the name line of a thermal label, form values.

An embossed card prints ``DOE, JANE Q  001234567  F  03/14/52`` and nothing says which is the MRN. The
shapes do (a 'LAST, FIRST M' name, a record-number-shaped token, a date, a lone M or F), but only where a
label is: a block of the page's label bands (``layout.blocks``) that holds at least two different kinds of
identifier. One date or one number alone, or anything in report prose, is never read as an identifier.

Values a key already claimed (``MRN: ...``, ``HAR ...``, ``DOB: ...``) are blanked out before this reader
looks, so a keyed account number is never taken for a keyless MRN.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from chartvault.classify.candidates import Cand
from chartvault.classify.dates import CONFUSABLE, DATE_TOKEN, RawDate, fix_digits, parse_raw_date
from chartvault.classify.layout import Segment
from chartvault.classify.names import normalise_name

__all__ = ["REPAIRED_TO_PATTERN", "DateFind", "KeylessFinds", "clean_id", "read_blocks", "toward_pattern"]

# 'LAST, FIRST M' in capitals (multi-word and hyphenated surnames allowed); a middle initial only after a
# single space, so a sex letter after a field gap ('DOE, JANE  F') stays a sex letter. The surname's first
# letter may have been read small ('eASTWOOD': fax), never the rest, so prose does not match.
_NAME_SHAPE = re.compile(
    r"(?<![A-Za-z0-9'])((?:[A-Z]|[a-z](?=[A-Z]{2}))[A-Z'\-]+(?:(?:[ ]-?|-[ ])[A-Z][A-Z'\-]+){0,2})"
    r"[ ]?,[ ]{0,2}([A-Z][A-Z'\-]+)"
    r"(?:([ ]{1,2})([A-Z])\.?(?![A-Za-z0-9'\-]))?"
)
# 'Whitmore, Jane A' as some systems print it: mixed case is what prose and addresses look like too, so only
# a whole field of a label block (from its start to a field gap or its end) is read as a name this way.
_SURNAME = r"[A-Z](?:[a-z]+|'[A-Z][a-z]+|[a-z][A-Z][a-z]+)"
# A speck before it or after the initial is tolerated; so is an initial glued to the first name ('KasiaB':
# in mixed case a capital after small letters can only be one).
_MIXED_NAME_SHAPE = re.compile(
    r"^[ .,'‘’`]*(" + _SURNAME + r"(?:(?:[ ]|-)" + _SURNAME + r"){0,2}),[ ]{0,2}"
    r"([A-Z][a-z]+(?:-[A-Z][a-z]+)?)(?:([ ]?)([A-Z]))?[.'‘’`]?(?=[ ]{2,}|[ ]*$)"
)
# 'OKONKWO GRETA W' on an imprint: two words in capitals and an initial, no comma, the surname first as
# embossed cards print it. Words of headers, titles and keys are in capitals too: only a whole field of a
# label block is read so, none of its words may be one of those, and it is weaker evidence (``BARE_NAME``).
_BARE_NAME_SHAPE = re.compile(r"^[ .,'‘’`]*([A-Z][A-Z'\-]+)[ ]([A-Z][A-Z'\-]+)(?:[ ]([A-Z]))?[ .'‘’`]*$")
_NOT_NAME_WORDS = (
    "HOSPITAL HEALTH CENTER CENTRE MEDICAL CLINIC CLINICS REGIONAL MEMORIAL GENERAL COMMUNITY UNIVERSITY "
    "SAINT ST REPORT NOTE NOTES SUMMARY CONSULT CONSULTATION DISCHARGE PROGRESS HISTORY PHYSICAL OPERATIVE "
    "OPERATION RADIOLOGY EMERGENCY DEPARTMENT DEPT ROOM RECORD RECORDS PATIENT NAME DATE INFORMATION "
    "CONFIDENTIAL PAGE LETTER ADMISSION ADMIT DR MD DO RN NP PA EXAM IMPRESSION FINDINGS PLAN ASSESSMENT "
    "CHIEF COMPLAINT FAX TEL PHONE STREET ROAD AVENUE DRIVE SUITE FLOOR UNIT ACCOUNT VISIT ENCOUNTER MRN "
    "SEX AGE MALE FEMALE DOB DOS ATTENDING PHYSICIAN SERVICE PROCEDURE SURGERY DIAGNOSIS COPY CHART "
    "ORDER ORDERS LAB RESULTS FORM SCAN SCANNED"
)
_NOT_NAMES = frozenset(_NOT_NAME_WORDS.split())
BARE_NAME = 0.6  # a name read from shape and place alone, with no comma to say which part is the surname
_CREDENTIAL_AFTER = re.compile(r"^[ ,]*(?:M\.?D|D\.?O|R\.?N|N\.?P|P\.?A(?:-C)?|DDS|PH\.?D|DPM)\b\.?", re.I)
_CLINICIAN_BEFORE = re.compile(
    r"(?i)(?:\bDR\.?|\bATT(?:ENDING)?\.?|\bPHYSICIAN|\bPROVIDER|\bPCP|\bREF(?:ERRING)?|\bSURGEON|\bBY)[ :]*$"
)
_ID_SHAPE = re.compile(
    r"(?<![A-Za-z0-9/\-.])([A-Z]{0,3}[0-9OoIlSB|][0-9OoIlSB|]{4,14})(?![A-Za-z0-9/\-]|\.\d)"
)
_DATE = re.compile(r"(?<![0-9A-Za-z/])" + DATE_TOKEN)
_SEX = re.compile(r"(?<![A-Za-z0-9.'/])(M|F|MALE|FEMALE|Male|Female)(?![A-Za-z0-9'\-/]|\.[A-Za-z])")
_AGE_SEX = re.compile(
    r"(?<![\d/.\-])(\d{1,3})[ ]?/[ ]?([MF])(?![A-Za-z])|(?<![A-Za-z])([MF])[ ]?/[ ]?(\d{1,3})(?![\d/])"
)
_AGE_Y_SEX = re.compile(r"(?<![\d/.\-])(\d{1,3})[ ]?(?:Y|YO|yo|y)[ ]?([MF])(?![A-Za-z])")  # '39YF', '72Y F'
_AGE_UNIT = re.compile(
    r"(?<![\d/.\-])\(?(\d{1,3})[ ]?(?:y/o|Y/O|yo|YO|yrs?|YRS?|y|Y|years?|YEARS?)\)?(?![A-Za-z0-9])"
)
_BARE_NUMBER = re.compile(r"(?<![\d/.\-:A-Za-z])(\d{1,3})(?![\d/.\-:A-Za-z])")
_CLINICIAN_CUE = re.compile(r"(?i)(?<![A-Za-z])(?:DR\.?|ATT\.?|ATTENDING|PHYSICIAN)[ ]+[A-Z]")
# The word before a value that makes it some other field's ('Rm 412', 'Tel ...', 'Signed: ...').
_OTHER_FIELD = re.compile(
    r"(?i)(?:[:#]|\b(?:RM|ROOM|BED|TEL|PH|PHONE|FAX|NPI|ZIP|PAGER|EXT|FLOOR|UNIT|LOC))[ ]*$"
)
_PROSE_BEFORE = re.compile(r"(?:^|[ ])(?:[a-z]{2,}|&)[ ]*$")


@dataclass(frozen=True, slots=True)
class DateFind:
    """A keyless date and the role its neighbours suggest ('dob', 'dos' or '' when nothing says)."""

    raw: RawDate
    cand: Cand
    role: str
    order: int  # reading order inside the block


@dataclass(slots=True)
class KeylessFinds:
    names: list[Cand] = field(default_factory=list)
    mrns: list[Cand] = field(default_factory=list)
    dates: list[DateFind] = field(default_factory=list)
    sexes: list[Cand] = field(default_factory=list)
    ages: list[int] = field(default_factory=list)


def clean_id(raw: str, *, min_digits: int) -> tuple[str, int] | None:
    """Validate an ID token (optional 1-2 letter prefix + digits); return (value, OCR fixes) or None.

    A leading uppercase letter that is not a common digit confusion is a facility prefix ('E0073032') and
    is kept; everything after it must read as digits once confusions are fixed.
    """
    tok = raw.strip(".-")
    if tok[:1] in {"£", "€"}:  # OCR reads a prefix 'E' as a currency sign
        tok = "E" + tok[1:]
    prefix = ""
    while len(prefix) < 2 and tok[:1].isalpha() and tok[:1].isupper() and tok[0] not in CONFUSABLE:
        prefix, tok = prefix + tok[0], tok[1:]
    tok = tok.replace("-", "")
    if not tok:
        return None
    real_digits = sum(c.isdigit() for c in tok)
    fixed, nfix = fix_digits(tok)
    if not fixed.isdigit() or len(fixed) < min_digits or len(fixed) > 15 or not fixed.strip("0"):
        return None  # not a number, or a form's placeholder ('0000000')
    if real_digits * 2 < len(fixed):  # mostly letters: a word, not an OCR-damaged number
        return None
    return prefix + fixed, nfix


# Capitals OCR takes for one another in a record number's prefix (fax and small print: 'F6659611' for
# 'E6659611'). Digits are not here: clean_id already reads O, I, S... in the digits as digits.
# fmt: off
_PREFIX_LOOK_ALIKES = {"E": "F", "F": "E", "H": "MN", "M": "HN", "N": "HM", "R": "BP", "B": "R", "P": "R",
                       "C": "G", "G": "C", "D": "O", "U": "V", "V": "U", "K": "X", "X": "K"}
# fmt: on
REPAIRED_TO_PATTERN = 0.7  # a letter changed to fit the site's pattern: the pattern chose it, the ink did not


def toward_pattern(value: str, pattern: re.Pattern[str]) -> str | None:
    """``value`` with one prefix letter read as its look-alike so that it fits the site's MRN pattern; None
    when no single change does, or more than one does (then the pattern cannot choose)."""
    fits = {
        value[:i] + alt + value[i + 1 :]
        for i, c in enumerate(value)
        if c.isalpha()
        for alt in _PREFIX_LOOK_ALIKES.get(c, "")
    }
    fits = {v for v in fits if pattern.fullmatch(v)}
    return fits.pop() if len(fits) == 1 else None


@dataclass(slots=True)
class _Piece:
    """What one segment of a block holds, after keyed values were blanked out."""

    seg: Segment
    text: str
    names: list[tuple[str, int, int]] = field(default_factory=list)  # normalised, span
    bare_names: list[str] = field(default_factory=list)  # 'LAST FIRST M' without a comma (``BARE_NAME``)
    ids: list[tuple[str, int, int]] = field(default_factory=list)  # value, OCR fixes, start
    dates: list[tuple[RawDate, int]] = field(default_factory=list)  # date, start
    sexes: list[str] = field(default_factory=list)
    ages: list[int] = field(default_factory=list)
    keyed: int = 0  # keyed identifiers this segment held (counted as kinds of the block)

    def kinds(self) -> set[str]:
        out = {
            k
            for k, v in (("name", self.names + self.bare_names), ("id", self.ids), ("date", self.dates))
            if v
        }
        if self.sexes:
            out.add("sex")
        return out


def read_blocks(
    blocks: Sequence[Sequence[Segment]],
    masked: dict[int, str],
    keyed_rows: dict[int, int],
    *,
    mrn_pattern: re.Pattern[str] | None,
    have_dob: bool,
    have_dos: bool,
    today: date,
) -> KeylessFinds:
    """Keyless candidates from every label block holding two or more kinds of identifier.

    ``masked`` maps a row index to its text with keyed values blanked; ``keyed_rows`` counts the keyed
    identifiers found per row (a block with a keyed MRN and a bare name line is a label).
    """
    out = KeylessFinds()
    for block in blocks:
        pieces = [_read_piece(s, masked, keyed_rows) for s in block]
        kinds = set().union(*(p.kinds() for p in pieces))
        keyed = sum(p.keyed for p in pieces)
        anchored = "name" in kinds or keyed > 0  # a number and a date alone are a form number and its date
        if len(kinds) < 3 and not (anchored and len(kinds) + min(keyed, 2) >= 2):
            continue
        _take_block(
            pieces,
            out,
            mrn_pattern=mrn_pattern,
            have_dob=have_dob,
            have_dos=have_dos,
            keyed=keyed,
            today=today,
        )
    return out


def _read_piece(seg: Segment, masked: dict[int, str], keyed_rows: dict[int, int]) -> _Piece:
    """Names, ages with sex, dates, ages, record numbers and sex letters of one segment, in that order:
    each value is blanked once taken, so a digit of a date is never read again as part of a number."""
    row_text = masked.get(seg.row, "")
    text = row_text[seg.offset : seg.offset + len(seg.text)] if row_text else seg.text
    p = _Piece(seg, text, keyed=keyed_rows.get(seg.row, 0))
    rest = _blank(text, _NAME_SHAPE, lambda m: _take_name(p, m))
    rest = _blank(rest, _MIXED_NAME_SHAPE, lambda m: _take_name(p, m))
    rest = _blank(rest, _BARE_NAME_SHAPE, lambda m: _take_bare_name(p, m))
    rest = _blank(rest, _AGE_SEX, lambda m: _take_age_sex(p, m))
    rest = _blank(rest, _AGE_Y_SEX, lambda m: _take_age_sex(p, m))
    rest = _blank(rest, _DATE, lambda m: _take_date(p, m))
    rest = _blank(rest, _AGE_UNIT, lambda m: _take_age(p, m))
    rest = _blank(rest, _ID_SHAPE, lambda m: _take_id(p, m))
    p.sexes.extend(m.group(1)[0].upper() for m in _SEX.finditer(rest))
    if p.sexes or p.dates:  # 'F  71' on an imprint: the bare number beside sex or a birth date
        p.ages.extend(int(m.group(1)) for m in _BARE_NUMBER.finditer(rest) if int(m.group(1)) <= 120)
    return p


def _blank(text: str, pattern: re.Pattern[str], take: Callable[[re.Match[str]], int | None]) -> str:
    """``text`` with what ``take`` consumed of each match blanked: it records the value and returns where
    the consumed span ends (None: the match is not this kind of value, leave it)."""
    spans = [(m.start(), end) for m in pattern.finditer(text) if (end := take(m)) is not None]
    for start, end in spans:
        text = text[:start] + " " * (end - start) + text[end:]
    return text


def _take_name(p: _Piece, m: re.Match[str]) -> int | None:
    text = m.string
    if _CREDENTIAL_AFTER.match(text[m.end() :]) or _CLINICIAN_BEFORE.search(text[: m.start()]):
        return None
    end, middle = m.end(), m.group(4)
    if middle in ("M", "F") and len(m.group(3)) == 2:  # after a field gap: the sex, not an initial
        end, middle = m.end(2), None
    if middle is None and text[end : end + 1] in (")", "]", "}") and not re.search(r"[(\[{]", text[:end]):
        end, middle = end + 1, "J"  # a glued initial 'J' read as a bracket (names.py)
    name = normalise_name(f"{m.group(1)}, {m.group(2)}" + (f" {middle}" if middle else ""))
    if not name:
        return None
    p.names.append((name, m.start(), end))
    return end


def _take_bare_name(p: _Piece, m: re.Match[str]) -> int | None:
    last, first, initial = m.group(1), m.group(2), m.group(3)
    if {last, first, initial} & _NOT_NAMES or min(len(last), len(first)) < 2:
        return None
    name = normalise_name(f"{last}, {first}" + (f" {initial}" if initial else ""))
    if not name:
        return None
    p.bare_names.append(name)
    return m.end()


def _take_age_sex(p: _Piece, m: re.Match[str]) -> int:
    age, sex = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
    p.ages.append(int(age))
    p.sexes.append(sex)
    return m.end()


def _take_age(p: _Piece, m: re.Match[str]) -> int:
    p.ages.append(int(m.group(1)))
    return m.end()


def _take_date(p: _Piece, m: re.Match[str]) -> int | None:
    before = m.string[: m.start()]
    rd = parse_raw_date(m.group(0))
    if rd is None or _OTHER_FIELD.search(before) or _PROSE_BEFORE.search(before):
        return None
    p.dates.append((rd, m.start()))
    return m.end()


def _take_id(p: _Piece, m: re.Match[str]) -> int | None:
    if _OTHER_FIELD.search(m.string[: m.start()]):
        return None
    raw = m.group(1)
    # A bar at the edge of a number on a ruled form is the cell border more often than a misread '1': read
    # it both ways, the border first (the facility pattern, when set, chooses between them).
    readings = [raw.strip("|"), raw] if raw.strip("|") != raw else [raw]
    for reading in readings:
        cleaned = clean_id(reading, min_digits=5)
        if cleaned is not None:
            p.ids.append((cleaned[0], cleaned[1], m.start()))
    return m.end()


def _take_block(
    pieces: list[_Piece],
    out: KeylessFinds,
    *,
    mrn_pattern: re.Pattern[str] | None,
    have_dob: bool,
    have_dos: bool,
    keyed: int,
    today: date,
) -> None:
    line = pieces[0].seg.row
    strong = keyed > 0 or len(set().union(*(p.kinds() for p in pieces))) >= 3
    for p in pieces:
        for name, _, _ in p.names:
            out.names.append(Cand(name, 0.88 if strong else 0.75, p.seg.row, 2, True))
        out.names.extend(Cand(name, BARE_NAME, p.seg.row, 1, True) for name in p.bare_names)
    _take_ids(pieces, out, mrn_pattern, line)
    _take_dates(pieces, out, have_dob=have_dob, have_dos=have_dos, today=today)
    sexes = {s for p in pieces for s in p.sexes}
    if len(sexes) == 1:
        out.sexes.append(Cand(sexes.pop(), 0.85, line, 0, True))
    out.ages.extend(a for p in pieces for a in p.ages)


def _take_ids(
    pieces: list[_Piece], out: KeylessFinds, mrn_pattern: re.Pattern[str] | None, line: int
) -> None:
    """Record-number tokens: the facility pattern decides when set; else the one beside the name, or the
    first in reading order, with rivals lowering its confidence."""
    ids = [(p, value, nfix) for p in pieces for value, nfix, _ in p.ids]
    if mrn_pattern is not None:
        for _, value, nfix in ids:
            if mrn_pattern.fullmatch(value):
                out.mrns.append(Cand(value, 0.88 - 0.1 * nfix, line, 0, True))
            elif (repaired := toward_pattern(value, mrn_pattern)) is not None:
                out.mrns.append(Cand(repaired, min(0.88 - 0.1 * nfix, REPAIRED_TO_PATTERN), line, 0, True))
        return
    ids = [(p, v, n) for p, v, n in ids if sum(c.isdigit() for c in v) >= 6]
    if not ids:
        return
    beside_name = [x for x in ids if x[0].names]
    first = (beside_name or ids)[0]
    for p, value, nfix in ids:
        conf = 0.75 if (p, value, nfix) == first else 0.45
        out.mrns.append(Cand(value, conf - 0.1 * nfix, line, 0, True))


@dataclass(slots=True)
class _Dated:
    raw: RawDate
    role: str


def _take_dates(
    pieces: list[_Piece], out: KeylessFinds, *, have_dob: bool, have_dos: bool, today: date
) -> None:
    """Give each keyless date a role from its row: beside the name, sex or age it is a birth date; beside
    the physician it is the visit. Dates nothing points at take the roles the keyed ones left open, the
    earlier being the birth date when two remain."""
    rows: dict[int, list[_Piece]] = {}
    for p in pieces:
        rows.setdefault(p.seg.row, []).append(p)
    finds: list[_Dated] = []
    for row in rows.values():
        doctor = any(_CLINICIAN_CUE.search(p.text) for p in row)
        person = any(p.names or p.bare_names or p.sexes or p.ages for p in row)
        for p in row:
            finds.extend(_Dated(rd, "dos" if doctor else "dob" if person else "") for rd, _ in p.dates)
    for role, latest in (("dob", False), ("dos", True)):  # one date per role; the others fall open
        same = sorted((f for f in finds if f.role == role), key=lambda f: _sort_key(f.raw, today))
        for f in same[:-1] if latest else same[1:]:
            f.role = ""
    taken = {f.role for f in finds if f.role}
    open_roles = [r for r, have in (("dob", have_dob), ("dos", have_dos)) if not have and r not in taken]
    unknown = sorted((f for f in finds if not f.role), key=lambda f: _sort_key(f.raw, today))
    if len(unknown) == 1 and open_roles:
        unknown[0].role = open_roles[0]
    elif len(unknown) >= 2:
        unknown[0].role, unknown[-1].role = "dob", "dos"
    line = pieces[0].seg.row
    for order, f in enumerate(finds):
        if f.role:
            conf = 0.8 if f.role == "dob" else 0.7
            out.dates.append(DateFind(f.raw, Cand("", conf, line, 0, True), f.role, order))


def _sort_key(rd: RawDate, today: date) -> date:
    """Chronological order of dates whose century may be open: a two-digit year read as a visit year."""
    if rd.year is not None:
        return rd.resolve(rd.year) or date.min
    options = [d for d in rd.options() if d.year <= today.year + 1]
    return options[0] if options else date.min

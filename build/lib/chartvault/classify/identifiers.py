"""Patient identifiers from the OCR text of one chart page, and their merge over a document.

Identifiers drive patient matching and misfile detection, so a wrong value costs more than a missing one:
only labelled fields are read (never a bare number or a date mentioned in the report body), values are
validated (real dates, plausible ID shapes), and every value carries a confidence the caller can threshold.

Nothing here logs or raises with page content: the text is PHI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from chartvault.classify.types import Extracted, Identifiers

__all__ = ["extract_icd_codes", "extract_identifiers", "merge_identifiers", "normalise_name", "parse_date"]

# Lines at the top (and bottom) of a page where labels and imprints live. Values found there are preferred
# over body mentions, because report bodies quote other dates and sometimes other people.
_HEADER_LINES = 14
_FOOTER_LINES = 3

# OCR confusions corrected only inside a labelled numeric field (MRN, account, dates...).
_DIGIT_FIX = str.maketrans("OoQlIi|!SsBZz", "0001111155822")
_CONFUSABLE = frozenset("OoQlIi|!SsBZz")

# fmt: off
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                "october", "november", "december")
# fmt: on
_MONTHS = {name[:3]: i + 1 for i, name in enumerate(_MONTH_NAMES)}
_MONTHS |= {name: i + 1 for i, name in enumerate(_MONTH_NAMES)}
_MONTHS["sept"] = 9

# Labels. Each is matched case-insensitively, must not be glued to a preceding letter or digit, and is
# followed by optional separators (OCR turns ':' into ';' or '.', adds spaces before it).
# OCR adds stray characters around separators ("MR#t:", "DOB-", "ENC;"): tolerate one letter before a colon.
_SEP = r"[ \t]*(?:[A-Za-z](?=[:;]))?[ \t]*[:;.#=\-]*[ \t]*"
_B = r"(?<![A-Za-z0-9])"

_MRN_LABEL = (
    r"(?:M[ ]?R[ ]?N(?:[ ]?(?:#|No\b\.?))?|MR[ ]*(?:#|No\b\.?|Number)|"
    r"Med(?:ical)?\.?[ ]*Rec(?:ord)?s?\.?[ ]*(?:#|No\b\.?|Number|Num\b)?|"
    r"Unit[ ]*(?:#|No\b\.?|Number)|Chart[ ]*(?:#|No\b\.?|Number)|(?:Patient|Pt\.?)[ ]*ID|EMPI)"
)
_ACCT_LABEL = (
    r"(?:ACCT\b\.?[ ]*(?:#|No\b\.?|Number)?|Account[ ]*(?:#|No\b\.?|Number)?|"
    r"(?-i:FIN|Fin)\b[ ]*(?:#|No\b\.?)?|(?-i:HAR)\b[ ]*#?|Billing[ ]*(?:#|No\b\.?|Number))"
)
_ENC_LABEL = (
    r"(?:ENC\b\.?[ ]*(?:#|No\b\.?)?|Encounter[ ]*(?:#|No\b\.?|Number|ID)?|Visit[ ]*(?:#|No\b\.?|Number|ID)|"
    r"(?-i:CSN)\b[ ]*#?)"
)
_DOB_LABEL = r"(?:D\.?[ ]?[O0o]\.?[ ]?[B8](?![A-Za-z])\.?|Birth[ ]*-?[ ]*[DB]ate|Date[ ]+of[ ]+Birth)"
_DOS_LABEL = (
    r"(?:D\.?[ ]?[O0o]\.?[ ]?S(?![A-Za-z])\.?|Date[ ]+of[ ]+(?:Service|Visit)|"
    r"(?:Service|Svc|Visit|Encounter)[ ]+Date)"
)
_ADM_LABEL = (
    r"(?:Adm(?:it|ission|\.)?(?:[ ]*(?:Date|Dt))?(?:[ ]*/[ ]*Disch(?:arge)?\.?(?:[ ]*Date)?)?|"
    r"Date[ ]+of[ ]+Admission)"
)
_NAME_LABEL = r"(?:Patient[ ]*Name|Pt\.?[ ]*Name|Name[ ]+of[ ]+Patient|PATIENT|NAME)"
_AGE_LABEL = r"(?:AGE)"

_DATE_TOKEN = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}"  # ISO
    r"|[0-9OoIlSB|]{1,2}[ ]?[/\-.][ ]?[0-9OoIlSB|]{1,2}[ ]?[/\-.][ ]?[0-9OoIlSB|]{2,4}"  # 05/01/1980, 5-1-80
    r"|\d{1,2}[ \-]?[A-Za-z]{3,9}\.?[ \-,]+\d{2,4}"  # 05-JAN-1980, 5 Jan 1980
    r"|[A-Za-z]{3,9}\.?[ ]+\d{1,2}(?:st|nd|rd|th)?,?[ ]+\d{2,4})"  # January 5, 1980 / Jan 5, 1980
    r"(?![0-9])"
)
_ID_TOKEN = r"[A-Za-z0-9|!£€][A-Za-z0-9|!\-]{2,24}"

_MRN_RE = re.compile(_B + "(" + _MRN_LABEL + ")" + _SEP + "(" + _ID_TOKEN + ")", re.I)
_ACCT_RE = re.compile(_B + "(" + _ACCT_LABEL + ")" + _SEP + "(" + _ID_TOKEN + ")", re.I)
_ENC_RE = re.compile(_B + "(" + _ENC_LABEL + ")" + _SEP + "(" + _ID_TOKEN + ")", re.I)
_DOB_RE = re.compile(_B + "(" + _DOB_LABEL + ")" + _SEP + "(" + _DATE_TOKEN + ")", re.I)
_DOS_RE = re.compile(_B + "(" + _DOS_LABEL + ")" + _SEP + "(" + _DATE_TOKEN + ")", re.I)
_ADM_RE = re.compile(_B + "(" + _ADM_LABEL + ")" + _SEP + "(" + _DATE_TOKEN + ")", re.I)
# Misread labels ('MBN:', 'MRWN:', 'AGCT:', 'EN€:'): used only when no well-read label is on the page, need a
# colon, and give lower confidence.
_FUZZY_SEP = r"[ \t]*[:;][ \t]*"
_MRN_FUZZY_RE = re.compile(_B + r"(M[RBAKHW]{1,2}N|M[RBAKHW]?#)" + _FUZZY_SEP + "(" + _ID_TOKEN + ")")
_ACCT_FUZZY_RE = re.compile(_B + r"(A[CG]{1,2}[CGT]T?|F[I1l]N)" + _FUZZY_SEP + "(" + _ID_TOKEN + ")")
_ENC_FUZZY_RE = re.compile(_B + r"(EN\S{0,3}?|V[I1l]S[I1l]T\S?)" + _FUZZY_SEP + "(" + _ID_TOKEN + ")")
_AGE_RE = re.compile(
    _B + _AGE_LABEL + r"[ \t]*[:;.]?[ \t]*(\d{1,3})[ ]*(?:Y|YR|YRS|YO|years?)?(?![0-9A-Za-z])", re.I
)
_NAME_RE = re.compile(
    r"(?:^|(?<=[ \t]{2})|(?<=\t)|(?<=\|))[ \t]*(" + _NAME_LABEL + r")[ \t]*[:;][ \t]*(.+)", re.I
)
_RE_NAME_RE = re.compile(r"^[ \t]*RE[ \t]*:[ \t]*(.+)", re.I)

# Words that end a name value when OCR collapsed the gap before the next label.
_NAME_STOP = re.compile(
    r"(?:[ \t]{2,}|\t|\||(?<=[ \t])(?=(?:MRN\b|MR[ ]?#|MR\b|DOB\b|D\.O\.B|SEX\b|AGE\b|ACCT\b|FIN\b|ENC\b|"
    r"DOS\b|ROOM\b|RM\b|ATTENDING\b|PHYSICIAN\b|ADMIT\b|ACCOUNT\b|UNIT\b|VISIT\b|BIRTH\b|DATE\b|"
    r"MED\b|CHART\b|PATIENT\b|PT\b|GENDER\b|HAR\b|CSN\b|EMPI\b|ENCOUNTER\b|\(continued\))))",
    re.I,
)
_NAME_TOKEN = re.compile(r"^[A-Za-z][A-Za-z'\u2019\-]*\.?$")
# Surname particles: 'Edward Van Der Berg' -> 'VAN DER BERG, EDWARD'.
# fmt: off
_PARTICLES = frozenset({"VAN", "VON", "DER", "DEN", "DE", "DEL", "DELA", "LA", "LE", "DA", "DI", "DOS", "DU",
                        "ST", "ST.", "MC", "MAC", "AL", "EL", "BIN", "BEN", "TER", "TEN"})
# fmt: on
_HONORIFICS = {"MR", "MRS", "MS", "MISS", "DR"}
_SUFFIXES = {"JR", "SR", "II", "III", "IV", "JR.", "SR."}
# Template placeholders and titles that follow a name label but are not a name.
_NOT_NAMES = {"SAMPLE", "PATIENT", "NAME", "UNKNOWN", "ABC", "XYZ", "MR", "MRS", "MS", "DR"}
# "LAST, FIRST M" printed before an MRN/DOB label on continuation pages and addressograph imprints.
_BARE_NAME = re.compile(
    r"^[ \t]*([A-Z][A-Z'\-]+(?:[ ][A-Z][A-Z'\-]+){0,3},[ ]?[A-Z][A-Z'\-]+(?:[ ][A-Z][A-Z'\-]*\.?)?)[._|]*"
    r"(?:[ \t]{2,}|[ \t]*\||[ \t]+(?=_?[A-Z][A-Za-z#.]{1,5}[:;])|[ \t]*$)"
)


@dataclass(slots=True)
class _Cand:
    value: str
    conf: float
    line: int
    priority: int  # higher label priority wins before position and confidence
    header: bool


def _fix_digits(raw: str) -> tuple[str, int]:
    """Map OCR letter/digit confusions to digits; return the fixed string and how many were fixed."""
    fixed = raw.translate(_DIGIT_FIX)
    return fixed, sum(1 for a, b in zip(raw, fixed, strict=True) if a != b)


def _clean_id(raw: str, *, min_digits: int) -> tuple[str, int] | None:
    """Validate an ID token (optional 1-2 letter prefix + digits); return (value, OCR fixes) or None.

    A leading uppercase letter that is not a common digit confusion is a facility prefix ('E0073032') and
    is kept; everything after it must read as digits once confusions are fixed.
    """
    tok = raw.strip(".-")
    if tok[:1] in {"£", "€"}:  # OCR reads a prefix 'E' as a currency sign
        tok = "E" + tok[1:]
    prefix = ""
    while len(prefix) < 2 and tok[:1].isalpha() and tok[:1].isupper() and tok[0] not in _CONFUSABLE:
        prefix, tok = prefix + tok[0], tok[1:]
    tok = tok.replace("-", "")
    if not tok:
        return None
    real_digits = sum(c.isdigit() for c in tok)
    fixed, nfix = _fix_digits(tok)
    if not fixed.isdigit() or len(fixed) < min_digits or len(fixed) > 15:
        return None
    if real_digits * 2 < len(fixed):  # mostly letters: a word, not an OCR-damaged number
        return None
    return prefix + fixed, nfix


def _year4(yy: int, *, ref: date, past_only: bool) -> list[int]:
    """Candidate four-digit years for a two-digit year, most plausible first."""
    cands = [2000 + yy, 1900 + yy]
    if past_only:
        return [y for y in cands if y <= ref.year] or [1900 + yy]
    return [y for y in cands if y <= ref.year + 1] or [1900 + yy]


@dataclass(slots=True)
class _RawDate:
    year: int | None  # None: two-digit year still to resolve
    yy: int
    month: int
    day: int
    ocr_fixes: int

    def resolve(self, year: int) -> date | None:
        try:
            return date(year, self.month, self.day)
        except ValueError:
            return None


def _parse_raw_date(token: str) -> _RawDate | None:
    """Parse one date token in any supported layout; None when it is not a real calendar date."""
    tok = token.strip().rstrip(".,")
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", tok)
    if m:
        y, mo, d = (int(g) for g in m.groups())
        return _checked(_RawDate(y, y % 100, mo, d, 0))
    m = re.fullmatch(r"([0-9OoIlSB|]{1,2}) ?[/\-.] ?([0-9OoIlSB|]{1,2}) ?[/\-.] ?([0-9OoIlSB|]{2,4})", tok)
    if m:
        parts, nfix = [], 0
        for g in m.groups():
            f, n = _fix_digits(g)
            parts.append(f)
            nfix += n
        if not all(p.isdigit() for p in parts) or len(parts[2]) == 3:
            return None
        mo, d, y = (int(p) for p in parts)
        if len(parts[2]) == 2:
            return _checked(_RawDate(None, y, mo, d, nfix))
        return _checked(_RawDate(y, y % 100, mo, d, nfix))
    m = re.fullmatch(r"(\d{1,2})[ \-]?([A-Za-z]{3,9})\.?[ \-,]+(\d{2,4})", tok)
    if m and m.group(2).lower() in _MONTHS and len(m.group(3)) != 3:
        d, mo, ys = int(m.group(1)), _MONTHS[m.group(2).lower()], m.group(3)
        y = int(ys)
        return _checked(_RawDate(None if len(ys) == 2 else y, y % 100, mo, d, 0))
    m = re.fullmatch(r"([A-Za-z]{3,9})\.? +(\d{1,2})(?:st|nd|rd|th)?,? +(\d{2,4})", tok)
    if m and m.group(1).lower() in _MONTHS and len(m.group(3)) != 3:
        mo, d, ys = _MONTHS[m.group(1).lower()], int(m.group(2)), m.group(3)
        y = int(ys)
        return _checked(_RawDate(None if len(ys) == 2 else y, y % 100, mo, d, 0))
    return None


def _checked(rd: _RawDate) -> _RawDate | None:
    if not (1 <= rd.month <= 12 and 1 <= rd.day <= 31):
        return None
    if rd.year is not None and (rd.year < 1850 or rd.resolve(rd.year) is None):
        return None
    if rd.year is None and rd.resolve(2000 + rd.yy) is None and rd.resolve(1900 + rd.yy) is None:
        return None
    return rd


def parse_date(token: str, *, ref: date | None = None, past_only: bool = False) -> date | None:
    """Parse a printed date (MM/DD/YYYY, M/D/YY, ISO, DD-MON-YYYY, 'Month D, YYYY') into a real date.

    Two-digit years go to the latest century that is not after ``ref`` (today by default); with
    ``past_only`` the date must not be after ``ref`` at all (dates of birth).
    """
    rd = _parse_raw_date(token)
    if rd is None:
        return None
    ref = ref or date.today()
    years = [rd.year] if rd.year is not None else _year4(rd.yy, ref=ref, past_only=past_only)
    for y in years:
        d = rd.resolve(y)
        if d is not None and (not past_only or d <= ref):
            return d
    return None


def _age_on(dob: date, when: date) -> int:
    return when.year - dob.year - ((when.month, when.day) < (dob.month, dob.day))


def _split_name_value(raw: str) -> str:
    """Cut a labelled name value at the next field (two spaces, a bar, or a following label)."""
    m = _NAME_STOP.search(raw)
    return (raw[: m.start()] if m else raw).strip(" \t,;:.-")


def normalise_name(raw: str) -> str | None:
    """Normalise a printed patient name to 'LAST, FIRST M'; None when it does not look like a name.

    Accepts 'LAST, FIRST M', 'Last, First Middle', 'First M. Last' and 'First Van Der Last'; the middle name
    is reduced to its initial because labels print it either way.
    """
    s = re.sub(r"\s+", " ", raw.replace("\u2019", "'")).strip(" ,.;:")
    if not s or any(c.isdigit() for c in s):
        return None
    if "," in s:
        last_part, _, rest = s.partition(",")
        last_toks = last_part.split()
        rest_toks = [t for t in rest.replace(",", " ").split()]
        suffix = [t for t in rest_toks if t.upper().rstrip(".") in {x.rstrip(".") for x in _SUFFIXES}]
        rest_toks = [t for t in rest_toks if t not in suffix]
        last_toks += suffix
        if not rest_toks:
            return None
        first, middle = rest_toks[0], rest_toks[1:]
    else:
        toks = s.split()
        while toks and toks[0].upper().rstrip(".") in _HONORIFICS:
            toks = toks[1:]
        if len(toks) < 2:
            return None
        suffix = []
        if toks[-1].upper() in _SUFFIXES:
            suffix = [toks.pop()]
        if len(toks) < 2:
            return None
        first = toks[0]
        i = len(toks) - 1
        while i > 1 and toks[i - 1].upper() in _PARTICLES:
            i -= 1
        last_toks = toks[i:] + suffix
        middle = toks[1:i]
    toks_all = [*last_toks, first, *middle]
    if not last_toks or not all(_NAME_TOKEN.match(t) for t in toks_all):
        return None
    if len(first.rstrip(".")) < 1 or len("".join(last_toks)) < 2 or len(middle) > 2:
        return None
    if {t.upper().rstrip(".") for t in [*last_toks, first]} & _NOT_NAMES:
        return None
    last = " ".join(t.upper().rstrip(".") for t in last_toks)
    out = f"{last}, {first.upper().rstrip('.')}"
    if middle:
        out += f" {middle[0][0].upper()}"
    return out


def _in_header(i: int, n: int) -> bool:
    return i < _HEADER_LINES or i >= n - _FOOTER_LINES


def _best(cands: list[_Cand]) -> Extracted | None:
    """Pick the strongest candidate: label priority, then header area, confidence and earliest line.

    Confidence drops when other credible candidates disagree, so a page with two MRNs is not trusted.
    """
    if not cands:
        return None
    best = max(cands, key=lambda c: (c.priority, c.header, c.conf, -c.line))
    conf = best.conf if best.header else best.conf * 0.85
    rivals = [
        c for c in cands if c.value != best.value and c.header == best.header and c.priority == best.priority
    ]
    if rivals:
        agree = sum(c.conf for c in cands if c.value == best.value and c.priority == best.priority)
        conf *= agree / (agree + sum(c.conf for c in rivals))
    return Extracted(best.value, round(max(0.0, min(1.0, conf)), 3))


# Abbreviated labels may stand without a separator ('MRN 123456'); spelled-out ones ('Account', 'Patient ID')
# need ':', '#' or 'No' so that prose such as 'take into account 12 ...' never matches.
_BARE_OK = re.compile(r"(?i)^(?:M[ ]?R[ ]?N|ACCT|FIN|ENC|CSN|HAR|EMPI)\b")
_HAS_SEP = re.compile(r"(?i)[:;#]|\bNo\b|Number")


def _id_cands(
    pattern: re.Pattern[str], lines: list[str], *, min_digits: int, fuzzy: bool = False
) -> list[_Cand]:
    """Labelled ID values, OCR confusions fixed at a lower confidence; misread labels lower still."""
    out: list[_Cand] = []
    n = len(lines)
    for i, line in enumerate(lines):
        for m in pattern.finditer(line):
            label, value = m.group(1), m.group(2)
            has_sep = bool(_HAS_SEP.search(label + line[m.end(1) : m.start(2)]))
            if not has_sep and not fuzzy and not _BARE_OK.match(label):
                continue
            cleaned = _clean_id(value, min_digits=min_digits)
            if cleaned is None:
                continue
            val, nfix = cleaned
            conf = 0.97 if has_sep else 0.9
            after = line[m.end(2) : m.end(2) + 1]
            if after and not after.isspace() and after not in ".,;:)":
                conf = 0.6  # glued to junk ('0893250?'): a digit was probably misread
            if nfix:
                conf = min(conf, 0.75) - 0.05 * (nfix - 1)
            if fuzzy:
                conf -= 0.15
            out.append(_Cand(val, max(conf, 0.3), i, 0 if fuzzy else 1, _in_header(i, n)))
    return out


def _date_cands(pattern: re.Pattern[str], lines: list[str], priority: int) -> list[tuple[_RawDate, _Cand]]:
    out: list[tuple[_RawDate, _Cand]] = []
    n = len(lines)
    for i, line in enumerate(lines):
        for m in pattern.finditer(line):
            rd = _parse_raw_date(m.group(2))
            if rd is None:
                continue
            conf = 0.97
            if rd.ocr_fixes:
                conf = 0.75 - 0.05 * (rd.ocr_fixes - 1)
            out.append((rd, _Cand("", max(conf, 0.3), i, priority, _in_header(i, n))))
    return out


def _resolve_dates(
    raws: list[tuple[_RawDate, _Cand]], *, today: date, is_dob: bool, age: int | None, when: date | None
) -> list[_Cand]:
    """Turn raw dates into ISO candidates, choosing the century of two-digit years.

    A date of birth cannot be in the future; one after the date of service is kept but distrusted. A printed
    age (checked against the date of service) settles the century of a two-digit year and raises or lowers
    confidence in a four-digit one.
    """
    out: list[_Cand] = []
    for rd, cand in raws:
        conf = cand.conf
        if rd.year is not None:
            options = [rd.resolve(rd.year)]
        else:
            conf *= 0.85
            options = [rd.resolve(2000 + rd.yy), rd.resolve(1900 + rd.yy)]
        dates = [d for d in options if d is not None]
        if is_dob:
            dates = [d for d in dates if d <= today]
            if rd.year is None and when is not None:
                dates = [d for d in dates if d <= when] or dates
        else:
            dates = [d for d in dates if d.year <= today.year + 1] or ([dates[-1]] if rd.year is None else [])
        if not dates:
            continue
        d = dates[0]
        if is_dob and age is not None and when is not None:
            fitting = [x for x in dates if abs(_age_on(x, when) - age) <= 1]
            if fitting:
                d = fitting[0]
                conf = min(0.99, cand.conf + 0.02) if rd.year is not None else min(0.95, cand.conf)
            else:
                conf *= 0.85
        if is_dob and when is not None and d > when:
            conf *= 0.5
        out.append(_Cand(d.isoformat(), conf, cand.line, cand.priority, cand.header))
    return out


def _name_cands(lines: list[str]) -> list[_Cand]:
    out: list[_Cand] = []
    n = len(lines)
    for i, line in enumerate(lines):
        header = _in_header(i, n)
        for m in _NAME_RE.finditer(line):
            raw = _split_name_value(m.group(2))
            name = normalise_name(raw)
            if name is None:
                continue
            conf = 0.96 if "," in raw else 0.88
            if (
                re.search(r"[a-z]", raw)
                and "," not in raw
                and m.group(1).strip().upper() in {"NAME", "PATIENT"}
            ):
                conf = 0.8  # 'Name: John Smith' in prose-like text is weaker evidence than a label block
            out.append(_Cand(name, conf, i, 3, header))
            break
        else:
            m2 = _BARE_NAME.match(line)
            if m2 and header:
                rest = line[m2.end() :]
                labelled = bool(re.search(r"(?i)\b(?:MRN|MR\s*#|DOB|D\.O\.B)", rest))
                name = normalise_name(m2.group(1))
                if name is not None and (labelled or i < _HEADER_LINES):
                    out.append(_Cand(name, 0.88 if labelled else 0.55, i, 2 if labelled else 1, header))
                continue
            m3 = _RE_NAME_RE.match(line)
            if m3:
                name = normalise_name(_split_name_value(m3.group(1)))
                if name is not None:
                    out.append(_Cand(name, 0.5, i, 0, header))
    return out


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


def extract_identifiers(text: str, *, today: date | None = None) -> Identifiers:
    """Read MRN, name, DOB, date of service, account and encounter from one page of OCR text.

    Only labelled values count; header/footer lines beat body mentions, so a date the report quotes
    ('EEG on August 04, 2002') never becomes the date of service. ``today`` bounds dates of birth and
    two-digit years (injectable for tests).
    """
    ids = Identifiers()
    if not text or not text.strip():
        return ids
    ids.icd_codes = extract_icd_codes(text)
    ref = today or date.today()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    ids.mrn = _best(
        _id_cands(_MRN_RE, lines, min_digits=5) + _id_cands(_MRN_FUZZY_RE, lines, min_digits=6, fuzzy=True)
    )
    ids.account = _best(
        _id_cands(_ACCT_RE, lines, min_digits=4) + _id_cands(_ACCT_FUZZY_RE, lines, min_digits=6, fuzzy=True)
    )
    ids.encounter = _best(
        _id_cands(_ENC_RE, lines, min_digits=4) + _id_cands(_ENC_FUZZY_RE, lines, min_digits=6, fuzzy=True)
    )
    ids.name = _best(_name_cands(lines))

    ages = [
        int(m.group(1))
        for i, ln in enumerate(lines)
        if _in_header(i, len(lines))
        for m in _AGE_RE.finditer(ln)
    ]
    age = ages[0] if ages and 0 <= ages[0] <= 130 else None

    dos_raw = _date_cands(_DOS_RE, lines, 3) + _date_cands(_ADM_RE, lines, 2)
    ids.date_of_service = _best(_resolve_dates(dos_raw, today=ref, is_dob=False, age=None, when=None))
    when = date.fromisoformat(ids.date_of_service.value) if ids.date_of_service else None

    dob_raw = _date_cands(_DOB_RE, lines, 3)
    ids.dob = _best(_resolve_dates(dob_raw, today=ref, is_dob=True, age=age, when=when))
    if ids.dob and ids.date_of_service and ids.dob.value == ids.date_of_service.value:
        # Same date under both labels is usually a misread label; keep both but trust them less.
        ids.dob = Extracted(ids.dob.value, round(ids.dob.confidence * 0.6, 3))
    return ids


def merge_identifiers(pages: list[Identifiers]) -> Identifiers:
    """Document-level identifiers: per field, the value with the largest confidence-weighted vote.

    Agreeing pages raise confidence (independent evidence: 1 - prod(1 - c)); disagreeing pages lower it by
    the winner's share of the vote, so a document whose pages name two MRNs is flagged by a low score.
    """
    merged = Identifiers()
    fields = [name for name, _ in Identifiers().as_items()]
    for fname in fields:
        votes: dict[str, list[float]] = {}
        order: list[str] = []
        for page in pages:
            ex = getattr(page, fname)
            if ex is None:
                continue
            if ex.value not in votes:
                votes[ex.value] = []
                order.append(ex.value)
            votes[ex.value].append(max(0.0, min(1.0, ex.confidence)))
        if not votes:
            continue
        total = sum(sum(v) for v in votes.values())
        winner = max(order, key=lambda v: (sum(votes[v]), -order.index(v)))
        if total <= 0:
            setattr(merged, fname, Extracted(winner, 0.0))
            continue
        share = sum(votes[winner]) / total
        miss = 1.0
        for c in votes[winner]:
            miss *= 1.0 - c
        setattr(merged, fname, Extracted(winner, round(share * (1.0 - miss), 3)))
    for page in pages:  # codes: the union over pages, in page order
        merged.icd_codes.extend(c for c in page.icd_codes if c not in merged.icd_codes)
    return merged

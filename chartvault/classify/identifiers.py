"""Patient identifiers of one chart page, and their merge over a document.

Identifiers drive patient matching and misfile detection, so a wrong value costs more than a missing one.
A value is read where a label prints it: after a key (every synonym of the domain notes, ``keys.py``), under
a key (form grids), or without any key inside a label block that holds two or more kinds of identifier
(addressograph imprints, the name line of a thermal label; ``keyless.py``). The page's word boxes say where
the label bands, blocks and field gaps are (``layout.py``); plain text still works, with the first and last
lines standing in for the bands. Values are validated (real dates, the facility's MRN pattern when one is
configured, its check digit when its MRNs carry one: ``checkdigit.py``), made consistent (a birth date
agrees with a printed age and precedes the visit; a two-digit year takes the century those allow), and
carry a confidence the caller thresholds: a key beats a shape, a label band beats the report body, rivals
lower each other.

Nothing here logs or raises with page content: the text is PHI.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache

from chartvault.classify import keys
from chartvault.classify.candidates import Cand, best
from chartvault.classify.checkdigit import CheckDigit, checked, passes, settled_mrn
from chartvault.classify.dates import (
    YEAR_READ_BACK,
    RawDate,
    age_on,
    parse_date,
    parse_raw_date,
    year_read_back,
)
from chartvault.classify.icd import extract_icd_codes
from chartvault.classify.keyless import (
    REPAIRED_TO_PATTERN,
    KeylessFinds,
    clean_id,
    read_blocks,
    toward_pattern,
)
from chartvault.classify.layout import Row, blocks, page_rows
from chartvault.classify.names import normalise_name
from chartvault.classify.types import Extracted, Identifiers
from chartvault.ocr.types import Word
from chartvault.schemas.documents import MRN_SOURCE_BARCODE, MRN_SOURCE_READ_BACK, MRN_SOURCE_REREAD

__all__ = ["extract_icd_codes", "extract_identifiers", "merge_identifiers", "normalise_name", "parse_date"]

# Abbreviated labels may stand without a separator ('MRN 123456'); spelled-out ones ('Account', 'Patient ID')
# need ':', '#' or 'No' so that prose such as 'take into account 12 ...' never matches.
_BARE_OK = re.compile(r"(?i)^(?:M[ ]?R[ ]?N|ACCT|FIN|ENC|CSN|HAR|EMPI)\b")
_HAS_SEP = re.compile(r"(?i)[:;#]|\bNo\b|Number")
# A keyed MRN that does not have the facility's shape was probably misread (or is another facility's).
_OFF_PATTERN_CONF = 0.6
_NO_CALENDAR_YEARS = 100  # a year further ahead than this is a misread, not a date (dates.year_read_back)
_STACKED_ROW_OFFSET = 100_000  # index of rows rebuilt from keys printed above their values
# What OCR makes of form-cell borders and specks: never part of a value.
_BORDER_MARKS = " |_[](){}'\"‘’`°«»~!"


class _Page:
    """The rows of one page and the spans keys claimed in them (blanked before the keyless reading)."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.claimed: dict[int, list[tuple[int, int]]] = {}
        self.keyed_per_row: Counter[int] = Counter()

    def claim(self, row: Row, start: int, end: int, *, identifier: bool = True) -> None:
        """A key took this span (and, for a key above its value, the value's words in the row below)."""
        self.claimed.setdefault(row.index, []).append((start, end))
        for index, s, e in row.sources:
            self.claimed.setdefault(index, []).append((s, e))
        if identifier:
            self.keyed_per_row[row.index] += 1
            for index in {index for index, _, _ in row.sources}:
                self.keyed_per_row[index] += 1

    def masked(self) -> dict[int, str]:
        out = {}
        for row in self.rows:
            text = row.text
            for start, end in self.claimed.get(row.index, ()):
                text = text[:start] + " " * (end - start) + text[end:]
            out[row.index] = text
        return out


# ------------------------------------------------------------------------------------------ keyed values


def _id_cands(
    page: _Page,
    pattern: re.Pattern[str],
    *,
    min_digits: int,
    fuzzy: bool = False,
    shape: re.Pattern[str] | None = None,
) -> list[Cand]:
    """Keyed ID values, OCR confusions fixed at a lower confidence; misread keys lower still."""
    out: list[Cand] = []
    for row in page.rows:
        for m in pattern.finditer(row.text):
            label, value = m.group(1), m.group(2)
            has_sep = bool(_HAS_SEP.search(label + row.text[m.end(1) : m.start(2)]))
            if not has_sep and not fuzzy and not _BARE_OK.match(label):
                continue
            cleaned = clean_id(value, min_digits=min_digits)
            if cleaned is None:
                continue
            val, nfix = cleaned
            page.claim(row, m.start(), m.end())
            conf = 0.97 if has_sep else 0.9
            after = row.text[m.end(2) : m.end(2) + 1]
            if after and not after.isspace() and after not in ".,;:)|":
                conf = 0.6  # glued to junk ('0893250?'): a digit was probably misread
            if nfix:
                conf = min(conf, 0.75) - 0.05 * (nfix - 1)
            if fuzzy:
                conf -= 0.15
            priority = 0 if fuzzy else 1
            if shape is not None and not shape.fullmatch(val):
                repaired = toward_pattern(val, shape)
                if repaired is not None:  # 'F6659611' where the site's numbers are 'E' and seven digits
                    val, conf = repaired, min(conf, REPAIRED_TO_PATTERN)
                else:
                    conf, priority = min(conf, _OFF_PATTERN_CONF), 0  # a number of the site's shape may win
            out.append(Cand(val, max(conf, 0.3), row.index, priority, row.band))
    return out


def _date_cands(page: _Page, pattern: re.Pattern[str], priority: int) -> list[tuple[RawDate, Cand]]:
    out: list[tuple[RawDate, Cand]] = []
    for row in page.rows:
        for m in pattern.finditer(row.text):
            rd = parse_raw_date(m.group(2))
            if rd is None:
                continue
            page.claim(row, m.start(), m.end())
            conf = 0.97
            if rd.ocr_fixes:
                conf = 0.75 - 0.05 * (rd.ocr_fixes - 1)
            out.append((rd, Cand("", max(conf, 0.3), row.index, priority, row.band)))
    return out


def _split_name_value(raw: str) -> str:
    """Cut a keyed name value at the next field (two spaces, a bar, or a following key)."""
    m = keys.NAME_STOP.search(raw)
    return (raw[: m.start()] if m else raw).strip(" \t,;:.-")


def _name_cands(page: _Page) -> list[Cand]:
    """Names after a name key ('PATIENT:', 'Patient Name:'), and the weaker 'RE:' of a letter."""
    out: list[Cand] = []
    for row in page.rows:
        for m in keys.NAME_RE.finditer(row.text):
            raw = _split_name_value(m.group(2))
            name = normalise_name(raw)
            if name is None:
                continue
            page.claim(row, m.start(), m.start(2) + len(raw))
            conf = 0.96 if "," in raw else 0.88
            if (
                re.search(r"[a-z]", raw)
                and "," not in raw
                and m.group(1).strip().upper() in {"NAME", "PATIENT"}
            ):
                conf = 0.8  # 'Name: John Smith' in prose-like text is weaker evidence than a label block
            out.append(Cand(name, conf, row.index, 3, row.band))
            break
        else:
            m3 = keys.RE_NAME_RE.match(row.text)
            name = normalise_name(_split_name_value(m3.group(1))) if m3 else None
            if name is not None:
                out.append(Cand(name, 0.5, row.index, 0, row.band))
    return out


def _sex_cands(page: _Page) -> list[Cand]:
    out = []
    for row in page.rows:
        for m in keys.SEX_RE.finditer(row.text):
            page.claim(row, m.start(), m.end())
            out.append(Cand(m.group(1)[0].upper(), 0.95, row.index, 1, row.band))
    return out


def _keyed_ages(page: _Page) -> list[int]:
    ages = []
    for row in page.rows:
        if not row.band:
            continue
        for m in keys.AGE_RE.finditer(row.text):
            page.claim(row, m.start(), m.end(), identifier=False)
            ages.append(int(m.group(1)))
    return [a for a in ages if 0 <= a <= 130]


# ---------------------------------------------------------------------------------- keys above values


def _stacked_rows(rows: list[Row]) -> list[Row]:
    """'KEY: VALUE' rows rebuilt from form grids, where each key is printed above its value.

    A band row whose keys stand alone (nothing but separators before the next key) is paired with the row
    right under it; the words under a key, up to where the next key begins, are its value.
    """
    out: list[Row] = []
    by_index = {r.index: r for r in rows}
    for row in rows:
        below = by_index.get(row.index + 1)
        if not row.band or not row.words or below is None or not below.words:
            continue
        gap = min(w.top for w, _, _ in below.words) - max(w.top + w.height for w, _, _ in row.words)
        if gap > 1.5 * row.height:
            continue
        columns = _standalone_keys(row)
        for k, (label, left) in enumerate(columns):
            right = columns[k + 1][1] if k + 1 < len(columns) else 1 << 30
            value = [
                (w.text.strip(_BORDER_MARKS), a, b)
                for w, a, b in below.words
                if left - row.height <= w.left < right - row.height / 2 and w.text.strip(_BORDER_MARKS)
            ]
            if value and label:  # a column whose key could not be read bounds its neighbours, names nothing
                text = f"{label}: {' '.join(v for v, _, _ in value)}"
                index = _STACKED_ROW_OFFSET + below.index * 50 + k
                sources = [(below.index, a, b) for _, a, b in value]
                out.append(Row(text, True, index, height=row.height, sources=sources))
    return out


# What may stand between two keys printed above their values: separators, and the '/' of a combined cell
# ('ACCT/FIN', 'Acct /FIN': two keys over one value).
_BETWEEN_KEYS = _BORDER_MARKS + ":;#.-/"
_GRID_KEYS = 3  # keys a row needs before a stretch between them that no key pattern reads is taken for one
_VALUE_LIKE = re.compile(r"\d{3}|\d[/\-]\d|[a-z]{3}")  # a number, a date, a lower-case word: no damaged key


def _standalone_keys(row: Row) -> list[tuple[str, int]]:
    """Keys of a row with no value after them: (key text, left edge in pixels), left to right.

    In a row of at least ``_GRID_KEYS`` keys, a short stretch no key pattern reads and that holds nothing a
    value would ('1D.0.B.', '0.0.8.": a key OCR damaged) is a column of its own, with an empty key: it
    bounds the columns beside it and names no value.
    """
    found = list(keys.ANY_KEY_RE.finditer(row.text))
    if not found or row.text[: found[0].start()].strip(_BETWEEN_KEYS):
        return []  # words before the first key: prose that ends in a key word ('... The patient')
    out: list[tuple[str, int]] = []
    for k, m in enumerate(found):
        end = found[k + 1].start() if k + 1 < len(found) else len(row.text)
        lefts = [w.left for w, s, e in row.words if s < m.end() and e > m.start()]
        if lefts and not (out and out[-1][1] == min(lefts)):  # 'DOB/AGE' read as one word: its first key
            out.append((m.group(1), min(lefts)))
        between = row.text[m.end() : end].strip(_BETWEEN_KEYS)
        if not between:
            continue
        if len(found) < _GRID_KEYS or len(between.split()) > 2 or _VALUE_LIKE.search(between):
            return []  # a value beside a key: not a grid row
        damaged = [w.left for w, s, e in row.words if s < end and e > m.end() and w.text.strip(_BETWEEN_KEYS)]
        if damaged:
            out.append(("", min(damaged)))
    return out


# ------------------------------------------------------------------------------------------ consistency


def _resolve_dates(
    raws: list[tuple[RawDate, Cand]], *, today: date, is_dob: bool, age: int | None, when: date | None
) -> list[Cand]:
    """Turn raw dates into ISO candidates, choosing the century of two-digit years.

    A date of birth cannot be in the future; one after the date of service is kept but distrusted. A printed
    age (checked against the date of service) settles the century of a two-digit year and raises or lowers
    confidence in a four-digit one; without an age, a two-digit birth year takes the latest century that
    puts the birth before the visit.
    """
    out: list[Cand] = []
    for rd, cand in raws:
        conf = cand.conf if rd.year is not None else cand.conf * 0.85
        dates = rd.options()
        if is_dob:
            dates = [d for d in dates if d <= today]
            if rd.year is None and when is not None:
                dates = [d for d in dates if d <= when] or dates
        else:
            dates = [d for d in dates if d.year <= today.year + 1] or ([dates[-1]] if rd.year is None else [])
        # '2923' is a year no date can have, a misread: one look-alike digit may give the printed year back.
        # '2090' is a real year, only wrong for the field: not guessed at.
        if (
            not dates
            and (rd.year or 0) > today.year + _NO_CALENDAR_YEARS
            and (back := year_read_back(rd, 1900, today.year + (0 if is_dob else 1))) is not None
        ):
            dates, conf = back.options(), min(conf, YEAR_READ_BACK)
        if not dates:
            continue
        d = dates[0]
        if is_dob and age is not None and when is not None:
            fitting = [x for x in dates if abs(age_on(x, when) - age) <= 1]
            if fitting:
                d = fitting[0]
                conf = min(0.99, cand.conf + 0.02) if rd.year is not None else min(0.95, cand.conf)
            else:
                conf *= 0.85
        if is_dob and when is not None and d > when:
            conf *= 0.5
        out.append(Cand(d.isoformat(), conf, cand.line, cand.priority, cand.header))
    return out


def _page_age(keyed: list[int], keyless: KeylessFinds) -> int | None:
    if keyed:
        return keyed[0]
    ages = Counter(a for a in keyless.ages if 0 <= a <= 120)
    return ages.most_common(1)[0][0] if ages else None


@lru_cache(maxsize=32)
def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    """The facility MRN pattern (full match); None when unset. Validated where the setting is read."""
    return re.compile(pattern) if pattern else None


# ------------------------------------------------------------------------------------------- the page


def extract_identifiers(
    text: str,
    *,
    words: Sequence[Word] | None = None,
    page_size: tuple[int, int] | None = None,
    mrn_pattern: str | None = None,
    mrn_check_digit: CheckDigit = "none",
    today: date | None = None,
) -> Identifiers:
    """Read MRN, name, DOB, sex, date of service, account and encounter from one page.

    ``words`` are the page's OCR word boxes (pixels, or points for a text layer) and ``page_size`` its
    (width, height) in the same unit: with them labels are found by position anywhere in the top and
    bottom bands, fields by their gaps, keys above values, and keyless imprints; without them the text's
    lines are used. ``mrn_pattern`` is the facility's MRN shape as a regular expression matched against
    the whole value ('M\\d{9}', '\\d{10}'): it decides which keyless number is the MRN and lowers trust in
    a keyed one of another shape. ``mrn_check_digit`` is the facility's check-digit scheme
    (``checkdigit.py``): a number that fails it is doubtful and loses to one that passes. ``today`` bounds
    dates of birth and two-digit years (for tests).
    """
    ids = Identifiers()
    if not (text and text.strip()) and not words:
        return ids
    ids.icd_codes = extract_icd_codes(text or "")
    ref = today or date.today()
    rows = page_rows(text or "", words, page_size)
    page = _Page(rows + _stacked_rows(rows))
    shape = _compiled(mrn_pattern)

    keyed = _Keyed.read(page, shape)
    keyless = read_blocks(
        blocks(rows),
        page.masked(),
        dict(page.keyed_per_row),
        mrn_pattern=shape,
        have_dob=bool(keyed.dob),
        have_dos=bool(keyed.dos),
        today=ref,
    )
    ids.mrn = best(checked(keyed.mrn + keyless.mrns, mrn_check_digit))
    ids.account = best(keyed.account)
    ids.encounter = best(keyed.encounter)
    ids.name = best(keyed.names + keyless.names)
    ids.sex = best(keyed.sexes + keyless.sexes)
    _consistent_dates(ids, keyed, keyless, ref)
    return ids


@dataclass(slots=True)
class _Keyed:
    """Every value a key printed beside (or above) it claimed on the page."""

    mrn: list[Cand]
    account: list[Cand]
    encounter: list[Cand]
    names: list[Cand]
    sexes: list[Cand]
    ages: list[int]
    dos: list[tuple[RawDate, Cand]]
    dob: list[tuple[RawDate, Cand]]

    @classmethod
    def read(cls, page: _Page, shape: re.Pattern[str] | None) -> _Keyed:
        return cls(
            mrn=_id_cands(page, keys.MRN_RE, min_digits=5, shape=shape)
            + _id_cands(page, keys.MRN_FUZZY_RE, min_digits=6, fuzzy=True, shape=shape),
            account=_id_cands(page, keys.ACCT_RE, min_digits=4)
            + _id_cands(page, keys.ACCT_FUZZY_RE, min_digits=6, fuzzy=True),
            encounter=_id_cands(page, keys.ENC_RE, min_digits=4)
            + _id_cands(page, keys.ENC_FUZZY_RE, min_digits=6, fuzzy=True),
            names=_name_cands(page),
            sexes=_sex_cands(page),
            ages=_keyed_ages(page),
            dos=_date_cands(page, keys.DOS_RE, 3) + _date_cands(page, keys.ADM_RE, 2),
            dob=_date_cands(page, keys.DOB_RE, 3),
        )


def _consistent_dates(ids: Identifiers, keyed: _Keyed, keyless: KeylessFinds, today: date) -> None:
    """Date of service first (it bounds the birth date), then the birth date checked against it and the
    printed age; keyless dates join the role their neighbours gave them."""
    dos = keyed.dos + [(f.raw, f.cand) for f in keyless.dates if f.role == "dos"]
    dob = keyed.dob + [(f.raw, f.cand) for f in keyless.dates if f.role == "dob"]
    ids.date_of_service = best(_resolve_dates(dos, today=today, is_dob=False, age=None, when=None))
    when = date.fromisoformat(ids.date_of_service.value) if ids.date_of_service else None
    age = _page_age(keyed.ages, keyless)
    ids.dob = best(_resolve_dates(dob, today=today, is_dob=True, age=age, when=when))
    if ids.dob and ids.date_of_service and ids.dob.value == ids.date_of_service.value:
        # Same date under both labels is usually a misread label; keep both but trust them less.
        ids.dob = Extracted(ids.dob.value, round(ids.dob.confidence * 0.6, 3))


def _with_initials_restored(votes: dict[str, list[float]]) -> dict[str, list[float]]:
    """Votes for 'LAST, FIRST' counted for 'LAST, FIRST M' when that is the only fuller reading: a page that
    lost the initial (a speck, a glued glyph) agrees with the pages that read it."""
    out: dict[str, list[float]] = {}
    for name, confs in votes.items():
        fuller = [v for v in votes if v.startswith(name + " ") and len(v) == len(name) + 2]
        out.setdefault(fuller[0] if len(fuller) == 1 else name, []).extend(confs)
    return out


def _fits(mrn: str, mrn_pattern: str | None) -> bool:
    shape = _compiled(mrn_pattern)
    return shape is None or shape.fullmatch(mrn) is not None


def merge_identifiers(
    pages: list[Identifiers], *, mrn_check_digit: CheckDigit = "none", mrn_pattern: str | None = None
) -> Identifiers:
    """Document-level identifiers: per field, the value with the largest confidence-weighted vote.

    Agreeing pages raise confidence (independent evidence: 1 - prod(1 - c)), which is how a keyless value
    printed on every page of a document (an imprint, a label) earns the trust a single page cannot give it;
    disagreeing pages lower it by the winner's share of the vote, so a document whose pages name two MRNs
    is flagged by a low score. An MRN off the facility's pattern (``mrn_pattern``) gains nothing from
    agreeing pages: a fax that inserts a letter ('MRO09865171' for 'MR09865171') inserts it on every page
    alike, so the pages are not independent, and the number keeps its best page's doubtful score.

    With a check digit (``mrn_check_digit``, and the facility's ``mrn_pattern`` for the read-back), MRNs that
    pass outvote those that fail, which are misreads of a checked number and no evidence of another one;
    when none passes, the winner is read back by one look-alike digit or kept as doubtful
    (``checkdigit.settled_mrn``): however many pages agree on it, it never reaches a clean reading's score.
    A number read back keeps what the pages printed in ``read_as``: it is a guess, and the person who
    reviews the document must see both. So does an MRN that rests on re-reading alone (every page that
    gave it had its first reading out-voted by the renderings, ``reread.voted``): it keeps that page's
    mark, and the first reading (the most common, when pages differ) in ``read_as``.
    """
    merged = Identifiers()
    for fname, _ in Identifiers().as_items():
        voted = _field_vote(fname, pages, mrn_check_digit, mrn_pattern)
        if voted is not None:
            setattr(merged, fname, voted)
    for page in pages:  # codes: the union over pages, in page order
        merged.icd_codes.extend(c for c in page.icd_codes if c not in merged.icd_codes)
    if merged.mrn is not None:
        merged.mrn = _repair_mark(merged.mrn, [page.mrn for page in pages if page.mrn is not None])
    if merged.mrn is not None and mrn_check_digit != "none":
        read = merged.mrn.value
        value, conf = settled_mrn(read, merged.mrn.confidence, mrn_check_digit, _compiled(mrn_pattern))
        if value != read:
            merged.mrn = Extracted(value, round(conf, 3), read_as=read, source=MRN_SOURCE_READ_BACK)
        else:
            merged.mrn = replace(merged.mrn, confidence=round(conf, 3))
    return merged


def _field_vote(
    fname: str, pages: list[Identifiers], mrn_check_digit: CheckDigit, mrn_pattern: str | None
) -> Extracted | None:
    """One field's document value (``merge_identifiers``): the confidence-weighted winner of the pages'
    votes, scored by its share of the vote times the chance that not every page giving it misread it."""
    votes: dict[str, list[float]] = {}
    for page in pages:
        ex = getattr(page, fname)
        if ex is not None:
            votes.setdefault(ex.value, []).append(max(0.0, min(1.0, ex.confidence)))
    if not votes:
        return None
    if fname == "name":
        votes = _with_initials_restored(votes)
    if fname == "mrn" and mrn_check_digit != "none":
        votes = {v: c for v, c in votes.items() if passes(v, mrn_check_digit)} or votes
    order = list(votes)
    total = sum(sum(v) for v in votes.values())
    winner = max(order, key=lambda v: (sum(votes[v]), -order.index(v)))
    if total <= 0:
        return Extracted(winner, 0.0)
    miss = 1.0
    for c in votes[winner]:
        miss *= 1.0 - c
    conf = sum(votes[winner]) / total * (1.0 - miss)
    if fname == "mrn" and not _fits(winner, mrn_pattern):
        conf = min(conf, max(votes[winner]))  # agreeing pages repeat one misread; no more evidence
    return Extracted(winner, round(conf, 3))


_PAGE_REPAIRS = (MRN_SOURCE_REREAD, MRN_SOURCE_BARCODE)


def _repair_mark(mrn: Extracted, readings: list[Extracted]) -> Extracted:
    """The document's MRN marked as a page-level repair's (the re-read vote, the label's barcode) when every
    page that gave it had it from that repair (a page that printed it readably vouches for it as read; a
    barcode that only supplied an unread MRN says so): ``read_as`` the first reading, when there was one."""
    giving = [r for r in readings if r.value == mrn.value]
    sources = {r.source for r in giving}
    if len(sources) != 1 or (source := sources.pop()) not in _PAGE_REPAIRS:
        return mrn
    first_reads = Counter(r.read_as for r in giving if r.read_as is not None)
    if not first_reads:
        return replace(mrn, source=source) if source == MRN_SOURCE_BARCODE else mrn
    return replace(mrn, read_as=first_reads.most_common(1)[0][0], source=source)

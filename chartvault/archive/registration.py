"""The hospital's registration list loaded into the patient index (``chartvault patients import``).

The file is CSV (UTF-8, an Excel byte-order mark is fine) with a header naming its columns:
``mrn``, ``last_name``, ``first_name``, ``dob`` (YYYY-MM-DD or MM/DD/YYYY), and optionally
``middle_name`` and ``sex`` (M, F, U or X). Each row is checked on its own: a bad row is refused with
its line number and what is wrong with it (the field's name, never its value), the others are taken.
Importing the same file again changes nothing (every row ``unchanged``), so a nightly export can be
loaded every night. A row whose MRN is already in the index updates its name and sex and marks it as
registered; a different date of birth is refused rather than overwritten, because the DOB drives
retention and a correction has its own audited command (``chartvault retention correct-dob``).

The file is streamed: decoded as it is read, through ``csv.reader``, checked and applied ``_CHUNK`` good
rows at a time. What grows with the file is the dict of MRNs read so far (MRN -> line, to refuse an MRN
repeated however far apart: about 125 MB a million rows, see ``bench.registration``); refused rows are
all counted, but only the first ``MAX_ROW_ERRORS`` by line number are kept.

Every ``_CHUNKS_PER_COMMIT`` chunks are committed as they are applied. Rows are independent (a bad one
is refused, the others taken) and importing again is idempotent, so nothing needs the file in one
transaction; and on SQLite one transaction would hold the write lock for the whole import (some 35 s a
million rows), so the pipeline, writing beside a nightly import, would wait and fail past the busy
timeout (30 s). A commit per chunk let it in every 40 ms but made a million rows take 64 s instead of
34; one per 25,000 rows holds the lock about a second at a time, and a million rows take 39 s
(``bench.registration``, one machine, one run each). A file that is not UTF-8 anywhere, even on its last
line, is still refused as a whole, and so is one that is not CSV a registration list can be (a line over
``MAX_LINE_CHARS``, a field over the csv limit or running over lines: a quote left open would swallow every
row after it): a first pass reads the whole file (1.3 s a million rows) before any row is written. A name
holding a control, zero-width or direction-override character, or over ``MAX_NAME_CHARS``, refuses its row.
"""

from __future__ import annotations

import csv
import heapq
import io
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from chartvault.archive.models import PATIENT_SOURCE_REGISTRATION, Patient, new_id
from chartvault.archive.patients import UNSAFE_CHARS, name_key

__all__ = [
    "COLUMNS",
    "EARLIEST_DOB",
    "MAX_LINE_CHARS",
    "MAX_ROW_ERRORS",
    "ImportCounts",
    "RowError",
    "import_registration",
]

REQUIRED = ("mrn", "last_name", "first_name", "dob")
OPTIONAL = ("middle_name", "sex")
COLUMNS = REQUIRED + OPTIONAL
_ALIASES = {
    "mrn": "mrn",
    "medical_record_number": "mrn",
    "last_name": "last_name",
    "last": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "first_name": "first_name",
    "first": "first_name",
    "given_name": "first_name",
    "middle_name": "middle_name",
    "middle": "middle_name",
    "dob": "dob",
    "date_of_birth": "dob",
    "birth_date": "dob",
    "birthdate": "dob",
    "sex": "sex",
    "gender": "sex",
}
_MRN = re.compile(r"^[A-Za-z0-9\-]{1,64}$")
_SEX = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "U": "U", "UNKNOWN": "U", "X": "X"}
EARLIEST_DOB = date(1880, 1, 1)  # no living patient was born before (a DOB correction refuses it too)
_CHUNK = 1000  # good rows checked against the catalog and written together
MAX_ROW_ERRORS = 1000  # refused rows kept to be listed, the first by line number (all are counted)
# A registration row is a few hundred characters. A longer line is no registration list, and csv would hold
# it whole in memory (a 1 GiB list of one line: some 5 GB, 4 bytes a character once one is past Latin-1).
MAX_LINE_CHARS = 64 * 1024
MAX_NAME_CHARS = 100  # each of last, first and middle name: "LAST, FIRST M" fits the catalog's 256


class BadFile(ValueError):
    """The file as a whole cannot be read (no header, missing columns, not UTF-8)."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    code: str
    message: str  # names the field, never its value


@dataclass(slots=True)
class ImportCounts:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first MAX_ROW_ERRORS by line number
    stopped: bool = False  # asked to stop: the counts are what was committed, the rest of the file unread

    @property
    def applied(self) -> int:
        """Rows taken into the index (new, updated or found unchanged)."""
        return self.imported + self.updated + self.unchanged


class _FirstErrors:
    """Every refused row counted; the first ``keep`` of them by line number kept (a max-heap on the line:
    errors arrive nearly in line order, but a chunk's ``dob_differs`` come after later rows' errors)."""

    def __init__(self, counts: ImportCounts, keep: int) -> None:
        self.counts = counts
        self.keep = keep
        self._heap: list[tuple[int, int, RowError]] = []  # (-line, -arrival, error): never compares errors

    def add(self, error: RowError) -> None:
        self.counts.refused += 1
        item = (-error.line, -self.counts.refused, error)
        if len(self._heap) < self.keep:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:  # an earlier line than the latest one kept
            heapq.heapreplace(self._heap, item)

    def by_line(self) -> list[RowError]:
        return sorted((e for _, _, e in self._heap), key=lambda e: e.line)


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    mrn: str
    last: str
    first: str
    middle: str
    dob: date
    sex: str | None
    key: str  # name_key of last and first: how the index finds the patient by name

    @property
    def name(self) -> str:
        given = " ".join(t for t in (self.first, self.middle[:1]) if t)
        return f"{self.last}, {given}".upper()


def _canonical(header: list[str]) -> list[str | None]:
    return [_ALIASES.get(re.sub(r"[\s\-]+", "_", h.strip().lower())) for h in header]


_DECODE_BLOCK = 1 << 20
_CHUNKS_PER_COMMIT = 25


class _Lines:
    """The export's lines for ``csv.reader``, none longer than ``MAX_LINE_CHARS`` (``BadFile`` otherwise,
    before the line is read further), and how many were read."""

    def __init__(self, fp: TextIO) -> None:
        self.fp = fp
        self.count = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.fp.readline(MAX_LINE_CHARS + 1)
        if not line:
            raise StopIteration
        self.count += 1
        if len(line) > MAX_LINE_CHARS:
            raise BadFile(
                f"line {self.count} is longer than {MAX_LINE_CHARS:,} characters: not a registration list; "
                "nothing was imported"
            )
        return line


def _check_file(data: Path | bytes) -> None:
    """``BadFile`` unless the whole export reads as rows: UTF-8 text, no line over ``MAX_LINE_CHARS``,
    every field within the csv module's limit and on one line. No name, MRN, date or sex holds a line
    break: a field that runs over lines is a quote left open, which would swallow every row after it
    into one refused row. Read once before any row is written, so a file refused for it changes nothing.
    """
    try:
        with _text(data) as fp:
            lines = _Lines(fp)
            reader = csv.reader(lines)
            while True:
                first = lines.count + 1
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error:
                    raise BadFile(
                        f"line {first}: not valid CSV (a field over the csv limit, or a stray quote); "
                        "nothing was imported"
                    ) from None
                if lines.count > first or any("\n" in v or "\r" in v for v in record):
                    raise BadFile(
                        f"line {first}: a field runs over several lines (a quote left open?); "
                        "nothing was imported"
                    )
    except UnicodeDecodeError:
        raise BadFile("the file is not UTF-8 text") from None


def _text(data: Path | bytes) -> AbstractContextManager[TextIO]:
    """The export as text (an Excel byte-order mark dropped), decoded as it is read."""
    if isinstance(data, Path):
        return data.open(encoding="utf-8-sig", newline="")
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")


def _rows(fp: TextIO) -> Iterator[tuple[int, dict[str, str]] | RowError]:
    """(line, {column: value}) per data row, or the row's error; the header is checked first."""
    reader = csv.reader(_Lines(fp))  # _check_file has read it all once: no line or field is too long
    try:
        header = next(reader)
    except StopIteration:
        raise BadFile("the file is empty: a header row naming the columns is expected") from None
    cols = _canonical(header)
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise BadFile(f"the header lacks the column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})")
    for raw in reader:
        line = reader.line_num
        if not any(v.strip() for v in raw):
            continue  # blank lines are not rows
        if len(raw) != len(cols):
            msg = f"line {line}: {len(raw)} columns, the header has {len(cols)}"
            yield RowError(line, "columns", msg)
            continue
        yield line, {c: v.strip() for c, v in zip(cols, raw, strict=True) if c}


def _parse_dob(text: str) -> date | None:
    for fmt in ("%Y-%m-%d", "%m/%d/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _check(
    line: int,
    v: dict[str, str],
    today: date,
    mrn_ok: Callable[[str], bool] | None = None,
    mrn_shape: re.Pattern[str] | None = None,
) -> _Row | RowError:
    """One row validated; the first problem found is its error (field names only, never values).
    ``mrn_shape`` is the facility's MRN pattern (a whole MRN matches it) and ``mrn_ok`` its check digit,
    when it has one: a row failing either is not an MRN of this facility, or a mistyped one."""

    def bad(code: str, what: str) -> RowError:
        return RowError(line, code, f"line {line}: {what}")

    for col in REQUIRED:
        if not v.get(col):
            return bad(f"{col}_missing", f"{col} is empty")
    if not _MRN.match(v["mrn"]):
        return bad("mrn_invalid", "mrn must be 1-64 letters, digits or '-'")
    if mrn_shape is not None and not mrn_shape.fullmatch(v["mrn"]):
        return bad("mrn_pattern", "mrn is not an MRN of this facility (CHARTVAULT_MRN_PATTERN)")
    if mrn_ok is not None and not mrn_ok(v["mrn"]):
        return bad("mrn_check_digit", "mrn fails the facility's check digit (CHARTVAULT_MRN_CHECK_DIGIT)")
    names = (v["last_name"], v["first_name"], v.get("middle_name", ""))
    if any(len(name) > MAX_NAME_CHARS for name in names):
        return bad(
            "name_too_long", f"last_name, first_name and middle_name are at most {MAX_NAME_CHARS} characters"
        )
    if any(UNSAFE_CHARS.search(name) for name in names):
        return bad(
            "name_characters", "names may hold no control, zero-width or direction-override characters"
        )
    key = name_key(v["last_name"], v["first_name"])
    if key is None:
        return bad("name_invalid", "last_name and first_name must hold letters (a surname of 2 or more)")
    dob = _parse_dob(v["dob"])
    if dob is None:
        return bad("dob_invalid", "dob is not a date (YYYY-MM-DD or MM/DD/YYYY)")
    if not EARLIEST_DOB <= dob <= today:
        return bad("dob_out_of_range", "dob is in the future or before 1880")
    sex = v.get("sex", "")
    if sex and sex.upper() not in _SEX:
        return bad("sex_invalid", "sex must be M, F, U or X (or empty)")
    return _Row(
        line,
        v["mrn"],
        v["last_name"],
        v["first_name"],
        v.get("middle_name", ""),
        dob,
        _SEX.get(sex.upper()),
        key,
    )


def import_registration(
    s: Session,
    data: Path | bytes,
    today: date | None = None,
    mrn_ok: Callable[[str], bool] | None = None,
    on_commit: Callable[[ImportCounts], None] | None = None,
    stop: Callable[[], bool] | None = None,
    mrn_pattern: str | None = None,
) -> ImportCounts:
    """Load a registration export (a file, or its bytes) into the patient index, streamed and committed a
    chunk at a time; counts, and the first row errors. ``BadFile`` (not UTF-8, no header, a line too long,
    malformed CSV: ``_check_file``) writes nothing.
    ``mrn_ok`` checks each row's MRN against the facility's check digit (the catalog knows no scheme), and
    ``mrn_pattern`` against its MRN pattern (``CHARTVAULT_MRN_PATTERN``; None: any MRN's characters).
    ``on_commit`` is given the counts so far after each intermediate commit (a background import reports
    them as its progress). ``stop`` is asked after each: when it says so, the import ends there
    (``stopped``), with every row counted committed and nothing after them read; importing the file again
    later finishes it (the rows already in come back ``unchanged``)."""
    today = today or date.today()
    counts = ImportCounts()
    refused = _FirstErrors(counts, MAX_ROW_ERRORS)
    seen: dict[str, int] = {}  # MRN -> line, across chunks
    good: list[_Row] = []
    chunks = 0
    shape = re.compile(mrn_pattern) if mrn_pattern else None
    _check_file(data)
    try:
        with _text(data) as fp:
            for item in _rows(fp):
                row = item if isinstance(item, RowError) else _check(*item, today, mrn_ok, shape)
                if isinstance(row, _Row) and row.mrn in seen:
                    row = RowError(
                        row.line, "mrn_repeated", f"line {row.line}: mrn repeats line {seen[row.mrn]}"
                    )
                if isinstance(row, RowError):
                    refused.add(row)
                    continue
                seen[row.mrn] = row.line
                good.append(row)
                if len(good) == _CHUNK:
                    _apply(s, good, counts, refused)
                    chunks += 1
                    good = []
                    if chunks % _CHUNKS_PER_COMMIT == 0 and _committed(s, counts, on_commit, stop):
                        break
            if good:
                _apply(s, good, counts, refused)
            s.commit()
    except UnicodeDecodeError:
        raise BadFile("the file is not UTF-8 text") from None
    counts.errors = refused.by_line()
    return counts


def _committed(
    s: Session,
    counts: ImportCounts,
    on_commit: Callable[[ImportCounts], None] | None,
    stop: Callable[[], bool] | None,
) -> bool:
    """Commit the chunks applied (the write lock is let go between commits), report, and say whether to
    stop here (``counts.stopped``)."""
    s.commit()
    if on_commit is not None:
        on_commit(counts)
    counts.stopped = stop is not None and stop()
    return counts.stopped


def _apply(s: Session, rows: list[_Row], counts: ImportCounts, refused: _FirstErrors) -> None:
    existing = {p.mrn: p for p in s.scalars(select(Patient).where(Patient.mrn.in_([r.mrn for r in rows])))}
    now = datetime.now(UTC)
    new: list[dict[str, Any]] = []
    for row in rows:
        patient = existing.get(row.mrn)
        if patient is None:
            new.append(
                {
                    "id": new_id(),
                    "mrn": row.mrn,
                    "name": row.name,
                    "dob": row.dob,
                    "name_key": row.key,
                    "sex": row.sex,
                    "source": PATIENT_SOURCE_REGISTRATION,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            counts.imported += 1
            continue
        if patient.dob is not None and patient.dob != row.dob:
            refused.add(
                RowError(
                    row.line,
                    "dob_differs",
                    f"line {row.line}: dob differs from the catalog's for this mrn "
                    "(a correction is `chartvault retention correct-dob`)",
                )
            )
            continue
        want: dict[str, Any] = {
            "name": row.name,
            "dob": row.dob,
            "name_key": row.key,
            "sex": row.sex or patient.sex,
            "source": PATIENT_SOURCE_REGISTRATION,
        }
        if all(getattr(patient, k) == v for k, v in want.items()):
            counts.unchanged += 1
            continue
        for k, v in want.items():
            setattr(patient, k, v)
        patient.updated_at = now
        counts.updated += 1
    if new:  # one bulk INSERT (executemany): no ORM object per new patient, a third less time a row
        s.execute(insert(Patient), new)
    s.flush()

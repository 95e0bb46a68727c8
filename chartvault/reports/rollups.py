"""Daily rollups of the scanning counts: closed days counted once, so a report never counts a million rows.

A UTC day is *closed* when it is at least ``LAG_DAYS`` old and no batch received on or before it is
still being processed. What the scanning report counts of a closed day never changes afterwards:
files, documents and pages are timestamped when they are made (always "now"), a file's pages
and refusal are settled before it is done, a batch's station is fixed, and a misfile correction
makes new files and documents that scanning leaves out. The one exception is a document's type,
which staff may correct: corrections made after a day was rolled up are applied to its counts when
the report reads them (``document_counts``), from the small corrections table.

Rollups are an optimisation, never the truth: ``refresh`` extends them over newly closed days,
and a report counts live whatever part of its window they do not cover, so a catalog without
rollups (or a test that writes rows by hand) gets the same numbers, only slower.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import exists, func, insert, or_, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from chartvault.archive.models import (
    BATCH_PROCESSING,
    BATCH_RECEIVING,
    FILE_QUARANTINED,
    Batch,
    BatchFile,
    ClassificationCorrection,
    Document,
    ReportDocumentDay,
    ReportFileDay,
    ReportRollupDay,
)
from chartvault.reports.sql import Window, as_int, count_if, date_bucket, period_start, utc_literal

log = logging.getLogger("chartvault.reports.rollups")

# A day is closed once it ended a whole day ago (day D on D + 2): rows are always stamped "now", and
# the extra day is slack for the clocks of several machines a little apart.
LAG_DAYS = 2
CORRECTION_REASON = "misfile_correction"  # batch_files.reason_code of a file a misfile split wrote
_OPEN_BATCH_STATES = (BATCH_RECEIVING, BATCH_PROCESSING)
# Refreshes on PostgreSQL take this transaction-scoped advisory lock, so two never roll one day.
_PG_REFRESH_LOCK = 0x43565250  # "CVRP"


@dataclass(frozen=True, slots=True)
class RolledDays:
    """The contiguous run of rolled-up days, ``first`` to ``last`` inclusive."""

    first: date
    last: date

    def within(self, window: Window) -> tuple[date, date] | None:
        """The window's days that are rolled up (inclusive), if any."""
        start, end = max(window.date_from, self.first), min(window.date_to, self.last)
        return (start, end) if start <= end else None

    def outside(self, window: Window) -> list[tuple[date, date]]:
        """The window's days that are not rolled up: before and after the run (inclusive ranges)."""
        parts = []
        if window.date_from < self.first:
            parts.append((window.date_from, min(window.date_to, self.first - timedelta(days=1))))
        if window.date_to > self.last:
            parts.append((max(window.date_from, self.last + timedelta(days=1)), window.date_to))
        return parts


def rolled_days(conn: Connection) -> RolledDays | None:
    first, last = conn.execute(select(func.min(ReportRollupDay.day), func.max(ReportRollupDay.day))).one()
    if first is None or last is None:
        return None
    return RolledDays(first, last)


def scanned_files() -> ColumnElement[bool]:
    """Files that are scanning: everything but the files a misfile correction wrote."""
    return or_(BatchFile.reason_code.is_(None), BatchFile.reason_code != CORRECTION_REASON)


def made_by_correction() -> ColumnElement[bool]:
    """The document was made by a misfile correction (not scanned)."""
    return exists().where(BatchFile.id == Document.file_id, BatchFile.reason_code == CORRECTION_REASON)


def _first_open_day(conn: Connection, now: datetime) -> date:
    """The first day that is not closed: ``LAG_DAYS`` ago, or earlier while a batch of it is open.

    A file is done before its batch is, so the oldest unfinished batch is received no later than
    the oldest unfinished file: asking the few open batches (their status index) gives the same or
    an earlier day, never a later one, and costs nothing; asking the files for the earliest
    ``created_at`` among the open ones lets PostgreSQL walk the whole ``created_at`` index instead.
    """
    lagged = now.astimezone(UTC).date() - timedelta(days=LAG_DAYS - 1)
    oldest_open: datetime | None = conn.execute(
        select(func.min(Batch.created_at)).where(Batch.status.in_(_OPEN_BATCH_STATES))
    ).scalar()
    if oldest_open is None:
        return lagged
    return min(lagged, oldest_open.astimezone(UTC).date())


def _first_day_with_data(conn: Connection) -> date | None:
    oldest = [
        conn.execute(select(func.min(BatchFile.created_at))).scalar(),
        conn.execute(select(func.min(Document.created_at))).scalar(),
    ]
    found = [moment.astimezone(UTC).date() for moment in oldest if moment is not None]
    return min(found) if found else None


def _days_to_roll(conn: Connection, now: datetime) -> tuple[date, date] | None:
    """The closed days not rolled up yet (inclusive), continuing the run of rolled days."""
    rolled = rolled_days(conn)
    start = rolled.last + timedelta(days=1) if rolled else _first_day_with_data(conn)
    end = _first_open_day(conn, now) - timedelta(days=1)
    if start is None or start > end:
        return None
    return start, end


def needs_refresh(conn: Connection, now: datetime) -> bool:
    """Whether some closed day is not rolled up yet (a few indexed reads; takes no lock)."""
    return _days_to_roll(conn, now) is not None


def refresh(conn: Connection, now: datetime) -> int:
    """Roll up every closed day not rolled up yet; returns how many days were added.

    Runs in the caller's transaction (commit it): on PostgreSQL under an advisory lock, on
    SQLite inside a write (immediate) transaction, so concurrent refreshes roll each day once.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_REFRESH_LOCK})
    days = _days_to_roll(conn, now)
    if days is None:
        return 0
    first, last = days
    count = (last - first).days + 1
    conn.execute(
        insert(ReportRollupDay),
        [{"day": first + timedelta(days=i), "rolled_at": now} for i in range(count)],
    )
    part = Window(first, last, "day", now)
    conn.execute(insert(ReportFileDay).from_select(_FILE_COLUMNS, _file_day_rows(part)))
    conn.execute(insert(ReportDocumentDay).from_select(_DOCUMENT_COLUMNS, _document_day_rows(part)))
    log.info("report rollups added days=%d", count)
    return count


_FILE_COLUMNS = ["day", "station", "files", "pages", "refused"]
_DOCUMENT_COLUMNS = ["day", "station", "doc_type", "documents", "pages"]


def _file_day_rows(part: Window) -> Any:
    day = period_start(BatchFile.created_at, "day")
    return (
        select(
            day,
            Batch.station,
            func.count(),
            as_int(func.coalesce(BatchFile.page_count, 0)),
            count_if(BatchFile.status == FILE_QUARANTINED),
        )
        .join(Batch, Batch.id == BatchFile.batch_id)
        .where(part.holds(BatchFile.created_at), scanned_files())
        .group_by(day, Batch.station)
    )


def _document_day_rows(part: Window) -> Any:
    day = period_start(Document.created_at, "day")
    return (
        select(
            day,
            Batch.station,
            Document.doc_type,
            func.count(),
            as_int(Document.page_count - Document.blank_pages),
        )
        .select_from(Document)
        .join(Batch, Batch.id == Document.batch_id)
        .where(part.holds(Document.created_at), ~made_by_correction())
        .group_by(day, Batch.station, Document.doc_type)
    )


# -- reading ---------------------------------------------------------------------------------------------


class FileCount(NamedTuple):
    """Files received in a bucket at a station, their pages, how many were refused."""

    period: date
    station: str | None
    files: int
    pages: int
    refused: int


class DocumentCount(NamedTuple):
    """Documents made in a bucket at a station, of a type, and their pages (negative: moved away)."""

    period: date
    station: str | None
    doc_type: str | None
    documents: int
    pages: int


def file_counts(conn: Connection, window: Window, days: tuple[date, date]) -> list[FileCount]:
    """The rolled-up ``days``' files, bucketed by the window's period."""
    r = ReportFileDay
    period = date_bucket(r.day, window.period)
    q = (
        select(period, r.station, as_int(r.files), as_int(r.pages), as_int(r.refused))
        .where(r.day >= days[0], r.day <= days[1])
        .group_by(period, r.station)
    )
    return [FileCount(*row) for row in conn.execute(q)]


def document_counts(conn: Connection, window: Window, days: tuple[date, date]) -> list[DocumentCount]:
    """The rolled-up ``days``' documents as typed now: as rolled up, then every later type correction."""
    r = ReportDocumentDay
    period = date_bucket(r.day, window.period)
    q = (
        select(period, r.station, r.doc_type, as_int(r.documents), as_int(r.pages))
        .where(r.day >= days[0], r.day <= days[1])
        .group_by(period, r.station, r.doc_type)
    )
    return [DocumentCount(*row) for row in conn.execute(q)] + _type_moves(conn, window, days)


def _type_moves(conn: Connection, window: Window, days: tuple[date, date]) -> list[DocumentCount]:
    """Corrections made after their document's day was rolled up, as counts to add.

    Each correction moves a document (and its pages) from the type it had to the type it got:
    minus one under the old type, plus one under the new. Applied in turn, they take a rolled-up
    count from the type at rollup to the type now.
    """
    c, d = ClassificationCorrection, Document
    earliest = conn.execute(
        select(func.min(ReportRollupDay.rolled_at)).where(
            ReportRollupDay.day >= days[0], ReportRollupDay.day <= days[1]
        )
    ).scalar()
    if earliest is None:
        return []
    period = window.bucket(d.created_at)
    q = (
        select(
            period,
            Batch.station,
            c.old_type,
            c.new_type,
            func.count(),
            as_int(d.page_count - d.blank_pages),
        )
        .select_from(c)
        .join(d, d.id == c.document_id)
        .join(Batch, Batch.id == d.batch_id)
        .join(ReportRollupDay, ReportRollupDay.day == period_start(d.created_at, "day"))
        .where(
            c.corrected_at > utc_literal(earliest),  # an index range: corrections since the first rollup
            c.corrected_at > ReportRollupDay.rolled_at,
            window.part(*days).holds(d.created_at),
            ~made_by_correction(),
        )
        .group_by(period, Batch.station, c.old_type, c.new_type)
    )
    moves: list[DocumentCount] = []
    for bucket, station, old_type, new_type, documents, pages in conn.execute(q):
        moves.append(DocumentCount(bucket, station, old_type, -documents, -pages))
        moves.append(DocumentCount(bucket, station, new_type, documents, pages))
    return moves

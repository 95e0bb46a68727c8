"""Scanning: files, pages and documents received per period, by station and type; refusals by reason.

"Received" is the moment a file was taken into a batch (``batch_files.created_at``); a
document counts in the period it was made from its file (``documents.created_at``, after
OCR: minutes later, so a document may fall in the period after its file's when a
backlog straddles midnight). Reading the document's own timestamp instead of joining it to its
file keeps the query to one pass over an index. Files and documents a misfile correction made
are not scanning and are left out.
Two kinds of grouped rows carry every number: files per bucket and station, documents per bucket,
station and type. Closed days come from the daily rollups (``rollups``), the rest of the window is
counted live by the same queries that fill them; the totals per period are summed from those rows
(hundreds, not documents).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from chartvault.archive.models import FILE_QUARANTINED, Batch, BatchFile, Document
from chartvault.reports.result import Chart, Column, Table, Value
from chartvault.reports.rollups import (
    DocumentCount,
    FileCount,
    document_counts,
    file_counts,
    made_by_correction,
    rolled_days,
    scanned_files,
)
from chartvault.reports.sql import Window, as_int, count_if

PERIOD = Column("period", "Period", "period")
STATION = Column("station", "Station", "text")
FILES = Column("files", "Files", "count")
PAGES = Column("pages", "Pages", "count")
DOCUMENTS = Column("documents", "Documents", "count")
REFUSED = Column("refused", "Files refused", "count")
# A document's pages without the blank backs (what staff see); ``pages`` of a file counts every sheet side.
CONTENT_PAGES = Column("pages", "Pages (not blank)", "count")


def _scanned(window: Window) -> ColumnElement[bool]:
    """Files received in the window, corrections excluded."""
    return window.holds(BatchFile.created_at) & scanned_files()


def _counts(conn: Connection, window: Window) -> tuple[list[FileCount], list[DocumentCount]]:
    """Every file and document count of the window: rolled-up days from the rollups, the rest live."""
    rolled = rolled_days(conn) if window.rollups else None
    if rolled is None:
        return _file_rows(conn, window), _document_rows(conn, window)
    files: list[FileCount] = []
    docs: list[DocumentCount] = []
    if (days := rolled.within(window)) is not None:
        files += file_counts(conn, window, days)
        docs += document_counts(conn, window, days)
    for first, last in rolled.outside(window):
        part = window.part(first, last)
        files += _file_rows(conn, part)
        docs += _document_rows(conn, part)
    return files, docs


def _file_rows(conn: Connection, window: Window) -> list[FileCount]:
    period = window.bucket(BatchFile.created_at).label("period")
    q = (
        select(
            period,
            Batch.station,
            func.count().label("files"),
            as_int(func.coalesce(BatchFile.page_count, 0)).label("pages"),
            count_if(BatchFile.status == FILE_QUARANTINED).label("refused"),
        )
        .join(Batch, Batch.id == BatchFile.batch_id)
        .where(_scanned(window))
        .group_by(period, Batch.station)
    )
    return [FileCount(*row) for row in conn.execute(q)]


def _document_rows(conn: Connection, window: Window) -> list[DocumentCount]:
    period = window.bucket(Document.created_at).label("period")
    q = (
        select(
            period,
            Batch.station,
            Document.doc_type,
            func.count().label("documents"),
            as_int(Document.page_count - Document.blank_pages).label("pages"),
        )
        .select_from(Document)
        .join(Batch, Batch.id == Document.batch_id)
        .where(window.holds(Document.created_at), ~made_by_correction())
        .group_by(period, Batch.station, Document.doc_type)
    )
    return [DocumentCount(*row) for row in conn.execute(q)]


def _refusal_rows(conn: Connection, window: Window) -> list[Row[Any]]:
    q = (
        select(BatchFile.reason_code, func.count().label("files"))
        .where(_scanned(window), BatchFile.status == FILE_QUARANTINED)
        .group_by(BatchFile.reason_code)
        .order_by(func.count().desc(), BatchFile.reason_code)
    )
    return list(conn.execute(q))


def _sort_key(value: str | None) -> tuple[bool, str]:
    return (value is None, value or "")


def _received_table(window: Window, files: list[FileCount], docs: list[DocumentCount]) -> Table:
    totals: dict[date, list[int]] = {p: [0, 0, 0, 0] for p in window.buckets()}
    for f in files:
        t = totals.setdefault(f.period, [0, 0, 0, 0])
        t[0] += f.files
        t[1] += f.pages
        t[3] += f.refused
    for d in docs:
        totals.setdefault(d.period, [0, 0, 0, 0])[2] += d.documents
    rows: tuple[tuple[Value, ...], ...] = tuple((p, *totals[p]) for p in sorted(totals))
    return Table(
        "received",
        "Received per period",
        (PERIOD, FILES, PAGES, DOCUMENTS, REFUSED),
        rows,
        Chart("bar", "period", ("files", "pages", "documents")),
    )


def _station_table(files: list[FileCount], docs: list[DocumentCount]) -> Table:
    cells: dict[tuple[date, str | None], list[int]] = defaultdict(lambda: [0, 0, 0])
    for f in files:
        c = cells[(f.period, f.station)]
        c[0] += f.files
        c[1] += f.pages
    for d in docs:
        cells[(d.period, d.station)][2] += d.documents
    keys = sorted(cells, key=lambda k: (k[0], _sort_key(k[1])))
    return Table(
        "by_station",
        "Received per period and station",
        (PERIOD, STATION, FILES, PAGES, DOCUMENTS),
        tuple((p, st, *cells[(p, st)]) for p, st in keys),
        Chart("bar", "period", ("pages",), series="station"),
    )


def _type_table(docs: list[DocumentCount]) -> Table:
    cells: dict[tuple[date, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for r in docs:
        c = cells[(r.period, r.doc_type)]
        c[0] += r.documents
        c[1] += r.pages
    # a type every document of a period was corrected away from is no longer a row of it
    keys = sorted((k for k in cells if any(cells[k])), key=lambda k: (k[0], _sort_key(k[1])))
    return Table(
        "by_type",
        "Documents per period and document type",
        (PERIOD, Column("doc_type", "Document type", "text"), DOCUMENTS, CONTENT_PAGES),
        tuple((p, t, *cells[(p, t)]) for p, t in keys),
        Chart("bar", "period", ("documents",), series="doc_type"),
    )


def scanning(conn: Connection, window: Window) -> tuple[Table, ...]:
    """Received files/pages/documents per period (all, by station, by type) and refusals by reason."""
    files, docs = _counts(conn, window)
    refusals = Table(
        "refusals",
        "Files refused, by reason",
        (Column("reason", "Reason", "text"), FILES),
        tuple((r.reason_code, r.files) for r in _refusal_rows(conn, window)),
        Chart("bar", "reason", ("files",)),
    )
    return (_received_table(window, files, docs), _station_table(files, docs), _type_table(docs), refusals)

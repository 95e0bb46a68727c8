"""Scanning: files, pages and documents received per period, by station and type; refusals by reason.

"Received" is the moment a file was taken into a batch (``batch_files.created_at``); a
document counts in the period it was made from its file (``documents.created_at``, after
OCR: minutes later, so a document may fall in the period after its file's when a
backlog straddles midnight). Reading the document's own timestamp instead of joining it to its
file keeps the query to one pass over an index. Files and documents a misfile correction made
are not scanning and are left out.
Two grouped queries carry every number; the totals per period are rolled up from
their rows (hundreds, not documents).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import Row, exists, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from chartvault.archive.models import FILE_QUARANTINED, Batch, BatchFile, Document
from chartvault.reports.result import Chart, Column, Table, Value
from chartvault.reports.sql import Window, as_int, count_if

CORRECTION_REASON = "misfile_correction"  # batch_files.reason_code of a file a misfile split wrote

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
    return window.holds(BatchFile.created_at) & or_(
        BatchFile.reason_code.is_(None), BatchFile.reason_code != CORRECTION_REASON
    )


def _file_rows(conn: Connection, window: Window) -> list[Row[Any]]:
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
    return list(conn.execute(q))


def _made_by_correction() -> ColumnElement[bool]:
    return exists().where(BatchFile.id == Document.file_id, BatchFile.reason_code == CORRECTION_REASON)


def _document_rows(conn: Connection, window: Window) -> list[Row[Any]]:
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
        .where(window.holds(Document.created_at), ~_made_by_correction())
        .group_by(period, Batch.station, Document.doc_type)
    )
    return list(conn.execute(q))


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


def _received_table(window: Window, files: list[Row[Any]], docs: list[Row[Any]]) -> Table:
    totals: dict[date, list[int]] = {p: [0, 0, 0, 0] for p in window.buckets()}
    for r in files:
        t = totals.setdefault(r.period, [0, 0, 0, 0])
        t[0] += r.files
        t[1] += r.pages
        t[3] += r.refused
    for r in docs:
        totals.setdefault(r.period, [0, 0, 0, 0])[2] += r.documents
    rows: tuple[tuple[Value, ...], ...] = tuple((p, *totals[p]) for p in sorted(totals))
    return Table(
        "received",
        "Received per period",
        (PERIOD, FILES, PAGES, DOCUMENTS, REFUSED),
        rows,
        Chart("bar", "period", ("files", "pages", "documents")),
    )


def _station_table(files: list[Row[Any]], docs: list[Row[Any]]) -> Table:
    cells: dict[tuple[date, str | None], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in files:
        c = cells[(r.period, r.station)]
        c[0] += r.files
        c[1] += r.pages
    for r in docs:
        cells[(r.period, r.station)][2] += r.documents
    keys = sorted(cells, key=lambda k: (k[0], _sort_key(k[1])))
    return Table(
        "by_station",
        "Received per period and station",
        (PERIOD, STATION, FILES, PAGES, DOCUMENTS),
        tuple((p, st, *cells[(p, st)]) for p, st in keys),
        Chart("bar", "period", ("pages",), series="station"),
    )


def _type_table(docs: list[Row[Any]]) -> Table:
    cells: dict[tuple[date, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for r in docs:
        c = cells[(r.period, r.doc_type)]
        c[0] += r.documents
        c[1] += r.pages
    keys = sorted(cells, key=lambda k: (k[0], _sort_key(k[1])))
    return Table(
        "by_type",
        "Documents per period and document type",
        (PERIOD, Column("doc_type", "Document type", "text"), DOCUMENTS, CONTENT_PAGES),
        tuple((p, t, *cells[(p, t)]) for p, t in keys),
        Chart("bar", "period", ("documents",), series="doc_type"),
    )


def scanning(conn: Connection, window: Window) -> tuple[Table, ...]:
    """Received files/pages/documents per period (all, by station, by type) and refusals by reason."""
    files = _file_rows(conn, window)
    docs = _document_rows(conn, window)
    refusals = Table(
        "refusals",
        "Files refused, by reason",
        (Column("reason", "Reason", "text"), FILES),
        tuple((r.reason_code, r.files) for r in _refusal_rows(conn, window)),
        Chart("bar", "reason", ("files",)),
    )
    return (_received_table(window, files, docs), _station_table(files, docs), _type_table(docs), refusals)

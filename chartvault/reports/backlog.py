"""Backlog and turnaround: pages waiting per state now, received-to-searchable time, the oldest open batch.

A page waits while its file is still being processed or its document is not yet
searchable. Cover-sheet pages (no document) and pages of documents that are
superseded stay in an early state forever by design; counting every page in a state
would show them as a backlog that never drains, so the state of the file or document
decides, not the page alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, union_all
from sqlalchemy.engine import Connection

from chartvault.archive.models import (
    BATCH_PROCESSING,
    BATCH_RECEIVING,
    FILE_PROCESSING,
    FILE_RECEIVED,
    PAGE_ARCHIVED,
    PAGE_CLASSIFIED,
    PAGE_OCR,
    PAGE_RECEIVED,
    Batch,
    BatchFile,
    Document,
    Page,
)
from chartvault.reports.result import Chart, Column, Table, Value
from chartvault.reports.sql import Window, percentiles_per_bucket, seconds_between

WAITING_PAGE_STATES = (PAGE_RECEIVED, PAGE_OCR, PAGE_CLASSIFIED, PAGE_ARCHIVED)
_OPEN_FILE_STATES = (FILE_RECEIVED, FILE_PROCESSING)
_UNSEARCHABLE_DOC_STATES = (PAGE_CLASSIFIED, PAGE_ARCHIVED)
OPEN_BATCH_STATES = (BATCH_RECEIVING, BATCH_PROCESSING)

HOUR = 3600.0


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / HOUR, 2)


def _age_hours(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else _hours((now - then).total_seconds())


def _waiting_pages() -> Any:
    """Waiting pages with their file's receipt: those of open files, then those of documents not yet
    searchable whose file is done. Each half starts from its few rows (open files, unsearchable
    documents) rather than from every page in an early state (cover sheets stay "classified" forever)."""
    of_open_files = (
        select(Page.status.label("status"), BatchFile.created_at.label("received"))
        .select_from(BatchFile)
        .join(Page, Page.file_id == BatchFile.id)
        .where(BatchFile.status.in_(_OPEN_FILE_STATES), Page.status.in_(WAITING_PAGE_STATES))
    )
    of_unsearchable = (
        select(Page.status.label("status"), BatchFile.created_at.label("received"))
        .select_from(Document)
        .join(Page, Page.document_id == Document.id)
        .join(BatchFile, BatchFile.id == Page.file_id)
        .where(
            Document.status.in_(_UNSEARCHABLE_DOC_STATES),
            Page.status.in_(WAITING_PAGE_STATES),
            BatchFile.status.not_in(_OPEN_FILE_STATES),
        )
    )
    return union_all(of_open_files, of_unsearchable).subquery("waiting")


def _waiting_table(conn: Connection, window: Window) -> Table:
    waiting = _waiting_pages()
    q = select(
        waiting.c.status, func.count().label("pages"), func.min(waiting.c.received).label("oldest")
    ).group_by(waiting.c.status)
    found = {r.status: r for r in conn.execute(q)}
    rows = []
    for state in WAITING_PAGE_STATES:
        r = found.get(state)
        rows.append((state, r.pages if r else 0, _age_hours(window.now, r.oldest) if r else None))
    return Table(
        "pages_waiting",
        "Pages waiting, per state (now)",
        (
            Column("state", "State", "text"),
            Column("pages", "Pages", "count"),
            Column("oldest_hours", "Oldest received (hours ago)", "hours"),
        ),
        tuple(rows),
        Chart("bar", "state", ("pages",)),
    )


def _turnaround_table(conn: Connection, window: Window) -> Table:
    """Per period in which documents became searchable: how long from receipt of their file.

    ``received_at`` is the file's receipt, copied onto the document when it is made, so this
    reads one index of documents (no join with a row per file).
    """
    seconds = seconds_between(Document.indexed_at, Document.received_at)
    q = percentiles_per_bucket(conn, window, Document.indexed_at, seconds, (50, 90))
    found = {r.period: r for r in conn.execute(q)}
    rows = []
    for p in sorted(set(window.buckets()) | set(found)):
        r = found.get(p)
        rows.append((p, r.n, _hours(r.p50), _hours(r.p90)) if r and r.n else (p, 0, None, None))
    return Table(
        "time_to_searchable",
        "Received to searchable, per period made searchable",
        (
            Column("period", "Period", "period"),
            Column("documents", "Documents made searchable", "count"),
            Column("median_hours", "Median (hours)", "hours"),
            Column("p90_hours", "90th percentile (hours)", "hours"),
        ),
        tuple(rows),
        Chart("line", "period", ("median_hours", "p90_hours")),
    )


def _oldest_open_batch_table(conn: Connection, window: Window) -> Table:
    files = select(func.count()).where(BatchFile.batch_id == Batch.id).scalar_subquery()
    open_count = select(func.count()).select_from(Batch).where(Batch.status.in_(OPEN_BATCH_STATES))
    oldest: Any = conn.execute(
        select(Batch.id, Batch.station, Batch.status, Batch.created_at, files.label("files"))
        .where(Batch.status.in_(OPEN_BATCH_STATES))
        .order_by(Batch.created_at, Batch.id)
        .limit(1)
    ).first()
    count = conn.execute(open_count).scalar_one()
    row: tuple[Value, ...] = (count, None, None, None, None, None, None)
    if oldest is not None:
        age = _age_hours(window.now, oldest.created_at)
        row = (count, oldest.id, oldest.station, oldest.status, oldest.created_at, age, oldest.files)
    return Table(
        "oldest_unfinished_batch",
        "Unfinished batches and the oldest of them (now)",
        (
            Column("unfinished_batches", "Unfinished batches", "count"),
            Column("batch_id", "Oldest batch", "text"),
            Column("station", "Station", "text"),
            Column("status", "Status", "text"),
            Column("created_at", "Received", "datetime"),
            Column("age_hours", "Age (hours)", "hours"),
            Column("files", "Files", "count"),
        ),
        (row,),
    )


def backlog(conn: Connection, window: Window) -> tuple[Table, ...]:
    """Pages waiting now, received-to-searchable (median, p90) per period, the oldest unfinished batch."""
    return (
        _waiting_table(conn, window),
        _turnaround_table(conn, window),
        _oldest_open_batch_table(conn, window),
    )

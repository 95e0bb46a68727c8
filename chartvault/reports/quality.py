"""Quality: the review queue (size, age, reasons), type corrections, documents linked to no patient.

Review reasons live in a JSON list on the document; they are unnested in SQL
(``json_each`` / ``json_array_elements``) so a document held for two reasons counts
once under each, and once in the queue total.
"""

from __future__ import annotations

from sqlalchemy import case, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from chartvault.archive.models import (
    PAGE_ARCHIVED,
    PAGE_INDEXED,
    REVIEW_PENDING,
    ClassificationCorrection,
    Document,
)
from chartvault.reports.result import Chart, Column, Table
from chartvault.reports.sql import ON_EVERY_ROW, Window, json_codes, percentiles, seconds_between, utc_literal

DAY = 86400.0
ARCHIVED_STATES = (PAGE_ARCHIVED, PAGE_INDEXED)  # live documents whose original is stored

# Why an archived document has no patient: held in review (a possible misfile is linked to no one),
# no MRN read, or an MRN read without a second identifier agreeing with the patient's.
UNLINKED_IN_REVIEW = "in_review"
UNLINKED_NO_MRN = "no_mrn"
UNLINKED_NOT_CONFIRMED = "mrn_not_confirmed"

AGE_COLUMNS = (
    Column("median_age_days", "Median age (days)", "days"),
    Column("oldest_age_days", "Oldest (days)", "days"),
)


def _days(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / DAY, 2)


def _pending() -> ColumnElement[bool]:
    return (Document.review_status == REVIEW_PENDING) & Document.status.in_(ARCHIVED_STATES)


def _age(window: Window) -> ColumnElement[float]:
    return seconds_between(utc_literal(window.now), Document.created_at)


def _queue_table(conn: Connection, window: Window) -> Table:
    source = select(literal("all").label("queue"), _age(window).label("age")).where(_pending()).subquery()
    r = conn.execute(percentiles(conn, source, ["queue"], "age", (50, 100))).first()
    row = (r.n, _days(r.p50), _days(r.p100)) if r else (0, None, None)
    return Table(
        "review_queue",
        "Review queue (now)",
        (Column("documents", "Documents waiting for a person", "count"), *AGE_COLUMNS),
        (row,),
    )


def _reasons_table(conn: Connection, window: Window) -> Table:
    reasons, code = json_codes(conn, Document.review_reasons)
    source = (
        select(code, _age(window).label("age"))
        .select_from(Document)
        .join(reasons, ON_EVERY_ROW)
        .where(_pending())
        .subquery("held")
    )
    found = conn.execute(percentiles(conn, source, ["code"], "age", (50, 100)))
    rows = sorted(
        ((r.code, r.n, _days(r.p50), _days(r.p100)) for r in found), key=lambda row: (-row[1], row[0] or "")
    )
    return Table(
        "review_reasons",
        "Review queue by reason (now)",
        (Column("reason", "Reason", "text"), Column("documents", "Documents", "count"), *AGE_COLUMNS),
        tuple(rows),
        Chart("bar", "reason", ("documents",)),
    )


def _corrections_table(conn: Connection, window: Window) -> Table:
    c = ClassificationCorrection
    n = func.count().label("corrections")
    q = (
        select(c.old_type, c.new_type, n)
        .where(window.holds(c.corrected_at))
        .group_by(c.old_type, c.new_type)
        .order_by(n.desc(), c.old_type, c.new_type)
    )
    return Table(
        "type_corrections",
        "Type corrections by staff (classifier's type -> corrected type)",
        (
            Column("old_type", "Classified as", "text"),
            Column("new_type", "Corrected to", "text"),
            Column("corrections", "Corrections", "count"),
        ),
        tuple((r.old_type, r.new_type, r.corrections) for r in conn.execute(q)),
        Chart("bar", "old_type", ("corrections",), series="new_type"),
    )


def _unlinked_table(conn: Connection) -> Table:
    cause = case(
        (Document.review_status == REVIEW_PENDING, UNLINKED_IN_REVIEW),
        (Document.mrn.is_(None), UNLINKED_NO_MRN),
        else_=UNLINKED_NOT_CONFIRMED,
    ).label("cause")
    q = (
        select(cause, func.count().label("documents"))
        .where(Document.patient_id.is_(None), Document.status.in_(ARCHIVED_STATES))
        .group_by(cause)
    )
    found = {r.cause: r.documents for r in conn.execute(q)}
    causes = (UNLINKED_IN_REVIEW, UNLINKED_NO_MRN, UNLINKED_NOT_CONFIRMED)
    return Table(
        "unlinked",
        "Archived documents linked to no patient, by cause (now)",
        (Column("cause", "Cause", "text"), Column("documents", "Documents", "count")),
        tuple((c, found.get(c, 0)) for c in causes),
        Chart("bar", "cause", ("documents",)),
    )


def quality(conn: Connection, window: Window) -> tuple[Table, ...]:
    """Review queue size and age (total and per reason), corrections per type pair, unlinked documents."""
    return (
        _queue_table(conn, window),
        _reasons_table(conn, window),
        _corrections_table(conn, window),
        _unlinked_table(conn),
    )

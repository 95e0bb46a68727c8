"""Retention: what reaches the end of retention soon (by rule), holds in force, dispositions per period.

``retain_until`` is the last day a document must be kept; it "reaches the end" in the
next N days when ``today <= retain_until < today + N`` (UTC). Counts are cumulative
(the 90-day column includes the 30-day one), and past-due documents (eligible now, not
yet disposed) are shown apart. Permanent documents (no date) never appear.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from chartvault.archive.models import (
    DOC_DISPOSED,
    DOC_SUPERSEDED,
    HOLD_ACTIVE,
    Disposition,
    Document,
    LegalHold,
    LegalHoldItem,
)
from chartvault.reports.result import Chart, Column, Table
from chartvault.reports.sql import Window, as_int, count_if

HORIZONS = (30, 90, 365)
_INACTIVE = (DOC_DISPOSED, DOC_SUPERSEDED)


def _held_counts(conn: Connection, soon: ColumnElement[bool]) -> dict[str | None, int]:
    """Per rule, the documents in ``soon`` under an active hold, counted from the (few) hold items."""
    q = (
        select(Document.retention_rule, func.count(func.distinct(Document.id)).label("held"))
        .select_from(LegalHoldItem)
        .join(LegalHold, LegalHold.id == LegalHoldItem.hold_id)
        .join(Document, Document.id == LegalHoldItem.document_id)
        .where(LegalHold.status == HOLD_ACTIVE, LegalHoldItem.lifted_at.is_(None), soon)
        .group_by(Document.retention_rule)
    )
    return {r.retention_rule: r.held for r in conn.execute(q)}


def _upcoming_table(conn: Connection, window: Window) -> Table:
    today = window.now.date()
    ru = Document.retain_until
    soon = (ru < today + timedelta(days=max(HORIZONS))) & Document.status.not_in(_INACTIVE)
    due = [count_if((ru >= today) & (ru < today + timedelta(days=n))).label(f"next_{n}") for n in HORIZONS]
    q = (
        select(Document.retention_rule, count_if(ru < today).label("past_due"), *due)
        .where(soon)
        .group_by(Document.retention_rule)
        .order_by(Document.retention_rule)
    )
    held = _held_counts(conn, soon)
    rows = tuple(
        (
            r.retention_rule,
            r.past_due,
            *(getattr(r, f"next_{n}") for n in HORIZONS),
            held.get(r.retention_rule, 0),
        )
        for r in conn.execute(q)
    )
    return Table(
        "end_of_retention",
        "Documents reaching the end of retention, by rule (from today)",
        (
            Column("rule", "Rule", "text"),
            Column("past_due", "Already past (not disposed)", "count"),
            *(Column(f"next_{n}", f"Next {n} days", "count") for n in HORIZONS),
            Column("on_hold", "Of these, on hold", "count"),
        ),
        rows,
        Chart("bar", "rule", tuple(f"next_{n}" for n in HORIZONS)),
    )


def _holds_table(conn: Connection) -> Table:
    live_item = (LegalHoldItem.hold_id == LegalHold.id) & LegalHoldItem.lifted_at.is_(None)
    q = (
        select(
            LegalHold.scope,
            func.count(func.distinct(LegalHold.id)).label("holds"),
            func.count(func.distinct(LegalHoldItem.document_id)).label("documents"),
            func.min(LegalHold.placed_at).label("oldest"),
        )
        .select_from(LegalHold)
        .outerjoin(LegalHoldItem, live_item)
        .where(LegalHold.status == HOLD_ACTIVE)
        .group_by(LegalHold.scope)
        .order_by(LegalHold.scope)
    )
    return Table(
        "holds",
        "Legal holds in force, by scope (now)",
        (
            Column("scope", "Scope", "text"),
            Column("holds", "Holds", "count"),
            Column("documents", "Documents held", "count"),
            Column("oldest_placed_at", "Oldest placed", "datetime"),
        ),
        tuple((r.scope, r.holds, r.documents, r.oldest) for r in conn.execute(q)),
        Chart("bar", "scope", ("documents",)),
    )


def _dispositions_table(conn: Connection, window: Window) -> Table:
    d = Disposition
    period = window.bucket(d.executed_at).label("period")
    q = (
        select(
            period,
            func.count().label("runs"),
            as_int(d.document_count).label("documents"),
            count_if(d.certificate_key.is_not(None)).label("certificates"),
            count_if(d.status == "partial").label("partial"),
        )
        .where(window.holds(d.executed_at))
        .group_by(period)
    )
    found = {r.period: r for r in conn.execute(q)}
    rows = []
    for p in sorted(set(window.buckets()) | set(found)):
        r = found.get(p)
        rows.append((p, r.runs, r.documents, r.certificates, r.partial) if r else (p, 0, 0, 0, 0))
    return Table(
        "dispositions",
        "Dispositions per period",
        (
            Column("period", "Period", "period"),
            Column("runs", "Disposition runs", "count"),
            Column("documents", "Documents disposed", "count"),
            Column("certificates", "Certificates of destruction", "count"),
            Column("partial", "Runs with refusals", "count"),
        ),
        tuple(rows),
        Chart("bar", "period", ("documents",)),
    )


def retention(conn: Connection, window: Window) -> tuple[Table, ...]:
    """End of retention in the next 30/90/365 days by rule, holds in force, dispositions per period."""
    return (_upcoming_table(conn, window), _holds_table(conn), _dispositions_table(conn, window))

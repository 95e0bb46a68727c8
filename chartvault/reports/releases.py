"""Release of information: requests received and decided, turnaround against the 30-day rule, overdue
requests, disclosures by purpose and requester type, and all of it per vendor.

The clock of 164.524(b)(2) stops when the request is decided (approved or denied):
``decided_at - received_at``. On time is within 30 days; within the extension is later
than that but by the extended due date; late is after the due date. Overdue now is an
undecided request past its due date (the same rule ``release list --overdue`` applies).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from chartvault.archive.models import Disclosure, ReleaseRequest
from chartvault.release.requests import DENIED, DUE_DAYS, UNDECIDED
from chartvault.reports.result import Chart, Column, Table, Value
from chartvault.reports.sql import (
    TimestampColumn,
    Window,
    count_if,
    percentiles,
    seconds_between,
    utc_literal,
)

DAY = 86400.0
R = ReleaseRequest

PERIOD = Column("period", "Period", "period")
VENDOR = Column("vendor", "Vendor", "text")
MEDIAN_DAYS = Column("median_days", "Median days to decision", "days")


def _days(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / DAY, 2)


def _turnaround() -> ColumnElement[float]:
    return seconds_between(R.decided_at, R.received_at)


def _overdue(window: Window) -> ColumnElement[bool]:
    return R.status.in_(UNDECIDED) & (R.due_at < utc_literal(window.now))


def _counts_per_period(
    conn: Connection, window: Window, column: TimestampColumn, *extra: ColumnElement[Any]
) -> dict[date, Row[Any]]:
    period = window.bucket(column).label("period")
    q = select(period, func.count().label("n"), *extra).where(window.holds(column)).group_by(period)
    return {r.period: r for r in conn.execute(q)}


def _requests_table(conn: Connection, window: Window) -> Table:
    received = _counts_per_period(conn, window, R.received_at)
    decided = _counts_per_period(conn, window, R.decided_at, count_if(R.status == DENIED).label("denied"))
    fulfilled = _counts_per_period(conn, window, R.fulfilled_at)
    rows = []
    for p in sorted(set(window.buckets()) | set(received) | set(decided) | set(fulfilled)):
        d = decided.get(p)
        denied = d.denied if d else 0
        granted = (d.n - denied) if d else 0
        got = received[p].n if p in received else 0
        done = fulfilled[p].n if p in fulfilled else 0
        rows.append((p, got, granted, denied, done))
    return Table(
        "requests",
        "Requests per period",
        (
            PERIOD,
            Column("received", "Received", "count"),
            Column("approved", "Approved", "count"),
            Column("denied", "Denied", "count"),
            Column("fulfilled", "Fulfilled (package fetched)", "count"),
        ),
        tuple(rows),
        Chart("bar", "period", ("received", "approved", "denied", "fulfilled")),
    )


def _turnaround_table(conn: Connection, window: Window) -> Table:
    on_time = _turnaround() <= DUE_DAYS * DAY
    late = R.decided_at > R.due_at
    period = window.bucket(R.decided_at).label("period")
    counts = select(
        period,
        func.count().label("decided"),
        count_if(on_time).label("on_time"),
        count_if(~on_time & ~late).label("in_extension"),
        count_if(late).label("late"),
        count_if(R.extended).label("extended"),
    ).where(window.holds(R.decided_at))
    found = {r.period: r for r in conn.execute(counts.group_by(period))}
    source = select(period, _turnaround().label("seconds")).where(window.holds(R.decided_at)).subquery()
    spread = {r.period: r for r in conn.execute(percentiles(conn, source, ["period"], "seconds", (50, 90)))}
    rows: list[tuple[Value, ...]] = []
    for p in sorted(set(window.buckets()) | set(found)):
        c, s = found.get(p), spread.get(p)
        if c is None or s is None:
            rows.append((p, 0, 0, 0, 0, 0, None, None))
            continue
        rows.append((p, c.decided, c.on_time, c.in_extension, c.late, c.extended, _days(s.p50), _days(s.p90)))
    return Table(
        "turnaround",
        f"Decisions per period against the {DUE_DAYS}-day rule",
        (
            PERIOD,
            Column("decided", "Decided", "count"),
            Column("on_time", f"Within {DUE_DAYS} days", "count"),
            Column("in_extension", "Within the extension", "count"),
            Column("late", "Late", "count"),
            Column("extended", "Extended", "count"),
            MEDIAN_DAYS,
            Column("p90_days", "90th percentile (days)", "days"),
        ),
        tuple(rows),
        Chart("bar", "period", ("on_time", "in_extension", "late")),
    )


def _overdue_table(conn: Connection, window: Window) -> Table:
    late_by = seconds_between(utc_literal(window.now), R.due_at)
    q = (
        select(R.extended, func.count().label("requests"), func.max(late_by).label("worst"))
        .where(_overdue(window))
        .group_by(R.extended)
    )
    found = {bool(r.extended): r for r in conn.execute(q)}
    rows = []
    for extended in (False, True):
        r = found.get(extended)
        rows.append((extended, r.requests if r else 0, _days(r.worst) if r else None))
    return Table(
        "overdue",
        "Undecided requests past their due date (now)",
        (
            Column("extended", "Extended", "flag"),
            Column("requests", "Requests", "count"),
            Column("most_days_overdue", "Most days overdue", "days"),
        ),
        tuple(rows),
    )


def _disclosures_table(conn: Connection, window: Window) -> Table:
    d = Disclosure
    n = func.count().label("disclosures")
    q = (
        select(d.purpose, R.requester_type, n, count_if(d.accountable).label("accountable"))
        .select_from(d)
        .outerjoin(R, R.id == d.release_id)
        .where(window.holds(d.disclosed_at))
        .group_by(d.purpose, R.requester_type)
        .order_by(n.desc(), d.purpose, R.requester_type)
    )
    return Table(
        "disclosures",
        "Disclosures by purpose and requester type",
        (
            Column("purpose", "Purpose", "text"),
            Column("requester_type", "Requester type", "text"),
            Column("disclosures", "Disclosures", "count"),
            Column("accountable", "In the accounting (not exempt)", "count"),
        ),
        tuple((r.purpose, r.requester_type, r.disclosures, r.accountable) for r in conn.execute(q)),
        Chart("bar", "purpose", ("disclosures",), series="requester_type"),
    )


def _vendor_rows(conn: Connection, window: Window) -> dict[str | None, list[Any]]:
    requests = select(
        R.vendor,
        count_if(window.holds(R.received_at)).label("received"),
        count_if(window.holds(R.decided_at) & (R.status != DENIED)).label("approved"),
        count_if(window.holds(R.decided_at) & (R.status == DENIED)).label("denied"),
        count_if(_overdue(window)).label("overdue"),
    ).group_by(R.vendor)
    disclosed = (
        select(Disclosure.vendor, func.count().label("n"))
        .where(window.holds(Disclosure.disclosed_at))
        .group_by(Disclosure.vendor)
    )
    source = select(R.vendor, _turnaround().label("seconds")).where(window.holds(R.decided_at)).subquery()
    cells: dict[str | None, list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, None])
    for req in conn.execute(requests):
        cells[req.vendor][:4] = [req.received, req.approved, req.denied, req.overdue]
    for dis in conn.execute(disclosed):
        cells[dis.vendor][4] = dis.n
    for spread in conn.execute(percentiles(conn, source, ["vendor"], "seconds", (50,))):
        cells[spread.vendor][5] = _days(spread.p50)
    return {v: c for v, c in cells.items() if any(c[:5])}


def _vendors_table(conn: Connection, window: Window) -> Table:
    cells = _vendor_rows(conn, window)
    order = sorted(cells, key=lambda v: (v is None, v or ""))
    return Table(
        "vendors",
        "Per vendor",
        (
            VENDOR,
            Column("received", "Requests received", "count"),
            Column("approved", "Approved", "count"),
            Column("denied", "Denied", "count"),
            Column("overdue", "Overdue now", "count"),
            Column("disclosures", "Disclosures", "count"),
            MEDIAN_DAYS,
        ),
        tuple((v, *cells[v]) for v in order),
        Chart("bar", "vendor", ("received", "disclosures")),
    )


def releases(conn: Connection, window: Window) -> tuple[Table, ...]:
    """Requests per period, turnaround against the 30-day rule, overdue now, disclosures, per vendor."""
    return (
        _requests_table(conn, window),
        _turnaround_table(conn, window),
        _overdue_table(conn, window),
        _disclosures_table(conn, window),
        _vendors_table(conn, window),
    )

"""Management reports against a catalog built row by row with known counts, on SQLite and PostgreSQL.

Every expected number below is worked out by hand from the rows ``_build`` writes (the
comments next to the rows say where each one lands), so a report that counts the wrong
rows, buckets in the wrong period or interpolates a percentile differently fails here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from chartvault.archive.models import (
    Batch,
    BatchFile,
    ClassificationCorrection,
    Disclosure,
    Disposition,
    Document,
    LegalHold,
    LegalHoldItem,
    Page,
    Patient,
    ReleaseRequest,
)
from chartvault.reports import REPORTS, Report, ReportError, rollups, run_report, to_csv, to_json
from chartvault.reports.sql import percentiles, periods_between, portable_percentiles

NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)  # a Wednesday
FROM, TO = date(2026, 3, 2), date(2026, 3, 15)  # two whole ISO weeks: 2 March and 9 March
W1, W2 = date(2026, 3, 2), date(2026, 3, 9)


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


class _Catalog:
    """Writes catalog rows with sensible defaults, so each row states only what the test is about."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.n = 0

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}x"  # no run of digits: cannot look like an MRN in the output

    def batch(self, station: str | None, created: datetime, status: str = "complete") -> Batch:
        b = Batch(id=self._id("b"), source="api", station=station, status=status, created_at=created)
        self.s.add(b)
        return b

    def file(
        self, b: Batch, created: datetime, pages: int | None, status: str = "archived", **kw: Any
    ) -> BatchFile:
        f = BatchFile(
            id=self._id("f"),
            batch_id=b.id,
            seq=self.n,
            original_name="scan.tif",
            sha256="ab" * 32,
            size=100,
            page_count=pages,
            status=status,
            created_at=created,
            **kw,
        )
        self.s.add(f)
        return f

    def doc(self, f: BatchFile, created: datetime, pages: int = 1, **kw: Any) -> Document:
        values: dict[str, Any] = {
            "id": self._id("d"),
            "file_id": f.id,
            "batch_id": f.batch_id,
            "first_page": self.n,
            "page_count": pages,
            "sha256": f.sha256,
            "size": 100,
            "mime": "image/tiff",
            "doc_type": "progress_note",
            "status": "indexed",
            "patient_id": self.patient.id,
            "created_at": created,
            "received_at": f.created_at,  # as the pipeline copies it from the file
        }
        values.update(kw)
        d = Document(**values)
        self.s.add(d)
        return d

    def page(self, f: BatchFile, no: int, status: str, doc: Document | None = None) -> Page:
        p = Page(
            id=self._id("p"), file_id=f.id, page_no=no, status=status, document_id=doc.id if doc else None
        )
        self.s.add(p)
        return p

    def add_patient(self) -> None:
        self.patient = Patient(id=self._id("pt"), mrn="0000000001", name="Synthetic Patient")
        self.s.add(self.patient)


def _scanning_rows(c: _Catalog) -> dict[str, Document]:
    a = c.batch("scan-01", at(2, 8))
    b = c.batch("scan-02", at(10, 10))
    early = c.batch("scan-01", at(1, 23))
    c.file(early, at(1, 23, 59), 7)  # the day before the window: left out
    a1 = c.file(a, at(2, 8), 4)  # week 1: 4 pages (3 document pages + a cover sheet)
    a2 = c.file(a, at(8, 23, 59, 59), 2)  # Sunday 23:59:59 UTC: still week 1
    c.file(a, at(3, 9), None, status="quarantined", reason_code="corrupt")  # week 1 refusal
    b1 = c.file(b, at(10, 10), 4)  # week 2
    c.file(b, at(11, 9), None, status="quarantined", reason_code="unsupported_type")  # week 2 refusal
    c.file(b, at(12, 9), None, status="quarantined", reason_code="corrupt")  # week 2 refusal
    c.file(b, at(16, 0), 3)  # 16 March 00:00: just after the window
    fix = c.file(a, at(10, 11), 1, reason_code="misfile_correction")  # a correction, not scanning
    c.s.flush()
    docs = {
        # week 1, consult_note: 2 pages of which 1 blank; received 08:00, searchable after 1 h
        "a1x": c.doc(a1, at(2, 8, 5), 2, doc_type="consult_note", blank_pages=1, indexed_at=at(2, 9)),
        # week 1, progress_note, 1 page; searchable after 3 h
        "a1y": c.doc(a1, at(2, 8, 5), 1, indexed_at=at(2, 11)),
        # made from a2 after midnight: counts in week 2 (its own timestamp); 2 h to searchable
        "a2": c.doc(a2, at(9, 0, 5), 2, indexed_at=at(9, 1, 59, 59)),
        # week 2, consult_note, 4 pages, no MRN (unlinked); 10 h to searchable
        "b1": c.doc(
            b1, at(10, 10, 5), 4, doc_type="consult_note", mrn=None, patient_id=None, indexed_at=at(10, 20)
        ),
        "fix": c.doc(fix, at(10, 11), 1, doc_type="legal"),  # correction: in no scanning number
    }
    c.s.flush()
    c.page(a1, 1, "indexed", docs["a1x"])
    c.page(a1, 2, "indexed", docs["a1x"])
    c.page(a1, 3, "indexed", docs["a1y"])
    c.page(a1, 4, "classified")  # a cover sheet stays "classified" with no document: not waiting
    return docs


def _backlog_rows(c: _Catalog) -> None:
    d = c.batch("scan-03", at(17, 9), status="processing")
    d1 = c.file(d, at(17, 9), 3, status="processing")
    d2 = c.file(d, at(17, 6), 2)  # done with its file, its document not yet searchable
    e = c.batch(None, at(16, 12), status="receiving")  # the oldest unfinished batch: 48 h old
    c.file(e, at(16, 12), None, status="received")
    s = c.batch("scan-01", at(1, 0, month=2))
    s1 = c.file(s, at(1, 0, month=2), 1)
    c.s.flush()
    c.page(d1, 1, "received")
    c.page(d1, 2, "received")
    c.page(d1, 3, "ocr")
    doc = c.doc(d2, at(17, 7), 2, status="archived", mrn="0000000042", patient_id=None)  # unconfirmed MRN
    old = c.doc(s1, at(1, 1, month=2), 1, status="superseded")  # replaced: its page waits for nothing
    c.s.flush()
    c.page(d2, 1, "archived", doc)
    c.page(d2, 2, "archived", doc)
    c.page(s1, 1, "archived", old)


def _quality_rows(c: _Catalog, docs: dict[str, Document]) -> None:
    q = c.batch("scan-01", at(1, 0, month=2))
    low = [{"code": "low_confidence", "message": "m"}]
    misfile = [{"code": "possible_misfile", "message": "m"}]
    f = c.file(q, at(1, 0, month=2), 5)
    c.s.flush()
    held = {"review_status": "pending", "patient_id": None, "status": "archived"}
    c.doc(f, at(16, 12), review_reasons=low, **held)  # 2.0 days old
    c.doc(f, at(16, 0), review_reasons=low + misfile, **held)  # 2.5 days old
    c.doc(f, at(17, 12), review_reasons=misfile, **held)  # 1.0 day old
    c.doc(f, at(17, 12), review_status="resolved", review_reasons=None)  # resolved: out of the queue
    # pending but not archived yet: not in the queue, not counted as unlinked
    c.doc(f, at(18, 11), review_reasons=low, review_status="pending", patient_id=None, status="classified")
    c.s.flush()
    some = docs["a1x"].id
    for when, old, new in (
        (at(3), "progress_note", "consult_note"),
        (at(10), "progress_note", "consult_note"),
        (at(12), "other", "billing"),
        (at(16), "lab_report", "billing"),  # after the window
    ):
        c.s.add(
            ClassificationCorrection(
                document_id=some, old_type=old, new_type=new, corrected_by="t", corrected_at=when
            )
        )


def _release(rid: str, received: datetime, status: str, **kw: Any) -> ReleaseRequest:
    extended = kw.pop("extended", False)
    due = received + timedelta(days=60 if extended else 30)
    return ReleaseRequest(
        id=rid,
        mrn="0000000001",
        requester_type=kw.pop("requester_type", "patient"),
        recipient="Recipient",
        purpose="continuing care",
        status=status,
        received_at=received,
        due_at=due,
        extended=extended,
        requested_by="token:staff",
        **kw,
    )


def _release_rows(c: _Catalog) -> None:
    rows = [
        # week 1: received, approved after 3 days (on time), fetched 6 March
        _release(
            "r1", at(2, 10), "fulfilled", vendor="vendor-a", decided_at=at(5, 10), fulfilled_at=at(6, 10)
        ),
        # decided week 1 after 42 days, extended (due 21 March): within the extension; denied
        _release("r2", at(20, month=1), "denied", vendor="vendor-a", extended=True, decided_at=at(3)),
        # decided week 2 after 68 days, extended (due 2 March): late; fetched 11 March, then closed
        _release(
            "r3",
            at(1, month=1),
            "closed",
            vendor="vendor-b",
            extended=True,
            requester_type="legal_process",
            decided_at=at(10),
            fulfilled_at=at(11),
            closed_at=at(12),
        ),
        _release("r4", at(1, month=2), "requested", vendor="vendor-b"),  # due 3 March: 15.5 days overdue
        _release("r5", at(5, month=1), "in_review", extended=True),  # due 6 March: 12.5 days overdue
        _release("r6", at(12), "requested", vendor="vendor-a"),  # week 2, not yet due
    ]
    c.s.add_all(rows)
    c.s.flush()
    for did, rid, when, purpose, accountable, vendor in (
        ("x1", "r1", at(6, 10), "continuing care", False, "vendor-a"),
        ("x2", "r3", at(11), "legal", True, "vendor-b"),
        ("x3", "r3", at(11, 12), "legal", True, "vendor-b"),
        ("x4", None, at(12), "public health", True, None),
        ("x5", "r3", at(16), "legal", True, "vendor-b"),  # after the window
    ):
        c.s.add(
            Disclosure(
                id=did,
                release_id=rid,
                mrn="0000000001",
                disclosed_at=when,
                recipient="Recipient",
                description="d",
                purpose=purpose,
                disclosed_by="token:vendor",
                vendor=vendor,
                method="stream",
                accountable=accountable,
            )
        )


def _retention_rows(c: _Catalog) -> None:
    r = c.batch("scan-01", at(10, month=1))
    f = c.file(r, at(10, month=1), 9)
    c.s.flush()
    x = [
        Disposition(
            id="x" * 31 + str(i),
            executed_at=when,
            executed_by="cli",
            method="shred",
            status=st,
            document_count=n,
            certificate_key=key,
        )
        for i, (when, st, n, key) in enumerate(
            (
                (at(3), "complete", 5, "certificates/1.pdf"),  # week 1
                (at(4), "partial", 2, "certificates/2.pdf"),  # week 1
                (at(10), "running", 3, None),  # week 2, no certificate yet
                (at(20, month=2), "complete", 4, "certificates/3.pdf"),  # before the window
            )
        )
    ]
    c.s.add_all(x)
    c.s.flush()
    t: dict[str, Document] = {}
    for name, rule, until, extra in (
        ("t1", "ahima.adult", date(2026, 3, 1), {}),  # past due, not disposed
        ("t2", "ahima.adult", date(2026, 3, 18), {}),  # today: within 30 days
        ("t3", "ahima.adult", date(2026, 4, 16), {}),  # today + 29: within 30 days
        ("t4", "ahima.adult", date(2026, 4, 17), {}),  # today + 30: within 90, not 30
        ("t5", "state.ca", date(2026, 6, 16), {}),  # today + 90: within 365, not 90
        ("t6", "state.ca", date(2027, 3, 17), {}),  # today + 364
        ("t7", "state.ca", date(2027, 3, 18), {}),  # today + 365: beyond the horizon
        ("t8", "ahima.permanent", None, {}),  # permanent: never due
        ("t9", "ahima.adult", date(2026, 1, 1), {"status": "disposed", "disposition_id": x[0].id}),
    ):
        t[name] = c.doc(f, at(10, month=1), retention_rule=rule, retain_until=until, **extra)
    c.s.flush()
    holds = [
        LegalHold(id="h1", matter="M-1", scope="documents", reason="r", placed_by="cli", placed_at=at(1)),
        LegalHold(
            id="h2",
            matter="M-2",
            scope="documents",
            reason="r",
            placed_by="cli",
            placed_at=at(2),
            status="released",
        ),
        LegalHold(
            id="h3",
            matter="M-3",
            scope="patient",
            scope_value="0000000001",
            reason="r",
            placed_by="cli",
            placed_at=at(1, month=2),
        ),
        LegalHold(
            id="h4",
            matter="M-4",
            scope="patient",
            scope_value="0000000002",
            reason="r",
            placed_by="cli",
            placed_at=at(15, month=2),
        ),
    ]
    c.s.add_all(holds)
    c.s.flush()
    for hold, doc, lifted in (
        ("h1", "t3", None),  # t3 is due within 30 days and held
        ("h1", "t6", at(5)),  # lifted: no longer held
        ("h2", "t5", None),  # the hold was released
        ("h3", "t1", None),
        ("h3", "t2", None),
    ):
        c.s.add(LegalHoldItem(hold_id=hold, document_id=t[doc].id, lifted_at=lifted))


def _build(engine: Engine) -> None:
    with Session(engine) as s:
        c = _Catalog(s)
        c.add_patient()
        s.flush()
        docs = _scanning_rows(c)
        _backlog_rows(c)
        _quality_rows(c, docs)
        _release_rows(c)
        _retention_rows(c)
        s.commit()


@pytest.fixture
def catalog(db_engine: Engine) -> Iterator[Engine]:
    _build(db_engine)
    yield db_engine


def report(engine: Engine, name: str, **kw: Any) -> Report:
    args: dict[str, Any] = {"date_from": FROM, "date_to": TO, "period": "week", "now": NOW}
    args.update(kw)
    with engine.connect() as conn:
        return run_report(conn, name, **args)


def rows(r: Report, table: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in r.table(table).rows]


# -- scanning ------------------------------------------------------------------------------------------


def test_scanning_counts_files_pages_documents_and_refusals_per_week(catalog: Engine) -> None:
    r = report(catalog, "scanning")
    # period, files, pages, documents, refused
    assert rows(r, "received") == [(W1, 3, 6, 2, 1), (W2, 3, 4, 2, 2)]
    assert rows(r, "by_station") == [
        (W1, "scan-01", 3, 6, 2),
        (W2, "scan-01", 0, 0, 1),  # a2's document, made after midnight
        (W2, "scan-02", 3, 4, 1),
    ]
    # pages here leave the blank backs out
    assert rows(r, "by_type") == [
        (W1, "consult_note", 1, 1),
        (W1, "progress_note", 1, 1),
        (W2, "consult_note", 1, 4),
        (W2, "progress_note", 1, 2),
    ]
    assert rows(r, "refusals") == [("corrupt", 2), ("unsupported_type", 1)]


@pytest.mark.slow
def test_scanning_by_day_and_month_in_utc_whatever_the_session_time_zone(catalog: Engine) -> None:
    with catalog.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Los Angeles is 7-8 hours behind: a bucket taken in the session's zone would move
            # the file received Sunday 23:59:59 UTC and the one of Monday 08:00 UTC a day back.
            conn.execute(text("SET TIME ZONE 'America/Los_Angeles'"))
        by_day = run_report(conn, "scanning", date_from=FROM, date_to=TO, period="day", now=NOW)
        by_month = run_report(conn, "scanning", date_from=FROM, date_to=TO, period="month", now=NOW)
    received = {row[0]: row[1:] for row in by_day.table("received").rows}
    assert len(received) == 14  # every day of the window, empty ones as zeros
    assert received[date(2026, 3, 2)] == (1, 4, 2, 0)
    assert received[date(2026, 3, 3)] == (1, 0, 0, 1)
    assert received[date(2026, 3, 8)] == (1, 2, 0, 0)
    assert received[date(2026, 3, 9)] == (0, 0, 1, 0)
    assert received[date(2026, 3, 4)] == (0, 0, 0, 0)
    assert rows(by_month, "received") == [(date(2026, 3, 1), 6, 10, 4, 3)]


# -- scanning from daily rollups ------------------------------------------------------------------------


def _live_and_rolled(engine: Engine, **kw: Any) -> tuple[Report, Report]:
    args: dict[str, Any] = {"date_from": FROM, "date_to": TO, "period": "week", "now": NOW, **kw}
    with engine.connect() as conn:
        live = run_report(conn, "scanning", rollups=False, **args)
        rolled = run_report(conn, "scanning", **args)
    return live, rolled


@pytest.mark.slow
def test_scanning_from_rollups_counts_what_counting_live_counts(catalog: Engine) -> None:
    with catalog.begin() as conn:
        assert rollups.needs_refresh(conn, NOW)
        # from the first day with a file (10 January) to the day before the oldest open file
        # (received 16 March: the same day would otherwise be 17 March, two days before now)
        assert rollups.refresh(conn, NOW) == 65
        assert rollups.rolled_days(conn) == rollups.RolledDays(date(2026, 1, 10), date(2026, 3, 15))
        assert not rollups.needs_refresh(conn, NOW)
        assert rollups.refresh(conn, NOW) == 0
    for kw in (
        {},
        {"period": "day"},
        {"date_from": date(2026, 3, 10), "date_to": date(2026, 3, 18), "period": "day"},  # rolled + live
        {"date_from": date(2026, 1, 1), "date_to": date(2026, 3, 31), "period": "month"},  # live either side
    ):
        live, rolled = _live_and_rolled(catalog, **kw)
        assert rolled.tables == live.tables, kw
    _, rolled = _live_and_rolled(catalog)
    assert rows(rolled, "received") == [(W1, 3, 6, 2, 1), (W2, 3, 4, 2, 2)]


@pytest.mark.slow
def test_type_corrections_after_a_rollup_move_the_rolled_counts(catalog: Engine) -> None:
    with catalog.begin() as conn:
        rollups.refresh(conn, NOW)
    later = NOW + timedelta(hours=1)
    with Session(catalog) as s:
        progress = s.scalars(
            select(Document).where(Document.page_count == 1, Document.created_at == at(2, 8, 5))
        )
        a1y = progress.one()  # week 1, progress_note, 1 page
        b1 = s.scalars(select(Document).where(Document.created_at == at(10, 10, 5))).one()  # week 2, consult
        for doc, steps in ((a1y, ["billing"]), (b1, ["lab_report", "other"])):
            for n, new in enumerate(steps):
                s.add(
                    ClassificationCorrection(
                        document_id=doc.id,
                        old_type=doc.doc_type,
                        new_type=new,
                        corrected_by="t",
                        corrected_at=later + timedelta(minutes=n),
                    )
                )
                doc.doc_type = new
        s.commit()
    live, rolled = _live_and_rolled(catalog)
    assert rolled.tables == live.tables
    # the types the documents have now; a type left with no document is no longer a row
    assert rows(rolled, "by_type") == [
        (W1, "billing", 1, 1),
        (W1, "consult_note", 1, 1),
        (W2, "other", 1, 4),
        (W2, "progress_note", 1, 2),
    ]


# -- backlog -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_backlog_pages_waiting_turnaround_and_oldest_batch(catalog: Engine) -> None:
    r = report(catalog, "backlog")
    # received and ocr pages of the open file (received yesterday 09:00, 27 h ago); archived pages of
    # the document not yet searchable (file received yesterday 06:00, 30 h ago); the cover sheet, the
    # superseded document's page and every indexed page wait for nothing
    assert rows(r, "pages_waiting") == [
        ("received", 2, 27.0),
        ("ocr", 1, 27.0),
        ("classified", 0, None),
        ("archived", 2, 30.0),
    ]
    # week 1: 1 h and 3 h -> median 2, p90 1 + 0.9 * 2 = 2.8; week 2: 2 h and 10 h -> 6 and 9.2
    assert rows(r, "time_to_searchable") == [(W1, 2, 2.0, 2.8), (W2, 2, 6.0, 9.2)]
    (oldest,) = rows(r, "oldest_unfinished_batch")
    assert oldest[0] == 2
    assert oldest[2:] == (None, "receiving", at(16, 12), 48.0, 1)


@pytest.mark.slow
def test_backlog_without_open_work(db_engine: Engine) -> None:
    r = report(db_engine, "backlog")
    assert [row[1] for row in r.table("pages_waiting").rows] == [0, 0, 0, 0]
    assert rows(r, "time_to_searchable") == [(W1, 0, None, None), (W2, 0, None, None)]
    assert rows(r, "oldest_unfinished_batch") == [(0, None, None, None, None, None, None)]


# -- quality -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_quality_review_queue_corrections_and_unlinked(catalog: Engine) -> None:
    r = report(catalog, "quality")
    # three archived documents held: 2.0, 2.5 and 1.0 days old
    assert rows(r, "review_queue") == [(3, 2.0, 2.5)]
    assert rows(r, "review_reasons") == [
        ("low_confidence", 2, 2.25, 2.5),
        ("possible_misfile", 2, 1.75, 2.5),
    ]
    assert rows(r, "type_corrections") == [("progress_note", "consult_note", 2), ("other", "billing", 1)]
    # in review: the three held; no MRN: b1; an MRN no second identifier confirmed: d2's document
    assert rows(r, "unlinked") == [("in_review", 3), ("no_mrn", 1), ("mrn_not_confirmed", 1)]


# -- releases ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_releases_requests_turnaround_overdue_disclosures_vendors(catalog: Engine) -> None:
    r = report(catalog, "releases")
    # period, received, approved, denied, fulfilled
    assert rows(r, "requests") == [(W1, 1, 1, 1, 1), (W2, 1, 1, 0, 1)]
    # period, decided, within 30 days, within the extension, late, extended, median, p90 (days)
    assert rows(r, "turnaround") == [(W1, 2, 1, 1, 0, 1, 22.5, 38.1), (W2, 1, 0, 0, 1, 1, 68.0, 68.0)]
    assert rows(r, "overdue") == [(False, 1, 15.5), (True, 1, 12.5)]
    assert rows(r, "disclosures") == [
        ("legal", "legal_process", 2, 2),
        ("continuing care", "patient", 1, 0),
        ("public health", None, 1, 1),
    ]
    # vendor, received, approved, denied, overdue now, disclosures, median days to decision
    assert rows(r, "vendors") == [
        ("vendor-a", 2, 1, 1, 0, 1, 22.5),
        ("vendor-b", 0, 1, 0, 1, 2, 68.0),
        (None, 0, 0, 0, 1, 1, None),
    ]


# -- retention -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_retention_upcoming_holds_and_dispositions(catalog: Engine) -> None:
    r = report(catalog, "retention")
    # rule, past due, next 30, next 90, next 365, of these on hold
    # held: t1 and t2 (a patient hold) and t3 (a documents hold); t5's hold was released, t6's item lifted
    assert rows(r, "end_of_retention") == [("ahima.adult", 1, 2, 3, 3, 3), ("state.ca", 0, 0, 0, 2, 0)]
    assert rows(r, "holds") == [("documents", 1, 1, at(1)), ("patient", 2, 2, at(1, month=2))]
    # period, runs, documents, certificates, runs with refusals
    assert rows(r, "dispositions") == [(W1, 2, 7, 2, 1), (W2, 1, 3, 0, 0)]


# -- the shape every consumer relies on ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REPORTS))
def test_every_report_answers_with_its_declared_tables(catalog: Engine, name: str) -> None:
    with Session(catalog) as s:  # a Session works as well as a Connection
        r = run_report(s, name, date_from=FROM, date_to=TO, period="week", now=NOW)
    assert tuple(t.name for t in r.tables) == REPORTS[name].tables
    for t in r.tables:
        assert all(len(row) == len(t.columns) for row in t.rows)
        if t.chart is not None:
            names = t.column_names()
            assert t.chart.x in names and set(t.chart.y) <= set(names)
            assert t.chart.series is None or t.chart.series in names


@pytest.mark.slow
def test_csv_and_json_carry_the_same_rows(catalog: Engine) -> None:
    r = report(catalog, "releases")
    data = json.loads(json.dumps(to_json(r)))  # plain JSON all the way down
    assert data["period"] == "week" and data["date_from"] == "2026-03-02"
    turnaround = next(t for t in data["tables"] if t["name"] == "turnaround")
    assert turnaround["rows"][0] == ["2026-03-02", 2, 1, 1, 0, 1, 22.5, 38.1]
    assert turnaround["chart"] == {
        "kind": "bar",
        "x": "period",
        "y": ["on_time", "in_extension", "late"],
        "series": None,
    }
    single = list(csv.reader(io.StringIO(to_csv(r, "vendors"))))
    assert single == [
        ["vendor", "received", "approved", "denied", "overdue", "disclosures", "median_days"],
        ["vendor-a", "2", "1", "1", "0", "1", "22.5"],
        ["vendor-b", "0", "1", "0", "1", "2", "68.0"],
        ["", "0", "0", "0", "1", "1", ""],
    ]
    whole = list(csv.reader(io.StringIO(to_csv(r))))
    assert [line for line in whole if len(line) == 1] == [[t.name] for t in r.tables]
    assert sum(1 for line in whole if not line) == len(r.tables) - 1


@pytest.mark.slow
def test_a_report_names_no_patient(catalog: Engine) -> None:
    # Names, MRNs and DOBs are in the catalog; no report groups by them.
    for name in REPORTS:
        dumped = json.dumps(to_json(report(catalog, name)))
        assert "Synthetic Patient" not in dumped and "0000000001" not in dumped and "0000000042" not in dumped


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": "nope"}, "unknown report"),
        ({"date_from": date(2026, 3, 5), "date_to": date(2026, 3, 4)}, "after"),
        ({"period": "year"}, "period"),
        ({"date_from": date(2000, 1, 1), "date_to": date(2026, 1, 1)}, "at most"),
        ({"date_from": date(2025, 1, 1), "date_to": date(2026, 3, 1), "period": "day"}, "periods"),
        ({"now": datetime(2026, 3, 18, 12, 0)}, "timezone"),
    ],
)
def test_unusable_requests_are_refused(db_engine: Engine, kw: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "name": "scanning",
        "date_from": FROM,
        "date_to": TO,
        "period": "week",
        "now": NOW,
    }
    args.update(kw)
    name = args.pop("name")
    with db_engine.connect() as conn, pytest.raises(ReportError, match=message):
        run_report(conn, name, **args)


@pytest.mark.slow
def test_default_window_is_the_last_90_days_by_week(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        r = run_report(conn, "scanning", now=NOW)
    assert (r.date_from, r.date_to, r.period) == (date(2025, 12, 19), date(2026, 3, 18), "week")
    assert r.table("received").rows[0][0] == date(2025, 12, 15)  # the Monday of the first week


# -- the portable SQL underneath -----------------------------------------------------------------------


@pytest.mark.slow
def test_percentiles_interpolate_like_percentile_cont(db_engine: Engine) -> None:
    values = {"a": [10.0, 1.0, 4.0, 2.0, 3.0], "b": [7.0], "c": [5.0, 1.0]}
    with Session(db_engine) as s:
        b = Batch(id="b" * 32, source="cli")
        s.add(b)
        s.flush()
        rows = [(group, v) for group, vs in values.items() for v in vs]
        for seq, (group, v) in enumerate(rows):
            s.add(
                BatchFile(
                    id=f"f{seq}", batch_id=b.id, seq=seq, original_name=group, sha256="ab" * 32, size=int(v)
                )
            )
        s.commit()
        conn = s.connection()
        source = select(BatchFile.original_name.label("g"), BatchFile.size.label("v")).subquery()
        # sorted a: 1 2 3 4 10 -> p50 3, p90 at 3.6: 4 + 0.6 * 6; c: 1 5 -> p50 3, p90 1 + 0.9 * 4
        expected = {("a", 5, 3.0, 7.6, 10.0), ("b", 1, 7.0, 7.0, 7.0), ("c", 2, 3.0, 4.6, 5.0)}
        native = percentiles(conn, source, ["g"], "v", (50, 90, 100))
        for q in (native, portable_percentiles(source, ["g"], "v", (50, 90, 100))):
            got = {(r.g, r.n, round(r.p50, 6), round(r.p90, 6), round(r.p100, 6)) for r in conn.execute(q)}
            assert got == expected


def test_periods_between_covers_partial_first_and_last_buckets() -> None:
    assert periods_between(date(2026, 1, 31), date(2026, 3, 1), "month") == [
        date(2026, 1, 1),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    assert periods_between(date(2026, 3, 4), date(2026, 3, 16), "week") == [
        date(2026, 3, 2),
        date(2026, 3, 9),
        date(2026, 3, 16),
    ]
    assert periods_between(date(2026, 3, 4), date(2026, 3, 4), "day") == [date(2026, 3, 4)]

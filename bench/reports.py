"""Management reports on a large PostgreSQL catalog: each report timed against a bound.

    python -m bench.reports [--docs 1000000] [--pages-per-doc 2] [--runs 5] [--bound 2.0]
                            [--pg-url URL] [--keep]

1. Creates a fresh database on the local PostgreSQL (``--pg-url``, default
   ``CHARTVAULT_TEST_PG_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and
   migrates it with the real migrations (so the report indexes are the migration's).
2. Fills it with ``INSERT ... SELECT generate_series`` (untimed, printed per table): ``--docs``
   documents spread over three years, two per scanned file, ten files per batch, 12 stations; dates of
   service up to two years before the scan (5% up to ten: back files), kept ten years after;
   ``--pages-per-doc`` pages each (default 2: fewer than a real chart's, so the catalog builds in minutes; the
   page tables only feed the backlog report), plus a cover sheet in every 50th file (a page that stays
   "classified" with no document, as real cover sheets do); 1% refused files, 1% disposed documents
   under 150 dispositions, 0.1% superseded, 2.5% in review, 6% unlinked, 2% corrected types, one
   patient per ten documents, a release request per twenty documents with their disclosures, 200 legal
   holds over 1% of the documents, and an open tail (the newest 20 batches still processing). As a bulk
   load does, the secondary indexes of the three big tables are dropped first and rebuilt after from
   the very definitions the migrations created (checked), and foreign keys are not checked row by row.
   Then ``VACUUM ANALYZE``, as autovacuum would have done on a catalog that size, and the first
   refresh of the daily rollups (every closed day of the three years at once: timed and printed,
   what the first report after an upgrade pays once).
3. Times every report as ``ReportsService`` runs it (the rollup check, then the report; median of
   ``--runs``) for three windows: the default (last 90 days, weekly), a year by month, and the whole
   catalog (three years, monthly); next to each, its ratio to the
   baseline measured in the same run, ``SELECT count(*) FROM documents``. A report slower than
   ``--bound`` seconds fails.
4. Drops the database (``--keep`` leaves it and prints its URL).

Tables first; the last line is one JSON object with every figure. Exit 1 if a report misses the bound.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import NullPool

from chartvault.archive.db import make_engine, upgrade
from chartvault.classify.types import DOC_TYPES
from chartvault.reports import REPORTS, rollups, run_report

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SPAN_DAYS = 1095
STATIONS = 12
FILES_PER_BATCH = 10
OPEN_BATCHES = 20
HOLDS = 200
DISPOSITIONS = 150
RULES = ("ahima.adult", "federal.cms_482_24", "state.ca", "state.tx", "ahima.minor", "ahima.permanent")
REFUSALS = ("unsupported_type", "corrupt", "too_large", "encrypted", "decompression_bomb")
PURPOSES = ("continuing care", "insurance", "legal", "personal", "disability", "research")
REQUESTERS = ("patient", "patient_directed", "third_party_authorized", "legal_process")


@dataclass(frozen=True, slots=True)
class Sizes:
    """Row counts derived from the number of documents."""

    docs: int
    pages_per_doc: int

    @property
    def files(self) -> int:
        return (self.docs + 1) // 2

    @property
    def batches(self) -> int:
        return (self.files + FILES_PER_BATCH - 1) // FILES_PER_BATCH

    def params(self, now: datetime) -> dict[str, Any]:
        return {
            "n": self.docs,
            "ppd": self.pages_per_doc,
            "nf": self.files,
            "nb": self.batches,
            "nq": max(self.docs // 100, 1),
            "npat": max(self.docs // 10, 1),
            "nc": max(self.docs // 50, 1),
            "nr": max(self.docs // 20, 1),
            "nhi": max(self.docs // 100, 1),
            "open_from": max(self.batches - OPEN_BATCHES, 0),
            "ndisp": DISPOSITIONS,
            "nh": HOLDS,
            "now": now,
            "t0": now - timedelta(days=SPAN_DAYS),
            "span": float(SPAN_DAYS * 86400),
            "types": list(DOC_TYPES),
            "rules": list(RULES),
            "refusals": list(REFUSALS),
            "purposes": list(PURPOSES),
            "requesters": list(REQUESTERS),
        }


# Each step fills one table from generate_series; ids are md5 hex (32 characters, like uuid4().hex) so
# the primary and foreign key indexes see random keys as they do in production.
FILL: tuple[tuple[str, str], ...] = (
    (
        "patients",
        """
        INSERT INTO patients (id, mrn, name, dob, created_at)
        SELECT md5('p' || p), lpad(p::text, 10, '0'), NULL, date '1940-01-01' + CAST(p % 25000 AS int), :t0
        FROM generate_series(CAST(0 AS bigint), :npat - 1) p
        """,
    ),
    (
        "batches",
        """
        INSERT INTO batches (id, source, station, operator, created_by, status, manifest, flags,
                             created_at, updated_at, completed_at)
        SELECT md5('b' || k), 'api', 'scan-' || lpad(((k * 7) % 12 + 1)::text, 2, '0'), 'op-' || (k % 40),
               'token:bench',
               CASE WHEN k >= :open_from THEN 'processing'
                    WHEN k % 50 = 0 THEN 'complete_with_errors' ELSE 'complete' END,
               NULL, '[]'::json, ts, ts,
               CASE WHEN k >= :open_from THEN NULL ELSE ts + interval '1 hour' END
        FROM (SELECT k, CAST(:t0 AS timestamptz)
                        + (:span * (k * 10)::float8 / :nf) * interval '1 second' AS ts
              FROM generate_series(CAST(0 AS bigint), :nb - 1) k) s
        """,
    ),
    (
        "batch_files",
        """
        INSERT INTO batch_files (id, batch_id, seq, original_name, size, sha256, kind, page_count,
                                 status, created_at, updated_at)
        SELECT md5('f' || j), md5('b' || (j / 10)), j % 10 + 1, 'scan-' || j || '.tif', 150000 + j % 5000,
               md5('s' || j) || md5('t' || j), 'tiff', 2 * :ppd + CASE WHEN j % 50 = 0 THEN 1 ELSE 0 END,
               CASE WHEN j / 10 >= :open_from THEN 'processing' ELSE 'archived' END, ts, ts
        FROM (SELECT j, CAST(:t0 AS timestamptz) + (:span * j::float8 / :nf) * interval '1 second' AS ts
              FROM generate_series(CAST(0 AS bigint), :nf - 1) j) s
        """,
    ),
    (
        "batch_files (refused)",
        """
        INSERT INTO batch_files (id, batch_id, seq, original_name, size, sha256, kind, page_count,
                                 status, reason_code, reason, created_at, updated_at)
        SELECT md5('q' || q), md5('b' || bk), 11, 'refused-' || q || '.bin', 1000,
               md5('q' || q) || md5('r' || q), NULL, NULL, 'quarantined',
               (CAST(:refusals AS text[]))[q % 5 + 1], 'synthetic refusal', ts, ts
        FROM (SELECT q, (q * 7) % :nb AS bk,
                     CAST(:t0 AS timestamptz) + (:span * (((q * 7) % :nb) * 10 + 9)::float8 / :nf)
                         * interval '1 second' AS ts
              FROM generate_series(CAST(0 AS bigint), :nq - 1) q) s
        ON CONFLICT DO NOTHING
        """,
    ),
    (
        "dispositions",
        """
        INSERT INTO dispositions (id, executed_at, executed_by, approved_by, witness, method, status,
                                  document_count, certificate_key, certificate_version, certificate_sha256,
                                  certificate_size)
        SELECT md5('x' || x), CAST(:t0 AS timestamptz) + (:span * 0.8 * x / :ndisp) * interval '1 second',
               'cli:bench', 'approver', 'witness', 'shredding',
               CASE WHEN x % 10 = 0 THEN 'partial' ELSE 'complete' END, 0,
               'certificates/' || md5('x' || x) || '.pdf', 'v1', md5('c' || x) || md5('e' || x), 5000
        FROM generate_series(CAST(0 AS bigint), :ndisp - 1) x
        """,
    ),
    (
        "documents",
        """
        INSERT INTO documents (id, file_id, batch_id, first_page, page_count, sha256, size, mime, object_key,
                               object_version, doc_type, doc_type_confidence, mrn, dob, date_of_service,
                               encounter, identifier_confidence, patient_id, status, classification_source,
                               blank_pages, review_status, review_reasons, retain_until, retention_rule,
                               retention_computed_at, disposed_at, disposition_id, created_at, received_at,
                               archived_at, indexed_at)
        SELECT md5('d' || i), md5('f' || j), md5('b' || (j / 10)), (i % 2) * :ppd + 1, :ppd,
               md5('s' || j) || md5('t' || j), 150000, 'image/tiff', 'documents/' || md5('d' || i), 'v1',
               (CAST(:types AS text[]))[(i * 7) % 16 + 1], 0.5 + (i % 50) / 100.0,
               CASE WHEN i % 50 = 0 THEN NULL ELSE lpad(((i * 13) % :npat)::text, 10, '0') END,
               NULL, dos, 'ENC-' || ((i / 3) % 200000), '{}'::json,
               CASE WHEN i % 25 = 0 OR i % 50 = 0 OR (pending AND i % 3 > 0) OR disposed THEN NULL
                    ELSE md5('p' || ((i * 13) % :npat)) END,
               CASE WHEN disposed THEN 'disposed' WHEN superseded THEN 'superseded'
                    WHEN open THEN CASE WHEN i % 3 = 1 THEN 'archived' ELSE 'classified' END
                    ELSE 'indexed' END,
               'model', CASE WHEN i % 7 = 0 THEN 1 ELSE 0 END,
               CASE WHEN pending THEN 'pending' WHEN i % 40 = 5 THEN 'resolved' END,
               CASE WHEN NOT pending THEN NULL
                    WHEN i % 3 = 0 THEN '[{"code": "low_confidence", "message": "synthetic"}]'::json
                    WHEN i % 3 = 1 THEN '[{"code": "possible_misfile", "message": "synthetic"}]'::json
                    ELSE '[{"code": "low_confidence", "message": "synthetic"},
                           {"code": "possible_misfile", "message": "synthetic"}]'::json END,
               CASE WHEN rule = 'ahima.permanent' THEN NULL ELSE dos + 3650 END, rule, fts,
               CASE WHEN disposed THEN xts END, CASE WHEN disposed THEN md5('x' || ((i / 100) % :ndisp)) END,
               fts + interval '2 minutes', fts,
               CASE WHEN open AND i % 3 <> 1 THEN NULL ELSE fts + interval '3 minutes' END,
               CASE WHEN disposed OR superseded OR open THEN NULL
                    ELSE LEAST(CAST(:now AS timestamptz) - interval '1 minute',
                               fts + ((240 + (i * 7919) % 3600 + CASE WHEN i % 97 = 0 THEN (i % 5) * 86400
                                                                     ELSE 0 END)
                                      * interval '1 second')) END
        FROM (
            SELECT i, j, fts, open, pending, disposed, superseded, rule, xts,
                   CAST((fts AT TIME ZONE 'UTC') AS date)
                       - CAST(CASE WHEN i % 20 = 0 THEN (i * 37) % 3650 ELSE (i * 37) % 730 END AS int) AS dos
            FROM (
                SELECT i, i / 2 AS j,
                       CAST(:t0 AS timestamptz)
                           + (:span * (i / 2)::float8 / :nf) * interval '1 second' AS fts,
                       (i / 2) / 10 >= :open_from AS open,
                       i % 40 = 3 AS pending,
                       (i / 2) / 10 < :open_from AND i % 100 = 7 AND i < :n / 3 AS disposed,
                       (i / 2) / 10 < :open_from AND i % 1000 = 9 AS superseded,
                       (CAST(:rules AS text[]))[i % 6 + 1] AS rule,
                       CAST(:t0 AS timestamptz)
                           + (:span * 0.8 * ((i / 100) % :ndisp) / :ndisp) * interval '1 second' AS xts
                FROM generate_series(CAST(0 AS bigint), :n - 1) i
            ) a
        ) s
        """,
    ),
    (
        "dispositions (counts)",
        """
        UPDATE dispositions x SET document_count = c.n
        FROM (SELECT disposition_id, count(*) AS n FROM documents WHERE disposition_id IS NOT NULL
              GROUP BY disposition_id) c
        WHERE c.disposition_id = x.id
        """,
    ),
    (
        "pages",
        """
        INSERT INTO pages (id, file_id, document_id, page_no, status, confidence, source, rotation, width,
                           height, ocr_ms, blank, updated_at)
        SELECT md5(d.id || '-' || k), d.file_id, d.id, d.first_page + k - 1,
               CASE d.status WHEN 'indexed' THEN 'indexed' WHEN 'classified' THEN
                    CASE WHEN k = 1 THEN 'classified' ELSE 'ocr' END
                    ELSE 'archived' END,
               0.9, 'ocr', 0, 2550, 3300, 900, k = :ppd AND d.blank_pages = 1, d.created_at
        FROM documents d CROSS JOIN generate_series(1, :ppd) k
        WHERE d.status <> 'disposed'
        """,
    ),
    (
        "pages (cover sheets)",
        """
        INSERT INTO pages (id, file_id, document_id, page_no, status, confidence, source, rotation, width,
                           height, ocr_ms, blank, updated_at)
        SELECT md5('cover' || j), md5('f' || j), NULL, 2 * :ppd + 1, 'classified', 0.9, 'ocr', 0, 2550, 3300,
               900, false, CAST(:t0 AS timestamptz)
        FROM generate_series(CAST(0 AS bigint), :nf - 1, 50) j
        """,
    ),
    (
        "classification_corrections",
        """
        INSERT INTO classification_corrections (document_id, old_type, new_type, corrected_by, corrected_at)
        SELECT md5('d' || ((c * 50 + 11) % :n)), (CAST(:types AS text[]))[(c * 3) % 16 + 1],
               (CAST(:types AS text[]))[(c * 3 + 1 + c % 15) % 16 + 1], 'token:staff',
               CAST(:t0 AS timestamptz) + (:span * c::float8 / :nc) * interval '1 second'
        FROM generate_series(CAST(0 AS bigint), :nc - 1) c
        """,
    ),
    (
        "legal_holds",
        """
        INSERT INTO legal_holds (id, matter, scope, scope_value, reason, status, placed_by, placed_at,
                                 released_by, released_at, release_reason)
        SELECT md5('h' || h), 'M-' || h, (ARRAY['patient', 'encounter', 'documents'])[h % 3 + 1],
               CASE WHEN h % 3 = 2 THEN NULL ELSE 'value-' || h END, 'synthetic hold',
               CASE WHEN h % 4 = 0 THEN 'released' ELSE 'active' END, 'cli:bench', ts,
               CASE WHEN h % 4 = 0 THEN 'cli:bench' END,
               CASE WHEN h % 4 = 0 THEN ts + interval '30 days' END,
               CASE WHEN h % 4 = 0 THEN 'matter closed' END
        FROM (SELECT h, CAST(:t0 AS timestamptz) + (:span * h::float8 / :nh) * interval '1 second' AS ts
              FROM generate_series(CAST(0 AS bigint), :nh - 1) h) s
        """,
    ),
    (
        "legal_hold_items",
        """
        INSERT INTO legal_hold_items (hold_id, document_id, applied_at, lifted_at)
        SELECT md5('h' || (k % :nh)), md5('d' || ((k::bigint * 97) % :n)), :t0,
               CASE WHEN (k % :nh) % 4 = 0 THEN CAST(:now AS timestamptz) END
        FROM generate_series(CAST(0 AS bigint), :nhi - 1) k
        ON CONFLICT DO NOTHING
        """,
    ),
    (
        "release_requests",
        """
        INSERT INTO release_requests (id, mrn, requester_type, recipient, purpose, vendor, status,
                                      received_at, due_at, extended, extension_reason, requested_by,
                                      decided_by, decided_at, fulfilled_at, closed_at)
        SELECT md5('r' || r), lpad(((r * 11) % :npat)::text, 10, '0'),
               (CAST(:requesters AS text[]))[r % 4 + 1], 'recipient-' || (r % 500),
               (CAST(:purposes AS text[]))[r % 6 + 1],
               CASE WHEN r % 5 = 0 THEN NULL ELSE 'vendor-' || (r % 8) END,
               CASE WHEN NOT decided THEN CASE WHEN r % 2 = 0 THEN 'requested' ELSE 'in_review' END
                    WHEN r % 12 = 0 THEN 'denied' WHEN r % 12 IN (1, 2) THEN 'approved'
                    WHEN r % 12 = 3 THEN 'expired' WHEN r % 12 IN (4, 5, 6, 7) THEN 'fulfilled'
                    ELSE 'closed' END,
               received, received + CASE WHEN extended THEN interval '60 days' ELSE interval '30 days' END,
               extended, CASE WHEN extended THEN 'records off site' END, 'token:staff',
               CASE WHEN decided THEN 'token:him' END, CASE WHEN decided THEN decision END,
               CASE WHEN decided AND r % 12 >= 4
                    THEN LEAST(decision + interval '2 days', CAST(:now AS timestamptz)) END,
               CASE WHEN decided AND r % 12 >= 8
                    THEN LEAST(decision + interval '9 days', CAST(:now AS timestamptz)) END
        FROM (
            SELECT r, received, extended, decision,
                   decision <= CAST(:now AS timestamptz) AND r % 997 <> 5 AS decided
            FROM (
                SELECT r, r % 10 = 0 AS extended,
                       CAST(:t0 AS timestamptz) + (:span * r::float8 / :nr) * interval '1 second' AS received,
                       CAST(:t0 AS timestamptz) + (:span * r::float8 / :nr) * interval '1 second'
                           + ((r * 7) % 45 + (r % 24) / 24.0) * interval '1 day' AS decision
                FROM generate_series(CAST(0 AS bigint), :nr - 1) r
            ) a
        ) s
        """,
    ),
    (
        "disclosures",
        """
        INSERT INTO disclosures (id, release_id, mrn, disclosed_at, recipient, description, purpose,
                                 disclosed_by, vendor, method, document_ids, accountable, exemption_basis)
        SELECT md5('dd' || r.id), r.id, r.mrn, r.fulfilled_at, r.recipient, 'synthetic description',
               r.purpose,
               'token:vendor', r.vendor, 'stream', '[]'::json, r.requester_type = 'legal_process',
               CASE WHEN r.requester_type = 'legal_process' THEN NULL
                    WHEN r.requester_type = 'third_party_authorized' THEN '164.528(a)(1)(iv)'
                    ELSE '164.528(a)(1)(ii)' END
        FROM release_requests r WHERE r.fulfilled_at IS NOT NULL
        """,
    ),
)


def _admin_url(arg: str | None) -> URL:
    url = make_url(arg or os.environ.get("CHARTVAULT_TEST_PG_URL", DEFAULT_PG_URL))
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


def _admin(url: URL) -> Engine:
    return create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


# Tables whose secondary indexes are dropped during the load and rebuilt after it from the definitions
# the migrations made (pg_indexes), as a bulk load does: the catalog ends exactly as migrated.
BULK_TABLES = ["batch_files", "documents", "pages"]


def _secondary_indexes(conn: Connection) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the bulk tables' indexes that back no constraint."""
    q = text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(:t) "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname"
    )
    return [(r.indexname, r.indexdef) for r in conn.execute(q, {"t": BULK_TABLES})]


def _timed(
    label: str, took: dict[str, float], say: Callable[[str], None], fn: Callable[[], int | None]
) -> None:
    t0 = time.perf_counter()
    rows = fn()
    took[label] = time.perf_counter() - t0
    count = f"{rows:>10,} rows" if rows is not None else " " * 15
    say(f"  {label:<28} {count}  {took[label]:7.1f} s")


def _insert(engine: Engine, sql: str, params: dict[str, Any]) -> int:
    with engine.begin() as conn:
        # Foreign keys are not checked row by row during the load (the rows are consistent by construction).
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        return conn.execute(text(sql), params).rowcount


def _rebuild(engine: Engine, indexes: list[tuple[str, str]]) -> None:
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        for _, ddl in indexes:
            conn.execute(text(ddl))


ROLLUP_STEP = "rollups (days rolled up)"


def fill(engine: Engine, sizes: Sizes, now: datetime, say: Callable[[str], None]) -> dict[str, float]:
    """Generate the catalog, one table at a time; returns the seconds each step took."""
    params = sizes.params(now)
    took: dict[str, float] = {}
    with engine.begin() as conn:
        indexes = _secondary_indexes(conn)
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
    for label, sql in FILL:
        _timed(label, took, say, lambda sql=sql: _insert(engine, sql, params))
    _timed(f"{len(indexes)} indexes rebuilt", took, say, lambda: _rebuild(engine, indexes))
    with engine.connect() as conn:
        if _secondary_indexes(conn) != indexes:
            raise RuntimeError("the rebuilt indexes differ from the migrated ones")

    def vacuum() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))

    _timed("vacuum analyze", took, say, vacuum)

    def roll_up() -> int:
        with engine.begin() as conn:
            return rollups.refresh(conn, now)

    _timed(ROLLUP_STEP, took, say, roll_up)
    return took


def _median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass(frozen=True, slots=True)
class Case:
    """One report over one window."""

    report: str
    window: str
    date_from: date
    date_to: date
    period: str


def cases(now: datetime) -> list[Case]:
    today = now.date()
    out = []
    for name in REPORTS:
        out.append(Case(name, "90 days by week", today - timedelta(days=89), today, "week"))
        out.append(Case(name, "12 months by month", today - timedelta(days=364), today, "month"))
        out.append(Case(name, "3 years by month", today - timedelta(days=SPAN_DAYS), today, "month"))
    return out


def measure(conn: Connection, now: datetime, runs: int) -> tuple[float, list[dict[str, Any]]]:
    """The baseline and every case, each the median of ``runs`` (after one warm-up run)."""

    def baseline() -> object:
        return conn.execute(text("SELECT count(*) FROM documents")).scalar_one()

    baseline()
    base = _median_seconds(baseline, runs)
    results = []
    for c in cases(now):

        def once(c: Case = c) -> object:
            rollups.needs_refresh(conn, now)
            return run_report(
                conn, c.report, date_from=c.date_from, date_to=c.date_to, period=c.period, now=now
            )

        once()
        s = _median_seconds(once, runs)
        results.append({"report": c.report, "window": c.window, "s": s, "ratio": s / base})
    return base, results


def _print_results(base: float, results: Sequence[dict[str, Any]], bound: float) -> None:
    print(f"\nbaseline  SELECT count(*) FROM documents: {base * 1000:.1f} ms")
    print(f"{'report':<10} {'window':<20} {'median ms':>10} {'x baseline':>11}  bound {bound:.1f} s")
    for r in results:
        verdict = "ok" if r["s"] <= bound else "OVER"
        print(f"{r['report']:<10} {r['window']:<20} {r['s'] * 1000:>10.1f} {r['ratio']:>11.2f}  {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--pages-per-doc", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bound", type=float, default=2.0, help="seconds a report may take at most")
    ap.add_argument("--pg-url", default=None, help="an admin URL of the PostgreSQL server")
    ap.add_argument("--keep", action="store_true", help="keep the generated database")
    args = ap.parse_args(argv)
    if args.docs < 2 or args.pages_per_doc < 1 or args.runs < 1:
        ap.error("--docs >= 2, --pages-per-doc >= 1, --runs >= 1")

    admin_url = _admin_url(args.pg_url)
    name = f"chartvault_bench_reports_{uuid.uuid4().hex[:8]}"
    url = admin_url.set(database=name)
    admin = _admin(admin_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(url)
    now = datetime.now(UTC).replace(microsecond=0)
    sizes = Sizes(args.docs, args.pages_per_doc)
    try:
        print(f"database {name}: migrating, then {args.docs:,} documents", flush=True)
        upgrade(engine)
        took = fill(engine, sizes, now, lambda line: print(line, flush=True))
        load_before = os.getloadavg()[0]
        with engine.connect() as conn:
            base, results = measure(conn, now, args.runs)
        load = (load_before, os.getloadavg()[0])
        _print_results(base, results, args.bound)
        print(
            f"load average (1 min), {os.cpu_count()} cores: {load[0]:.2f} before, {load[1]:.2f} after timing"
        )
        over = [r for r in results if r["s"] > args.bound]
        summary = {
            "docs": args.docs,
            "pages_per_doc": args.pages_per_doc,
            "runs": args.runs,
            "bound_s": args.bound,
            "generate_s": round(sum(took.values()), 1),
            "first_rollup_refresh_s": round(took[ROLLUP_STEP], 2),
            "baseline_ms": round(base * 1000, 2),
            "load_avg_1min": [round(x, 2) for x in load],
            "cpus": os.cpu_count(),
            "reports": [
                {
                    "report": r["report"],
                    "window": r["window"],
                    "ms": round(r["s"] * 1000, 1),
                    "ratio": round(r["ratio"], 2),
                }
                for r in results
            ],
            "all_within_bound": not over,
        }
        print(json.dumps(summary))
        return 1 if over else 0
    finally:
        engine.dispose()
        if args.keep:
            print(f"kept: {url.render_as_string(hide_password=True)}", file=sys.stderr)
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())

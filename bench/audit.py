"""What the keyed audit chain costs: appends and verification against the plain SHA-256 chain, same run.

    python -m bench.audit [--entries 4000] [--chunks 4] [--checkpoints 2000] [--database-url URL]

1. Appends ``--entries`` entries through ``AuditLog.record`` (HMAC-SHA256, key ring, checkpoint check) to
   one catalog and the same number through the plain SHA-256 append the log used before (the same
   serialised transaction, sealed with ``legacy_digest``) to another, in ``--chunks`` alternating chunks so
   both see the same machine load. Reports entries/s and the ratio keyed/plain.
2. Verifies both logs (``AuditLog.verify``: the keyed one against its checkpoint, the plain one as legacy
   entries) and reports entries/s and the ratio.
3. Writes ``--checkpoints`` checkpoint objects to a local store, then times one checkpoint write and the
   listing ``verify`` does (every checkpoint's name), since checkpoints accumulate for years.

SQLite files under a temporary folder by default; ``--database-url`` gives a PostgreSQL server on which two
databases are created and dropped. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from chartvault.archive import audit_checkpoints
from chartvault.archive.audit import GENESIS, AuditLog, legacy_digest
from chartvault.archive.audit_keys import KeyRing
from chartvault.archive.db import make_engine, session_factory, transaction, upgrade
from chartvault.archive.localstore import LocalObjectStore
from chartvault.archive.models import AuditEvent


def plain_append(sessions: sessionmaker[Session], i: int) -> str:
    """The append the log made before the MAC chain: same lock and transaction, SHA-256 seal, no key."""
    with transaction(sessions, immediate=True) as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(7261531)"))
        head = s.execute(
            select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
        ).first()
        event = AuditEvent(
            seq=head.seq + 1 if head else 1,
            at=datetime.now(UTC),
            actor="token:bench",
            action="document.read",
            target_type="document",
            target_id=f"doc-{i}",
            outcome="ok",
            detail={"with_text": True},
            prev_hash=head.hash if head else GENESIS,
        )
        event.hash = legacy_digest(event.prev_hash or GENESIS, event)
        s.add(event)
    return event.hash


def _databases(url: str | None, tmp: Path) -> tuple[list[str], list[str]]:
    """Two empty catalogs (URLs) and the databases to drop afterwards."""
    if url is None:
        return [f"sqlite:///{tmp / name}.sqlite3" for name in ("keyed", "plain")], []
    admin = create_engine(make_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    names = [f"cv_bench_audit_{uuid.uuid4().hex[:10]}_{n}" for n in ("keyed", "plain")]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base = make_url(url)
    return [base.set(database=n).render_as_string(hide_password=False) for n in names], names


def _drop(url: str, names: list[str]) -> None:
    admin = create_engine(make_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def bench_appends(keyed: AuditLog, plain: sessionmaker[Session], entries: int, chunks: int) -> dict:
    per_chunk = max(1, entries // chunks)
    spent = {"keyed": 0.0, "plain": 0.0}
    n = 0
    for _ in range(chunks):
        t0 = time.perf_counter()
        for i in range(n, n + per_chunk):
            keyed.record("token:bench", "document.read", "document", f"doc-{i}", detail={"with_text": True})
        spent["keyed"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n, n + per_chunk):
            plain_append(plain, i)
        spent["plain"] += time.perf_counter() - t0
        n += per_chunk
    keyed_rate, plain_rate = n / spent["keyed"], n / spent["plain"]
    return {
        "entries": n,
        "keyed_per_s": round(keyed_rate, 1),
        "plain_per_s": round(plain_rate, 1),
        "ratio": round(keyed_rate / plain_rate, 3),
    }


def bench_verify(keyed: AuditLog, plain: AuditLog) -> dict:
    out: dict[str, float] = {}
    for name, log in (("keyed", keyed), ("plain", plain)):
        t0 = time.perf_counter()
        report = log.verify()
        spent = time.perf_counter() - t0
        if not report.ok:
            raise SystemExit(f"{name} log does not verify: {report.problem}")
        out[f"{name}_per_s"] = round(report.entries / spent, 1)
    out["ratio"] = round(out["keyed_per_s"] / out["plain_per_s"], 3)
    return out


def bench_checkpoint_store(tmp: Path, count: int) -> dict:
    """Checkpoint write latency and the listing verify does, with ``count`` checkpoints kept."""
    store = LocalObjectStore(tmp / "objects")
    ring = KeyRing(tmp / "keys" / "audit.key")
    key_id, key = ring.current()
    until = datetime.now(UTC) + timedelta(days=1)
    start = datetime.now(UTC)
    t0 = time.perf_counter()
    for i in range(1, count + 1):
        cp = audit_checkpoints.Checkpoint(i, f"{i:064x}", key_id, start + timedelta(seconds=i))
        name = audit_checkpoints.object_key(cp.entries, cp.head_mac, key_id, cp.at)
        store.put_named(name, audit_checkpoints.encode(cp, key), "application/json", retain_until=until)
    write_ms = (time.perf_counter() - t0) / count * 1000
    t0 = time.perf_counter()
    found = audit_checkpoints.list_checkpoints(store)
    list_ms = (time.perf_counter() - t0) * 1000
    assert len(found) == count
    return {"checkpoints": count, "write_ms": round(write_ms, 2), "list_all_ms": round(list_ms, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=4000)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--checkpoints", type=int, default=2000)
    ap.add_argument("--database-url", default=None, help="a PostgreSQL server (admin URL); default SQLite")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cv-bench-audit-") as tmpdir:
        tmp = Path(tmpdir)
        urls, created = _databases(args.database_url, tmp)
        engines: list[Engine] = [make_engine(u) for u in urls]
        try:
            for engine in engines:
                upgrade(engine)
            ring = KeyRing(tmp / "bench-keys" / "audit.key")
            keyed = AuditLog(session_factory(engines[0]), ring, LocalObjectStore(tmp / "keyed-objects"))
            plain = AuditLog(session_factory(engines[1]), ring, LocalObjectStore(tmp / "plain-objects"))
            appends = bench_appends(keyed, plain.sessions, args.entries, args.chunks)
            keyed.checkpoint()
            verify = bench_verify(keyed, plain)
            keyed.close()
        finally:
            for engine in engines:
                engine.dispose()
            if created:
                _drop(args.database_url, created)
        store_figures = bench_checkpoint_store(tmp, args.checkpoints)
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"catalog: {backend}")
    print(
        f"append: keyed {appends['keyed_per_s']}/s, plain SHA-256 {appends['plain_per_s']}/s "
        f"over {appends['entries']} entries each: ratio {appends['ratio']}"
    )
    print(
        f"verify: keyed {verify['keyed_per_s']}/s, plain {verify['plain_per_s']}/s: ratio {verify['ratio']}"
    )
    print(
        f"checkpoints (local store): {store_figures['write_ms']} ms per write; listing "
        f"{store_figures['checkpoints']} takes {store_figures['list_all_ms']} ms"
    )
    print(json.dumps({"catalog": backend, "append": appends, "verify": verify, "checkpoints": store_figures}))


if __name__ == "__main__":
    main()

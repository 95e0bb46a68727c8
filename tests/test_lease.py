"""One driver per batch: the lease refuses a second driver on this machine and, on PostgreSQL,
on another machine (simulated by a second lock folder against the same catalog)."""

from __future__ import annotations

from pathlib import Path

from chartvault.archive.db import make_engine
from chartvault.ingest.lease import batch_lease


def test_second_driver_on_the_same_machine_is_refused(tmp_path: Path, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with batch_lease(engine, tmp_path / "locks", "b1") as first:
            assert first is True
            with batch_lease(engine, tmp_path / "locks", "b1") as second:
                assert second is False
            with batch_lease(engine, tmp_path / "locks", "b2") as other_batch:
                assert other_batch is True
        with batch_lease(engine, tmp_path / "locks", "b1") as again:
            assert again is True  # released with the first holder
    finally:
        engine.dispose()


def test_second_machine_is_refused_by_postgresql(tmp_path: Path, pg_url: str) -> None:
    a, b = make_engine(pg_url), make_engine(pg_url)
    try:
        with batch_lease(a, tmp_path / "machine-a", "b1") as first:
            assert first is True
            with batch_lease(b, tmp_path / "machine-b", "b1") as second:
                assert second is False  # the file lock is free there; the advisory lock is not
        with batch_lease(b, tmp_path / "machine-b", "b1") as later:
            assert later is True
    finally:
        a.dispose()
        b.dispose()

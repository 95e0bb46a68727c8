"""One driver per batch: a lease taken before a batch is processed.

Every stage is idempotent against crashes, but two live drivers (a CLI ``resume``
while the server runs, or two API replicas resuming at start) could both classify
and archive the same file. The lease is a file lock on this machine and, on a
PostgreSQL catalog, a session advisory lock, which covers several machines. Both
are released by the operating system or the database if the holder dies, so a
crashed driver never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

__all__ = ["batch_lease", "content_lease"]


def _pg_key(batch_id: str, kind: str = "batch") -> int:
    return int.from_bytes(
        hashlib.sha256(f"chartvault-{kind}:{batch_id}".encode()).digest()[:8], "big", signed=True
    )


@contextlib.contextmanager
def batch_lease(engine: Engine, lock_dir: Path, batch_id: str) -> Iterator[bool]:
    """Yield True while this process holds the batch's lease, False if another driver has it."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{batch_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        if engine.dialect.name != "postgresql":
            yield True
            return
        with engine.connect() as conn:
            key = _pg_key(batch_id)
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
    finally:
        os.close(fd)  # closing the descriptor drops the flock


@contextlib.contextmanager
def content_lease(engine: Engine, lock_dir: Path, sha256: str) -> Iterator[None]:
    """Hold, waiting for it, the right to archive these bytes: two batches holding the same file (two
    drivers, or a killed one resumed beside a new one) then archive it once, and the later one finds
    the earlier one's document and links to it. Held only across one file's stages."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    # One of 4,096 lock files, not one per content ever archived: two files sharing a stripe only wait for
    # each other's stages. (The PostgreSQL key is the whole sha256.)
    fd = os.open(lock_dir / f"content-{sha256[:3]}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if engine.dialect.name != "postgresql":
            yield
            return
        with engine.connect() as conn:
            key = _pg_key(sha256, "content")
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    finally:
        os.close(fd)

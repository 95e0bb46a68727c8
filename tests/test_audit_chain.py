"""The audit log against someone who controls the catalog but holds neither the key nor the store.

Each tampering case is done the way such a person would: straight in the database (SQL or
the ORM on the same catalog), recomputing whatever can be recomputed without the key. The
catalog is real SQLite and PostgreSQL; the store is the real local folder, and SeaweedFS for
the S3 lock tests.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from alembic import command
from s3fixtures import *  # noqa: F403 - s3_settings
from sqlalchemy import Engine, delete, select, text, update

from chartvault.archive import audit_checkpoints
from chartvault.archive.audit import (
    ALTERED,
    CHECKPOINT_INVALID,
    CHECKPOINT_MISMATCH,
    LINK_BROKEN,
    MISSING,
    TRUNCATED,
    UNKEYED,
    UNKNOWN_KEY,
    AuditLog,
    entry_mac,
    legacy_digest,
)
from chartvault.archive.audit_keys import AuditKeyError, KeyRing, key_id_of
from chartvault.archive.db import alembic_config, make_engine, session_factory, upgrade
from chartvault.archive.localstore import LocalObjectStore
from chartvault.archive.models import AuditEvent, JSONType, UTCDateTime
from chartvault.archive.objectstore import ObjectExistsError, ObjectStore, RetentionLockedError
from chartvault.archive.s3store import S3ObjectStore
from chartvault.config import Settings

ENTRIES = 10


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "audit.key"


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def _audit_log(engine: Engine, key_ring: KeyRing, store: ObjectStore, interval_s: float = 3600) -> AuditLog:
    return AuditLog(session_factory(engine), key_ring, store, checkpoint_interval_s=interval_s)


@pytest.fixture
def audit_log(db_engine: Engine, key_path: Path, store: LocalObjectStore) -> Iterator[AuditLog]:
    log = _audit_log(db_engine, KeyRing(key_path), store)
    yield log
    log.close()


def _fill(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.record("token:t1", "document.read", "document", f"doc-{i}", detail={"with_text": i % 2 == 0})


def _rows(engine: Engine) -> list[AuditEvent]:
    with session_factory(engine)() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def _id_at(engine: Engine, position: int) -> int:
    with engine.connect() as conn:
        return conn.execute(select(AuditEvent.id).where(AuditEvent.seq == position)).scalar_one()


def _reseal(
    engine: Engine, from_position: int, seal: str, key: bytes = b"", through: int | None = None
) -> None:
    """The insider's rewrite: change one entry, then re-seal it and every later one and relink them."""
    with session_factory(engine).begin() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        prev = events[from_position - 2].hash if from_position > 1 else "0" * 64
        events[from_position - 1].actor = "token:someone-else"
        for e in events[from_position - 1 : through]:
            e.prev_hash = prev
            if seal == "sha256":  # the old chain's recipe: no key needed
                e.hash = legacy_digest(prev, e)
            elif seal == "sha256-unkeyed":  # and pass the entries off as pre-MAC legacy ones
                e.key_id = None
                e.hash = legacy_digest(prev, e)
            elif seal == "wrong-key":  # an HMAC, under the insider's own key, claiming the real key id
                e.hash = entry_mac(key, e)
            else:  # an HMAC under the insider's key, naming it
                e.key_id = key_id_of(key)
                e.hash = entry_mac(key, e)
            prev = e.hash


# -- the chain as written --------------------------------------------------------------------------


def test_intact_log_verifies_and_every_entry_is_keyed(audit_log: AuditLog, db_engine: Engine) -> None:
    _fill(audit_log, ENTRIES)
    report = audit_log.verify()
    assert report.ok and report.problem is None
    assert report.entries == ENTRIES and report.legacy_entries == 0
    rows = _rows(db_engine)
    assert [r.seq for r in rows] == list(range(1, ENTRIES + 1))
    key_id, key = audit_log.key_ring.current()
    assert {r.key_id for r in rows} == {key_id} and report.keys_used == (key_id,)
    assert all(r.hash == entry_mac(key, r) for r in rows)
    assert report.head_mac == rows[-1].hash
    assert report.as_dict()["first_bad_id"] is None


def test_concurrent_appends_keep_one_chain(audit_log: AuditLog) -> None:
    threads = [threading.Thread(target=_fill, args=(audit_log, 15, 100 * t)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = audit_log.verify()
    assert report.ok, report.problem
    assert report.entries == 60


# -- tampering: each names the first bad entry -------------------------------------------------------


@pytest.mark.parametrize("seal", ["sha256", "sha256-unkeyed", "wrong-key", "own-key"])
def test_edited_entry_with_recomputed_chain_is_named(
    audit_log: AuditLog, db_engine: Engine, seal: str
) -> None:
    _fill(audit_log, ENTRIES)
    audit_log.checkpoint()
    _reseal(db_engine, 5, seal, key=os.urandom(32))
    report = audit_log.verify()
    assert not report.ok and report.problem is not None
    expected = {"sha256": ALTERED, "sha256-unkeyed": UNKEYED, "wrong-key": ALTERED, "own-key": UNKNOWN_KEY}
    assert report.problem.code == expected[seal]
    assert report.problem.position == 5
    assert report.problem.entry_id == _id_at(db_engine, 5)


def test_edit_without_reseal_is_named(audit_log: AuditLog, db_engine: Engine) -> None:
    _fill(audit_log, ENTRIES)
    with db_engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(outcome="refused"))
    report = audit_log.verify()
    assert report.problem is not None and (report.problem.code, report.problem.position) == (ALTERED, 3)


def test_deleted_middle_entry_is_named(audit_log: AuditLog, db_engine: Engine) -> None:
    _fill(audit_log, ENTRIES)
    after = _id_at(db_engine, 6)
    with db_engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
    report = audit_log.verify()
    assert report.problem is not None
    assert (report.problem.code, report.problem.position, report.problem.entry_id) == (MISSING, 5, after)


def test_deleted_middle_entry_with_positions_renumbered_is_named(
    audit_log: AuditLog, db_engine: Engine
) -> None:
    _fill(audit_log, ENTRIES)
    after = _id_at(db_engine, 6)
    with db_engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
        for seq in range(6, ENTRIES + 1):  # one by one: the unique index refuses a bulk shift
            conn.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq - 1))
    report = audit_log.verify()
    assert report.problem is not None
    assert (report.problem.code, report.problem.position, report.problem.entry_id) == (LINK_BROKEN, 5, after)


def test_deleted_newest_entries_after_a_checkpoint_are_named(audit_log: AuditLog, db_engine: Engine) -> None:
    _fill(audit_log, ENTRIES)
    cp = audit_log.checkpoint()
    assert cp.entries == ENTRIES
    with db_engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq >= 8))
    report = audit_log.verify()
    assert report.problem is not None
    assert (report.problem.code, report.problem.position, report.problem.entry_id) == (TRUNCATED, 8, None)
    assert f"{ENTRIES} entries" in report.problem.message


def test_deleted_newest_entries_then_new_ones_are_caught_at_the_checkpoint(
    audit_log: AuditLog, db_engine: Engine
) -> None:
    """Truncate, let the service append again past the checkpoint: the chain is valid, the anchor is not."""
    _fill(audit_log, 5)
    audit_log.checkpoint()
    _fill(audit_log, 5, start=5)
    audit_log.checkpoint()
    with db_engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq >= 8))
    _fill(audit_log, 6, start=50)  # positions 8..13, sealed with the real key
    report = audit_log.verify()
    assert report.problem is not None
    assert (report.problem.code, report.problem.position) == (CHECKPOINT_MISMATCH, 6)
    assert report.problem.entry_id == _id_at(db_engine, 6)


def test_entries_after_the_last_checkpoint_are_the_stated_window(
    audit_log: AuditLog, db_engine: Engine
) -> None:
    """What the README says stays possible: entries newer than the last checkpoint can go unseen."""
    _fill(audit_log, ENTRIES)
    audit_log.checkpoint()
    _fill(audit_log, 3, start=ENTRIES)
    report = audit_log.verify()
    assert report.ok and report.since_checkpoint == 3
    with db_engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq > ENTRIES))
    assert audit_log.verify().ok


def test_whole_log_passed_off_as_legacy_is_named(audit_log: AuditLog, db_engine: Engine) -> None:
    _fill(audit_log, ENTRIES)
    audit_log.checkpoint()  # records that the log has no legacy entries
    _reseal(db_engine, 1, "sha256-unkeyed")
    problem = audit_log.verify().problem
    assert problem is not None and (problem.code, problem.position) == (UNKEYED, 1)


def test_checkpoint_whose_body_does_not_verify_is_reported(
    audit_log: AuditLog, store: LocalObjectStore
) -> None:
    """Only someone with write access to the store can do this; verify still refuses the forgery."""
    _fill(audit_log, ENTRIES)
    real = audit_log.checkpoint()
    later = real.at + timedelta(seconds=1)
    forged = audit_checkpoints.Checkpoint(real.entries, real.head_mac, real.key_id, later)
    name = audit_checkpoints.object_key(forged.entries, forged.head_mac, forged.key_id, later)
    body = audit_checkpoints.encode(forged, b"not the key" * 4)
    store.put_named(name, body, "application/json", retain_until=datetime.now(UTC) + timedelta(days=1))
    report = audit_log.verify()
    assert report.problem is not None and report.problem.code == CHECKPOINT_INVALID
    assert "MAC does not verify" in report.problem.message and report.problem.position is None


# -- the key ------------------------------------------------------------------------------------------


def test_key_file_is_created_0600_in_a_0700_folder(tmp_path: Path, key_path: Path, db_engine: Engine) -> None:
    old = os.umask(0)  # the most permissive umask: the modes must not depend on it
    try:
        log = _audit_log(db_engine, KeyRing(key_path), LocalObjectStore(tmp_path / "objects"))
        assert not key_path.exists()  # created on first use, not before
        log.record("cli:op", "token.create", "token", "t1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    key_id, key = log.key_ring.current()
    assert len(key) == 64  # 256 random bits as hex: the same form as an environment key
    assert [p.name for p in key_path.parent.iterdir()] == ["audit.key"]  # no temp file left behind
    with db_engine.connect() as conn:  # the catalog holds the key's id, never the key
        stored = conn.execute(select(AuditEvent.key_id, AuditEvent.hash)).one()
    assert stored.key_id == key_id and key.hex() not in json.dumps(list(stored))


def test_key_file_readable_by_others_is_refused(audit_log: AuditLog, key_path: Path) -> None:
    _fill(audit_log, 1)
    key_path.chmod(0o644)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        audit_log.record("cli:op", "document.read")


def test_environment_key_needs_no_file_and_must_be_long(
    db_engine: Engine, key_path: Path, store: LocalObjectStore
) -> None:
    secret = "e" * 40
    log = _audit_log(db_engine, KeyRing(key_path, env_key=secret), store)
    _fill(log, 3)
    assert not key_path.exists()
    assert {r.key_id for r in _rows(db_engine)} == {key_id_of(secret.encode())}
    assert log.verify().ok
    with pytest.raises(AuditKeyError, match="at least 32"):
        KeyRing(key_path, env_key="short")
    with pytest.raises(AuditKeyError, match="CHARTVAULT_AUDIT_RETIRED_KEYS"):
        KeyRing(key_path, env_key=secret).rotate()


def test_settings_name_the_key_sources(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d", audit_key="x" * 32, audit_retired_keys="y" * 32 + ", " + "z" * 32)
    ring = KeyRing.from_settings(s)
    assert ring.path == tmp_path / "d" / "keys" / "audit.key"
    assert ring.current()[0] == key_id_of(b"x" * 32)
    assert ring.get(key_id_of(b"z" * 32)) == b"z" * 32
    assert "x" * 32 not in repr(s)


def test_rotation_keeps_old_entries_verifiable(
    db_engine: Engine, key_path: Path, store: LocalObjectStore
) -> None:
    log = _audit_log(db_engine, KeyRing(key_path), store)
    other_process = _audit_log(db_engine, KeyRing(key_path), store)  # e.g. the server, beside the CLI
    _fill(log, 3)
    old_id, new_id = log.rotate_key()
    assert old_id != new_id
    _fill(log, 2, start=3)
    _fill(other_process, 2, start=5)  # picks up the rotated file without a restart
    assert [r.key_id for r in _rows(db_engine)] == [old_id] * 3 + [new_id] * 4
    report = log.verify()
    assert report.ok and report.keys_used == tuple(sorted((old_id, new_id)))
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    # A verifier that lost the old key cannot vouch for the old entries, and says which key it needs.
    new_key = KeyRing(key_path).get(new_id)
    assert new_key is not None
    only_new = _audit_log(db_engine, KeyRing(None, env_key=new_key.decode()), store)
    problem = only_new.verify().problem
    assert problem is not None and (problem.code, problem.position) == (UNKNOWN_KEY, 1)
    assert old_id in problem.message
    # Moving to an environment key: the file's keys, or retired environment keys, still verify.
    env_ring = KeyRing(None, env_key="n" * 40, env_retired=[new_key.decode()])
    assert env_ring.get(new_id) == new_key


# -- checkpoints ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_checkpoints_follow_the_interval_and_shutdown(
    db_engine: Engine, key_path: Path, tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    interval = 0.4
    log = _audit_log(db_engine, KeyRing(key_path), store, interval_s=interval)

    def written() -> list[int]:
        return [cp.entries for cp in audit_checkpoints.list_checkpoints(store)]

    def wait_for(expected: list[int]) -> float:
        start = time.monotonic()
        while written() != expected and time.monotonic() - start < 10:
            time.sleep(0.02)
        assert written() == expected
        return time.monotonic() - start

    started = time.monotonic()
    _fill(log, 3)
    assert written() == []  # not before the interval has elapsed
    wait_for([3])  # then, with the process idle, the timer covers the new entries
    assert time.monotonic() - started >= interval
    _fill(log, 1, start=3)
    assert written() == [3]  # one checkpoint per interval at most
    wait_for([3, 4])
    time.sleep(3 * interval)
    assert written() == [3, 4]  # nothing appended, nothing written
    _fill(log, 1, start=4)
    log.close()
    assert written() == [3, 4, 5]  # at shutdown, without waiting for the interval
    log.close()
    assert written() == [3, 4, 5]


def test_append_writes_a_due_checkpoint_itself(db_engine: Engine, key_path: Path, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    now = [0.0]
    log = AuditLog(session_factory(db_engine), KeyRing(key_path), store, 300, clock=lambda: now[0])
    _fill(log, 2)
    time.sleep(0.2)  # the timer ticks, but on this clock no time has passed
    assert audit_checkpoints.list_checkpoints(store) == []
    now[0] += 299
    _fill(log, 1, start=2)
    assert audit_checkpoints.list_checkpoints(store) == []
    now[0] += 1
    _fill(log, 1, start=3)  # this append finds the interval elapsed and writes the checkpoint
    assert [cp.entries for cp in audit_checkpoints.list_checkpoints(store)] == [4]
    log.close()


def test_checkpoint_objects_are_locked_in_the_local_store(
    audit_log: AuditLog, store: LocalObjectStore
) -> None:
    _fill(audit_log, ENTRIES)
    cp = audit_log.checkpoint()
    assert cp.object_key.startswith(f"audit-checkpoints/{ENTRIES:012d}-")
    (listed,) = audit_checkpoints.list_checkpoints(store)
    assert (listed.entries, listed.head_mac, listed.key_id) == (ENTRIES, cp.head_mac, cp.key_id)
    ref = _ref(store, cp.object_key)
    path = store.root / "named" / cp.object_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    mode, until = store.retention(ref)
    assert mode == "GOVERNANCE" and until is not None and until > datetime.now(UTC) + timedelta(days=2000)
    with pytest.raises(RetentionLockedError):
        store.delete_version(ref)
    with pytest.raises(ObjectExistsError):
        store.put_named(
            cp.object_key, b"{}", "application/json", retain_until=datetime.now(UTC) + timedelta(1)
        )
    body = json.loads(store.read_named(cp.object_key))
    assert body["entries"] == ENTRIES and body["head_mac"] == cp.head_mac and len(body["mac"]) == 64


def _ref(store: ObjectStore, key: str) -> object:
    from chartvault.archive.objectstore import ObjectRef

    data = store.read_named(key)
    return ObjectRef(key=key, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


@pytest.fixture
def s3_store(s3_settings: Settings) -> S3ObjectStore:
    store = S3ObjectStore.from_settings(s3_settings, bucket=f"cv-audit-{uuid.uuid4().hex[:12]}")
    store.ensure_bucket()
    return store


def test_checkpoints_are_locked_on_s3_and_verify_holds(
    s3_store: S3ObjectStore, sqlite_url: str, key_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    log = _audit_log(engine, KeyRing(key_path), s3_store)
    _fill(log, ENTRIES)
    cp = log.checkpoint()
    assert cp.version_id
    client, bucket = s3_store.client, s3_store.bucket
    from minio.deleteobjects import DeleteObject

    # Deleting the locked version is refused by the server itself, bypass or not (no bypass right here).
    (error,) = client.remove_objects(bucket, [DeleteObject(cp.object_key, version_id=cp.version_id)])
    assert error.code == "AccessDenied"
    with pytest.raises(ObjectExistsError):
        s3_store.put_named(
            cp.object_key, b"{}", "application/json", retain_until=datetime.now(UTC) + timedelta(1)
        )
    # Around ChartVault, an overwrite adds a version and a plain delete adds a marker; the locked one stays.
    forged = json.dumps({"entries": 7, "mac": "0" * 64}).encode()
    client.put_object(bucket, cp.object_key, io.BytesIO(forged), len(forged))
    client.remove_object(bucket, cp.object_key)
    assert log.verify().ok
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq >= 8))
    problem = log.verify().problem
    assert problem is not None and (problem.code, problem.position) == (TRUNCATED, 8)
    engine.dispose()


# -- entries from before the MAC chain ----------------------------------------------------------------------


def _legacy_entries(engine: Engine, n: int) -> None:
    """Write ``n`` entries the way the plain SHA-256 chain did, on a catalog at revision 0004."""
    table = sa.Table(
        "audit_events",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UTCDateTime()),
        *(sa.Column(c, sa.String) for c in ("actor", "action", "target_type", "target_id", "outcome")),
        sa.Column("detail", JSONType),
        sa.Column("prev_hash", sa.String),
        sa.Column("hash", sa.String),
    )
    prev = "0" * 64
    with engine.begin() as conn:
        for i in range(n):
            row = {
                "at": datetime.now(UTC),
                "actor": "cli:op",
                "action": "document.read",
                "target_type": "document",
                "target_id": f"old-{i}",
                "outcome": "ok",
                "detail": {"with_text": True},
            }
            digest = legacy_digest(prev, SimpleNamespace(**row))  # type: ignore[arg-type]
            conn.execute(table.insert().values(**row, prev_hash=prev, hash=digest))
            prev = digest


@pytest.fixture
def legacy_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0004_access_release")
    _legacy_entries(engine, 3)
    upgrade(engine)  # to head: 0005_audit_mac numbers the legacy entries
    yield engine
    engine.dispose()


def test_legacy_entries_verify_and_anchor_the_keyed_chain(
    legacy_engine: Engine, key_path: Path, store: LocalObjectStore
) -> None:
    log = _audit_log(legacy_engine, KeyRing(key_path), store)
    assert [(r.seq, r.key_id) for r in _rows(legacy_engine)] == [(1, None), (2, None), (3, None)]
    _fill(log, 3)
    log.checkpoint()
    report = log.verify()
    assert report.ok, report.problem
    assert (report.entries, report.legacy_entries) == (6, 3)
    assert report.newest_checkpoint is not None and report.newest_checkpoint.legacy_entries == 3
    # Recomputing the legacy part (no key needed) breaks the first keyed entry, whose MAC seals its link.
    _reseal(legacy_engine, 2, "sha256-unkeyed", through=3)
    problem = log.verify().problem
    assert problem is not None and (problem.code, problem.position) == (LINK_BROKEN, 4)
    new_head = _rows(legacy_engine)[2].hash
    with legacy_engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(prev_hash=new_head))
    problem = log.verify().problem
    assert problem is not None and (problem.code, problem.position) == (ALTERED, 4)
    # Passing keyed entries off as legacy ones: the checkpoint says where the legacy part ends.
    _reseal(legacy_engine, 4, "sha256-unkeyed")
    problem = log.verify().problem
    assert problem is not None and (problem.code, problem.position) == (UNKEYED, 4)


def test_legacy_entry_edited_without_reseal_is_named(
    legacy_engine: Engine, key_path: Path, store: LocalObjectStore
) -> None:
    log = _audit_log(legacy_engine, KeyRing(key_path), store)
    _fill(log, 2)
    with legacy_engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET target_id = 'other' WHERE seq = 2"))
    problem = log.verify().problem
    assert problem is not None and (problem.code, problem.position) == (ALTERED, 2)


# -- the CLI and the API show the report ---------------------------------------------------------------------


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "chartvault.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.slow
def test_cli_verify_names_deleted_newest_entries_and_rotates(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i in range(3):
        assert (
            _cli(
                data, "user", "create", f"user{i}", "--role", "staff", "--name", f"U{i}", "--no-password"
            ).returncode
            == 0
        )
    ok = _cli(data, "audit", "verify", "--json")  # every CLI run checkpointed at exit
    report = json.loads(ok.stdout)
    assert ok.returncode == 0 and report["ok"] and report["checkpoints"] == 3
    assert report["newest_checkpoint"]["entries"] == 3
    rotated = _cli(data, "audit", "rotate-key", "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["checkpoint"]["entries"] == 5  # verify, rotation
    intact = _cli(data, "audit", "verify")
    assert intact.returncode == 0 and "intact: 5 entries" in intact.stdout
    engine = make_engine(f"sqlite:///{data / 'catalog.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
    engine.dispose()
    broken = _cli(data, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at position 4" in broken.stderr and "were deleted" in broken.stderr


def test_api_verify_reports_checkpoints_and_first_bad_entry(settings: Settings) -> None:
    from conftest import api_client

    with api_client(settings) as c:
        services = c.app.state.services
        assert c.get("/audit/verify").json()["ok"]
        services.access.checkpoint_audit()
        with services.parts.catalog[0].begin() as conn:
            conn.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor="token:nobody"))
        body = c.get("/audit/verify").json()
    assert body["ok"] is False and body["problem"] == ALTERED
    assert body["first_bad_position"] == 2 and body["first_bad_id"] is not None
    assert body["checkpoints"] == 1 and body["newest_checkpoint"]["entries"] >= 3
    assert "token:nobody" not in json.dumps(body)


def test_entry_mac_covers_position_and_key_id(audit_log: AuditLog, db_engine: Engine) -> None:
    _fill(audit_log, 1)
    (row,) = _rows(db_engine)
    _, key = audit_log.key_ring.current()
    columns = [c.name for c in AuditEvent.__table__.columns]
    for change in ({"seq": 2}, {"key_id": "k" + "0" * 16}, {"prev_hash": "1" * 64}):
        moved = SimpleNamespace(**{c: getattr(row, c) for c in columns})
        for k, v in change.items():
            setattr(moved, k, v)
        assert not hmac.compare_digest(entry_mac(key, moved), row.hash or "")  # type: ignore[arg-type]


@pytest.mark.slow
def test_an_administrator_verifies_the_chain_from_a_page(settings: Settings) -> None:
    from webfixtures import PASSWORD, csrf_of, sign_in, web_client

    from chartvault.services import Services

    with Services(settings) as services:
        services.access.create_user("root", "Test admin", "admin", password=PASSWORD)
        services.access.create_user("clerk", "Test staff", "staff", password=PASSWORD)
    with web_client(settings) as web:
        assert sign_in(web, "root").status_code == 303
        page = web.get("/ui/admin/audit")
        assert page.status_code == 200 and 'href="/ui/admin/audit" aria-current="page"' in page.text
        form = {"csrf": csrf_of(page.text)}
        intact = web.post("/ui/admin/audit", data=form)
        assert intact.status_code == 200 and "The chain is intact" in intact.text
        assert web.post("/ui/admin/audit").status_code == 403  # no CSRF token
        with Services(settings) as services, services.parts.sessions() as s:  # someone edits an entry
            first = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).first()
            assert first is not None
            s.execute(update(AuditEvent).where(AuditEvent.id == first.id).values(outcome="refused"))
            s.commit()
        broken = web.post("/ui/admin/audit", data=form)
        assert broken.status_code == 409 and "The chain is broken" in broken.text
        assert "Altered" in broken.text and f"entry #{first.id}" in broken.text
    with web_client(settings) as web:
        assert sign_in(web, "clerk").status_code == 303
        assert web.get("/ui/admin/audit").status_code == 403
    with Services(settings) as services, services.parts.sessions() as s:
        checks = s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.verify")).all()
        assert [c.outcome for c in checks] == ["ok", "broken"]  # each check is itself recorded

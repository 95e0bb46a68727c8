"""Catalog plumbing on SQLite and PostgreSQL: migrations, schema, round trips, constraints."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from multiprocessing import get_context

import pytest
import sqlalchemy.exc
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text

from chartvault.archive.db import (
    SCHEMA_HEAD,
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    session_factory,
    transaction,
    upgrade,
)
from chartvault.archive.models import (
    Base,
    Batch,
    BatchFile,
    Document,
    HotFolderEntry,
    Page,
    Patient,
    new_id,
    utcnow,
)

SHA = "ab" * 32


def _schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, Base.metadata))


def _batch_with_file(name: str = "scan.pdf", seq: int = 1) -> tuple[Batch, BatchFile]:
    batch = Batch(source="cli")
    bf = BatchFile(seq=seq, original_name=name, sha256=SHA, size=10)
    batch.files.append(bf)
    return batch, bf


def test_upgrade_twice_is_a_noop(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision() == SCHEMA_HEAD
        tables = set(inspect(engine).get_table_names())
        upgrade(engine)
        upgrade(db_url)  # the URL form makes and disposes its own engine
        assert current_revision(engine) == head_revision()
        inspect_again = inspect(engine)
        assert set(inspect_again.get_table_names()) == tables
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.slow
def test_concurrent_upgrades_do_not_collide(db_url: str) -> None:
    # API server, CLI and watcher starting at once on a fresh catalog. Without the
    # migration lock all but one fail with "table already exists".
    with ProcessPoolExecutor(max_workers=3, mp_context=get_context("spawn")) as pool:
        for fut in [pool.submit(upgrade, db_url) for _ in range(3)]:
            fut.result()
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def test_migrated_schema_matches_models(db_engine: Engine) -> None:
    assert _schema_diff(db_engine) == []


def test_downgrade_to_base_and_back(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert current_revision(db_engine) is None
    assert set(inspect(db_engine).get_table_names()) <= {"alembic_version"}
    upgrade(db_engine)
    assert _schema_diff(db_engine) == []


def test_chain_round_trip(db_engine: Engine) -> None:
    factory = session_factory(db_engine)
    name = "Überweisung Müller – 日本語 ✓.pdf"
    manifest = {"station": "Scan-Ö1", "files": [{"name": name, "pages": 2, "mrn": "000123"}], "n": None}
    with transaction(factory) as s:
        batch = Batch(
            id=new_id(), source="hotfolder", operator="Zoë", manifest=manifest, flags=[{"code": "x", "n": 1}]
        )
        bf = BatchFile(seq=1, original_name=name, sha256=SHA, size=123, mrn_hint="000123")
        batch.files.append(bf)
        p1 = Page(page_no=1, words=[["Müller", 96.5, 1, 2, 3, 4]], identifiers={"mrn": "000123"})
        p2 = Page(page_no=2, words=None, identifiers=None)
        bf.pages.extend([p1, p2])
        patient = Patient(mrn="000123", name="Zoë Ødegård", dob=date(1950, 1, 31))
        doc = Document(
            file=bf,
            batch_id=batch.id,
            page_count=2,
            sha256=SHA,
            size=123,
            mime="application/pdf",
            mrn="000123",
            patient_name="Zoë Ødegård",
            dob=date(1950, 1, 31),
            date_of_service=date(2024, 2, 29),
            identifier_confidence={"mrn": 0.98, "dob": 0.5},
            patient=patient,
            archived_at=datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        )
        doc.pages.extend([p1, p2])
        s.add(batch)
        s.flush()
        ids = (batch.id, bf.id, doc.id)

    with factory() as s:
        batch = s.get(Batch, ids[0])
        assert batch is not None
        assert batch.manifest == manifest
        assert batch.flags == [{"code": "x", "n": 1}]
        assert batch.created_at.tzinfo is not None
        assert abs(utcnow() - batch.created_at) < timedelta(minutes=5)
        (bf,) = batch.files
        assert bf.original_name == name
        assert bf.mrn_hint == "000123"
        assert [p.page_no for p in bf.pages] == [1, 2]
        assert bf.pages[0].words == [["Müller", 96.5, 1, 2, 3, 4]]
        (doc,) = bf.documents
        assert doc.id == ids[2]
        assert doc.mrn == "000123" and isinstance(doc.mrn, str)
        assert doc.patient is not None and doc.patient.name == "Zoë Ødegård"
        assert doc.dob == date(1950, 1, 31) and doc.date_of_service == date(2024, 2, 29)
        assert doc.identifier_confidence == {"mrn": 0.98, "dob": 0.5}
        assert doc.archived_at == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
        assert doc.archived_at.tzinfo == UTC
        assert [p.page_no for p in doc.pages] == [1, 2]
        # None in a JSON column is SQL NULL, so it can be queried for.
        missing = s.scalars(select(Page.page_no).where(Page.identifiers.is_(None))).all()
        assert missing == [2]
        found = s.scalars(select(Document.id).where(Document.mrn == "000123")).all()
        assert found == [ids[2]]
        assert s.scalars(select(Document.id).where(Document.mrn == "123")).all() == []


def test_naive_datetime_is_refused(db_engine: Engine) -> None:
    factory = session_factory(db_engine)
    with pytest.raises(sqlalchemy.exc.StatementError, match="naive datetime"), transaction(factory) as s:
        s.add(Batch(source="cli", completed_at=datetime(2024, 1, 1)))


def test_same_file_page_twice_is_refused(db_engine: Engine) -> None:
    factory = session_factory(db_engine)
    with transaction(factory) as s:
        batch, bf = _batch_with_file()
        bf.pages.append(Page(page_no=1))
        s.add(batch)
    file_id = bf.id
    with pytest.raises(sqlalchemy.exc.IntegrityError), transaction(factory) as s:
        s.add(Page(file_id=file_id, page_no=1))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Page)) == 1


@pytest.mark.parametrize("what", ["file_seq", "patient_mrn", "document_first_page", "hotfolder_claim"])
def test_unique_constraints(db_engine: Engine, what: str) -> None:
    factory = session_factory(db_engine)
    with transaction(factory) as s:
        batch, bf = _batch_with_file()
        s.add(batch)
        s.flush()
        batch_id, file_id = batch.id, bf.id

    def doc() -> Document:
        return Document(
            file_id=file_id, batch_id=batch_id, first_page=1, page_count=1, sha256=SHA, size=1, mime="x/y"
        )

    def make() -> object:
        if what == "file_seq":
            return BatchFile(batch_id=batch_id, seq=1, original_name="b.pdf", sha256=SHA)
        if what == "patient_mrn":
            return Patient(mrn="0042")
        if what == "document_first_page":
            return doc()
        return HotFolderEntry(folder="/in", claim_name="a.pdf")

    if what != "file_seq":
        with transaction(factory) as s:
            s.add(make())
    with pytest.raises(sqlalchemy.exc.IntegrityError), transaction(factory) as s:
        s.add(make())


def test_foreign_keys_are_enforced(db_engine: Engine) -> None:
    # On SQLite this only holds with PRAGMA foreign_keys=ON on every connection.
    factory = session_factory(db_engine)
    with pytest.raises(sqlalchemy.exc.IntegrityError), transaction(factory) as s:
        s.add(Page(file_id="0" * 32, page_no=1))


def test_transaction_commits_or_rolls_back(db_engine: Engine) -> None:
    factory = session_factory(db_engine)
    with pytest.raises(RuntimeError, match="boom"), transaction(factory) as s:
        s.add(Batch(source="cli"))
        s.flush()  # reached the database, still undone
        raise RuntimeError("boom")
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == 0

    with transaction(factory) as s:
        batch = Batch(source="api")
        s.add(batch)
    # expire_on_commit=False: the object is still readable after the session closed.
    assert batch.source == "api" and batch.id
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == 1


def test_sqlite_connection_settings(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()


def test_sqlite_immediate_transaction_takes_the_write_lock(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    path = sqlite_url.removeprefix("sqlite:///")
    factory = session_factory(engine)
    try:
        with transaction(factory, immediate=True) as s:
            s.execute(select(func.count()).select_from(Batch))  # a read only, yet the lock is held
            other = sqlite3.connect(path, timeout=0.1)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute(
                        "INSERT INTO patients (id, mrn, created_at) VALUES ('x', '1', '2024-01-01')"
                    )
            finally:
                other.close()
            s.add(Patient(mrn="7"))
        with factory() as s:
            assert s.scalars(select(Patient.mrn)).all() == ["7"]
    finally:
        engine.dispose()

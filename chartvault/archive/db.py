"""Catalog database plumbing: engines, migrations, sessions.

The same code runs against one SQLite file shared by several processes (API
server, CLI, hot-folder watcher) or against PostgreSQL; what differs is set here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# The newest migration. Checking it with one query lets a command skip loading Alembic when the
# catalog is already current (tests/test_archive_db.py keeps it equal to Alembic's own head).
SCHEMA_HEAD = "0014_job_cancel"

# How long a SQLite writer waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Key of the PostgreSQL advisory lock that serialises concurrent upgrades ("CVMIGRAT").
_PG_MIGRATION_LOCK_KEY = 0x43564D4947524154

# Alembic's ``context``/``op`` are process-global proxies: one migration run at a time per process.
_ALEMBIC_LOCK = threading.Lock()


def _is_sqlite_file(url: URL) -> bool:
    db = url.database or ""
    return db not in ("", ":memory:") and "mode=memory" not in db and not db.startswith("file::memory:")


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine with per-backend settings.

    SQLite: WAL (readers never block the writer), synchronous=NORMAL (safe with
    WAL), foreign keys enforced, and a busy timeout so concurrent processes wait
    for the write lock instead of failing at once. PostgreSQL: a pinged pool so
    connections dropped by a server restart are replaced transparently.
    ``kwargs`` are passed to ``create_engine`` and override these defaults.
    """
    u = make_url(url)
    backend = u.get_backend_name()
    # Bound parameters are names, MRNs and page text: keep them out of every SQL error message,
    # so no exception that reaches a log (e.g. log.exception in the batch runner) carries PHI.
    kwargs = {"hide_parameters": True, **kwargs}
    if backend == "sqlite":
        engine = create_engine(u, **kwargs)
        wal = _is_sqlite_file(u)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            try:
                # busy_timeout first: switching to WAL itself needs the lock.
                cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                if wal:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
            finally:
                cur.close()

        return engine
    if backend == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")  # psycopg 3 is the installed driver
        options: dict[str, Any] = {
            "pool_pre_ping": True,
            "pool_size": 5,
            "max_overflow": 10,
            "pool_timeout": 30,
            "pool_recycle": 1800,
            "connect_args": {"connect_timeout": 10, "application_name": "chartvault"},
        }
        options.update(kwargs)
        return create_engine(u, **options)
    return create_engine(u, **{"pool_pre_ping": True, **kwargs})


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations, built in code (no alembic.ini)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The revision the packaged migrations lead to (what ``upgrade`` brings a catalog to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine_or_url: Engine | str | URL) -> None:
    """Migrate the catalog to the latest revision; a no-op when it is already there.

    Meant to be called at every start. Concurrent starts are serialised by a lock
    held for the whole upgrade (an advisory lock on PostgreSQL, the database write
    lock via BEGIN IMMEDIATE on SQLite), and the whole upgrade is one transaction,
    so a crash mid-way leaves the previous revision intact.
    """
    if isinstance(engine_or_url, Engine):
        _upgrade_with(engine_or_url)
        return
    engine = make_engine(engine_or_url)
    try:
        _upgrade_with(engine)
    finally:
        engine.dispose()


def _upgrade_with(engine: Engine) -> None:
    with _ALEMBIC_LOCK:
        _upgrade_locked(engine)


def _upgrade_locked(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        _upgrade_sqlite(engine)
        return
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK_KEY})
        _alembic_upgrade(conn)
        conn.commit()


def _upgrade_sqlite(engine: Engine) -> None:
    # pysqlite (legacy transaction control) sends statements other than DML
    # straight to SQLite, so the PRAGMA and BEGIN below take effect as written.
    # Foreign keys are off during the upgrade because batch-mode migrations copy
    # and drop tables (SQLite cannot change that pragma inside a transaction);
    # they are checked before commit and switched back on for the pooled connection.
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                _alembic_upgrade(conn)
                problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise RuntimeError(f"migration left {len(problems)} foreign key violations")
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def _alembic_upgrade(conn: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(conn), "head")


def current_revision(engine: Engine) -> str | None:
    """The catalog's Alembic revision, or None for an empty (never migrated) database."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no alembic_version table yet
        return None


def open_catalog(url: str | URL) -> tuple[Engine, sessionmaker[Session]]:
    """An engine and session factory on a catalog brought to the current schema.

    A catalog already at ``SCHEMA_HEAD`` costs one query; otherwise it is migrated (locked against
    concurrent starts, see ``upgrade``).
    """
    engine = make_engine(url)
    if current_revision(engine) != SCHEMA_HEAD:
        upgrade(engine)
    return engine, session_factory(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay usable after commit (handed to other layers, serialised to JSON)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], *, immediate: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back if it raises.

    ``immediate=True`` takes SQLite's write lock at the start (BEGIN IMMEDIATE), for
    read-then-write work such as claiming a queue item, so two processes cannot both
    read the same state and then fail or race on the write. On PostgreSQL it does
    nothing; use row locks (``with_for_update``) there.
    """
    with factory() as session, session.begin():
        if immediate and session.get_bind().dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE"))
        yield session

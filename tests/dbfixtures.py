"""Catalog database fixtures, a pytest plugin (conftest: ``from dbfixtures import *``).

``db_url`` runs a test on both SQLite and PostgreSQL. PostgreSQL tests get a fresh
database on the server at ``CHARTVAULT_TEST_PG_URL``; when that server is not
reachable they are skipped, unless ``CHARTVAULT_REQUIRE_SERVICES=1`` (CI), where a
missing service is a failure rather than a silently smaller test run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from chartvault.archive.db import SCHEMA_HEAD, current_revision, make_engine, upgrade

# What ``from dbfixtures import *`` in conftest brings in: the fixtures only.
__all__ = ["db_engine", "db_url", "migrated_pg", "migrated_sqlite", "pg_server", "pg_url", "sqlite_url"]

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _require_services() -> bool:
    return os.environ.get("CHARTVAULT_REQUIRE_SERVICES") == "1"


def _pg_admin_url() -> URL:
    url = make_url(os.environ.get("CHARTVAULT_TEST_PG_URL", DEFAULT_PG_URL))
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _admin_engine(url: URL) -> Engine:
    return create_engine(
        url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )


@pytest.fixture(scope="session")
def pg_server() -> URL:
    """The admin URL of the test PostgreSQL server, checked once per session."""
    url = _pg_admin_url()
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {url.render_as_string(hide_password=True)}: {exc}"
        if _require_services():
            pytest.fail(f"{reason} (CHARTVAULT_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite catalog file of its own, in the test's temp folder."""
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


@contextlib.contextmanager
def _scratch_database(server: URL, prefix: str) -> Iterator[str]:
    """A new, uniquely named, empty database on ``server``, dropped when the block ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(server)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield name
    finally:
        try:
            with admin.connect() as conn:
                # FORCE: an engine a test forgot to dispose must not keep the database alive.
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


@pytest.fixture
def pg_url(pg_server: URL) -> Iterator[str]:
    """A freshly created, uniquely named PostgreSQL database, dropped after the test."""
    with _scratch_database(pg_server, "chartvault_test") as name:
        yield pg_server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty catalog database URL, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(fixture)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite catalog brought to the schema head by the real migrations, once per test process.

    A new catalog costs 0.25-0.5 s of Alembic (SQLite's batch table copies), paid hundreds of times
    over the suite; a copy of this one costs a millisecond. The migrations themselves are still run on
    empty catalogs by the tests that are about them (``db_url``, test_archive_db, test_audit_chain)."""
    path = tmp_path_factory.mktemp("template") / "catalog.sqlite3"
    upgrade(f"sqlite:///{path}")  # disposes its engine: the WAL is checkpointed into the file
    return path


@pytest.fixture(scope="session")
def migrated_pg(pg_server: URL) -> Iterator[str]:
    """The name of a PostgreSQL database at the schema head, once per test process: the template a
    test's database is created from (``CREATE DATABASE ... TEMPLATE``, 0.1 s against 0.7 s of
    migrations). Nothing connects to it after its migration, as PostgreSQL requires of a template."""
    with _scratch_database(pg_server, "chartvault_template") as name:
        upgrade(pg_server.set(database=name))
        yield name


def seed_catalog(data_dir: Path, template: Path) -> None:
    """A data folder whose SQLite catalog starts as a copy of ``template`` (at the schema head), owner-only
    as ChartVault makes it (umask 077)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    catalog = data_dir / "catalog.sqlite3"
    shutil.copyfile(template, catalog)
    catalog.chmod(0o600)


@pytest.fixture
def db_engine(db_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on a catalog migrated to head (both backends), disposed after the test. The catalog is
    a copy of the process's migrated template (``migrated_sqlite``, ``migrated_pg``)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), str(url.database))
    else:
        _recreate_from(
            request.getfixturevalue("pg_server"), str(url.database), request.getfixturevalue("migrated_pg")
        )
    engine = make_engine(db_url)
    if current_revision(engine) != SCHEMA_HEAD:  # a template behind the code: migrate as before
        upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _recreate_from(server: URL, name: str, template: str) -> None:
    """``pg_url``'s empty database made again as a copy of ``template``."""
    admin = _admin_engine(server)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()

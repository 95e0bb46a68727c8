"""Catalog database fixtures, a pytest plugin (conftest: ``from dbfixtures import *``).

``db_url`` runs a test on both SQLite and PostgreSQL. PostgreSQL tests get a fresh
database on the server at ``CHARTVAULT_TEST_PG_URL``; when that server is not
reachable they are skipped, unless ``CHARTVAULT_REQUIRE_SERVICES=1`` (CI), where a
missing service is a failure rather than a silently smaller test run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from chartvault.archive.db import make_engine, upgrade

# What ``from dbfixtures import *`` in conftest brings in: the fixtures only.
__all__ = ["db_engine", "db_url", "pg_server", "pg_url", "sqlite_url"]

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


@pytest.fixture
def pg_url(pg_server: URL) -> Iterator[str]:
    """A freshly created, uniquely named PostgreSQL database, dropped after the test."""
    name = f"chartvault_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(pg_server)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield pg_server.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                # FORCE: an engine a test forgot to dispose must not keep the database alive.
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty catalog database URL, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on a catalog migrated to head (both backends), disposed after the test."""
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()

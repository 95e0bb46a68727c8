"""Shared fixtures: the development corpus, isolated data folders and ready services."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbfixtures import *  # noqa: F403 - sqlite_url, pg_url, db_url, db_engine, the migrated templates
from dbfixtures import seed_catalog
from webfixtures import web_archive  # noqa: F401 - the web pages' archive (test_web, test_browser)

REPO = Path(__file__).resolve().parents[1]
# Password hashes in tests: argon2id as shipped, with the smallest cost the library accepts. The shipped
# cost (RFC 9106's low-memory profile, about 0.2 s a hash) is right for a sign-in and ruinous for a suite
# that signs in a few hundred times: in test_web and test_web_reports it was 36 s of their 87. A hash
# records its own parameters, so a live server started by a test still verifies these. test_users checks
# the shipped hasher itself (``shipped_hasher``).
FAST_HASHER_PARAMS = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
_shipped_hasher: list[object] = []  # the module's own hasher, kept for ``shipped_hasher``


def pytest_configure(config: pytest.Config) -> None:
    from argon2 import PasswordHasher

    import chartvault.archive.users as users

    _shipped_hasher.append(users._hasher)
    users._hasher = PasswordHasher(**FAST_HASHER_PARAMS)


UNMEASURED_MODULE_S = 10  # a module new since tests/weights.json was written: neither first nor last


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules heaviest first (tests/weights.json, scripts/test_weights.py), each kept in its own order.

    pytest-xdist (``--dist loadfile``, ``--no-loadscope-reorder``) deals whole modules out in this order;
    its own order, by number of tests, started the one-test 90-second crash module last."""
    weights_file = Path(__file__).with_name("weights.json")
    weights = json.loads(weights_file.read_text(encoding="utf-8")) if weights_file.is_file() else {}

    def weight(item: pytest.Item) -> float:
        return -weights.get(item.path.name, UNMEASURED_MODULE_S)

    items.sort(key=weight)  # stable: a module's tests keep their order


@pytest.fixture(autouse=True)
def _fresh_repeat_reads() -> None:
    """Each test starts with no read remembered as audited (``AuditTrail.seen_once``): a test that reads
    a batch of the session's archive must see its own audit entry, whatever an earlier test read."""
    from chartvault.services import caller

    caller._RECENT_READS.clear()


@pytest.fixture
def shipped_hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The hasher ChartVault ships, put back for the tests of hashing."""
    import chartvault.archive.users as users

    monkeypatch.setattr(users, "_hasher", _shipped_hasher[0])
    users._dummy_hash.cache_clear()
    yield
    users._dummy_hash.cache_clear()


def corpus_path() -> Path:
    return Path(os.environ.get("CHARTVAULT_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = corpus_path()
    if not (path / "manifest.jsonl").exists():
        pytest.skip(f"development corpus not found at {path} (set CHARTVAULT_CORPUS)")
    return path


@pytest.fixture(scope="session")
def corpus(corpus_dir: Path) -> list[dict]:
    """The corpus manifest, one dict per file, with ``file`` set to its absolute path."""
    entries = []
    for line in (corpus_dir / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        entry["file"] = corpus_dir / entry["path"]
        entries.append(entry)
    return entries


def pick(corpus: list[dict], fmt: str, pages: int | None = None, tier: str | None = None) -> dict:
    """The first corpus file of a format (and page count / degradation tier) — deterministic."""
    for e in corpus:
        if e["format"] != fmt or (pages is not None and e["page_count"] != pages):
            continue
        if tier is not None and (e["render"].get("degrade") or {}).get("tier") != tier:
            continue
        return e
    raise LookupError(f"no corpus file of format {fmt} with {pages} pages")


@pytest.fixture
def settings(tmp_path: Path, migrated_sqlite: Path):
    """The settings of a fresh data folder, its catalog at the schema head (a copy: see migrated_sqlite)."""
    from chartvault.config import Settings

    seed_catalog(tmp_path / "data", migrated_sqlite)
    return Settings(data_dir=tmp_path / "data", workers=2, watch_settle_s=0, _env_file=None)


@pytest.fixture
def vault(settings) -> Iterator:
    """The services of a fresh data folder (the composition root, acting as the system)."""
    from chartvault.services import Services

    with Services(settings) as v:
        yield v


def as_json(answer):
    """An answer as the API sends it and the CLI prints it (plain dicts and lists)."""
    from chartvault.schemas.common import to_jsonable

    return to_jsonable(answer)


def job_row(settings, kind: str, state: str = "running", *, result=None, age=None) -> str:
    """A job as another server process (on another host, beating now) keeps it in the catalog, written
    directly: running (or queued) now, or ended ``state`` (done, failed, cancelled); made ``age`` ago (a
    timedelta), and ended then. Its id."""
    from datetime import UTC, datetime, timedelta

    from chartvault.archive.models import Job
    from chartvault.services import Services

    now = datetime.now(UTC)
    made = now - (age or timedelta(0))
    active = state in ("queued", "running")
    with Services(settings) as services, services.parts.sessions() as s:
        job = Job(kind=kind, state=state, active_kind=kind if active else None, owner="replica-2:77:ab")
        job.created_at = job.started_at = made
        job.heartbeat_at = now  # a live process beats (a silent one is recovered as interrupted)
        job.finished_at = None if active else made
        job.result = result
        s.add(job)
        s.commit()
        return job.id


def ingest_files(services, *paths: Path, progress=None, **batch) -> str:
    """Receive these files as one batch and run it through the pipeline; the batch id."""
    from chartvault.services.intake import Incoming

    received = services.intake.receive(
        [Incoming(p.name, path=p) for p in paths], source=batch.pop("source", "test"), **batch
    )
    services.intake.process(received.batch_id, progress)
    return received.batch_id


@contextlib.contextmanager
def api_client(settings, role: str = "admin", vendor: str | None = None, **app_kw) -> Iterator:
    """A TestClient on the real app, sending a freshly made token of ``role`` (admin can call every route)."""
    from fastapi.testclient import TestClient

    from chartvault.api.app import create_app

    with TestClient(create_app(settings, **app_kw)) as c:
        token = c.app.state.services.access.create_token(role, f"test {role}", vendor=vendor).token
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


@pytest.fixture
def barcode_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size of every image zxing is asked to search, in order (the real reader still reads them)."""
    from chartvault.ocr import barcodes

    sizes: list[tuple[int, int]] = []
    real = barcodes.read_barcodes

    def counting(image):  # type: ignore[no-untyped-def]
        sizes.append(image.size)
        return real(image)

    monkeypatch.setattr(barcodes, "read_barcodes", counting)
    return sizes

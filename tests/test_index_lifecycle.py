"""The index as a rebuildable cache of the catalog: schema version, rebuild and swap, reconciliation,
catalog visibility, timeline/similar through the service, API and CLI, and concurrent writes and reads.

Documents are put in the catalog as the pipeline's archive stage leaves them (status ``archived`` and an
upsert task in the index queue), without OCR, so these tests run in seconds on both backends.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import api_client, as_json
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from chartvault.archive.models import (
    PAGE_ARCHIVED,
    PAGE_INDEXED,
    Batch,
    BatchFile,
    Document,
    IndexTask,
    Page,
)
from chartvault.config import Settings
from chartvault.errors import NotFound
from chartvault.search import IndexDocument, IndexUnavailable, SearchQuery
from chartvault.search.common import write_schema_version
from chartvault.search.indexer import WriterLock
from chartvault.search.lifecycle import CORRUPT, OK, OUTDATED, IndexLocation, inspect
from chartvault.services import Services

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["whoosh", "tantivy"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def lsettings(tmp_path: Path, kind: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", workers=1, search_backend=kind, _env_file=None)


@pytest.fixture
def lvault(lsettings: Settings) -> Iterator[Services]:
    with Services(lsettings) as v:
        yield v


def archive(
    vault: Services,
    n: int,
    mrn: str = "0040001",
    text: str = "Chest pain evaluated; troponin negative.",
    **fields: object,
) -> list[str]:
    """``n`` documents as the archive stage leaves them: status archived, an upsert task queued."""
    ids: list[str] = []
    with vault.parts.sessions() as s:
        batch = Batch(source="test")
        s.add(batch)
        s.flush()
        for i in range(n):
            digest = hashlib.sha256(f"{batch.id}-{i}".encode()).hexdigest()
            f = BatchFile(batch_id=batch.id, seq=i + 1, original_name=f"f{i}.pdf", sha256=digest, size=1)
            s.add(f)
            s.flush()
            doc = Document(
                file_id=f.id,
                batch_id=batch.id,
                page_count=1,
                sha256=digest,
                size=1,
                mime="application/pdf",
                mrn=mrn,
                patient_name="Test Patient",
                doc_type="progress_note",
                date_of_service=date(2024, 1, 1 + i % 28),
                status=PAGE_ARCHIVED,
                archived_at=datetime.now(UTC),
            )
            for key, value in fields.items():
                setattr(doc, key, value)
            s.add(doc)
            s.flush()
            s.add(
                Page(file_id=f.id, document_id=doc.id, page_no=1, status=PAGE_ARCHIVED, text=f"{text} #{i}")
            )
            s.add(IndexTask(document_id=doc.id, op="upsert"))
            ids.append(doc.id)
        s.commit()
    return ids


def set_doc(vault: Services, doc_id: str, **fields: object) -> None:
    """Change the catalog behind the index's back (no queue task)."""
    with vault.parts.sessions() as s:
        doc = s.get(Document, doc_id)
        assert doc is not None
        for key, value in fields.items():
            setattr(doc, key, value)
        s.commit()


def found(vault: Services, **kw: object) -> list[str]:
    return [h["document_id"] for h in as_json(vault.search.search(SearchQuery(limit=100, **kw)))["hits"]]  # type: ignore[arg-type]


# -- schema version, corruption, staleness: detected and rebuilt into a new generation -------------------


def test_outdated_schema_is_rebuilt_into_a_new_generation_and_swapped(lvault: Services, kind: str) -> None:
    ids = archive(lvault, 5)
    lvault.parts.indexer.drain()
    location = IndexLocation(lvault.settings.data_dir / "index", kind)
    old = location.current()
    assert old is not None and inspect(kind, old).state == OK
    write_schema_version(old, kind, 1)  # as an older release left it
    assert inspect(kind, old).state == OUTDATED
    assert sorted(found(lvault, mrn="0040001")) == sorted(ids)  # an outdated index still answers

    assert lvault.parts.indexer.ensure_ready(background=False) == OUTDATED
    new = location.current()
    assert new is not None and new != old
    assert not old.exists()  # pruned after the swap
    assert inspect(kind, new).state == OK
    assert sorted(found(lvault, mrn="0040001")) == sorted(ids)  # the reader moved to the new generation
    assert lvault.parts.indexer.ensure_ready(background=False) == OK  # nothing more to do


def test_corrupt_index_is_detected_and_rebuilt(lvault: Services, kind: str) -> None:
    ids = archive(lvault, 4)
    lvault.parts.indexer.drain()
    location = IndexLocation(lvault.settings.data_dir / "index", kind)
    current = location.current()
    assert current is not None
    # Stopped first: overwriting files a live tantivy reader has mapped can kill the process (SIGBUS).
    lvault.close()
    for f in current.iterdir():
        if f.is_file() and f.name != "schema.json":
            f.write_bytes(b"\x00garbage" * 3)
    assert inspect(kind, current).state == CORRUPT
    with Services(lvault.settings) as fresh:  # a restart
        assert fresh.parts.indexer.ensure_ready(background=False) == CORRUPT
        assert sorted(found(fresh, mrn="0040001")) == sorted(ids)
        assert as_json(fresh.search.reconcile())["consistent"]


def test_stale_index_missing_indexed_documents_is_rebuilt(lvault: Services) -> None:
    ids = archive(lvault, 6)
    lvault.parts.indexer.drain()
    lvault.parts.indexer.reader().delete(ids[:2])  # e.g. an index restored from an older backup
    assert lvault.parts.indexer.ensure_ready(background=False) == "stale"
    assert sorted(found(lvault, mrn="0040001")) == sorted(ids)


@pytest.mark.slow
def test_rebuild_is_resumable_and_searches_answer_from_the_old_generation(
    lsettings: Settings, kind: str
) -> None:
    with Services(lsettings) as v:
        ids = archive(v, 7)
        v.parts.indexer.drain()
        v.parts.indexer.chunk = 2
        location = IndexLocation(lsettings.data_dir / "index", kind)
        before = location.current()
        assert v.parts.indexer.rebuild(max_chunks=2) == 0  # stopped part-way (as a crash would)
        build = location.read_build()
        assert build is not None and build.last_id == sorted(ids)[3]
        assert location.current() == before
        extra = archive(v, 1, mrn="0040002")  # archived meanwhile: indexed into the live generation
        v.parts.indexer.drain()
        assert sorted(found(v, mrn="0040001")) == sorted(ids)  # answered from the old generation
    with Services(lsettings) as v:  # a restart resumes the rebuild where it stopped
        v.parts.indexer.chunk = 2
        assert v.parts.indexer.rebuild() == 8
        assert location.current() != before and location.read_build() is None
        assert sorted(found(v, mrn="0040001")) == sorted(ids)
        assert found(v, mrn="0040002") == extra
        assert as_json(v.search.reconcile())["consistent"]


def test_no_usable_index_answers_index_unavailable_until_rebuilt(lsettings: Settings, kind: str) -> None:
    with Services(lsettings) as v:
        ids = archive(v, 3)
        v.parts.indexer.drain()
    location = IndexLocation(lsettings.data_dir / "index", kind)
    (location.base / "CURRENT").unlink()
    busy = WriterLock(lsettings.data_dir / "index" / "writer.lock")  # another process owns the writer
    assert busy.acquire()
    try:
        with Services(lsettings) as v:
            with pytest.raises(IndexUnavailable):
                as_json(v.search.search(SearchQuery(mrn="0040001")))
            with pytest.raises(IndexUnavailable):
                as_json(v.search.timeline("0040001"))
    finally:
        busy.release()
    with Services(lsettings) as v:
        v.parts.indexer.drain()  # the writer notices and rebuilds (in the background)
        deadline = time.monotonic() + 30
        while v.parts.indexer.rebuilding() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(found(v, mrn="0040001")) == sorted(ids)


# -- reconciliation -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_reconcile_detects_and_repairs_missing_extra_and_stale(lvault: Services) -> None:
    ids = archive(lvault, 5)
    lvault.parts.indexer.drain()
    assert as_json(lvault.search.reconcile())["consistent"]
    backend = lvault.parts.indexer.reader()
    backend.delete([ids[0]])  # missing
    backend.index([IndexDocument("ghost", ["Never in the catalog."], mrn="0040001")])  # extra
    set_doc(lvault, ids[1], doc_type="consult_note")  # stale: changed without a queue task
    with lvault.parts.sessions() as s:  # stale text too
        page = s.query(Page).filter(Page.document_id == ids[2]).one()
        page.text = "Amended: pericarditis."
        s.commit()

    report = as_json(lvault.search.reconcile())
    assert not report["consistent"]
    assert report["missing"] == [ids[0]]
    assert report["extra"] == ["ghost"]
    assert report["stale"] == sorted([ids[1], ids[2]])
    assert (report["catalog_documents"], report["index_documents"]) == (5, 5)
    assert not report["repaired"]

    repaired = as_json(lvault.search.reconcile(repair=True))
    assert repaired["consistent"] and repaired["repaired"]
    assert sorted(found(lvault, mrn="0040001")) == sorted(ids)
    assert found(lvault, text="pericarditis") == [ids[2]]
    assert found(lvault, doc_type="consult_note") == [ids[1]]


def test_disposed_documents_are_never_shown_and_totals_stay_honest(lvault: Services) -> None:
    ids = archive(lvault, 4)
    lvault.parts.indexer.drain()
    # Disposed in the catalog, still in the index (its removal task not yet applied).
    set_doc(lvault, ids[0], status="disposed", disposed_at=datetime.now(UTC))
    set_doc(lvault, ids[1], status="classified")  # being reprocessed: not shown either
    result = as_json(lvault.search.search(SearchQuery(text="troponin", limit=1)))
    assert result["total"] == 2
    assert sum(result["facets"]["doc_type"].values()) == 2
    listing = as_json(lvault.search.search(SearchQuery(mrn="0040001", limit=100)))
    assert sorted(h["document_id"] for h in listing["hits"]) == sorted(ids[2:])
    assert listing["total"] == 2
    timeline = as_json(lvault.search.timeline("0040001"))
    assert timeline["total"] == 2
    assert ids[0] not in json.dumps(timeline)
    with lvault.parts.sessions() as s:  # queued for the writer to look at again
        assert {t.document_id for t in s.query(IndexTask)} >= {ids[0], ids[1]}
    lvault.parts.indexer.drain()
    assert lvault.parts.indexer.reader().doc_ids() == set(ids[2:])
    assert as_json(lvault.search.reconcile())["consistent"]


# -- timeline and similar through the service -----------------------------------------------------------


def test_timeline_groups_by_encounter_in_date_order(lvault: Services) -> None:
    a = archive(lvault, 1, date_of_service=date(2023, 5, 2), encounter="ENC-1", doc_type="consult_note")
    b = archive(lvault, 1, date_of_service=date(2023, 5, 1), encounter="ENC-1", doc_type="lab_report")
    c = archive(lvault, 1, date_of_service=date(2024, 1, 9), encounter="ENC-2")
    d = archive(lvault, 1, date_of_service=None, encounter=None)
    archive(lvault, 1, mrn="0040999")
    lvault.parts.indexer.drain()
    result = as_json(lvault.search.timeline("0040001"))
    assert result["total"] == 4
    groups = [(g["encounter"], [x["document_id"] for x in g["documents"]]) for g in result["encounters"]]
    assert groups == [("ENC-1", [*b, *a]), ("ENC-2", c), (None, d)]
    assert (result["encounters"][0]["first_date"], result["encounters"][0]["last_date"]) == (
        "2023-05-01",
        "2023-05-02",
    )
    assert as_json(lvault.search.timeline("0000000")) == {"mrn": "0000000", "total": 0, "encounters": []}


def test_more_like_this_through_the_service(lvault: Services) -> None:
    hf = archive(lvault, 3, text="Congestive heart failure, ejection fraction reduced, furosemide started.")
    archive(lvault, 3, mrn="0040002", text="Wrist fracture splinted; orthopedics follow-up arranged.")
    lvault.parts.indexer.drain()
    result = as_json(lvault.search.similar(hf[0]))
    assert result["document_id"] == hf[0]
    assert {h["document_id"] for h in result["hits"][:2]} == set(hf[1:])
    assert hf[0] not in [h["document_id"] for h in result["hits"]]
    with pytest.raises(NotFound):
        as_json(lvault.search.similar("no-such-document"))


# -- API and CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def client(lsettings: Settings) -> Iterator[TestClient]:
    with api_client(lsettings) as c:
        yield c


def wait_for(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_api_timeline_similar_filters_and_near_real_time(client: TestClient) -> None:
    vault: Services = client.app.state.services  # type: ignore[attr-defined]
    ids = archive(vault, 3, encounter="ENC-9", icd_codes=["E11.9"])
    # The server's background indexer picks the queue up (every CHARTVAULT_INDEX_COMMIT_INTERVAL_S).
    assert wait_for(lambda: client.get("/search", params={"mrn": "0040001"}).json()["total"] == 3)
    timeline = client.get("/patients/0040001/timeline").json()
    assert [x["document_id"] for x in timeline["encounters"][0]["documents"]] == ids
    assert timeline["encounters"][0]["encounter"] == "ENC-9"
    by_icd = client.get("/search", params={"icd": "e11*"}).json()
    assert {h["document_id"] for h in by_icd["hits"]} == set(ids)
    assert by_icd["facets"]["encounter"] == {"ENC-9": 3}
    assert client.get("/search", params={"name": "patient test"}).json()["total"] == 3
    similar = client.get(f"/documents/{ids[0]}/similar").json()
    assert ids[0] not in [h["document_id"] for h in similar["hits"]]
    assert client.get("/documents/nope/similar").status_code == 404
    assert client.get("/patients/0049999/timeline").json()["total"] == 0


@pytest.mark.slow
def test_api_answers_503_with_retry_after_when_no_index(lsettings: Settings, kind: str) -> None:
    with Services(lsettings) as v:
        archive(v, 2)
        v.parts.indexer.drain()
    (IndexLocation(lsettings.data_dir / "index", kind).base / "CURRENT").unlink()
    busy = WriterLock(lsettings.data_dir / "index" / "writer.lock")  # the rebuilding writer elsewhere
    assert busy.acquire()
    try:
        with api_client(lsettings) as c:
            r = c.get("/search", params={"q": "troponin"})
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "index_rebuilding"
            assert int(r.headers["retry-after"]) > 0
            assert "troponin" not in r.text
            assert c.get("/patients/0040001/timeline").status_code == 503
    finally:
        busy.release()


@pytest.mark.slow
def test_cli_index_check_timeline_and_reindex(lsettings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from chartvault.cli import app

    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(lsettings.data_dir))
    monkeypatch.setenv("CHARTVAULT_SEARCH_BACKEND", lsettings.search_backend)
    with Services(lsettings) as v:
        ids = archive(v, 3)
        v.parts.indexer.drain()
        v.parts.indexer.reader().delete([ids[0]])
    runner = CliRunner()
    res = runner.invoke(app, ["index-check", "--json"])
    assert res.exit_code == 1, res.output
    assert json.loads(res.stdout)["missing"] == [ids[0]]
    res = runner.invoke(app, ["index-check", "--repair", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["consistent"]
    assert runner.invoke(app, ["index-check"]).exit_code == 0
    res = runner.invoke(app, ["timeline", "0040001", "--json"])
    assert res.exit_code == 0, res.output
    assert [x["document_id"] for g in json.loads(res.stdout)["encounters"] for x in g["documents"]] == ids
    res = runner.invoke(app, ["reindex"])
    assert res.exit_code == 0 and "reindexed 3" in res.stdout
    res = runner.invoke(app, ["similar", "nope"])
    assert res.exit_code == 4


# -- concurrency: archive-style writes and searches at the same time -------------------------------------

READER_SCRIPT = """
import sys, time
from chartvault.config import Settings
from chartvault.search import SearchQuery, IndexUnavailable
from chartvault.services import Services
settings = Settings(data_dir=sys.argv[1], search_backend=sys.argv[2], workers=1, _env_file=None)
done = errors = 0
with Services(settings) as v:
    end = time.monotonic() + float(sys.argv[3])
    while time.monotonic() < end:
        try:
            v.search.search(SearchQuery(text="troponin", limit=5))
            done += 1
        except Exception as exc:
            errors += 1
            print(type(exc).__name__, file=sys.stderr)
print(done, errors)
"""


@pytest.mark.slow
def test_concurrent_archiving_indexing_and_searching(lsettings: Settings) -> None:
    with Services(lsettings) as v:
        v.parts.indexer.drain()  # the index exists before readers start
        reader = subprocess.Popen(
            [sys.executable, "-c", READER_SCRIPT, str(lsettings.data_dir), lsettings.search_backend, "6"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        stop = threading.Event()
        errors: list[BaseException] = []
        searches_while_writing = [0]
        archived: list[str] = []

        def archiver() -> None:  # the pipeline's archive stage: catalog rows and queue tasks
            try:
                for _ in range(15):
                    archived.extend(archive(v, 4))
                    time.sleep(0.05)
            except BaseException as exc:
                errors.append(exc)

        def indexer() -> None:  # the single writer, draining the queue
            try:
                while not stop.is_set():
                    v.parts.indexer.drain()
                    time.sleep(0.02)
            except BaseException as exc:
                errors.append(exc)

        def searcher() -> None:
            try:
                while not stop.is_set():
                    v.search.search(SearchQuery(text="troponin", limit=5))
                    as_json(v.search.timeline("0040001"))
                    searches_while_writing[0] += 1
            except BaseException as exc:
                errors.append(exc)

        # A second would-be writer (another process's Vault on the same folder) gets no lock error: it
        # simply does not index.
        with Services(lsettings) as other:
            writers = [threading.Thread(target=archiver), threading.Thread(target=indexer)]
            readers = [threading.Thread(target=searcher) for _ in range(2)]
            for t in [*writers, *readers]:
                t.start()
            writers[0].join(timeout=60)
            assert other.parts.indexer.drain() == 0
        deadline = time.monotonic() + 30
        while v.parts.indexer.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for t in [*writers, *readers]:
            t.join(timeout=30)
        out, err = reader.communicate(timeout=60)

        assert not errors, errors
        assert searches_while_writing[0] > 0
        done, failed = (int(x) for x in out.split())
        assert failed == 0, err
        assert done > 0
        assert len(archived) == 60
        assert v.parts.indexer.reader().doc_ids() == set(archived)  # no lost update
        assert as_json(v.search.search(SearchQuery(mrn="0040001", limit=1)))["total"] == 60
        with v.parts.sessions() as s:
            statuses = {d.status for d in s.query(Document)}
        assert statuses == {PAGE_INDEXED}
        assert as_json(v.search.reconcile())["consistent"]

"""The CLI contract, duplicates, manifests, resume after SIGKILL, and the hot folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ingest_files, pick

CLI = [sys.executable, "-m", "chartvault.cli"]


def run_cli(data: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "CHARTVAULT_DATA_DIR": str(data), "CHARTVAULT_WORKERS": "2", **env}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=environ)


@pytest.mark.slow
def test_ingest_json_contract_and_exit_status(tmp_path, corpus):
    born = [e for e in corpus if e["format"] == "pdf_text"][:2]
    folder = tmp_path / "scans"
    folder.mkdir()
    for e in born:
        shutil.copy(e["file"], folder / e["file"].name)
    (folder / "readme.tif").write_text("a text file pretending to be a TIFF")
    data = tmp_path / "data"
    res = run_cli(data, "ingest", str(folder), "--station", "s1", "--operator", "o1", "--json")
    assert res.returncode == 1, res.stderr  # one file refused
    report = json.loads(res.stdout)
    files = {Path(f["path"]).name: f for f in report["files"]}
    assert files["readme.tif"]["status"] == "quarantined"
    assert files["readme.tif"]["reason_code"] == "unsupported_type" and files["readme.tif"]["reason"]
    for e in born:
        f = files[e["file"].name]
        assert f["status"] == "archived" and len(f["documents"]) == 1
    assert report["indexed"] is True

    doc_id = files[born[0]["file"].name]["documents"][0]
    shown = json.loads(run_cli(data, "show", doc_id, "--json").stdout)
    assert shown["identifiers"]["mrn"]["value"] == born[0]["patient"]["mrn"]
    assert shown["identifiers"]["dob"]["value"] == born[0]["patient"]["dob"]
    assert shown["identifiers"]["date_of_service"]["value"] == born[0]["patient"]["service_date"]
    assert shown["doc_type"] and 0 <= shown["doc_type_confidence"] <= 1
    assert len(shown["pages"]) == born[0]["page_count"] and shown["pages"][0]["source"] == "text_layer"
    assert born[0]["patient"]["mrn"] in shown["pages"][0]["text"]

    found = json.loads(run_cli(data, "search", "--mrn", born[0]["patient"]["mrn"], "--json").stdout)
    assert [h["document_id"] for h in found["hits"]] == [doc_id]
    assert run_cli(data, "show", "nope").returncode == 4
    assert run_cli(data, "search").returncode == 2

    # The quarantined bytes are kept, with a reason file, never silently dropped.
    qfile = next((data / "quarantine").rglob("*.reason.txt"))
    assert "unsupported_type" in qfile.read_text()


@pytest.mark.slow
def test_exact_duplicate_is_linked_not_stored_twice(vault, corpus, tmp_path):
    e = pick(corpus, "pdf_text")
    first = ingest_files(vault, e["file"])
    doc_id = vault.intake.batch(first).files[0].documents[0]
    copy = tmp_path / "rescanned-copy.pdf"
    shutil.copy(e["file"], copy)
    second = ingest_files(vault, copy, copy)  # the same file twice within a batch, too
    report = vault.intake.batch(second)
    assert [f.status for f in report.files] == ["duplicate", "duplicate"]
    assert all(f.documents == [doc_id] for f in report.files)
    objects = [p for p in (vault.settings.data_dir / "objects" / "sha256").rglob("*") if p.is_file()]
    assert len(objects) == 1
    assert len(vault.documents.get(doc_id).linked_duplicate_files) == 2


@pytest.mark.slow
def test_duplicates_within_one_new_batch_are_stored_once(vault, corpus, tmp_path):
    e = pick(corpus, "pdf_text")
    batch = ingest_files(vault, e["file"], e["file"])
    files = vault.intake.batch(batch).files
    assert sorted(f.status for f in files) == ["archived", "duplicate"]
    assert files[0].documents == files[1].documents


@pytest.mark.slow
def test_manifest_page_count_mismatch_is_flagged(tmp_path, corpus):
    e = pick(corpus, "pdf_text", pages=2)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps({"files": [{"name": e["file"].name, "pages": 3}, {"name": "never-sent.tif", "pages": 1}]})
    )
    res = run_cli(tmp_path / "data", "ingest", str(e["file"]), "--manifest", str(manifest), "--json")
    assert res.returncode == 3, res.stderr  # taken, but the batch needs review
    report = json.loads(res.stdout)
    codes = {f["code"] for f in report["flags"]}
    assert {"page_count_mismatch", "missing_file"} <= codes
    assert report["needs_review"] is True
    assert "never-sent" not in json.dumps(report["flags"])  # names stay out of flags


def _page_states(db: Path) -> dict[int, tuple[str, int | None]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("select page_no, status, ocr_ms from pages").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.mark.slow
def test_sigkill_mid_batch_then_resume_loses_nothing_and_redoes_nothing(tmp_path, corpus):
    e = pick(corpus, "pdf_image", pages=3)
    data = tmp_path / "data"
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(data), "CHARTVAULT_WORKERS": "1"}
    proc = subprocess.Popen(
        [*CLI, "ingest", str(e["file"]), "--json"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = data / "catalog.sqlite3"
    deadline = time.monotonic() + 120
    done_before: dict[int, tuple[str, int | None]] = {}
    while time.monotonic() < deadline:
        states = _page_states(db) if db.exists() else {}
        done_before = {n: s for n, s in states.items() if s[0] != "received"}
        if done_before:
            break
        time.sleep(0.1)
    assert done_before, "no page was OCR'd before the deadline"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(done_before) < 3, "the batch finished before it could be interrupted"

    res = run_cli(data, "resume", "--json")
    assert res.returncode == 0, res.stderr
    after = _page_states(db)
    assert sorted(after) == [1, 2, 3] and all(s == "indexed" for s, _ in after.values())
    for n, (_, ocr_ms_before) in done_before.items():
        # Same OCR timing recorded: the page was not OCR'd a second time after the restart.
        assert after[n][1] == ocr_ms_before
    con = sqlite3.connect(db)
    assert con.execute("select count(*) from documents").fetchone()[0] == 1
    con.close()
    objects = [
        p for p in (data / "objects" / "sha256").rglob("*") if p.is_file() and not p.name.startswith(".tmp")
    ]
    assert len(objects) == 2  # the original and its searchable rendition, each stored once
    found = json.loads(run_cli(data, "search", "--mrn", e["patient"]["mrn"], "--json").stdout)
    assert len(found["hits"]) == 1


@pytest.fixture
def hot(tmp_path, vault):
    from chartvault.ingest.hotfolder import HotFolder

    folder = tmp_path / "hot"
    folder.mkdir()
    return HotFolder(vault.intake, vault.parts.sessions, folder, station="hot-1", settle_s=0)


@pytest.mark.slow
def test_hot_folder_files_done_and_failed(hot, corpus):
    e = pick(corpus, "pdf_text")
    shutil.copy(e["file"], hot.folder / "good.pdf")
    (hot.folder / "bad.pdf").write_bytes(b"")
    assert hot.poll() is None  # first sight: not yet known to have stopped growing
    batch_id = hot.poll()
    assert batch_id is not None
    assert (hot.folder / "done" / "good.pdf").exists()
    assert (hot.folder / "failed" / "bad.pdf").exists()
    assert "empty_file" in (hot.folder / "failed" / "bad.pdf.reason.txt").read_text()
    assert not any(hot.processing.iterdir()) and not (hot.folder / "good.pdf").exists()
    assert hot.poll() is None  # nothing is taken twice


def test_hot_folder_ignores_a_growing_file(hot, corpus):
    target = hot.folder / "growing.pdf"
    target.write_bytes(b"%PDF-1.7\n")
    hot.poll()
    with target.open("ab") as fp:
        fp.write(b"% more bytes\n")
    assert hot.poll() is None and target.exists()


def test_hot_folder_takes_no_link_to_a_file_outside_it(hot, corpus, tmp_path):
    """A hard link in the hot folder to a file elsewhere was archived as a scan (the file's name is all
    the share holds), and a name swapped for a symbolic link between the scan and the claim was followed.
    Neither is read now: each goes to failed/ with its reason; the file elsewhere is untouched."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "other-patient.pdf"
    shutil.copy(pick(corpus, "pdf_text")["file"], secret)
    os.link(secret, hot.folder / "linked.pdf")
    (hot.folder / "symlinked.pdf").symlink_to(secret)
    hot.poll()
    assert hot.poll() is None  # nothing taken: no batch
    assert (hot.folder / "symlinked.pdf").is_symlink()  # never taken from the scan
    assert (hot.folder / "failed" / "linked.pdf").exists()
    assert "other links" in (hot.folder / "failed" / "linked.pdf.reason.txt").read_text()

    # A plain file at scan time, a link by the time it is claimed.
    (hot.folder / "swapped.pdf").symlink_to(secret)
    assert hot._claim(hot.folder / "swapped.pdf") is None
    assert "not a plain file" in (hot.folder / "failed" / "swapped.pdf.reason.txt").read_text()
    assert not any(hot.processing.iterdir())
    assert secret.read_bytes() == Path(pick(corpus, "pdf_text")["file"]).read_bytes()
    assert hot.intake.batches(50, 0).items == []


@pytest.mark.slow
def test_hot_folder_restart_finishes_claimed_files_once(tmp_path, settings, corpus):
    from chartvault.ingest.hotfolder import HotFolder
    from chartvault.services import Services

    folder = tmp_path / "hot2"
    folder.mkdir()
    e = pick(corpus, "pdf_text")
    shutil.copy(e["file"], folder / "a.pdf")
    with Services(settings) as v1:
        first = HotFolder(v1.intake, v1.parts.sessions, folder, settle_s=0)
        claim = first._claim(folder / "a.pdf")  # a crash right after claiming
        assert claim is not None and claim.exists()
    with Services(settings) as v2:
        second = HotFolder(v2.intake, v2.parts.sessions, folder, settle_s=0)
        second.poll(final=True)
        assert (folder / "done" / "a.pdf").exists()
        assert not any(second.processing.iterdir())
        second.poll(final=True)
        batches = v2.intake.batches(50, 0).items
        assert len(batches) == 1


def test_bytes_archived_by_another_batch_while_this_one_lay_killed_are_linked_not_stored_twice(
    vault, corpus: list[dict]
) -> None:
    # The state a SIGKILL leaves when two batches hold the same file: batch B had identified its documents
    # but not stored them when it was killed; batch A then archived the same bytes. Resuming B must link
    # its file to A's document, not archive a second copy (found by the crash test under load).
    from sqlalchemy import func, select

    from chartvault.archive.models import (
        FILE_DUPLICATE,
        FILE_PROCESSING,
        PAGE_CLASSIFIED,
        BatchFile,
        Document,
        Page,
        new_id,
    )
    from chartvault.services.intake import Incoming

    entry = pick(corpus, "pdf_text")
    a = vault.intake.receive([Incoming("a.pdf", path=entry["file"])], source="test")
    b = vault.intake.receive([Incoming("b.pdf", path=entry["file"])], source="test")
    vault.intake.process(a.batch_id)
    with vault.parts.sessions() as s:
        (archived,) = s.scalars(select(Document).where(Document.batch_id == a.batch_id)).all()
        b_file = s.scalars(select(BatchFile).where(BatchFile.batch_id == b.batch_id)).one()
        b_file.status, b_file.kind, b_file.page_count = (
            FILE_PROCESSING,
            archived.file.kind,
            archived.page_count,
        )
        doc = Document(
            id=new_id(),
            file_id=b_file.id,
            batch_id=b.batch_id,
            first_page=1,
            page_count=archived.page_count,
            sha256=archived.sha256,
            size=archived.size,
            mime=archived.mime,
            doc_type=archived.doc_type,
            status=PAGE_CLASSIFIED,
            received_at=archived.received_at,
        )
        s.add(doc)
        for p in archived.pages:
            s.add(
                Page(
                    id=new_id(),
                    file_id=b_file.id,
                    document_id=doc.id,
                    page_no=p.page_no,
                    status=PAGE_CLASSIFIED,
                    text=p.text,
                    source=p.source,
                )
            )
        s.commit()
    vault.intake.resume()
    with vault.parts.sessions() as s:
        live = s.scalar(
            select(func.count())
            .select_from(Document)
            .where(Document.sha256 == archived.sha256, Document.object_key.is_not(None))
        )
        b_file = s.scalars(select(BatchFile).where(BatchFile.batch_id == b.batch_id)).one()
        assert live == 1, "the same bytes were archived twice"
        assert (b_file.status, b_file.duplicate_of) == (FILE_DUPLICATE, archived.id)
        assert s.scalar(select(func.count()).select_from(Document).where(Document.file_id == b_file.id)) == 0


def test_two_drivers_with_the_same_file_archive_it_once(settings, corpus: list[dict]) -> None:
    # Two batches holding the same file, run at the same time by two drivers (a CLI beside the server):
    # both pass the duplicate check at the start of their round; the content lease makes the later one
    # find the earlier one's document when its file reaches the archive, and link to it.
    import threading

    from sqlalchemy import func, select

    from chartvault.archive.models import FILE_ARCHIVED, FILE_DUPLICATE, BatchFile, Document
    from chartvault.services import Services
    from chartvault.services.intake import Incoming

    entry = pick(corpus, "pdf_text")
    with Services(settings) as first, Services(settings) as second:
        batches = [
            v.intake.receive([Incoming(f"{n}.pdf", path=entry["file"])], source="test").batch_id
            for n, v in (("a", first), ("b", second))
        ]
        start = threading.Barrier(2)

        def drive(v: Services, batch_id: str) -> None:
            start.wait()
            v.intake.process(batch_id)

        threads = [
            threading.Thread(target=drive, args=(v, b)) for v, b in zip((first, second), batches, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        with first.parts.sessions() as s:
            stored = s.scalar(
                select(func.count()).select_from(Document).where(Document.object_key.is_not(None))
            )
            states = sorted(s.scalars(select(BatchFile.status)).all())
    assert stored == 1, "the same bytes were archived by both drivers"
    assert states == sorted([FILE_ARCHIVED, FILE_DUPLICATE])

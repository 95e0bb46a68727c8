"""Backups of the embedded archive and their restore, through the real command, catalog and store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import api_client, ingest_files
from sqlalchemy import select
from webfixtures import sign_in, web_client

from chartvault.archive.models import AuditEvent, Document
from chartvault.archive.objectstore import ObjectRef
from chartvault.config import Settings
from chartvault.errors import InvalidInput
from chartvault.search.types import SearchQuery
from chartvault.services import Services


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(data), "COLUMNS": "1000"}  # rich wraps at the width
    return subprocess.run(
        [sys.executable, "-m", "chartvault.cli", *args], env=env, capture_output=True, text=True
    )


def _documents(services: Services) -> dict[str, Document]:
    with services.parts.sessions() as s:
        return {d.id: d for d in s.scalars(select(Document))}


def _ref(doc: Document) -> ObjectRef:
    return ObjectRef(doc.object_key or "", doc.sha256, doc.size, doc.object_version)


@pytest.fixture
def archive(settings: Settings, corpus: list[dict]) -> tuple[Settings, str, str]:
    """Two born-digital documents archived, one under a legal hold, an audit checkpoint written."""
    pdfs = [e for e in corpus if e["format"] == "pdf_text"][:2]
    with Services(settings) as services:
        ingest_files(services, *(e["file"] for e in pdfs))
        held, other = sorted(_documents(services))
        services.records.place_hold("matter-1", "documents", "litigation", document_ids=[held])
        services.parts.audit_log.checkpoint()
    return settings, held, other


@pytest.mark.slow
def test_a_backup_restores_into_an_archive_that_checks_whole(archive, tmp_path: Path) -> None:
    """Catalog, objects, holds, retention, checkpoints and keys come back; the index is rebuilt; the
    audit log verifies; a second backup copies nothing it already has."""
    settings, held, other = archive
    dest, restored_dir = tmp_path / "backups", tmp_path / "restored"
    first = _cli(settings.data_dir, "backup", "create", str(dest), "--json")
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["complete"] and made["objects"] >= 2 and made["copied_objects"] >= made["objects"]
    again = json.loads(_cli(settings.data_dir, "backup", "create", str(dest), "--json").stdout)
    assert again["objects"] == made["objects"] and again["copied_bytes"] < 10_000  # a new checkpoint at most

    done = _cli(restored_dir, "backup", "restore", str(dest), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["stamp"] == again["stamp"] and answer["check"]["consistent"] and answer["audit"]["ok"]
    with Services(settings) as live, Services(Settings(data_dir=restored_dir, _env_file=None)) as back:
        before, after = _documents(live), _documents(back)
        assert set(after) == set(before) and after[held].sha256 == before[held].sha256
        assert b"".join(back.parts.store.open(_ref(after[other]))) == b"".join(
            live.parts.store.open(_ref(before[other]))
        )
        assert back.parts.store.legal_hold(_ref(after[held])) and not back.parts.store.legal_hold(
            _ref(after[other])
        )
        assert back.parts.store.retention(_ref(after[other])) == live.parts.store.retention(
            _ref(before[other])
        )
        mrn = before[other].mrn
        assert any(
            h.document_id == other for h in back.search.search(SearchQuery(mrn=mrn)).hits
        )  # the index, rebuilt
        with back.parts.sessions() as s:
            actions = list(s.scalars(select(AuditEvent.action)))
        assert "backup.restore" in actions and "backup.create" in actions  # the second backup's entry
    assert (restored_dir / "keys" / "audit.key").stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_a_corrupt_object_is_reported_not_copied_and_a_damaged_backup_is_refused(
    archive, tmp_path: Path
) -> None:
    settings, held, other = archive
    with Services(settings) as services:
        doc = _documents(services)[other]
        path = services.parts.store.root / (doc.object_key or "")  # type: ignore[attr-defined]
    path.chmod(0o600)
    path.write_bytes(path.read_bytes()[:-1] + b"\0")  # one byte of the archived original rots
    dest = tmp_path / "backups"
    made = _cli(settings.data_dir, "backup", "create", str(dest), "--json")
    assert made.returncode == 1
    summary = json.loads(made.stdout)
    assert summary["corrupt"] == [f"document:{other}"] and not summary["complete"]
    assert not (dest / "objects" / (doc.object_key or "")).exists()  # the rotten bytes are not kept
    listed = _cli(settings.data_dir, "backup", "list", str(dest))
    assert "INCOMPLETE" in listed.stdout

    fine = tmp_path / "fine"
    path.write_bytes(b"")  # the archive is repaired elsewhere; here: a backup whose copy is damaged
    with Services(settings) as services:
        kept = _documents(services)[held]
    assert _cli(settings.data_dir, "backup", "create", str(fine)).returncode == 1
    copy = fine / "objects" / (kept.object_key or "")
    copy.chmod(0o600)
    copy.write_bytes(b"not the original")
    refused = _cli(tmp_path / "restored", "backup", "restore", str(fine))
    assert refused.returncode == 1 and kept.object_key in refused.stderr  # named by its key, no PHI
    assert "partial restore" in refused.stderr  # the operator learns the folder must be emptied
    nonempty = tmp_path / "busy"
    (nonempty / "something").mkdir(parents=True)
    busy = _cli(nonempty, "backup", "restore", str(fine))
    assert busy.returncode == 1 and "not empty" in busy.stderr


@pytest.mark.slow
def test_prune_keeps_the_newest_snapshots_and_only_the_objects_they_name(archive, tmp_path: Path) -> None:
    settings, _, _ = archive
    dest = tmp_path / "backups"
    for _ in range(3):
        assert _cli(settings.data_dir, "backup", "create", str(dest)).returncode == 0
    stray = dest / "objects" / "sha256" / "00" / "00" / ("00" * 32)  # named by no snapshot left
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    pruned = json.loads(
        _cli(settings.data_dir, "backup", "create", str(dest), "--keep", "2", "--json").stdout
    )
    assert len(pruned["pruned_snapshots"]) == 2 and pruned["pruned_objects"] >= 1 and not stray.exists()
    listed = json.loads(_cli(settings.data_dir, "backup", "list", str(dest), "--json").stdout)
    assert [s["stamp"] for s in listed][-1] == pruned["stamp"] and len(listed) == 2


@pytest.mark.postgres
def test_a_catalog_on_a_database_server_is_refused_with_what_to_use(tmp_path: Path, pg_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=pg_url, _env_file=None)
    with Services(settings) as services, pytest.raises(InvalidInput, match="pg_dump"):
        services.backups.create(tmp_path / "backups")
    assert not (tmp_path / "backups").exists()


def test_the_age_of_the_newest_complete_backup_is_a_metric(settings: Settings, tmp_path: Path) -> None:
    """The engineer on call is paged when backups stop: absent before the first, then its age."""
    with api_client(settings) as client:
        gauge = "chartvault_backup_age_seconds"
        assert gauge not in client.get("/metrics").text
        made = client.app.state.services.backups.create(tmp_path / "backups")
        assert made["complete"] and made["objects"] == 0  # an empty archive backs up too
        client.app.state.services.operations._gauges = None  # the gauges' 5 s cache, not waited for
        lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(gauge)]
        assert len(lines) == 1 and 0 <= float(lines[0].split()[-1]) < 60


def test_objects_in_an_s3_bucket_are_refused_with_what_to_use(settings: Settings, tmp_path: Path) -> None:
    """A bucket's object versions could not come back into a local folder as the catalog names them."""
    on_s3 = settings.model_copy(update={"object_store": "s3", "s3_endpoint": "http://127.0.0.1:1"})
    with Services(on_s3) as services, pytest.raises(InvalidInput, match="replication"):
        services.backups.create(tmp_path / "backups")
    assert not (tmp_path / "backups").exists()


def test_the_archive_check_page_shows_the_latest_backups_and_flags_none(
    settings: Settings, tmp_path: Path
) -> None:
    """Whoever checks the archive also sees whether it could be brought back: none is flagged, then the
    snapshot's stamp and state; never a path of the backup folder."""
    with Services(settings) as services:
        services.access.create_user("root-admin", "Root Admin", "admin", password="correct horse battery")
    with web_client(settings) as client:
        assert sign_in(client, "root-admin", "correct horse battery").status_code == 303
        before = client.get("/ui/admin/check")
        assert before.status_code == 200 and "No backup of this archive has been made" in before.text
        made = client.app.state.services.backups.create(tmp_path / "secret-backup-place")
        after = client.get("/ui/admin/check").text
        assert made["stamp"] in after and "complete" in after and "recent" in after
        assert "No backup" not in after and "secret-backup-place" not in after

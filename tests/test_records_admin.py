"""What the records and admin pages read through the services: audit entries by filter and page,
past dispositions, quarantined files and purging one of them. Real SQLite catalogs and data folders."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from recordsfixtures import chart_pdf, ingest
from sqlalchemy import update

from chartvault.archive.models import AuditEvent, Batch, BatchFile
from chartvault.errors import InvalidInput, NotFound
from chartvault.services import Caller, Services

# -- audit entries ---------------------------------------------------------------------------------


def _entries(vault: Services) -> None:
    """Twelve entries by two actors about three targets, the first four backdated ten days."""
    log = vault.parts.audit_log
    for i in range(12):
        if i == 4:
            with vault.parts.sessions() as s:
                s.execute(
                    update(AuditEvent)
                    .where(AuditEvent.actor.in_(("user:aaa", "user:bbb")))
                    .values(at=datetime.now(UTC) - timedelta(days=10))
                )
                s.commit()
        actor = "user:aaa" if i % 2 else "user:bbb"
        log.record(actor, "document.read" if i % 3 else "search", "document", f"doc{i % 3}")


def test_audit_entries_filter_newest_first(vault: Services) -> None:
    _entries(vault)
    access = vault.access
    mine = access.audit_entries(actor="user:aaa")
    assert [e.actor for e in mine.entries] == ["user:aaa"] * 6
    assert [e.seq for e in mine.entries] == sorted((e.seq for e in mine.entries), reverse=True)
    reads = access.audit_entries(action="document.read", target="doc1")
    assert {(e.action, e.target_id) for e in reads.entries} == {("document.read", "doc1")}
    assert len(reads.entries) == 4
    today = datetime.now(UTC).date()
    recent = access.audit_entries(date_from=today, actor="user:bbb")
    assert len(recent.entries) == 4  # bbb wrote 6, two of them ten days back
    old = access.audit_entries(date_to=today - timedelta(days=5), actor="user:bbb")
    assert len(old.entries) == 2
    assert "document.read" in mine.actions and "search" in mine.actions
    with pytest.raises(InvalidInput):
        access.audit_entries(date_from=today, date_to=today - timedelta(days=1))


def test_audit_entries_page_by_position_both_ways(vault: Services) -> None:
    _entries(vault)
    access = vault.access
    first = access.audit_entries(actor="user:aaa", limit=4)
    assert len(first.entries) == 4 and first.newer is None and first.older is not None
    second = access.audit_entries(actor="user:aaa", limit=4, before=first.older)
    assert len(second.entries) == 2 and second.older is None and second.newer is not None
    assert {e.seq for e in first.entries}.isdisjoint(e.seq for e in second.entries)
    back = access.audit_entries(actor="user:aaa", limit=4, after=second.newer)
    assert [e.seq for e in back.entries] == [e.seq for e in first.entries]
    assert back.newer is None


def test_reading_the_audit_log_is_itself_recorded_without_values(vault: Services) -> None:
    _entries(vault)
    admin = vault.acting_as(Caller("user:adm", "admin", user_id="adm"))
    admin.access.audit_entries(actor="user:aaa", target="doc1")
    newest = vault.access.audit_entries(action="audit.read").entries[0]
    assert newest.actor == "user:adm" and newest.detail == {"filters": ["actor", "target"], "entries": 2}


# -- dispositions ----------------------------------------------------------------------------------


@pytest.mark.slow  # a chart archived and its store lock waited out
def test_dispositions_lists_runs_newest_first(tmp_path: Path) -> None:
    from chartvault.config import Settings

    settings = Settings(data_dir=tmp_path / "data", workers=1, object_lock_min_seconds=1, _env_file=None)
    with Services(settings, Caller("test:him_admin")) as v:
        assert v.records.dispositions() == []
        (old,) = ingest(v, chart_pdf(tmp_path / "a.pdf", mrn="00610001", dob="03/04/1950", dos="05/06/2005"))
        time.sleep(1.5)
        first = v.records.dispose([old], approved_by="HIM manager", reason="annual schedule")
        second = v.records.dispose([], approved_by="HIM manager")
        runs = v.records.dispositions()
        assert [r.id for r in runs] == [second.disposition_id, first.disposition_id]
        assert (runs[1].status, runs[1].document_count, runs[1].executed_by) == (
            "complete",
            1,
            "test:him_admin",
        )
        assert runs[1].has_certificate
        assert v.records.certificate(first.disposition_id)["reason"] == "annual schedule"


# -- quarantine ------------------------------------------------------------------------------------


def _quarantined(v: Services, n: int) -> list[BatchFile]:
    """``n`` refused files as the pipeline leaves them: bytes and reason file under quarantine/."""
    rows = []
    with v.parts.sessions() as s:
        batch = Batch(source="test", status="complete_with_errors")
        s.add(batch)
        s.flush()
        for i in range(n):
            row = BatchFile(
                batch_id=batch.id,
                seq=i + 1,
                original_name=f"SMITH JOHN chart {i}.tif",
                size=5 + i,
                sha256=f"{i:064x}",
                status="quarantined",
                reason_code="unsupported_type",
                reason="The file is of an unknown type.",
            )
            s.add(row)
            s.flush()
            folder = v.settings.data_dir / "quarantine" / batch.id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / row.id).write_bytes(b"x" * row.size)
            (folder / f"{row.id}.reason.txt").write_text("code: unsupported_type\n")
            row.staged_path = f"quarantine/{batch.id}/{row.id}"
            rows.append(row)
        s.commit()
        for row in rows:
            s.refresh(row)
            s.expunge(row)
    return rows


def test_quarantine_lists_ids_and_reasons_never_names(vault: Services) -> None:
    rows = _quarantined(vault, 3)
    listed = vault.intake.quarantine()
    assert listed.total == 3 and {f.file_id for f in listed.files} == {r.id for r in rows}
    one = next(f for f in listed.files if f.file_id == rows[0].id)
    assert (one.batch_id, one.sha256, one.size, one.reason_code, one.kept) == (
        rows[0].batch_id,
        rows[0].sha256,
        5,
        "unsupported_type",
        True,
    )
    assert "SMITH" not in repr(listed)


def test_purge_one_quarantined_file_removes_only_it(vault: Services) -> None:
    rows = _quarantined(vault, 3)
    folder = vault.settings.data_dir / "quarantine" / rows[0].batch_id
    purged = vault.intake.purge_quarantined_file(rows[1].id)
    assert purged.files == [rows[1].id] and purged.bytes > 6
    assert not (folder / rows[1].id).exists() and not (folder / f"{rows[1].id}.reason.txt").exists()
    assert (folder / rows[0].id).exists() and (folder / rows[2].id).exists()
    kept = {f.file_id: f.kept for f in vault.intake.quarantine().files}
    assert kept == {rows[0].id: True, rows[1].id: False, rows[2].id: True}
    with pytest.raises(NotFound):
        vault.intake.purge_quarantined_file(rows[1].id)  # nothing kept any more
    with pytest.raises(NotFound):
        vault.intake.purge_quarantined_file("no-such-file")
    entries = vault.access.audit_entries(action="quarantine.purge").entries
    assert entries and entries[0].detail["files"] == [rows[1].id]


def test_purge_by_age_takes_only_the_old_ones(vault: Services) -> None:
    rows = _quarantined(vault, 3)
    with vault.parts.sessions() as s:
        s.execute(
            update(BatchFile)
            .where(BatchFile.id == rows[0].id)
            .values(updated_at=datetime.now(UTC) - timedelta(days=40))
        )
        s.commit()
    preview = vault.intake.purge_quarantine(30, dry_run=True)
    assert preview.files == [rows[0].id] and preview.dry_run
    assert (vault.settings.data_dir / rows[0].staged_path).exists()
    done = vault.intake.purge_quarantine(30)
    assert done.files == [rows[0].id]
    assert not (vault.settings.data_dir / rows[0].staged_path).exists()
    assert all((vault.settings.data_dir / r.staged_path).exists() for r in rows[1:])
    assert os.listdir(vault.settings.data_dir / "quarantine" / rows[0].batch_id)

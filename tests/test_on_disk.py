"""On disk: owner-only files and folders, quarantined files purged after a while (audited), OCR scratch
files of a killed ingest removed on resume and reported by ``chartvault check``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import api_client
from recordsfixtures import chart_pdf
from sqlalchemy import select, update

from chartvault.archive.models import AuditEvent, BatchFile
from chartvault.config import Settings
from chartvault.ingest.private import ocr_workdir_prefix
from chartvault.services import Services


def _ingest_good_and_bad(vault: Services, tmp_path: Path) -> str:
    good = chart_pdf(tmp_path / "good.pdf", mrn="00910001", dob="01/02/1970", dos="03/04/2024")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(os.urandom(4096))
    summary = vault.intake.ingest([good, bad], source="test")
    (quarantined,) = [f for f in summary.files if f.status == "quarantined"]
    assert quarantined.file_id is not None
    return quarantined.file_id


@pytest.mark.slow
def test_everything_under_the_data_folder_is_owner_only(tmp_path: Path) -> None:
    os.umask(0o022)  # a usual login umask: ChartVault must not rely on it
    settings = Settings(data_dir=tmp_path / "data", workers=1, _env_file=None)
    with Services(settings) as vault:
        _ingest_good_and_bad(vault, tmp_path)
        vault.access.create_token("staff", "someone")  # writes the audit log and its key
    data = settings.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    seen = {"catalog.sqlite3": False, "objects": False, "quarantine": False, "index": False, "keys": False}
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path.relative_to(data)} is {mode:04o}"
        top = path.relative_to(data).parts[:1]
        if top and top[0] in seen:
            seen[top[0]] = True
    assert all(seen.values()), seen


@pytest.mark.slow
def test_quarantined_files_are_purged_after_the_period_and_audited(vault: Services, tmp_path: Path) -> None:
    file_id = _ingest_good_and_bad(vault, tmp_path)
    data = vault.settings.data_dir
    kept = data / "quarantine"
    assert any(p.name == file_id for p in kept.rglob("*"))
    assert vault.intake.purge_quarantine().files == []  # not old enough yet
    with vault.parts.sessions() as s:
        s.execute(
            update(BatchFile)
            .where(BatchFile.id == file_id)
            .values(updated_at=datetime.now(UTC) - timedelta(days=91))
        )
        s.commit()
    dry = vault.intake.purge_quarantine(dry_run=True)
    assert dry.files == [file_id] and dry.bytes >= 4096 and any(p.name == file_id for p in kept.rglob("*"))
    done = vault.intake.purge_quarantine()
    assert done.files == [file_id]
    assert not [p for p in kept.rglob("*") if p.is_file()]
    with vault.parts.sessions() as s:
        row = s.get(BatchFile, file_id)
        assert (
            row.status == "quarantined" and row.reason_code == "unsupported_type" and row.staged_path is None
        )
        (entry,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "quarantine.purge")).all()
        assert entry.detail["files"] == [file_id]
    assert vault.intake.purge_quarantine().files == []  # nothing twice


@pytest.mark.slow
def test_the_server_purges_in_its_background_loop(settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"housekeeping_interval_s": 0.2, "quarantine_retention_days": 1})
    with Services(settings) as vault:
        file_id = _ingest_good_and_bad(vault, tmp_path)
        with vault.parts.sessions() as s:
            old = datetime.now(UTC) - timedelta(days=2)
            s.execute(update(BatchFile).where(BatchFile.id == file_id).values(updated_at=old))
            s.commit()
    with api_client(settings) as c:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with c.app.state.services.parts.sessions() as s:
                if s.get(BatchFile, file_id).staged_path is None:
                    break
            time.sleep(0.2)
        with c.app.state.services.parts.sessions() as s:
            assert s.get(BatchFile, file_id).staged_path is None


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


@pytest.mark.slow
def test_ocr_scratch_of_a_killed_ingest_is_reported_and_removed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "CHARTVAULT_DATA_DIR": str(data)}
    cli = [sys.executable, "-m", "chartvault.cli"]
    subprocess.run([*cli, "check", "--json"], env=env, capture_output=True, check=False)
    tmp = data / "tmp"
    tmp.mkdir(exist_ok=True)
    # What a SIGKILLed OCR worker leaves: its scratch folder with a page image, named after its pid.
    mine = ocr_workdir_prefix()
    dead = tmp / (mine.replace(f"ocr-{os.getpid()}-", f"ocr-{_dead_pid()}-") + "x1")
    dead.mkdir()
    (dead / "page-1.pgm").write_bytes(b"P5 10 10 255\n" + b"\0" * 100)
    live = tmp / (mine + "x2")  # this process is alive: its folder is in use
    live.mkdir()

    check = subprocess.run([*cli, "check", "--json"], env=env, capture_output=True, text=True)
    assert check.returncode == 1, check.stderr
    report = json.loads(check.stdout)
    assert [x["name"] for x in report["temp_leftovers"]] == [dead.name]
    assert report["temp_leftovers"][0]["bytes"] == 113 and report["temp_leftovers"][0]["why"] == "owner_gone"

    resumed = subprocess.run([*cli, "resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not dead.exists() and live.exists()
    assert (
        json.loads(subprocess.run([*cli, "check", "--json"], env=env, capture_output=True, text=True).stdout)[
            "temp_leftovers"
        ]
        == []
    )

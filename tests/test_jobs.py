"""Background jobs (``chartvault.services.jobs``) over a real catalog: a job runs to done and its outcome is
kept in the catalog; a failing one keeps its exception's type and no patient data; a second start of a kind
while one runs is given the running one; a job a dead process left running is marked failed when a server
starts; and a registration import, a full archive check and a retraining each run as one."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from chartvault.archive.models import AuditEvent, Job
from chartvault.errors import Forbidden, NotFound
from chartvault.services import Caller, Services
from chartvault.services.background import BackgroundWork

PHI = ("WAYFARER", "MINNA", "0012345678", "1950-03-04")


def _wait(services: Services, job_id: str, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = services.jobs.get(job_id)
        if job.state in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


def _audit(services: Services, action: str) -> list[AuditEvent]:
    with services.parts.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def _naive(at: datetime | str) -> datetime:
    """A time without its zone (SQLite returns none, PostgreSQL UTC, a job's view ISO text), to compare."""
    return (datetime.fromisoformat(at) if isinstance(at, str) else at).replace(tzinfo=None)


def _dead_pid() -> int:
    """The pid of a process that has ended (and so names no process now)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_job_runs_to_done_and_the_catalog_keeps_its_outcome(vault: Services) -> None:
    him = vault.acting_as(Caller("user:u1", "him_admin", user_id="u1"))
    seen: list[object] = []

    def work(context) -> dict:
        seen.append(context.input)
        context.progress({"rows_read": 10})
        return {"imported": 3, "refused": 1}

    job, started = him.jobs.start("registration_import", work)
    assert started and job.state == "queued" and job.started_by == "u1"
    done = _wait(vault, job.id)
    assert (done.state, done.result, done.error) == ("done", {"imported": 3, "refused": 1}, None)
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    assert seen == [None]
    with Services(vault.settings) as other:  # another process reads the same row from the catalog
        assert other.jobs.get(job.id) == done
        assert other.jobs.latest("registration_import") == done
    assert [e.detail for e in _audit(vault, "job.start")] == [{"kind": "registration_import"}]
    ended = _audit(vault, "job.end")
    assert [(e.actor, e.outcome, e.target_id) for e in ended] == [("user:u1", "ok", job.id)]
    # Audited before it is recorded as ended: whoever sees it done finds the entry (a crash between the
    # two leaves a job the next start marks interrupted, never an ended job the audit log lacks).
    assert _naive(ended[0].at) <= _naive(done.finished_at)


def test_a_failing_job_is_failed_with_its_type_and_no_patient_data(
    vault: Services, caplog: pytest.LogCaptureFixture
) -> None:
    def work(context) -> dict:
        raise ValueError("WAYFARER, MINNA 0012345678 born 1950-03-04 could not be written")

    with caplog.at_level(logging.DEBUG):
        job, _ = vault.jobs.start("archive_check", work)
        failed = _wait(vault, job.id)
    assert failed.state == "failed" and failed.result is None
    assert failed.error.startswith("ValueError: ")
    kept = [failed.error, caplog.text, *(str(e.detail) for e in _audit(vault, "job.end"))]
    assert not [value for value in PHI for text in kept if value in text]
    assert _audit(vault, "job.end")[-1].outcome == "failed"
    with vault.parts.sessions() as s:
        assert s.get(Job, job.id).active_kind is None  # the kind is free again


def test_our_own_refusal_keeps_its_message(vault: Services, tmp_path: Path) -> None:
    """A registration list with no usable header is refused by the import with a message naming columns
    (never a value), and the job says so: the page shows it where the import used to answer 422."""
    staged = tmp_path / "headless.csv"
    staged.write_text("mrn,name\n0012345678,WAYFARER MINNA\n", encoding="utf-8")
    job, started = vault.patients.start_import(staged)
    failed = _wait(vault, job.id)
    assert started and failed.state == "failed"
    assert failed.error.startswith("InvalidInput: the header lacks the column(s)") and "dob" in failed.error
    assert not [value for value in PHI if value in failed.error]
    assert not staged.exists() and not list((vault.settings.data_dir / "jobs").iterdir())


def test_a_second_start_while_one_runs_is_given_the_running_one(vault: Services, tmp_path: Path) -> None:
    release = threading.Event()
    runs: list[str] = []

    def work(context) -> dict:
        runs.append("ran")
        release.wait(30)
        return {"objects_checked": 0}

    first, started = vault.jobs.start("archive_check", work)
    second_file = tmp_path / "second.csv"
    second_file.write_text("mrn\n", encoding="utf-8")
    try:
        again, started_again = vault.jobs.start("archive_check", work, input=second_file)
        with Services(vault.settings) as other:  # another server process asking is given it too
            from_other, other_started = other.jobs.start("archive_check", work)
        other_kind, other_kind_started = vault.jobs.start("classifier_train", lambda context: {})
    finally:
        release.set()
    assert started and not started_again and not other_started and other_kind_started
    assert again.id == from_other.id == first.id and other_kind.id != first.id
    assert not second_file.exists()  # the file of a start that did not happen is not left behind
    assert _wait(vault, first.id).state == "done" and runs == ["ran"]
    assert _wait(vault, other_kind.id).state == "done"
    third, started_third = vault.jobs.start("archive_check", work)
    assert started_third and third.id != first.id  # once it ended, a new one starts
    _wait(vault, third.id)


def _left_running(services: Services, kind: str, owner: str, beat_ago: timedelta) -> str:
    """A job row as a process that ran it would have left it (written directly, no thread behind it)."""
    beat = datetime.now(UTC) - beat_ago
    with services.parts.sessions() as s:
        job = Job(kind=kind, state="running", active_kind=kind, owner=owner, created_at=beat)
        job.started_at = job.heartbeat_at = beat
        s.add(job)
        s.commit()
        return job.id


def test_jobs_a_dead_process_left_running_are_failed_when_a_server_starts(vault: Services) -> None:
    host = socket.gethostname()
    dead_here = _left_running(vault, "registration_import", f"{host}:{_dead_pid()}:0a1b", timedelta(0))
    silent_elsewhere = _left_running(vault, "archive_check", "far-away-host:4242:0a1b", timedelta(minutes=10))
    alive_elsewhere = _left_running(vault, "classifier_train", "far-away-host:4343:0a1b", timedelta(0))
    leftover = vault.settings.data_dir / "jobs" / f"{dead_here}.input"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_text("mrn,last_name\n0012345678,WAYFARER\n", encoding="utf-8")  # its staged list
    background = BackgroundWork(vault)
    background.start(resume=False)
    background.stop()
    for job_id in (dead_here, silent_elsewhere):
        job = vault.jobs.get(job_id)
        assert (job.state, job.error) == ("failed", "interrupted by a restart") and job.finished_at
    assert vault.jobs.get(alive_elsewhere).state == "running"  # another live replica's: left alone
    assert not leftover.exists()
    ended = {e.target_id: e for e in _audit(vault, "job.end")}
    assert set(ended) == {dead_here, silent_elsewhere} and {e.outcome for e in ended.values()} == {"failed"}
    job, started = vault.jobs.start("registration_import", lambda context: {"imported": 0})
    assert started and _wait(vault, job.id).state == "done"  # the kind is not held by the dead job


def test_a_start_takes_over_from_a_job_whose_process_died(vault: Services) -> None:
    """Without a restart of this server (another replica died): the next start finds the job dead."""
    dead = _left_running(vault, "archive_check", f"{socket.gethostname()}:{_dead_pid()}:0a1b", timedelta(0))
    job, started = vault.jobs.start("archive_check", lambda context: {"consistent": True})
    assert started and job.id != dead
    assert vault.jobs.get(dead).error == "interrupted by a restart"
    assert _wait(vault, job.id).state == "done"


def test_a_job_is_shown_only_to_roles_allowed_its_kind(vault: Services) -> None:
    job, _ = vault.jobs.start("archive_check", lambda context: {"consistent": True})
    _wait(vault, job.id)
    him = vault.acting_as(Caller("user:h", "him_admin", user_id="h"))
    staff = vault.acting_as(Caller("user:s", "staff", user_id="s"))
    admin = vault.acting_as(Caller("user:a", "admin", user_id="a"))
    assert admin.jobs.get(job.id).state == "done"
    with pytest.raises(Forbidden):
        him.jobs.get(job.id)  # the archive check is the admins'
    with pytest.raises(Forbidden):
        staff.jobs.start("registration_import", lambda context: {})
    with pytest.raises(NotFound):
        admin.jobs.get("0" * 32)


def test_a_registration_import_runs_as_a_job(vault: Services, tmp_path: Path) -> None:
    rows = ["mrn,last_name,first_name,dob"] + [f"{100000 + i},Doe,Jane,1960-01-01" for i in range(30_000)]
    rows.append("999999,Roe,Rick,1960-02-30")  # line 30,002: no such date
    staged = tmp_path / "reg.csv"
    staged.write_text("\n".join(rows) + "\n", encoding="utf-8")
    job, started = vault.patients.start_import(staged)
    assert started and not staged.exists()  # moved under the jobs folder, by job id
    done = _wait(vault, job.id, timeout=120)
    assert done.state == "done", done.error
    result = done.result
    assert (result["imported"], result["refused"], result["errors_note"]) == (30_000, 1, None)
    assert [(e["line"], e["code"]) for e in result["errors"]] == [(30_002, "dob_invalid")]
    assert "Roe" not in str(result) and "1960-02-30" not in str(result)
    assert not list((vault.settings.data_dir / "jobs").iterdir())
    assert _audit(vault, "patients.import")[-1].detail["imported"] == 30_000


def test_a_registration_import_reports_rows_as_it_goes(vault: Services, tmp_path: Path) -> None:
    seen: list[dict] = []
    from chartvault.services.jobs import JobContext
    from chartvault.services.patients import _rows_so_far

    rows = ["mrn,last_name,first_name,dob"] + [f"{200000 + i},Doe,Jane,1960-01-01" for i in range(25_001)]
    path = tmp_path / "reg.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    vault.patients.import_registration(path, _rows_so_far(JobContext(None, seen.append)))
    assert seen == [{"rows_read": 25_000, "refused": 0}]  # at the commit after 25,000 rows


def test_a_full_archive_check_runs_as_a_job(vault: Services) -> None:
    admin = vault.acting_as(Caller("user:a", "admin", user_id="a"))
    job = admin.records.start_check()
    done = _wait(vault, job.id)
    assert done.state == "done" and done.kind == "archive_check" and done.started_by == "a"
    assert done.result["fixity"] is True and done.result["findings"]["missing"] == {"count": 0, "ids": []}
    checks = _audit(vault, "archive.check")
    assert checks[-1].actor == "user:a" and checks[-1].detail["fixity"] is True


@pytest.mark.skipif(os.cpu_count() == 1, reason="a retraining on one core is slow")
@pytest.mark.slow  # a real retraining (about six seconds on two cores)
def test_a_retraining_runs_as_a_job_and_the_page_reads_it_from_the_catalog(vault: Services) -> None:
    job = vault.review.start_training()
    done = _wait(vault, job.id, timeout=180)
    assert done.state == "done" and done.result["n_train"] > 0
    with Services(vault.settings) as other:  # what another server process's classifier page shows
        training = other.review.classifier_training()
        assert training.state == "done" and training.result.version == done.result["version"]

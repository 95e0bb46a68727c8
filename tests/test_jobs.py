"""Background jobs (``chartvault.services.jobs``) over a real catalog: a job runs to done and its outcome is
kept in the catalog; a failing one keeps its exception's type and no patient data; a second start of a kind
while one runs is given the running one; a job a dead process left running is marked failed when a server
starts; and a registration import, a full archive check and a retraining each run as one."""

from __future__ import annotations

import json
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
from conftest import job_row
from sqlalchemy import func, select

from chartvault.archive.models import AuditEvent, Job
from chartvault.errors import Forbidden, NotFound
from chartvault.services import Caller, Services
from chartvault.services.background import BackgroundWork

PHI = ("WAYFARER", "MINNA", "0012345678", "1950-03-04")


def _wait(services: Services, job_id: str, timeout: float = 60) -> object:
    """The job once it ended (done, failed or cancelled) and its thread wrote ``job.end``, which it does
    just after the job's end is committed (asserting on the audit sooner was a race under load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = services.jobs.get(job_id)
        ended = any(e.target_id == job_id for e in _audit(services, "job.end"))
        if job.state in ("done", "failed", "cancelled") and ended:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


def _audit(services: Services, action: str) -> list[AuditEvent]:
    with services.parts.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def _naive(at: datetime | str) -> datetime:
    """A time without its zone (SQLite returns none, PostgreSQL UTC, a job's view ISO text), to compare."""
    return (datetime.fromisoformat(at) if isinstance(at, str) else at).replace(tzinfo=None)


def _unwrapped(output: str) -> str:
    """Console output with its lines joined: rich wraps at the width it found when the console was made,
    which under pytest-xdist is whatever an earlier test of the process left."""
    return " ".join(output.split())


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


def test_a_dead_job_is_marked_ended_only_once_its_end_is_audited(vault: Services, monkeypatch) -> None:
    """Recovery recorded a dead job as failed, then audited it: a crash (or an audit store that failed)
    between the two left an ended job the audit log never heard of. Now the entry comes first, and a job
    whose entry could not be written stays for the next start to end, at recovery and at a new start."""
    for kind, end in (("registration_import", vault.jobs.recover), ("archive_check", None)):
        dead = _left_running(vault, kind, f"{socket.gethostname()}:{_dead_pid()}:0a1b", timedelta(0))
        trail = vault.jobs.audit

        def broken(*args: object, **kwargs: object) -> None:
            raise OSError("the audit store is unreachable")

        monkeypatch.setattr(vault.jobs, "audit", broken)
        with pytest.raises(OSError):
            end() if end else vault.jobs.start(kind, lambda context: {"consistent": True})
        assert vault.jobs.get(dead).state == "running"  # not ended without its entry
        monkeypatch.setattr(vault.jobs, "audit", trail)
        if end:
            assert end() == [dead]
        else:
            job, started = vault.jobs.start(kind, lambda context: {"consistent": True})
            assert started and _wait(vault, job.id).state == "done"
        assert vault.jobs.get(dead).error == "interrupted by a restart"
        assert [e.outcome for e in _audit(vault, "job.end") if e.target_id == dead] == ["failed"]


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


# ------------------------------------------------------------------------------ managing jobs: cancel


def test_a_cancelled_job_stops_at_its_next_boundary_with_its_counts_so_far(vault: Services) -> None:
    reached, go = threading.Event(), threading.Event()
    steps: list[int] = []

    def work(context) -> dict:
        context.boundary({"rows": 1000})
        steps.append(1)
        reached.set()
        go.wait(30)
        context.boundary({"rows": 2000})  # a cancel asked meanwhile stops it here
        steps.append(2)
        return {"rows": 3000}

    admin = vault.acting_as(Caller("user:a", "admin", user_id="a"))
    job, _ = admin.jobs.start("registration_import", work)
    assert reached.wait(30)
    with Services(vault.settings) as other:  # another server process is asked
        asked = other.acting_as(Caller("user:h", "him_admin", user_id="h")).jobs.cancel(job.id)
    go.set()
    assert asked.state == "running" and asked.cancel_requested_at
    ended = _wait(vault, job.id)
    assert (ended.state, ended.result, ended.error, steps) == ("cancelled", {"rows": 2000}, None, [1])
    assert ended.finished_at and ended.cancel_requested_at == asked.cancel_requested_at
    assert [(e.actor, e.detail) for e in _audit(vault, "job.cancel")] == [
        ("user:h", {"kind": "registration_import"})
    ]
    assert [(e.outcome, e.target_id) for e in _audit(vault, "job.end")] == [("cancelled", job.id)]
    with vault.parts.sessions() as s:
        assert s.get(Job, job.id).active_kind is None  # the kind is free again


def test_cancelling_a_job_that_ended_is_a_conflict_and_only_for_its_roles(vault: Services) -> None:
    from chartvault.errors import Conflict

    job, _ = vault.jobs.start("archive_check", lambda context: {"consistent": True})
    assert _wait(vault, job.id).state == "done"
    with pytest.raises(Conflict) as ended:
        vault.jobs.cancel(job.id)
    assert ended.value.code == "job_ended" and "already ended (done)" in str(ended.value)
    assert vault.jobs.get(job.id).state == "done" and not _audit(vault, "job.cancel")
    running = _left_running(vault, "archive_check", "far-away-host:4242:0a1b", timedelta(0))
    with pytest.raises(Forbidden):  # the archive check is the admins'
        vault.acting_as(Caller("user:h", "him_admin", user_id="h")).jobs.cancel(running)
    with pytest.raises(NotFound):
        vault.jobs.cancel("0" * 32)
    assert vault.jobs.get(running).cancel_requested_at is None


def test_cancelling_a_job_whose_process_died_ends_it_at_once(vault: Services) -> None:
    dead = _left_running(
        vault, "classifier_train", f"{socket.gethostname()}:{_dead_pid()}:0a1b", timedelta(0)
    )
    answer = vault.jobs.cancel(dead)
    assert (answer.state, answer.error) == ("failed", "interrupted by a restart") and answer.finished_at
    assert [e.outcome for e in _audit(vault, "job.end")] == ["failed"]


# ------------------------------------------------------------------------------ managing jobs: list, prune


def test_recent_jobs_newest_first_of_the_kinds_the_role_may_see(vault: Services) -> None:
    from chartvault.errors import InvalidInput

    old_check = job_row(vault.settings, "archive_check", "done", age=timedelta(days=3))
    import_ = job_row(vault.settings, "registration_import", "cancelled", age=timedelta(days=2))
    train = job_row(vault.settings, "classifier_train", "failed", age=timedelta(days=1))
    running = _left_running(vault, "registration_import", "far-away-host:1:0a1b", timedelta(0))
    admin = vault.acting_as(Caller("user:a", "admin", user_id="a"))
    him = vault.acting_as(Caller("user:h", "him_admin", user_id="h"))
    assert [j.id for j in admin.jobs.recent()] == [running, train, import_, old_check]
    assert [j.id for j in him.jobs.recent()] == [running, train, import_]  # no archive check
    assert [j.id for j in admin.jobs.recent(kind="registration_import")] == [running, import_]
    assert [j.id for j in admin.jobs.recent(state="cancelled")] == [import_]
    assert [j.id for j in admin.jobs.recent(limit=2)] == [running, train]
    with pytest.raises(Forbidden):
        him.jobs.recent(kind="archive_check")
    with pytest.raises(Forbidden):
        vault.acting_as(Caller("user:s", "staff", user_id="s")).jobs.recent(kind="classifier_train")
    assert vault.acting_as(Caller("user:s", "staff", user_id="s")).jobs.recent() == []
    for bad in ({"limit": 0}, {"limit": 201}, {"state": "sleeping"}, {"kind": "reindex"}):
        with pytest.raises(InvalidInput):
            admin.jobs.recent(**bad)


def test_prune_removes_only_jobs_that_ended_long_enough_ago(vault: Services, monkeypatch) -> None:
    from typer.testing import CliRunner

    from chartvault.cli import app

    gone = [
        job_row(vault.settings, "archive_check", "done", age=timedelta(days=40)),
        job_row(vault.settings, "classifier_train", "failed", age=timedelta(days=31)),
    ]
    recent = job_row(vault.settings, "registration_import", "cancelled", age=timedelta(days=5))
    active = _left_running(vault, "registration_import", "far-away-host:1:0a1b", timedelta(days=90))
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(vault.settings.data_dir))
    listed = CliRunner().invoke(app, ["jobs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [j["id"] for j in json.loads(listed.output)] == [recent, gone[1], gone[0], active]
    pruned = CliRunner().invoke(app, ["jobs", "prune", "--older-than", "30"])
    assert pruned.exit_code == 0 and "removed 2 job(s)" in pruned.output
    with vault.parts.sessions() as s:
        assert set(s.scalars(select(Job.id))) == {recent, active}  # the running one, however old, stays
    assert [e.detail for e in _audit(vault, "jobs.prune")] == [{"older_than_days": 30, "removed": 2}]
    assert vault.jobs.prune(30) == 0 and len(_audit(vault, "jobs.prune")) == 1  # nothing gone: no entry
    assert vault.jobs.prune(0) == 1  # every ended job
    with vault.parts.sessions() as s:
        assert list(s.scalars(select(Job.id))) == [active]


def test_a_server_start_prunes_jobs_past_the_retention(vault: Services) -> None:
    old = job_row(
        vault.settings, "archive_check", "done", age=timedelta(days=vault.settings.job_retention_days + 1)
    )
    kept = job_row(
        vault.settings, "archive_check", "done", age=timedelta(days=vault.settings.job_retention_days - 1)
    )
    background = BackgroundWork(vault)
    background.start(resume=False)
    background.stop()
    with vault.parts.sessions() as s:
        assert set(s.scalars(select(Job.id))) == {kept} and old != kept


# ------------------------------------------------------------------------------ cancelling the three kinds


def test_a_registration_import_stopped_at_a_commit_keeps_what_it_committed(
    vault: Services, tmp_path: Path, monkeypatch
) -> None:
    from chartvault.archive import registration
    from chartvault.archive.models import Patient

    monkeypatch.setattr(registration, "_CHUNKS_PER_COMMIT", 1)  # a commit every 1,000 rows
    rows = ["mrn,last_name,first_name,dob"] + [f"{300000 + i},Doe,Jane,1960-01-01" for i in range(3_500)]
    path = tmp_path / "reg.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    asked: list[int] = []
    result, counts = vault.patients._import(path, stop=lambda: not asked.append(1))  # stop at the first
    assert counts.stopped and counts.applied == 1_000 and len(asked) == 1
    assert (result.imported, result.refused) == (1_000, 0)
    with vault.parts.sessions() as s:
        assert s.scalar(select(func.count(Patient.id))) == 1_000  # committed, consistent
    assert _audit(vault, "patients.import")[-1].outcome == "cancelled"
    again = vault.patients.import_registration(path)  # the list loaded again finishes it
    assert (again.imported, again.unchanged) == (2_500, 1_000)


def _registration_csv(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "reg.csv"
    lines = ["mrn,last_name,first_name,dob"] + [f"{300000 + i},Doe,Jane,1960-01-01" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_an_import_while_another_runs_is_refused_on_every_face_and_writes_nothing(
    vault: Services, tmp_path: Path
) -> None:
    """Two imports at once failed on each other's new MRNs: a 500 part-way, a list half loaded. The console's
    and the API's import run as the kind's job now, one at a time whichever process runs the other."""
    from fastapi.testclient import TestClient

    from chartvault.api.app import create_app
    from chartvault.archive.models import Patient
    from chartvault.errors import Conflict

    running = _left_running(vault, "registration_import", "far-away-host:4242:0a1b", timedelta(0))
    path = _registration_csv(tmp_path, 3)
    with pytest.raises(Conflict) as refused:
        vault.patients.import_registration(path)
    assert refused.value.code == "job_running" and running in refused.value.message
    token = vault.access.create_token("him_admin", "an importer").token
    with TestClient(create_app(vault.settings, start_background=False)) as client:
        answer = client.post(
            "/patients/import", content=path.read_bytes(), headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "job_running", answer.text
    with vault.parts.sessions() as s:
        assert s.scalar(select(func.count(Patient.id))) == 0
    assert vault.jobs.latest("registration_import").id == running  # nothing else was started


def test_an_import_in_the_foreground_is_a_job_listed_and_cancellable(
    vault: Services, tmp_path: Path, monkeypatch
) -> None:
    from chartvault.archive import registration

    monkeypatch.setattr(registration, "_CHUNKS_PER_COMMIT", 1)  # a commit every 1,000 rows
    path = _registration_csv(tmp_path, 3_500)

    def cancel_at_the_first_commit(counts) -> None:  # as an operator would, from the jobs page
        vault.jobs.cancel(vault.jobs.latest("registration_import").id)

    stopped = vault.patients.import_registration(path, progress=cancel_at_the_first_commit)
    assert stopped.cancelled and (stopped.imported, stopped.refused) == (1_000, 0)
    job = vault.jobs.latest("registration_import")
    assert job.state == "cancelled" and job.result["rows_applied"] == 1_000
    again = vault.patients.import_registration(path)
    assert not again.cancelled and (again.imported, again.unchanged) == (2_500, 1_000)
    finished = vault.jobs.latest("registration_import")
    assert finished.id != job.id and finished.state == "done" and finished.result["imported"] == 2_500


def _fake_store_refs(vault: Services, monkeypatch, n: int) -> None:
    """The catalog naming ``n`` small objects (put in the store), without ingesting documents."""
    import hashlib

    from chartvault.archive import check

    refs = []
    for i in range(n):
        data = f"object {i}".encode()
        path = vault.settings.data_dir / f"object-{i}.bin"
        path.write_bytes(data)
        ref = vault.parts.store.put_file(
            str(path), hashlib.sha256(data).hexdigest(), "application/octet-stream"
        )
        refs.append((f"document:{i:032d}", ref))
    monkeypatch.setattr(check, "catalog_refs", lambda s: iter(refs))


def test_the_archive_check_reports_objects_checked_of_the_total_and_stops_when_cancelled(
    vault: Services, monkeypatch
) -> None:
    from chartvault.services import records
    from chartvault.services.jobs import JobCancelled, JobContext

    _fake_store_refs(vault, monkeypatch, 3)
    monkeypatch.setattr(records._CheckSteps, "ASK_EVERY_S", 0.0)  # asked before every object, not every 0.5 s
    seen: list[dict] = []
    result = vault.records.check(fixity=True, job=JobContext(None, seen.append))
    assert result["store"]["objects_total"] == 3 and result["store"]["objects_checked"] == 3
    assert seen[0]["step"] == "objects" and seen[0]["objects_total"] == 3  # after the first object
    index = next(p for p in seen if p["step"] == "index")
    assert (index["objects_checked"], index["objects_total"], index["missing"]) == (3, 3, 0)
    assert [p["step"] for p in seen[1:]] == ["index", "batches", "renditions", "temp", "unlinked"]

    asked = iter([False, True])  # cancelled after the first object
    with pytest.raises(JobCancelled) as stopped:
        vault.records.check(job=JobContext(None, seen.append, lambda: next(asked, True)))
    so_far = stopped.value.result
    assert (so_far["step"], so_far["objects_checked"], so_far["objects_total"]) == ("objects", 1, 3)
    assert _audit(vault, "archive.check")[-1].outcome == "cancelled"
    answers = [
        False,
        False,
        False,
        True,
    ]  # asked before each of the three objects, then as the index step begins
    with pytest.raises(JobCancelled) as between:
        vault.records.check(job=JobContext(None, lambda counts: None, lambda: answers.pop(0)))
    assert between.value.result["step"] == "index" and between.value.result["objects_checked"] == 3


class _FakeModel:
    """What a fit returns, without fitting (a real one takes 15-40 s)."""

    version, sklearn_version, n_train = "fake", "0", 1

    def __init__(self) -> None:
        self.saved: list[Path] = []

    def save(self, path: Path) -> None:
        self.saved.append(path)


def test_a_retraining_cancelled_during_the_fit_stops_before_saving_and_keeps_the_model(
    vault: Services, monkeypatch
) -> None:
    """The fit cannot be interrupted: a cancel during it takes effect as the next stage ("save") begins, the
    fitted model is thrown away, and the model in use stays what it was."""
    from chartvault.classify import doctype, model

    fitting, finish = threading.Event(), threading.Event()
    fitted: list[_FakeModel] = []
    installed: list[object] = []

    def fake_train(texts, labels, params=None):
        fitting.set()
        finish.wait(30)
        fitted.append(_FakeModel())
        return fitted[-1]

    monkeypatch.setattr(model, "train", fake_train)
    monkeypatch.setattr(doctype, "set_default_model", installed.append)
    him = vault.acting_as(Caller("user:h", "him_admin", user_id="h"))
    job = him.review.start_training()
    assert fitting.wait(30)
    assert him.jobs.get(job.id).result["stage"] == "fit"  # what the classifier page shows
    him.jobs.cancel(job.id)
    finish.set()
    ended = _wait(vault, job.id)
    assert ended.state == "cancelled" and ended.result == {
        "stage": "save",
        "stages": ["corrections", "texts", "fit", "save"],
    }
    assert len(fitted) == 1 and fitted[0].saved == [] and installed == []  # thrown away
    training = him.review.classifier_training()
    assert training.state == "cancelled" and training.result is None and training.progress["stage"] == "save"
    assert not _audit(vault, "classifier.train")  # no training happened


def test_the_console_lists_and_cancels_jobs(vault: Services, monkeypatch) -> None:
    from typer.testing import CliRunner

    from chartvault.cli import app

    running = _left_running(vault, "archive_check", "far-away-host:4242:0a1b", timedelta(0))
    done = job_row(
        vault.settings, "registration_import", "done", result={"imported": 3, "updated": 0, "refused": 1}
    )
    monkeypatch.setenv("CHARTVAULT_DATA_DIR", str(vault.settings.data_dir))
    cli = CliRunner()
    cancelled = cli.invoke(app, ["jobs", "cancel", running])
    assert cancelled.exit_code == 0 and "stops at its next chunk or step" in _unwrapped(cancelled.output)
    assert vault.jobs.get(running).cancel_requested_at is not None
    refused = cli.invoke(app, ["jobs", "cancel", done])
    assert refused.exit_code == 1 and "already ended (done)" in _unwrapped(refused.output)
    listed = cli.invoke(app, ["jobs", "list"])  # the table (its width is the console's): it prints
    assert listed.exit_code == 0 and "state" in listed.output, listed.output
    as_json = cli.invoke(app, ["jobs", "list", "--json"])
    assert as_json.exit_code == 0, as_json.output
    jobs = {job["id"]: job for job in json.loads(as_json.output)}
    assert jobs[running]["state"] == "running" and jobs[running]["cancel_requested_at"]
    assert jobs[done]["state"] == "done" and jobs[done]["result"]["refused"] == 1

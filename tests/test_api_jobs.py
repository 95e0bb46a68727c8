"""The API of background jobs over the real app: a retraining started (202) and followed by its id, the
classifier's status with its last training, a registration import in the background, and who may see
which job (the roles of ``POLICY``, then the kind's own: the archive check is the admins')."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import api_client, job_row
from sqlalchemy import select

from chartvault.archive.models import AuditEvent, Job
from chartvault.services import Services

REFUSED = ("scanner", "staff", "vendor")
CSV = {"Content-Type": "text/csv"}
REGISTRATION = (
    b"mrn,last_name,first_name,dob\n"
    b"0012345678,Wayfarer,Minna,1950-03-04\n"
    b"0012345679,Roe,Rick,1950-02-30\n"  # line 3: no such date
)


def _follow(client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(f"/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        if answer.json()["state"] in ("done", "failed"):
            return answer.json()
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end")


def _check_job(settings) -> str:
    """A full archive check started as the console's operator (an admin's kind of job), run to its end."""
    with Services(settings) as services:
        job = services.records.start_check()
        deadline = time.monotonic() + 60
        while services.jobs.get(job.id).state not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.05)
        return job.id


def test_roles_that_may_not_are_refused_every_job_route(settings) -> None:
    check = _check_job(settings)
    for role in REFUSED:
        with api_client(settings, role, vendor="Acme" if role == "vendor" else None) as client:
            assert client.post("/classifier/train").status_code == 403, role
            assert client.get("/classifier").status_code == 403, role
            assert client.get(f"/jobs/{check}").status_code == 403, role
            refused = client.post("/patients/import?background=true", content=REGISTRATION, headers=CSV)
            assert refused.status_code == 403, role
    with Services(settings) as services, services.parts.sessions() as s:
        assert s.scalars(select(Job.kind)).all() == ["archive_check"]  # nothing else was started


def test_a_job_of_a_kind_the_role_may_not_start_is_refused(settings) -> None:
    check = _check_job(settings)
    with api_client(settings, "him_admin") as client:
        refused = client.get(f"/jobs/{check}")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert client.get(f"/jobs/{'0' * 32}").status_code == 404
    with api_client(settings, "admin") as client:
        job = client.get(f"/jobs/{check}").json()
        assert (job["kind"], job["state"]) == ("archive_check", "done")
        assert job["result"]["fixity"] is True and job["result"]["findings"]["missing"]["count"] == 0


def test_a_registration_import_in_the_background(settings) -> None:
    with api_client(settings, "him_admin") as client:
        started = client.post("/patients/import?background=true", content=REGISTRATION, headers=CSV)
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["kind"] == "registration_import" and job["state"] in ("queued", "running", "done")
        done = _follow(client, job["id"])
        assert done["state"] == "done", done
        result = done["result"]
        assert (result["imported"], result["refused"], result["documents_linked"]) == (1, 1, 0)
        assert [e["line"] for e in result["errors"]] == [3]
        assert "Wayfarer" not in started.text + str(done) and "1950-02-30" not in str(done)
        assert list((settings.data_dir / "staging" / ".incoming").iterdir()) == []
        assert list((settings.data_dir / "jobs").iterdir()) == []
        assert client.get("/patients/index").json()["registered"] == 1
        with Services(settings) as services, services.parts.sessions() as s:
            # another server's import under way (a live process elsewhere, beating): this one is refused
            s.add(
                Job(
                    kind="registration_import",
                    state="running",
                    active_kind="registration_import",
                    owner="replica-2:77:ab",
                    created_at=datetime.now(UTC),
                    heartbeat_at=datetime.now(UTC),
                )
            )
            s.commit()
        busy = client.post("/patients/import?background=true", content=REGISTRATION, headers=CSV)
        assert busy.status_code == 409 and "send the list again" in busy.json()["error"]["message"]
        assert list((settings.data_dir / "staging" / ".incoming").iterdir()) == []
        assert list((settings.data_dir / "jobs").iterdir()) == []
        synchronous = client.post("/patients/import", content=REGISTRATION, headers=CSV)  # one at a time
        assert synchronous.status_code == 409 and synchronous.json()["error"]["code"] == "job_running"
        assert list((settings.data_dir / "staging" / ".incoming").iterdir()) == []
    with Services(settings) as services, services.parts.sessions() as s:
        started_events = s.scalars(select(AuditEvent).where(AuditEvent.action == "job.start")).all()
        assert [(e.target_id, e.detail) for e in started_events] == [
            (job["id"], {"kind": "registration_import"})
        ]
        assert started_events[0].actor.startswith("token:")


def _no_server_path(answer: object, where: str) -> None:
    """Nothing in an answer names a file on the server (the model's path told where the data folder is)."""
    if isinstance(answer, dict):
        assert "path" not in answer, where
        for key, value in answer.items():
            _no_server_path(value, f"{where}.{key}")
    elif isinstance(answer, list):
        for i, value in enumerate(answer):
            _no_server_path(value, f"{where}[{i}]")
    else:
        assert not (isinstance(answer, str) and answer.startswith("/")), where


def test_the_classifier_and_its_trainings_name_no_server_path(settings) -> None:
    """GET /classifier and a training's result told HIM users where the model file lies on the server; a
    training recorded that way before (its result kept the path) is shown without it too."""
    from chartvault.archive.models import JOB_CLASSIFIER_TRAIN

    with api_client(settings, "him_admin") as client:
        status = client.get("/classifier")
        assert status.status_code == 200, status.text
        _no_server_path(status.json(), "GET /classifier")
        figures = {"version": "v1", "sklearn_version": "1.0", "n_train": 9, "corrections": 1, "train_s": 0.1}
        old = {**figures, "path": str(settings.data_dir / "models" / "doctype.joblib")}
        job, _ = client.app.state.services.jobs.start(JOB_CLASSIFIER_TRAIN, lambda _context: old)
        done = _follow(client, job.id)
        assert done["state"] == "done" and done["result"] == figures
        _no_server_path(done, "GET /jobs/{id}")
        listed = client.get("/jobs", params={"kind": JOB_CLASSIFIER_TRAIN}).json()["items"]
        assert [j["id"] for j in listed] == [job.id]
        _no_server_path(listed, "GET /jobs")
        status = client.get("/classifier").json()
        assert status["training"]["result"] == figures
        _no_server_path(status, "GET /classifier after a training")


@pytest.mark.slow  # a real retraining (about six seconds on two cores)
def test_a_retraining_is_started_then_followed_by_its_id(settings) -> None:
    with api_client(settings, "him_admin") as client:
        before = client.get("/classifier")
        assert before.status_code == 200 and before.json()["training"] is None
        started = client.post("/classifier/train")
        assert started.status_code == 202, started.text
        job = started.json()
        assert (job["kind"], job["error"]) == ("classifier_train", None)
        again = client.post("/classifier/train")
        assert again.status_code == 202 and again.json()["id"] == job["id"]  # never two at once
        done = _follow(client, job["id"], timeout=300)
        assert done["state"] == "done" and done["result"]["n_train"] > 0
        _no_server_path(done, "the training's result")
        status = client.get("/classifier").json()
        assert status["training"] == done
        assert status["model"]["version"] == done["result"]["version"]
    with Services(settings) as services, services.parts.sessions() as s:
        trained = s.scalars(select(AuditEvent).where(AuditEvent.action == "classifier.train")).all()
        assert len(trained) == 1 and trained[0].actor.startswith("token:")


def test_recent_jobs_are_listed_newest_first_to_the_roles_of_their_kinds(settings) -> None:
    check = job_row(settings, "archive_check", "done", age=timedelta(minutes=30))
    train = job_row(settings, "classifier_train", "failed", age=timedelta(minutes=20))
    imports = job_row(settings, "registration_import", age=timedelta(minutes=10))
    with api_client(settings, "him_admin") as client:
        listed = client.get("/jobs")
        assert listed.status_code == 200, listed.text
        assert listed.json()["limit"] == 50 and [j["id"] for j in listed.json()["items"]] == [imports, train]
        assert client.get("/jobs?kind=archive_check").status_code == 403  # the admins' kind
        assert [j["id"] for j in client.get("/jobs?state=failed").json()["items"]] == [train]
        for bad in ("limit=0", "limit=201", "state=sleeping", "kind=reindex"):
            answer = client.get(f"/jobs?{bad}")
            assert answer.status_code == 422, bad
    with api_client(settings, "admin") as client:
        assert [j["id"] for j in client.get("/jobs?limit=5").json()["items"]] == [imports, train, check]
        assert [j["id"] for j in client.get("/jobs?limit=1").json()["items"]] == [imports]
    for role in REFUSED:
        with api_client(settings, role, vendor="Acme" if role == "vendor" else None) as client:
            assert client.get("/jobs").status_code == 403, role
            assert client.post(f"/jobs/{imports}/cancel").status_code == 403, role


def test_a_background_import_cancelled_midway_keeps_the_rows_it_committed(settings, monkeypatch) -> None:
    """Cancelled after its first commit: it stops there, the rows committed stay (the index is consistent:
    what the answer says was applied is what is in it) and the job says how many rows were applied."""
    import threading

    from chartvault.archive import registration
    from chartvault.services import patients

    monkeypatch.setattr(registration, "_CHUNKS_PER_COMMIT", 1)  # a commit every 1,000 rows
    committed, go = threading.Event(), threading.Event()
    real = patients._rows_so_far

    def held_at_first_commit(context):
        report = real(context)

        def hold(counts) -> None:
            report(counts)
            committed.set()
            go.wait(30)

        return hold

    monkeypatch.setattr(patients, "_rows_so_far", held_at_first_commit)
    body = "mrn,last_name,first_name,dob\n" + "".join(
        f"{400000 + i},Doe,Jane,1960-01-01\n" for i in range(3_500)
    )
    with api_client(settings, "him_admin") as client:
        started = client.post("/patients/import?background=true", content=body.encode(), headers=CSV)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        assert committed.wait(30)
        asked = client.post(f"/jobs/{job_id}/cancel")
        go.set()
        assert asked.status_code == 202 and asked.json()["cancel_requested_at"], asked.text
        assert asked.json()["state"] == "running"
        ended = _follow_to(client, job_id, "cancelled")
        result = ended["result"]
        assert (result["rows_applied"], result["imported"], result["refused"]) == (1_000, 1_000, 0)
        assert client.get("/patients/index").json()["registered"] == 1_000
        again = client.post(f"/jobs/{job_id}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "job_ended"
        assert [j["state"] for j in client.get("/jobs?kind=registration_import").json()["items"]] == [
            "cancelled"
        ]
    assert list((settings.data_dir / "jobs").iterdir()) == []  # the staged list is gone
    with Services(settings) as services, services.parts.sessions() as s:
        cancels = s.scalars(select(AuditEvent).where(AuditEvent.action == "job.cancel")).all()
        imports = s.scalars(select(AuditEvent).where(AuditEvent.action == "patients.import")).all()
    assert [(e.target_id, e.actor.startswith("token:")) for e in cancels] == [(job_id, True)]
    assert [(e.outcome, e.detail["imported"]) for e in imports] == [("cancelled", 1_000)]


def _follow_to(client, job_id: str, state: str, timeout: float = 60) -> dict:
    """The job's answer once it ended (in ``state``, or the test fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            assert job["state"] == state, job
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")

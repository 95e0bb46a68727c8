"""The pages that follow a background job (a registration import, a full archive check) over the real app:
what a running job shows (and that the page polls, or reloads itself without JavaScript), a list sent while
another import runs (not loaded, and said so), a job's id under the other page (not found), and who may
open them. Jobs a live process runs elsewhere are written into the catalog directly: no timing involved."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from webfixtures import PASSWORD, csrf_of, follow_job, web_client

from chartvault.archive.models import Job
from chartvault.config import Settings
from chartvault.services import Services

CSV = b"mrn,last_name,first_name,dob\n0012345678,Wayfarer,Minna,1950-03-04\n"


@pytest.fixture
def site(tmp_path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", workers=1, _env_file=None)
    with Services(settings) as services:
        for role in ("staff", "him_admin", "admin"):
            services.access.create_user(role, f"Test {role}", role, password=PASSWORD)
    return settings


def _running_elsewhere(settings: Settings, kind: str, result: dict | None = None) -> str:
    """A job another server process (on another host, beating) is running now."""
    now = datetime.now(UTC)
    with Services(settings) as services, services.parts.sessions() as s:
        job = Job(kind=kind, state="running", active_kind=kind, owner="replica-2:77:ab", created_at=now)
        job.started_at = job.heartbeat_at = now
        job.result = result
        s.add(job)
        s.commit()
        return job.id


def test_a_running_import_is_followed_and_a_second_list_is_not_loaded(site: Settings) -> None:
    running = _running_elsewhere(site, "registration_import", {"rows_read": 25_000, "refused": 3})
    with web_client(site, "him_admin") as client:
        page = client.get(f"/ui/patient-index/jobs/{running}")
        assert page.status_code == 200
        assert 'id="job-state">Running<' in page.text and "25,000 rows read so far" in page.text
        assert f'hx-get="/ui/patient-index/jobs/{running}/progress"' in page.text
        assert '<meta http-equiv="refresh" content="5">' in page.text  # without JavaScript
        fragment = client.get(f"/ui/patient-index/jobs/{running}/progress")
        assert 'hx-trigger="every 2s"' in fragment.text and "<h1>" not in fragment.text
        form = {"csrf": csrf_of(page.text)}
        sent = client.post(
            "/ui/patient-index",
            data=form,
            files={"registration": ("reg.csv", CSV, "text/csv")},
            follow_redirects=False,
        )
        assert (
            sent.status_code == 303 and sent.headers["location"] == f"/ui/patient-index/jobs/{running}?busy=1"
        )
        busy = client.get(sent.headers["location"])
        assert 'id="busy"' in busy.text and "was not loaded" in busy.text
    assert list((site.data_dir / "staging" / ".incoming").iterdir()) == []  # the unloaded list is gone
    assert not (site.data_dir / "jobs").exists() or list((site.data_dir / "jobs").iterdir()) == []
    with Services(site) as services, services.parts.sessions() as s:
        assert s.scalars(select(Job.id)).all() == [running]  # no second import started
        assert services.patients.summary().registered == 0


def test_a_full_check_is_followed_to_its_findings(site: Settings) -> None:
    with web_client(site, "admin") as client:
        page = client.get("/ui/admin/check")
        started = client.post("/ui/admin/check", data={"csrf": csrf_of(page.text), "fixity": "full"})
        assert started.status_code == 200 and started.url.path.startswith("/ui/admin/check/jobs/")
        done = follow_job(client, started.url.path)
        assert "Full check: every object read back against its sha256" in done.text
        assert 'id="finding-missing"' in done.text and '<meta http-equiv="refresh"' not in done.text
        assert "Quick check" in done.text  # the form stays, to run another


def test_a_job_is_shown_only_on_its_own_page_and_to_its_roles(site: Settings) -> None:
    check = _running_elsewhere(site, "archive_check")
    registration = _running_elsewhere(site, "registration_import")
    with web_client(site, "admin") as client:
        assert client.get(f"/ui/admin/check/jobs/{check}").status_code == 200
        assert 'id="job-state">Running<' in client.get(f"/ui/admin/check/jobs/{check}/progress").text
        assert client.get(f"/ui/admin/check/jobs/{registration}").status_code == 404  # not a check
        assert client.get(f"/ui/patient-index/jobs/{check}").status_code == 404  # not an import
        assert client.get(f"/ui/admin/check/jobs/{'0' * 32}").status_code == 404
    with web_client(site, "him_admin") as client:
        assert client.get(f"/ui/patient-index/jobs/{registration}").status_code == 200
        for path in (f"/ui/admin/check/jobs/{check}", f"/ui/admin/check/jobs/{check}/progress"):
            assert client.get(path).status_code == 403, path
    with web_client(site, "staff") as client:
        for path in (
            f"/ui/patient-index/jobs/{registration}",
            f"/ui/patient-index/jobs/{registration}/progress",
        ):
            assert client.get(path).status_code == 403, path


def test_a_job_left_by_a_dead_process_shows_why_it_failed(site: Settings) -> None:
    """A server restarted under an import: the page that followed it says it was interrupted."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    now = datetime.now(UTC)
    with Services(site) as services, services.parts.sessions() as s:
        job = Job(
            kind="registration_import",
            state="running",
            active_kind="registration_import",
            owner=f"{socket.gethostname()}:{proc.pid}:ab",
            created_at=now,
            heartbeat_at=now,
        )
        s.add(job)
        s.commit()
        job_id = job.id
    with web_client(site, "him_admin") as client:
        client.app.state.services.jobs.recover()  # what the server does as it starts
        page = client.get(f"/ui/patient-index/jobs/{job_id}")
        assert 'id="job-state">Failed<' in page.text and "interrupted by a restart" in page.text
        assert "hx-get" not in page.text

"""The pages that follow a background job (a registration import, a full archive check) over the real app:
what a running job shows (and that the page polls, or reloads itself without JavaScript), a list sent while
another import runs (not loaded, and said so), a job's id under the other page (not found), and who may
open them. Jobs a live process runs elsewhere are written into the catalog directly: no timing involved."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from conftest import job_row
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


def test_a_running_import_is_followed_and_a_second_list_is_not_loaded(site: Settings) -> None:
    running = job_row(site, "registration_import", result={"rows_read": 25_000, "refused": 3})
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
    check = job_row(site, "archive_check")
    registration = job_row(site, "registration_import")
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


def test_admins_list_the_recent_jobs_and_cancel_a_running_one(site: Settings) -> None:
    running = job_row(site, "registration_import", result={"rows_read": 25_000, "refused": 3})
    done = job_row(site, "archive_check", state="done", result={"objects_checked": 12, "bytes_checked": 9})
    with web_client(site, "admin") as client:
        page = client.get("/ui/admin/jobs")
        assert page.status_code == 200 and '<a href="/ui/admin/jobs"' in page.text  # in the menu
        assert page.text.index(f'id="job-{done}"') < page.text.index(f'id="job-{running}"')  # newest first
        assert "25,000 rows read" in page.text and "12 objects checked" in page.text
        assert page.text.count('action="/ui/admin/jobs/') == 1  # a cancel button for the running one only
        assert f'action="/ui/admin/jobs/{running}/cancel"' in page.text
        token = csrf_of(page.text)
        forged = client.post(f"/ui/admin/jobs/{running}/cancel", data={"csrf": "forged"})
        assert forged.status_code == 403
        with Services(site) as services:
            assert services.jobs.get(running).cancel_requested_at is None  # the forged form did nothing
        sent = client.post(f"/ui/admin/jobs/{running}/cancel", data={"csrf": token}, follow_redirects=False)
        assert sent.status_code == 303 and sent.headers["location"] == "/ui/admin/jobs?done=cancel"
        after = client.get(sent.headers["location"])
        assert 'id="cancel-asked"' in after.text and "cancel asked" in after.text
        assert f'action="/ui/admin/jobs/{running}/cancel"' not in after.text  # asked once
        ended = client.post(f"/ui/admin/jobs/{done}/cancel", data={"csrf": token})
        assert ended.status_code == 409 and "already ended" in ended.text
        only_checks = client.get("/ui/admin/jobs?kind=archive_check").text
        assert f'id="job-{done}"' in only_checks and f'id="job-{running}"' not in only_checks
    with Services(site) as services:
        assert services.jobs.get(running).cancel_requested_at is not None
    with web_client(site, "him_admin") as client:
        assert client.get("/ui/admin/jobs").status_code == 403
        token = csrf_of(client.get("/ui/patient-index").text)
        assert client.post(f"/ui/admin/jobs/{running}/cancel", data={"csrf": token}).status_code == 403


def test_the_pages_that_follow_a_job_show_how_far_it_got(site: Settings) -> None:
    check = job_row(
        site,
        "archive_check",
        result={
            "step": "objects",
            "objects_checked": 1234,
            "objects_total": 5000,
            "bytes_checked": 1,
            "missing": 0,
        },
    )
    stages = ["corrections", "texts", "fit", "save"]
    job_row(site, "classifier_train", result={"stage": "fit", "stages": stages})
    with web_client(site, "admin") as client:
        fragment = client.get(f"/ui/admin/check/jobs/{check}/progress").text
        assert "1,234 of 5,000 objects read back against their sha256" in fragment
        assert '<progress id="check-progress" max="5000" value="1234">' in fragment
        assert 'hx-trigger="every 2s"' in fragment
        classifier = client.get("/ui/classifier/progress").text
        assert 'id="training-stage">Stage 3 of 4: fitting the model<' in classifier
        assert 'hx-trigger="every 2s"' in classifier


def test_a_cancelled_job_says_so_on_its_page(site: Settings) -> None:
    imported = job_row(
        site,
        "registration_import",
        state="cancelled",
        result={
            "imported": 1000,
            "updated": 0,
            "unchanged": 0,
            "refused": 2,
            "rows_applied": 1000,
            "errors": [],
        },
    )
    check = job_row(
        site,
        "archive_check",
        state="cancelled",
        result={"step": "objects", "objects_checked": 7, "objects_total": 9, "missing": 1, "corrupt": 0},
    )
    job_row(site, "classifier_train", state="cancelled", result={"stage": "save", "stages": ["fit", "save"]})
    with web_client(site, "admin") as client:
        page = client.get(f"/ui/patient-index/jobs/{imported}").text
        assert (
            'id="job-state">Cancelled<' in page
            and "1,000 rows applied (committed, they stay), 2 refused" in page
        )
        assert "hx-get" not in page  # no longer followed
        page = client.get(f"/ui/admin/check/jobs/{check}").text
        assert (
            'id="job-state">Cancelled<' in page and "7 of 9 objects read back" in page and "1 missing" in page
        )
        page = client.get("/ui/classifier").text
        assert 'id="training-state">Cancelled<' in page and "the model in use is unchanged" in page

"""An unexpected error reaches no log with its message, whichever server runs the app.

The app answers an exception no handler took with a JSON 500 and logs the route, the exception's type
and its frames, never its message (an SQL error quotes its parameters: MRNs, names, dates of birth).
Starlette's outermost middleware raises the exception on to the server once it has answered, and
uvicorn logs it again, message and all ("Exception in ASGI application"). TestClient never shows that
line: the app runs here under uvicorn itself, configured as ``chartvault serve`` configures it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from serverfixtures import free_port
from webfixtures import PASSWORD, csrf_of

from chartvault.api.app import create_app
from chartvault.api.server import json_errors_protocol
from chartvault.config import Settings
from chartvault.services import Services
from chartvault.services.patients import PatientService

PHI = "WAYFARER, MINNA 1950-03-04 MRN 0071000123"


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn, in this process (its log records reach caplog), on a free port."""
    config = uvicorn.Config(
        create_app(settings, start_background=False),
        host="127.0.0.1",
        port=free_port(),
        log_level="info",
        access_log=False,
        log_config=None,
        http=json_errors_protocol(),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _crash(_: PatientService) -> None:
    raise ValueError(f"(sqlite3.IntegrityError) [parameters: ('{PHI}',)]")


@pytest.mark.slow  # a real server, and a password hashed twice: about 5 s
def test_an_unexpected_error_is_answered_500_and_logged_without_its_message(
    settings: Settings, served: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Services(settings) as services:
        token = services.access.create_token("him_admin", "probe").token
        services.access.create_user("ana", "Ana", "him_admin", password=PASSWORD)
    monkeypatch.setattr(PatientService, "summary", _crash)
    caplog.set_level(logging.DEBUG)
    with httpx.Client(base_url=served, timeout=30) as api:
        answer = api.get("/patients/index", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "internal_error" and "WAYFARER" not in answer.text
        assert api.get("/health").status_code == 200  # the same connection is still served
    with httpx.Client(base_url=served, timeout=30) as browser:  # a page: the same error, the same log
        form = browser.get("/ui/sign-in")
        signed_in = browser.post(
            "/ui/sign-in", data={"csrf": csrf_of(form.text), "username": "ana", "password": PASSWORD}
        )
        assert signed_in.status_code == 303
        page = browser.get("/ui/patient-index")
        assert page.status_code == 500 and "WAYFARER" not in page.text
    logged = "\n".join(
        record.getMessage() + "\n" + logging.Formatter().formatException(record.exc_info)
        if record.exc_info
        else record.getMessage()
        for record in caplog.records
    )
    assert "WAYFARER" not in logged and "0071000123" not in logged, logged[-2000:]
    crashes = [r.getMessage() for r in caplog.records if r.name == "chartvault.api"]
    assert len(crashes) == 2, crashes
    assert re.match(r"unhandled ValueError on GET /patients/index\n", crashes[0])
    assert re.match(r"unhandled ValueError on GET /ui/patient-index\n", crashes[1])

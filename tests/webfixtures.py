"""A small archive of real scanned and born-digital corpus documents, and a signed-in user per role.

Shared by the web page tests (TestClient) and the browser tests (a real ``chartvault serve``): the
corpus files are ingested once per test session, through the real pipeline (tesseract included).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PASSWORD = "a long enough passphrase"
VENDOR_ORG = "Acme Copy Service"
# name -> (corpus file, what it is): a scanned 2-page TIFF, a born-digital PDF, a 1-page scanned TIFF.
FILES = {
    "ed_note": "files/8e497cded72b.tif",  # "chest pain", OCR word boxes in pixels
    "mammogram": "files/5ae154bf9e59.pdf",  # text layer: word boxes in points
    "shoulder": "files/f5d8b2bec9c4.tif",
}
ROLES = ("scanner", "staff", "him_admin", "vendor", "admin")


@dataclass
class WebArchive:
    settings: object
    docs: dict[str, str]  # name in FILES -> document id
    mrns: dict[str, str]
    users: dict[str, str] = field(default_factory=dict)  # role -> username

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def web_archive(tmp_path_factory, corpus_dir: Path) -> WebArchive:
    """The corpus files above, ingested, and one user per role (username = role)."""
    from chartvault.config import Settings
    from chartvault.services import Services
    from chartvault.services.intake import Incoming

    settings = Settings(data_dir=tmp_path_factory.mktemp("web") / "data", workers=2, _env_file=None)
    docs: dict[str, str] = {}
    mrns: dict[str, str] = {}
    with Services(settings) as services:
        paths = {name: corpus_dir / rel for name, rel in FILES.items()}
        received = services.intake.receive(
            [Incoming(p.name, path=p) for p in paths.values()], source="test", station="web-fixture"
        )
        services.intake.process(received.batch_id)
        services.intake.index_now()
        report = services.intake.batch(received.batch_id)
        by_name = {f.name: f for f in report.files}
        for name, path in paths.items():
            doc_id = by_name[path.name].documents[0]
            docs[name] = doc_id
            mrns[name] = services.documents.get(doc_id).identifiers.mrn.value
            if services.documents.get(doc_id).review_status == "pending":
                # HIM has looked at it (an uncertain type would otherwise keep it out of any release),
                # so the journeys below start from a reviewed archive whatever the classifier's confidence.
                services.review.resolve(doc_id)
        archive = WebArchive(settings, docs, mrns)
        for role in ROLES:
            vendor = VENDOR_ORG if role == "vendor" else None
            services.access.create_user(role, f"Test {role}", role, password=PASSWORD, vendor=vendor)
            archive.users[role] = role
    return archive


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def follow_job(client, url: str, timeout: float = 120):
    """A background job's page (``/ui/.../jobs/{id}``) read until it stops polling (done or failed)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        page = client.get(url)
        assert page.status_code == 200, page.text
        if 'hx-trigger="every 2s"' not in page.text or time.monotonic() > deadline:
            return page
        time.sleep(0.1)


def sign_in(client, username: str, password: str = PASSWORD, next_page: str | None = None):
    """Sign a TestClient in through the real form (arrived at with ``next_page`` to return to, as a
    redirect to the sign-in page sends a person); the response to the form post."""
    params = {"next": next_page} if next_page else {}
    form = client.get("/ui/sign-in", params=params)
    return client.post(
        "/ui/sign-in",
        params=params,
        data={"csrf": csrf_of(form.text), "username": username, "password": password},
        follow_redirects=False,
    )


@contextmanager
def web_client(settings, role: str | None = None, base_url: str = "http://127.0.0.1") -> Iterator:
    """A TestClient on the real app (no background threads), signed in as ``role`` if given."""
    from fastapi.testclient import TestClient

    from chartvault.api.app import create_app

    with TestClient(create_app(settings, start_background=False), base_url=base_url) as client:
        if role is not None:
            assert sign_in(client, role).status_code == 303
        yield client


@dataclass
class RecordsArchive:
    """An archive for the records pages: charts past retention (one under a hold), a current one, and
    refused files in quarantine. Disposition destroys, so each test module builds its own."""

    settings: object
    old: list[str]  # past retention, not held: what a disposition destroys
    held: str  # past retention, under a legal hold: never destroyed
    current: str  # retention runs for years yet
    quarantined: list[str]  # batch file ids of the refused files
    patient_name: str = "WAYFARER, MINNA"  # on every chart: no records page may show it
    file_name: str = "WAYFARER MINNA 1950-03-04"  # the refused files' names begin with it

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir  # type: ignore[attr-defined]


def build_records_archive(base: Path, lock_s: int = 2) -> RecordsArchive:
    """Born-digital charts (no OCR time) archived with a ``lock_s`` store lock, waited out, so the
    catalog and the store both let the old ones go; three unreadable files refused into quarantine."""
    import os
    import time

    from recordsfixtures import chart_pdf

    from chartvault.config import Settings
    from chartvault.services import Services

    settings = Settings(
        data_dir=base / "data",
        workers=1,
        object_lock_min_seconds=lock_s,
        facility_name="Synthetic Community Hospital",
        _env_file=None,
    )
    name = "WAYFARER, MINNA"
    charts = [
        chart_pdf(base / f"chart{i}.pdf", mrn=f"0071000{i}", dob="03/04/1950", dos=dos, name=name)
        for i, dos in enumerate(("05/06/2005", "06/07/2005", "07/08/2005", "05/06/2024"), start=1)
    ]
    junk = []
    for i in range(3):
        path = base / f"WAYFARER MINNA 1950-03-04 page {i}.dat"
        path.write_bytes(os.urandom(3000 + i))
        junk.append(path)
    with Services(settings) as services:
        summary = services.intake.ingest(charts, source="test", station="records-fixture")
        docs = [f.documents[0] for f in summary.files]
        refused = services.intake.ingest(junk, source="test", station="records-fixture")
        quarantined = [f.file_id for f in refused.files if f.status == "quarantined" and f.file_id]
        assert len(quarantined) == 3, refused
        services.records.place_hold("Matter 2026-01", "documents", "litigation", document_ids=[docs[2]])
        for role in ROLES:
            vendor = VENDOR_ORG if role == "vendor" else None
            services.access.create_user(role, f"Test {role}", role, password=PASSWORD, vendor=vendor)
    time.sleep(lock_s + 0.5)  # the store's minimum lock has run out: only retention and holds decide
    return RecordsArchive(settings, old=docs[:2], held=docs[2], current=docs[3], quarantined=quarantined)


def acting_as_signed_in(client):
    """The app's services acting as the person signed in on ``client`` (for what only they may open)."""
    from chartvault.services import Caller

    services = client.app.state.services
    session = services.sessions.resolve(client.cookies["cv_session"])
    assert session is not None, "not signed in"
    return services.acting_as(Caller.of_user(session.user_id, session.role, session.vendor))


def patient_path(client, mrn: str) -> str:
    """``/ui/patients/<sealed reference>`` for the person signed in on ``client``, as their pages link it."""
    return "/ui/patients/" + acting_as_signed_in(client).links.patient(mrn)


def viewer_path(client, doc_id: str, q: str) -> str:
    """The viewer of ``doc_id`` carrying the search ``q``, sealed for the person signed in on ``client``."""
    return f"/ui/documents/{doc_id}?s=" + acting_as_signed_in(client).links.seal("search", {"q": q})


def search_form(client, follow_redirects: bool = True, **fields: str):
    """The search form sent as a person sends it (a POST with the CSRF token), its 303 followed."""
    form = client.get("/ui/search")
    data = {"csrf": csrf_of(form.text), **fields}
    return client.post("/ui/search", data=data, follow_redirects=follow_redirects)

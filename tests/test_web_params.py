"""Every number a page takes from its address is bounded, as the API's are: out of range is a 422 page.

The API's parameters were bounded (``tests/test_extreme_params.py``); the pages' list offsets, the audit
log's chain positions and a page image's page number were not: 2**63 overflowed the database's integer,
a 500 with a traceback in the log.
"""

from __future__ import annotations

import pytest
from webfixtures import PASSWORD, web_client

from chartvault.config import Settings
from chartvault.services import Services

HUGE = (2**63, 2**64, 10**30, -(2**63) - 1)
DOC = "0" * 32
PAGES = (
    ("/ui/review", "offset"),
    ("/ui/batches", "offset"),
    ("/ui/quarantine", "offset"),
    ("/ui/admin/audit", "before"),
    ("/ui/admin/audit", "after"),
    (f"/ui/review/{DOC}", "page_no"),
    (f"/ui/documents/{DOC}", "page"),
    (f"/ui/documents/{DOC}", "pos"),
)


@pytest.fixture
def site(tmp_path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", workers=1, _env_file=None)
    with Services(settings) as services:
        services.access.create_user("admin", "Test admin", "admin", password=PASSWORD)
    return settings


@pytest.mark.slow  # an app and a sign-in, 35 requests: about 3 s
def test_out_of_range_numbers_are_refused_as_a_page_never_a_500(site: Settings) -> None:
    with web_client(site, "admin") as client:
        for path, name in PAGES:
            for value in HUGE:
                answer = client.get(path, params={name: str(value)})
                assert answer.status_code in (404, 422), (path, name, value, answer.status_code)
                assert answer.headers["content-type"].startswith("text/html"), (path, name, value)
        for value in HUGE:
            image = client.get(f"/ui/documents/{DOC}/pages/{value}/image")
            assert image.status_code in (404, 422), (value, image.status_code)
        for path, name in PAGES[:3]:  # the pages themselves still answer in range
            assert client.get(path, params={name: "0"}).status_code == 200, path

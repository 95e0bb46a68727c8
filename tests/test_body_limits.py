"""Request bodies held whole in memory are capped before anyone is authenticated.

FastAPI reads a route's whole JSON body (any content type) before its dependencies run, the token check
among them; Starlette reads a whole urlencoded form. Without a cap a stranger with no token grew the
server by the size of what it sent (300 MB of JSON to ``POST /releases``: +800 MB resident), and a few
such requests at once ended it. Streaming routes (uploads, the registration list) keep their own caps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from conftest import api_client

MiB = 1024 * 1024


def _chunks(total: int, head: bytes = b'{"mrn": "', fill: bytes = b"a") -> Iterator[bytes]:
    """A body sent chunked (no Content-Length), ``total`` bytes after ``head``."""
    yield head
    for _ in range(total // MiB):
        yield fill * MiB


def test_json_body_over_the_cap_is_refused_before_the_token(settings) -> None:
    settings = settings.model_copy(update={"max_form_bytes": 64 * 1024})
    with api_client(settings, role="staff") as c:
        del c.headers["Authorization"]  # a stranger
        r = c.post("/releases", content=_chunks(8 * MiB), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "too_large"
        assert "65,536 bytes" in r.json()["error"]["message"]

        # Declared too large: refused on the header, whatever the content type says.
        big = b"x" * (65 * 1024)
        for ctype in ("application/json", "text/plain", "multipart/form-data; boundary=x"):
            r = c.post("/releases", content=big, headers={"Content-Type": ctype})
            assert r.status_code == 413, (ctype, r.text)


def test_json_body_under_the_cap_still_works(settings) -> None:
    settings = settings.model_copy(update={"max_form_bytes": 64 * 1024})
    with api_client(settings, role="staff") as c:
        body = {
            "mrn": "0012345678",
            "requester_type": "patient",
            "recipient": "x" * 200,
            "purpose": "care",
            "document_ids": ["d" * 32],
        }
        r = c.post("/releases", json=body)
        assert r.status_code == 422, r.text  # read and answered: no such document
        chunked = _chunks(0, json.dumps(body).encode())
        r = c.post("/releases", content=chunked, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text


def test_urlencoded_form_over_the_cap_is_refused_on_the_public_sign_in(settings) -> None:
    settings = settings.model_copy(update={"max_form_bytes": 64 * 1024})
    with api_client(settings) as c:
        del c.headers["Authorization"]
        fields = (b"&f%d=" % i + b"a" * 500_000 for i in range(40))  # 20 MB, each field under 1 MiB
        r = c.post(
            "/ui/sign-in", content=fields, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert r.status_code == 413, r.text


def test_streaming_routes_keep_their_own_caps(settings) -> None:
    """The registration list is streamed to disk: far over the form cap, it is still taken."""
    settings = settings.model_copy(update={"max_form_bytes": 1024})
    rows = "mrn,family_name,given_name,dob\n" + "".join(
        f"{1000000 + i},DOE,JANE,1950-01-01\n" for i in range(200)
    )
    assert len(rows) > 4 * 1024
    with api_client(settings, role="him_admin") as c:
        r = c.post("/patients/import", content=rows.encode(), headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text

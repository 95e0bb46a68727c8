"""Property-based API tests: Schemathesis generates requests from the app's own OpenAPI document.

Two runs over every operation, in-process (Schemathesis's ASGI transport on the app object):

* with an admin token (admin may call every route): no response is a server error (5xx), and every
  response's status, content type and body conform to what the OpenAPI document declares;
* with no token at all: every operation but ``GET /health`` answers 401, never 2xx, with the declared
  error body.

One app per module: a module-scoped ``TestClient`` owns the app's lifespan (the Vault and its
background runner), so every generated example talks to the same live app and data folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chartvault.api.app import create_app  # noqa: E402
from chartvault.api.auth import POLICY, PUBLIC  # noqa: E402
from chartvault.config import Settings  # noqa: E402
from chartvault.policy import is_page  # noqa: E402

# Every answer as documented: status declared, content type declared, body valid against its schema.
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Bounded: the whole module runs in well under two minutes.
BOUNDED = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same examples every run: a failure reproduces
)

# 5xx answers Schemathesis found that are not fixed yet: (METHOD, path) -> reason. Empty: none known.
KNOWN_SERVER_ERRORS: dict[tuple[str, str], str] = {}

# FastAPI decodes a JSON body before the route's dependencies run; the app's error handlers answer
# authentication first (chartvault.api.auth.refusal_before_route), so an undecodable body without a
# token still gets 401, never 400/422 (test_undecodable_json_without_token_is_401; found by this file).


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The real app on a temporary data folder, its lifespan running for the whole module; an admin token."""
    # Generated requests carry many bogus tokens: the failed-authentication limit (tested in
    # test_ratelimit.py) would answer 429 instead of the 401 these tests check.
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("schemathesis") / "data",
        workers=1,
        auth_failures_per_minute=1_000_000,
        _env_file=None,
    )
    app = create_app(cfg)
    with TestClient(app) as client:
        token = client.app.state.services.access.create_token("admin", "schemathesis admin").token
        yield app, token


def _lifespan_owned_elsewhere(app: Any) -> Any:
    """The app for Schemathesis's transport, whose lifespan is answered but not run again.

    The module's ``TestClient`` already runs the real lifespan; a second one would open a second
    Vault (and background runner) on the same data folder and replace ``app.state.services``.
    """

    async def asgi(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": f"{message['type']}.complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await app(scope, receive, send)

    return asgi


@pytest.fixture(scope="module")
def transport_app(live_app) -> Any:
    return _lifespan_owned_elsewhere(live_app[0])


@pytest.fixture(scope="module")
def admin_headers(live_app) -> dict[str, str]:
    return {"Authorization": f"Bearer {live_app[1]}"}


# The OpenAPI document, from an app that is never started (building the document touches no data).
# Loaded eagerly so that each operation is its own test item (Schemathesis's lazy `from_fixture`
# loader does not work with pytest 9.2: it sets `Function._nodeid`, which pytest no longer has).
OPENAPI = create_app(
    Settings(data_dir=Path("/nonexistent/chartvault-openapi-only"), _env_file=None)
).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_openapi_covers_every_route_in_the_policy() -> None:
    ops = {(method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item}
    api_routes = {route for route in POLICY if not is_page(route[1])}  # pages are not API operations
    assert ops == api_routes, "OpenAPI operations and POLICY routes differ"


@pytest.mark.slow
@schema.parametrize()
@BOUNDED
def test_no_server_errors_as_admin(case, transport_app, admin_headers) -> None:
    known = KNOWN_SERVER_ERRORS.get((case.method.upper(), case.path))
    if known:
        pytest.xfail(known)
    response = case.call(headers=admin_headers, app=transport_app)
    case.validate_response(response, checks=CONFORMANCE, headers=admin_headers)


@pytest.mark.slow
@schema.parametrize()
@BOUNDED
def test_no_token_is_refused(case, transport_app) -> None:
    # Whatever Schemathesis generates (it may add an Authorization header of its own from the bearer
    # scheme), nothing here is a real token, so every protected operation must answer 401.
    response = case.call(app=transport_app)
    status = response.status_code
    method = case.method.upper()
    if method == case.operation.method.upper():
        case.validate_response(response, checks=CONFORMANCE[1:])
    where = f"{method} {case.path}: {status}"
    assert not 200 <= status < 300 or POLICY.get((method, case.path)) is PUBLIC, where
    assert status < 500, where
    if method != case.operation.method.upper():
        # Schemathesis's probe of a method the path does not have: routing answers before auth.
        assert status in (401, 405), where
    elif POLICY[(method, case.path)] is not PUBLIC:
        assert status == 401, where
        assert response.headers.get("www-authenticate", [""])[0].startswith("Bearer"), where


JSON_BODY_OPS = sorted(
    (method.upper(), path)
    for path, item in OPENAPI["paths"].items()
    for method, op in item.items()
    if "application/json" in (op.get("requestBody") or {}).get("content", {})
)


@pytest.mark.parametrize("body", [b"\x00", b"\x80"], ids=["not-json", "not-text"])
@pytest.mark.parametrize(("method", "path"), JSON_BODY_OPS, ids=[f"{m} {p}" for m, p in JSON_BODY_OPS])
def test_undecodable_json_without_token_is_401(live_app, method: str, path: str, body: bytes) -> None:
    app, _ = live_app
    with TestClient(_lifespan_owned_elsewhere(app)) as client:
        url = path.replace("{", "").replace("}", "")
        resp = client.request(method, url, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 401, f"{method} {path}: {resp.status_code} {resp.json()}"

"""Extreme values in every numeric parameter of every operation, against a real server process.

One search with ``offset=1000000000000`` once made tantivy allocate room for that many hits and abort
the whole process; 2^64 and 2^63 answered 500 as text/plain. Here the OpenAPI document is walked,
every numeric query, path and JSON-body parameter of every operation gets huge, negative, non-numeric,
2^63 and 2^64 values, and afterwards the same process must still answer. Every answer must be JSON,
including the ones uvicorn and Starlette give before any route runs.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverfixtures import LiveServer, live_server

pytestmark = pytest.mark.slow  # each test here drives a live server

EXTREMES = (
    "1000000000000",
    "18446744073709551616",  # 2^64
    "9223372036854775808",  # 2^63
    "9223372036854775807",
    "-9223372036854775809",
    "-1",
    "0",
    "1" * 400,
    "abc",
    "1e309",
    "NaN",
    "",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    from chartvault.config import Settings
    from chartvault.services import Services

    data = tmp_path_factory.mktemp("extreme") / "data"
    with Services(Settings(data_dir=data, _env_file=None)) as services:
        token = services.access.create_token("admin", "extreme probe").token
    with live_server(data) as live:
        yield live, token


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _is_numeric(schema: dict[str, Any], doc: dict[str, Any]) -> bool:
    schema = _resolve(schema, doc)
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return any(_resolve(o, doc).get("type") in ("integer", "number") for o in options)


def _body_properties(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """The properties of a JSON body, also when it is optional (``anyOf: [object, null]``)."""
    schema = _resolve(schema, doc)
    props: dict[str, Any] = dict(schema.get("properties", {}))
    for option in schema.get("anyOf", []):
        props |= _resolve(option, doc).get("properties", {})
    return props


def _numeric_inputs(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, path template, where, name) of every numeric parameter and JSON-body field."""
    found = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for p in op.get("parameters", []):
                if _is_numeric(p.get("schema", {}), doc):
                    found.append((method.upper(), path, p["in"], p["name"]))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                for name, prop in _body_properties(body, doc).items():
                    if _is_numeric(prop, doc):
                        found.append((method.upper(), path, "body", name))
    return found


def _call(client: httpx.Client, method: str, path: str, where: str, name: str, value: str) -> httpx.Response:
    params: dict[str, str] = {}
    url = path
    if where == "path":
        url = url.replace("{" + name + "}", value or "0")
    else:
        url = re.sub(r"\{[^}]+\}", "0123456789abcdef0123456789abcdef", url)
    url = re.sub(r"\{[^}]+\}", "0123456789abcdef0123456789abcdef", url)
    if where == "query":
        params[name] = value
        if path == "/search":
            params.setdefault("q", "patient")
    content = None
    if where == "body":
        # The raw number as JSON text (not a Python float): huge integers stay huge on the wire.
        literal = value if re.fullmatch(r"-?\d+(e\d+)?", value) else json.dumps(value)
        content = f'{{"{name}": {literal}}}'
        if path == "/tokens":
            content = f'{{"role": "staff", "name": "probe", "{name}": {literal}}}'
    headers = {"Content-Type": "application/json"} if content is not None else {}
    return client.request(method, url, params=params, content=content, headers=headers)


def test_openapi_lists_the_numeric_parameters(server: tuple[LiveServer, str]) -> None:
    live, _ = server
    doc = httpx.get(f"{live.url}/openapi.json", timeout=10).json()
    names = {(m, p, n) for m, p, _, n in _numeric_inputs(doc)}
    # The walk finds what it must: a vacuous walk would prove nothing.
    assert ("GET", "/search", "offset") in names
    assert ("GET", "/documents/{doc_id}/pages/{page_no}/text", "page_no") in names
    assert ("POST", "/tokens", "days") in names
    assert ("POST", "/releases/{release_id}/approve", "access_days") in names  # an optional body too


def test_extreme_values_in_every_numeric_parameter_leave_the_server_up(
    server: tuple[LiveServer, str],
) -> None:
    live, token = server
    doc = httpx.get(f"{live.url}/openapi.json", timeout=10).json()
    inputs = _numeric_inputs(doc)
    failures = []
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        for method, path, where, name in inputs:
            for value in EXTREMES:
                try:
                    r = _call(c, method, path, where, name, value)
                except httpx.HTTPError as exc:
                    failures.append(f"{method} {path} {name}={value[:30]}: {type(exc).__name__}")
                    assert live.alive(), f"the server died on {method} {path} {name}={value[:30]}"
                    continue
                ctype = r.headers.get("content-type", "")
                if r.status_code >= 500 or not ctype.startswith("application/json"):
                    failures.append(f"{method} {path} {name}={value[:30]}: {r.status_code} {ctype}")
        assert live.alive()
        assert c.get("/health").status_code == 200
        assert c.get("/search", params={"q": "patient", "offset": 10_000}).status_code == 200
    assert not failures, "\n".join(failures)


def test_every_error_is_json_even_before_a_route(server: tuple[LiveServer, str]) -> None:
    live, token = server
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=live.url, timeout=30) as c:
        answers = {
            "unknown path": c.get("/no/such/route", headers=auth),
            "wrong method": c.delete("/search", headers=auth),
            "bad percent-encoding": c.get("/documents/%ff%fe/original", headers=auth),
            "undecodable json": c.post("/tokens", content=b"{not json", headers=auth),
            "too deep json": c.post("/tokens", content=b"[" * 100_000, headers=auth),
        }
    for what, r in answers.items():
        assert r.status_code < 500, (what, r.status_code)
        assert r.headers["content-type"].startswith("application/json"), (what, r.headers, r.text[:200])
        assert "error" in r.json(), what
    assert answers["wrong method"].status_code == 405
    assert answers["wrong method"].json()["error"]["code"] == "method_not_allowed"


def test_malformed_http_is_answered_as_json_by_the_server_itself(server: tuple[LiveServer, str]) -> None:
    live, _ = server
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n")
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) == 0:
            chunk = sock.recv(4096)
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"content-type: application/json" in head.lower(), head
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert live.alive()


def test_search_pages_deeply_by_cursor_not_by_offset(server: tuple[LiveServer, str], tmp_path: Path) -> None:
    live, token = server
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        refused = c.get("/search", params={"q": "patient", "offset": 10_001})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request"
        forged = c.get("/search", params={"q": "patient", "cursor": "not-a-cursor"})
        assert forged.status_code == 422 and forged.json()["error"]["code"] == "bad_cursor"

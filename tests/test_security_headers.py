"""Every answer of the app, not only the pages, says how a browser may treat it.

The pages carried ``nosniff``, a Content-Security-Policy and ``X-Frame-Options``; the API's answers
(JSON with patient data, originals, renditions, packages, errors) and ``/docs`` carried none, so a
download could be sniffed, a JSON answer framed, and ``/docs`` (where people paste tokens) framed by
another site (clickjacking).
"""

from __future__ import annotations

import base64
import hashlib
import re

from conftest import api_client

API_PATHS = [
    "/health",
    "/search?q=chest",
    "/openapi.json",
    "/documents/0123456789abcdef0123456789abcdef",  # 404
    "/documents/0123456789abcdef0123456789abcdef/original",  # a download route (404 here)
    "/releases/0123456789abcdef0123456789abcdef/package",
    "/no/such/route",
    "/ui/no-such-page",
    "/docs",
    "/docs/static/swagger-ui.css",
    "/ui/static/app.js",
]


def test_every_answer_has_nosniff_and_no_framing(settings) -> None:
    with api_client(settings) as c:
        for path in API_PATHS:
            r = c.get(path)
            assert r.headers.get("x-content-type-options") == "nosniff", (path, r.status_code)
            assert r.headers.get("x-frame-options") == "DENY", path
            csp = r.headers.get("content-security-policy", "")
            assert "frame-ancestors 'none'" in csp, (path, csp)


def test_api_answers_may_run_nothing(settings) -> None:
    """A JSON answer or a download opened in a tab is inert: no script, no plugin, sandboxed."""
    with api_client(settings) as c:
        for path in ("/search?q=chest", "/documents/0123456789abcdef0123456789abcdef/original", "/nope"):
            csp = c.get(path).headers["content-security-policy"]
            assert "default-src 'none'" in csp and "sandbox" in csp, (path, csp)
        assert c.post("/health").headers["x-content-type-options"] == "nosniff"  # a 405 too


def test_docs_runs_only_its_own_scripts(settings) -> None:
    """/docs has one inline script (Swagger UI's start): allowed by its hash, never 'unsafe-inline'."""
    with api_client(settings) as c:
        for path in ("/docs", "/docs/oauth2-redirect"):
            r = c.get(path)
            csp = r.headers["content-security-policy"]
            script_src = re.search(r"script-src ([^;]*)", csp)
            assert script_src and "'unsafe-inline'" not in script_src.group(1), csp
            inline = re.findall(r"<script>(.*?)</script>", r.text, re.S)
            assert inline, path
            for body in inline:
                digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                assert f"'sha256-{digest}'" in script_src.group(1), path

"""``/docs`` served entirely from the installed package: no script or style from a CDN.

A hospital network often has no internet; FastAPI's default page loads Swagger UI from a public CDN
and stays blank there. The files of npm ``swagger-ui-dist`` (version in ``static/swagger-ui/VERSION``,
licence beside them) are served from this package instead. ReDoc, which would need its own CDN
script, is not offered. The page runs the package's scripts and its one inline start-up script, allowed
by its hash (never ``'unsafe-inline'``), and no other site may frame it: people paste tokens there.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_DIR = Path(__file__).parent / "static" / "swagger-ui"
STATIC_PREFIX = "/docs/static"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def with_policy(page: HTMLResponse) -> HTMLResponse:
    """The page with a Content-Security-Policy allowing our files and its own inline scripts by hash."""
    html = bytes(page.body).decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return page


def install(app: FastAPI) -> None:
    """Add ``/docs`` (and its OAuth2 redirect page) over the vendored Swagger UI files."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_policy(
            get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - API docs",
                swagger_js_url=f"{root}{STATIC_PREFIX}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{STATIC_PREFIX}/swagger-ui.css",
                swagger_favicon_url=f"{root}{STATIC_PREFIX}/favicon-32x32.png",
                oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            )
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return with_policy(get_swagger_ui_oauth2_redirect_html())

    app.add_route("/docs", docs, include_in_schema=False)
    app.add_route("/docs/oauth2-redirect", oauth2_redirect, include_in_schema=False)

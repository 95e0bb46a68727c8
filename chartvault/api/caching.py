"""No answer of the API is kept by a browser or a proxy: ``Cache-Control: no-store`` on every response.

API answers carry patient data (document metadata, search snippets, timelines, originals); a browser
trying them out at ``/docs`` would otherwise keep them in its disk cache, where the next user of the
workstation finds them. Pages already send ``no-store`` (``chartvault.web.routing``); this middleware
covers everything else the app answers (errors and ``/health`` included: nothing there is worth
caching). Only the packaged static files (Swagger UI's, the pages' script and styles) may be cached:
they are the same for everyone and hold no data. A response that set its own ``Cache-Control`` keeps it.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from chartvault.api.headers import DefaultHeaders

# The packaged static files: the same bytes for everyone, no data of any patient.
CACHEABLE_PREFIXES = ("/docs/static/", "/ui/static/")


class NoStore(DefaultHeaders):
    """ASGI middleware: ``Cache-Control: no-store`` and ``Pragma: no-cache`` (HTTP/1.0 caches) on every
    response but the static files'."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, {"Cache-Control": "no-store", "Pragma": "no-cache"}, CACHEABLE_PREFIXES)

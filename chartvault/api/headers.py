"""How a browser may treat every answer of the app: never sniffed, never framed, API answers inert.

The pages set their own policy (``chartvault.web.routing.SECURITY_HEADERS``: scripts and styles from
the package). Everything else the app answers (JSON with patient data, originals, renditions, release
packages, errors, the static files, ``/docs``) gets ``nosniff`` (a download is never sniffed into
something runnable), ``X-Frame-Options: DENY`` and a policy with ``frame-ancestors 'none'`` (another
site cannot frame ``/docs``, where people paste tokens, or an answer), and, unless the answer set its
own (``/docs``), a policy under which nothing runs at all: an API answer opened in a tab is a document
with no script, no plugin and no origin of ours (``sandbox``).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

INERT_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": INERT_POLICY,
    "Referrer-Policy": "no-referrer",
}


class DefaultHeaders:
    """ASGI middleware: ``headers`` on every response that did not set its own, but those under
    ``skip_prefixes``."""

    def __init__(self, app: ASGIApp, headers: dict[str, str], skip_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.headers = headers
        self.skip_prefixes = skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip_prefixes):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, sending)


class SecurityHeaders(DefaultHeaders):
    """The headers above on every response (the pages set their own policy first)."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, HEADERS)

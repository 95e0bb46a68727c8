"""A request body the app would hold whole in memory is refused past a cap, before anything else runs.

FastAPI reads a route's whole body (JSON, or any content type) before the route's dependencies, the
token check among them, and Starlette reads a whole urlencoded form: with no cap, a stranger holding no
token could make the server hold gigabytes (300 MB of JSON to ``POST /releases`` grew it by 800 MB, and
a few at once end it). So the bodies of the routes that declare one, and every urlencoded form (the
pages'), are capped at ``CHARTVAULT_MAX_FORM_BYTES``: a declared ``Content-Length`` over it is refused
before a byte is read (413), and a chunked body as soon as it passes the cap. The routes that stream
their body (uploads, the registration list) declare none and keep their own caps.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM = b"application/x-www-form-urlencoded"


class BodyTooLarge(HTTPException):
    """Raised from the body's reading, which FastAPI and the pages pass on as it is (a 413)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is over {max_bytes:,} bytes")


def _held_whole(scope: Scope) -> bool:
    """Whether the app reads this body whole: a urlencoded form, or a route declaring a body.

    Asked at the first read of the body, when routing has put the route in the scope.
    """
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    if content_type.split(b";")[0].strip().lower() == FORM:
        return True
    return getattr(scope.get("route"), "body_field", None) is not None


class BodyLimit:
    """ASGI middleware capping the bodies that would be held whole (see the module's docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        capped: bool | None = None  # decided at the first read
        size = 0

        async def limited() -> Message:
            nonlocal capped, size
            if capped is None:
                capped = _held_whole(scope)
                declared = dict(scope["headers"]).get(b"content-length", b"")
                if capped and declared.isdigit() and int(declared) > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # refused on the header: nothing read
            message = await receive()
            if capped and message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)

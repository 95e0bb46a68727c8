"""The HTTP server's own refusals as JSON: uvicorn answers malformed HTTP before the app runs.

A request line or header uvicorn cannot parse is answered by uvicorn itself (400, text/plain) without
reaching the application and its error handlers. These protocol classes give that answer the same
``{"error": {"code", "message"}}`` body as every other refusal.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.h11_impl import H11Protocol

_BODY = json.dumps({"error": {"code": "bad_request", "message": "invalid HTTP request"}}).encode()


def _raw_400() -> bytes:
    return (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + _BODY
    )


class JsonErrorsH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        self.transport.write(_raw_400())
        self.transport.close()


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional; uvicorn then uses h11 alone
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def json_errors_protocol() -> type[H11Protocol] | type:
    """The protocol class ``uvicorn.run(http=...)`` should use: httptools when installed, else h11."""
    if HttpToolsProtocol is None:
        return JsonErrorsH11Protocol

    class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            self.transport.write(_raw_400())
            self.transport.close()

    return JsonErrorsHttpToolsProtocol

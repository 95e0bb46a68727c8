"""Every refusal answered as JSON, with its HTTP status decided once, here.

``{"error": {"code": ..., "message": ...[, "problems": [...]]}}``; messages carry ids, never names or
page text. Routes declare the same shape for every error status in the OpenAPI document.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chartvault.api.auth import refusal_before_route
from chartvault.errors import (
    ChartVaultError,
    Conflict,
    Forbidden,
    InvalidInput,
    MalformedRequest,
    NotFound,
    TooLarge,
    Unavailable,
    UnsupportedMedia,
)
from chartvault.schemas.common import ErrorBody
from chartvault.telemetry import metrics

log = logging.getLogger("chartvault.api")

# Most specific class first: the first class an error is an instance of decides its status.
HTTP_STATUS: tuple[tuple[type[ChartVaultError], int], ...] = (
    (MalformedRequest, 400),
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (TooLarge, 413),
    (UnsupportedMedia, 415),
    (InvalidInput, 422),
    (Unavailable, 503),
)
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "too_many_requests",
    500: "internal_error",
}

_DESCRIPTIONS = {
    400: "Malformed request",
    401: "No valid API token",
    403: "The token's role may not do this",
    404: "No such thing, or not one the caller may see",
    409: "The thing's state does not allow it",
    413: "Over a size limit",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many failed authentications from this client; see Retry-After",
    503: "Not ready (e.g. the index is being rebuilt); see Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring the error body for these statuses.

    400 (a body that is not JSON at all), 401, 403 and 429 (too many failed authentications) can answer
    any operation, so they are always there.
    """
    return {
        s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]}
        for s in sorted({400, 401, 403, 429, *statuses})
    }


def status_of(exc: ChartVaultError) -> int:
    return next((status for cls, status in HTTP_STATUS if isinstance(exc, cls)), 400)


def error_response(
    status: int, code: str, message: str, problems: list[dict[str, Any]] | None = None
) -> JSONResponse:
    metrics.api_error(code, status)
    body: dict[str, Any] = {"code": code, "message": message}
    if problems:
        body["problems"] = problems
    return JSONResponse({"error": body}, status_code=status)


_NOT_CARRIED_OUT = "internal error; the request was not carried out"


class ContainErrors:
    """ASGI middleware: an exception no handler took is answered here, a JSON 500, and ends here.

    Starlette's last resort (its outermost middleware) answers text/plain and then raises the exception
    on to the server, which logs it with its message ("Exception in ASGI application"): an SQL error's
    message quotes its parameters, MRNs, names and dates of birth among them. This middleware sits inside
    it and raises nothing on: the log names the route template and the exception's type and frames, never
    its message. An error after the answer began (a stream cut short) is logged the same way and the
    connection closed by the server, as the answer is incomplete.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            route = getattr(scope.get("route"), "path", "?")
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("unhandled %s on %s %s\n%s", type(exc).__name__, scope["method"], route, frames)
            if not started:
                await error_response(500, "internal_error", _NOT_CARRIED_OUT)(scope, receive, send)


def install(app: FastAPI) -> None:
    """Answer every error as JSON; authentication is always answered before input."""

    @app.exception_handler(ChartVaultError)
    async def refused(_: Request, exc: ChartVaultError) -> JSONResponse:
        response = error_response(status_of(exc), exc.code, str(exc), exc.problems)
        if isinstance(exc, Unavailable):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if (refusal := await refusal_before_route(request)) is not None:
            return await http_error(request, refusal)
        parts = [f"{'.'.join(str(x) for x in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return error_response(422, "invalid_request", "; ".join(parts))

    app.add_middleware(ContainErrors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and (refusal := await refusal_before_route(request)) is not None:
            exc = refusal
        response = error_response(
            exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail)
        )
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value  # e.g. WWW-Authenticate on 401
        return response

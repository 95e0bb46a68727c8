"""Page routes: refusals answered as pages, and the headers every page carries.

The API answers a refusal with JSON; a person gets a page saying what went wrong, with the status
the API would give (decided once, in ``chartvault.api.errors``, handed in by the app as
``status_of``). A page needing a session sends the browser to sign in instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute

from chartvault.errors import ChartVaultError, Unavailable
from chartvault.web.context import SignInRequired, sign_in_redirect
from chartvault.web.templating import menu_for, templates

log = logging.getLogger("chartvault.web")

# Pages show patient data: never cached by the browser or a proxy, never framed, scripts only ours.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # page addresses carry sealed links only; still, never sent elsewhere
}


class PageRoute(APIRoute):
    """An APIRoute whose refusals become pages and whose answers carry the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired as exc:
                response = sign_in_redirect(exc.back_to)
            except ChartVaultError as exc:
                response = error_page(request, _status_of(request, exc), exc.code, str(exc), exc.problems)
                if isinstance(exc, Unavailable):
                    response.headers["Retry-After"] = str(exc.retry_after_s)
            except RequestValidationError:
                response = error_page(request, 422, "invalid_request", "Some of what was sent is not valid.")
            except HTTPException as exc:
                response = error_page(request, exc.status_code, "http_error", str(exc.detail))
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return page_handler


def _status_of(request: Request, exc: ChartVaultError) -> int:
    status_of: Callable[[ChartVaultError], int] = request.app.state.web.status_of
    return status_of(exc)


def error_page(
    request: Request,
    status: int,
    code: str,
    message: str,
    problems: list[dict[str, Any]] | None = None,
) -> HTMLResponse:
    """A refusal as a page: what went wrong (ids and codes only, as in the API's answers)."""
    session = getattr(request.state, "page_session", None)
    context = {
        "request": request,
        "session": session,
        "menu": menu_for(session.role if session else None),
        "csrf_token": session.csrf_token if session else "",
        "notices": [],
        "current_path": request.url.path,
        "status": status,
        "code": code,
        "message": message,
        "problems": problems or [],
    }
    return templates.TemplateResponse(request, "error.html", context, status_code=status)


def page_router() -> APIRouter:
    """A router of pages: left out of the OpenAPI document, refusals as pages."""
    return APIRouter(route_class=PageRoute, include_in_schema=False)

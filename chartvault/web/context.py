"""Who is asking for a page, and may they: the session cookie, the policy table, CSRF.

Every page route depends on ``page_context``. It resolves the session cookie to a signed-in user,
looks the route up in ``chartvault.policy.POLICY`` (deny by default: a page missing from the table
is refused to everyone) and hands the route the services acting as that user, so pages write the
same audit entries as the API reads they stand for. Every state-changing request must come from our
own origin and carry the session's CSRF token (a form field, or the ``X-CSRF-Token`` header that
htmx sends); the session cookie is also ``SameSite=Strict`` and ``HttpOnly`` (``Secure`` over TLS).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from chartvault.errors import Forbidden, MalformedRequest
from chartvault.policy import POLICY, PUBLIC
from chartvault.services import Caller, Services
from chartvault.services.sessions import OpenSession
from chartvault.web.templating import menu_for, templates

SESSION_COOKIE = "cv_session"
SIGN_IN_COOKIE = "cv_sign_in"  # the sign-in form's own CSRF secret (no session exists yet)
ANONYMOUS = Caller("web:anonymous")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The pages that take files (multipart), whose handlers read the body through ``web.uploads``, which checks
# the CSRF token in it. A multipart body sent anywhere else is read by no one, so its token would never be
# checked: it is refused, as a body of no form is.
UPLOADS = frozenset(
    {
        ("POST", "/ui/batches"),
        ("POST", "/ui/patient-index"),
        ("POST", "/ui/releases/{release_id}/authorization"),
    }
)


class SignInRequired(Exception):
    """No live session on a page that needs one: the browser is sent to the sign-in page."""

    def __init__(self, back_to: str | None) -> None:
        super().__init__("sign-in required")
        self.back_to = back_to


class CsrfRefused(Forbidden):
    code = "csrf_refused"


@dataclass(slots=True)
class PageContext:
    """One page request: the caller's session (if any), their services, the submitted form."""

    request: Request
    services: Services
    session: OpenSession | None
    form: FormData | None = None
    csrf_checked: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def role(self) -> str | None:
        return self.session.role if self.session else None

    @property
    def csrf_token(self) -> str:
        if self.session is not None:
            return self.session.csrf_token
        return self.request.cookies.get(SIGN_IN_COOKIE, "")

    def field(self, name: str, default: str = "") -> str:
        """A submitted form field, trimmed ("" when absent)."""
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default

    def fields(self, name: str) -> list[str]:
        """Every value of a repeated form field (checkboxes), trimmed, empty ones left out."""
        if self.form is None:
            return []
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str) and v.strip()]

    def check_csrf(self, presented: str | None) -> None:
        """Refuse unless ``presented`` is this session's (or this sign-in form's) CSRF token."""
        expected = self.csrf_token
        if not expected or not presented or not hmac.compare_digest(expected, presented):
            raise CsrfRefused("the form has expired or did not come from this site; open the page again")
        self.csrf_checked = True

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        """The template filled with ``values`` and what every page shows (user, menu, CSRF token)."""
        context = {
            "request": self.request,
            "session": self.session,
            "menu": menu_for(self.role),
            "csrf_token": self.csrf_token,
            "notices": self.notices,
            "current_path": self.request.url.path,
            "patient_ref": self._patient_ref,
            **values,
        }
        return templates.TemplateResponse(self.request, template, context, status_code=status)

    def _patient_ref(self, mrn: str) -> str:
        """A sealed reference to a patient for this person's page links (never the MRN in an address)."""
        return self.services.links.patient(mrn)


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", request.url.path)


def _same_origin(request: Request) -> bool:
    """A state-changing request must come from a page of ours: the browser's Sec-Fetch-Site says so,
    else the Origin (or Referer) header names this site; a client sending none passes to the token."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


def safe_back_to(target: str | None) -> str | None:
    """A path inside this site to return to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


# Query fields a page address may carry back through the sign-in page: sealed links and positions, none
# of them patient data. Any other field (an old bookmark's ``?mrn=``) is dropped, never put in ``next``.
RETURN_FIELDS = frozenset({"s", "patient", "offset", "page"})


def _return_path(request: Request) -> str:
    """Where a person whose session ended was going: the path, and its query when it holds only sealed
    links and positions (a search interrupted by a timeout comes back after signing in)."""
    fields = request.query_params
    if fields and all(name in RETURN_FIELDS for name in fields):
        return f"{request.url.path}?{request.url.query}"
    return request.url.path


async def page_context(request: Request) -> PageContext:
    """The dependency of every page: session, policy check, CSRF for unsafe methods."""
    root: Services = request.app.state.services
    method, path = request.method, _route_path(request)
    roles = POLICY.get((method, path))
    secret = request.cookies.get(SESSION_COOKIE)
    resolve = root.acting_as(ANONYMOUS).sessions.resolve
    session = await run_in_threadpool(resolve, secret) if secret else None
    caller = Caller.of_user(session.user_id, session.role, session.vendor) if session else ANONYMOUS
    services = root.acting_as(caller)
    ctx = PageContext(request, services, session)
    request.state.page_session = session  # for refusal pages rendered outside the route
    if roles is not PUBLIC:
        if session is None:
            raise SignInRequired(_return_path(request) if method == "GET" else None)
        if roles is None or session.role not in roles:
            where = f"{method} {path}"
            await run_in_threadpool(
                services.audit, "session.use", "page", where, "forbidden", {"role": session.role}
            )
            raise Forbidden(f"the {session.role} role may not open this page")
    if method in UNSAFE:
        await _check_unsafe(ctx)
    return ctx


async def _check_unsafe(ctx: PageContext) -> None:
    """Same origin, and the CSRF token: from the header, a urlencoded form, or (multipart) later."""
    request = ctx.request
    if not _same_origin(request):
        raise CsrfRefused("the request did not come from this site")
    header = request.headers.get("x-csrf-token")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            ctx.form = await request.form(max_files=0, max_fields=200)
        except HTTPException:
            raise  # a body over the cap (chartvault.api.bodylimit): 413, not "malformed"
        except Exception:
            raise MalformedRequest("the form could not be read") from None
        token = ctx.form.get("csrf")
        ctx.check_csrf(header or (token if isinstance(token, str) else None))
    elif header is not None:
        ctx.check_csrf(header)
    elif (
        not content_type.startswith("multipart/form-data")
        or (request.method, _route_path(request)) not in UPLOADS
    ):
        raise CsrfRefused("the request carries no form")
    # multipart to a page that takes files: its handler checks the token once the body is read (web.uploads)


def sign_in_redirect(back_to: str | None) -> Response:
    """303 to the sign-in page, remembering where the person was going."""
    target = "/ui/sign-in"
    if safe_back_to(back_to):
        target += "?next=" + quote(back_to or "", safe="/")
    return Response(status_code=303, headers={"Location": target})


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    """A cookie only this site's pages send back: HttpOnly, SameSite=Strict, Secure over TLS (or always,
    with ``CHARTVAULT_WEB_COOKIE_SECURE=true``, where a TLS proxy in front does not say it is one)."""
    forced: bool | None = request.app.state.services.settings.web_cookie_secure
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" if forced is None else forced,
    )


def new_sign_in_secret() -> str:
    return secrets.token_urlsafe(24)


Page = Annotated[PageContext, Depends(page_context)]

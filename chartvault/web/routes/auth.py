"""The front door: signing in and out, and each role's start page."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from chartvault.services.sessions import SignInRefused, TooManyAttempts
from chartvault.web.context import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    Page,
    new_sign_in_secret,
    safe_back_to,
    set_cookie,
)
from chartvault.web.routing import page_router
from chartvault.web.templating import start_page

router = page_router()


@router.get("/")
def front_door(page: Page) -> Response:
    """Signed in: the start page of the person's role; otherwise the sign-in page."""
    if page.session is None:
        return RedirectResponse("/ui/sign-in", status_code=303)
    return RedirectResponse(start_page(page.session.role), status_code=303)


@router.get("/ui/sign-in")
def sign_in_form(
    page: Page, next: str | None = None, signed_out: bool = False, password_changed: bool = False
) -> Response:
    if page.session is not None:
        return RedirectResponse(safe_back_to(next) or start_page(page.session.role), status_code=303)
    return _sign_in_page(page, back_to=safe_back_to(next), signed_out=signed_out, notice=password_changed)


@router.post("/ui/sign-in")
async def sign_in(page: Page, request: Request, next: str | None = None) -> Response:
    username, password = page.field("username"), page.form.get("password") if page.form else None
    back_to = safe_back_to(next)
    if not username or not isinstance(password, str) or not password:
        return _sign_in_page(page, back_to, error="Enter your username and password.", status=422)
    address = request.client.host if request.client else "unknown"
    try:
        opened = await run_in_threadpool(page.services.sessions.sign_in, username, password, address)
    except TooManyAttempts as exc:
        response = _sign_in_page(
            page,
            back_to,
            username=username,
            error=f"Too many failed attempts. Try again in {max(1, exc.retry_after_s // 60)} minute(s).",
            status=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except SignInRefused:
        message = "That username and password do not match an active account."
        response = _sign_in_page(page, back_to, username=username, error=message, status=401)
        response.headers["WWW-Authenticate"] = 'Form realm="ChartVault"'  # a 401 names its scheme
        return response
    held = request.cookies.get(SESSION_COOKIE)
    if held and page.session is not None:  # the session this browser held ends: one per browser
        await run_in_threadpool(page.services.sessions.sign_out, held, f"user:{page.session.user_id}")
    signed_in = RedirectResponse(back_to or start_page(opened.user.role), status_code=303)
    set_cookie(signed_in, request, SESSION_COOKIE, opened.secret, max_age=None)  # ends with the browser
    signed_in.delete_cookie(SIGN_IN_COOKIE, path="/", httponly=True, samesite="strict")
    return signed_in


@router.post("/ui/sign-out")
def sign_out(page: Page, request: Request) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret and page.session is not None:
        page.services.sessions.sign_out(secret, actor=f"user:{page.session.user_id}")
    response = RedirectResponse("/ui/sign-in?signed_out=true", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _sign_in_page(
    page: Page,
    back_to: str | None,
    *,
    username: str = "",
    error: str | None = None,
    signed_out: bool = False,
    notice: bool = False,
    status: int = 200,
) -> HTMLResponse:
    """The form, with a fresh sign-in CSRF secret in both a cookie and the form (double submit)."""
    secret = new_sign_in_secret()
    response = page.render(
        "sign_in.html",
        status=status,
        back_to=back_to,
        username=username,
        error=error,
        signed_out=signed_out,
        password_changed=notice,
        csrf_token=secret,
    )
    set_cookie(response, page.request, SIGN_IN_COOKIE, secret, max_age=3600)
    return response

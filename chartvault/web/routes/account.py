"""A signed-in person's own account: changing their password."""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from chartvault.errors import InvalidInput
from chartvault.services.sessions import TooManyAttempts
from chartvault.web.context import SESSION_COOKIE, Page
from chartvault.web.routing import page_router

router = page_router()


@router.get("/ui/account")
def account_page(page: Page) -> Response:
    return page.render("account.html", error=None)


@router.post("/ui/account/password")
async def change_password(page: Page) -> Response:
    """The current password proves it is the person; every session of theirs then ends."""
    assert page.session is not None  # the policy admits signed-in people only
    form = page.form
    current, new, again = (_text(form.get(k)) if form else "" for k in ("current", "new", "again"))
    address = page.request.client.host if page.request.client else "unknown"
    try:
        if not (current and new and again):
            raise InvalidInput("fill in every field")
        if new != again:
            raise InvalidInput("the two new passwords differ")
        await run_in_threadpool(
            page.services.sessions.change_password, page.session.username, current, new, address
        )
    except TooManyAttempts:
        raise
    except InvalidInput as exc:
        return page.render("account.html", status=422, error=str(exc))
    done = RedirectResponse("/ui/sign-in?password_changed=true", status_code=303)
    done.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return done


def _text(value: object) -> str:
    """A form field's text ("" for a missing field or a file)."""
    return value if isinstance(value, str) else ""

"""Administrators: named users (who signs in), API tokens (what machines call with) and the audit log's
chain check (as ``chartvault audit verify``)."""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response

from chartvault.archive.models import ROLES
from chartvault.errors import InvalidInput, NotFound
from chartvault.web.context import Page
from chartvault.web.routing import page_router

router = page_router()


@router.get("/ui/admin/users")
def users_page(page: Page) -> Response:
    return page.render("users.html", users=page.services.access.users().users, roles=ROLES)


@router.post("/ui/admin/users")
def create_user(page: Page) -> Response:
    page.services.access.create_user(
        page.field("username"),
        page.field("display_name"),
        page.field("role"),
        password=page.form.get("password") if page.form else None,  # type: ignore[arg-type]
        vendor=page.field("vendor") or None,
    )
    return RedirectResponse("/ui/admin/users", status_code=303)


@router.post("/ui/admin/users/{username}/{action}")
def user_action(username: str, action: str, page: Page) -> Response:
    """Reset a password or disable a user; either signs the user out everywhere."""
    access = page.services.access
    if action == "reset-password":
        password = page.form.get("password") if page.form else None
        if not isinstance(password, str):
            raise InvalidInput("a new password is needed")
        user = access.reset_password(username, password)
        page.services.sessions.end_user_sessions(user.id, "password_reset")
    elif action == "disable":
        user = access.disable_user(username)
        page.services.sessions.end_user_sessions(user.id, "disabled")
    else:
        raise NotFound(f"no such action: {action}")
    return RedirectResponse("/ui/admin/users", status_code=303)


@router.get("/ui/admin/tokens")
def tokens_page(page: Page) -> Response:
    return page.render("tokens.html", tokens=page.services.access.tokens().tokens, roles=ROLES, made=None)


@router.post("/ui/admin/tokens")
def create_token(page: Page) -> Response:
    """A new token, shown on this page once (it is stored only as a hash)."""
    try:
        days = int(page.field("days") or 90)
    except ValueError:
        raise InvalidInput("days must be a whole number") from None
    made = page.services.access.create_token(
        page.field("role"), page.field("name"), vendor=page.field("vendor") or None, days=days
    )
    tokens = page.services.access.tokens().tokens
    return page.render("tokens.html", status=201, tokens=tokens, roles=ROLES, made=made)


@router.post("/ui/admin/tokens/{token_id}/revoke")
def revoke_token(token_id: str, page: Page) -> Response:
    page.services.access.revoke_token(token_id)
    return RedirectResponse("/ui/admin/tokens", status_code=303)


@router.get("/ui/admin/audit")
def audit_page(page: Page) -> Response:
    """What the check does; the check itself is a POST (it writes an audit entry of its own)."""
    return page.render("audit.html", report=None)


@router.post("/ui/admin/audit")
def verify_audit(page: Page) -> Response:
    """Walk the audit chain against every checkpoint now and show where it first breaks, if it does."""
    report = page.services.access.verify_audit()
    return page.render("audit.html", report=report, status=200 if report.ok else 409)

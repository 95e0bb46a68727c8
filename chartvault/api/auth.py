"""Authentication and role checks for every route, from one policy table.

Every route is named in ``POLICY`` (``chartvault/policy.py``, one table shared with the web pages)
with the roles allowed to call it; a route missing from the table is refused to everyone (deny by
default), so a new route cannot go out unprotected by accident. No token, or an invalid, expired
or revoked one: 401 with ``WWW-Authenticate: Bearer``. A valid token of the wrong role: 403. Tokens
are RFC 6750 bearer tokens (``Authorization: Bearer cv_...``).
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from chartvault.api.ratelimit import WINDOW_S, FailedAuthLimiter
from chartvault.archive.tokens import Principal
from chartvault.config import Settings
from chartvault.policy import POLICY, PUBLIC
from chartvault.services import Caller, Services

log = logging.getLogger("chartvault.api.auth")

# Routes the scrape token (CHARTVAULT_METRICS_TOKEN) may call besides the roles in POLICY; nothing else.
SCRAPE_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/metrics")})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A ChartVault API token (`chartvault token create`), sent as `Authorization: Bearer cv_...`.",
)


def is_scrape_token(settings: Settings, presented: str) -> bool:
    """Whether ``presented`` is the configured scrape token (compared in constant time)."""
    expected = settings.metrics_token
    if expected is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": 'Bearer realm="chartvault"'})


async def authorize(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal | None:
    """The global dependency: resolve the token, check the route's roles, remember the caller."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    allowed = POLICY.get((request.method, path))
    if allowed is PUBLIC:
        return None
    root: Services = request.app.state.services
    where = f"{request.method} {path}"
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    await audit_failed_authentications(root, limiter)
    if (wait := limiter.retry_after(client)) is not None:
        raise HTTPException(
            429,
            f"too many failed authentications from this client; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("an API token is required (Authorization: Bearer ...)")
    if (request.method, path) in SCRAPE_ROUTES and is_scrape_token(root.settings, credentials.credentials):
        return None  # Prometheus, every few seconds: not a person, and not worth an audit entry each time
    principal = await run_in_threadpool(root.access.verify_token, credentials.credentials)
    if principal is None:
        limiter.failed(client)  # counted in memory; summarised once per client and minute
        raise _unauthorized("the API token is invalid, expired or revoked")
    request.state.principal = principal
    caller = root.acting_as(Caller.of_token(principal))
    request.state.services = caller
    if allowed is None or principal.role not in allowed:
        await run_in_threadpool(
            caller.audit, "token.use", "route", where, "forbidden", {"role": principal.role}
        )
        raise HTTPException(403, f"the {principal.role} role may not call {request.method} {path}")
    await run_in_threadpool(caller.audit, "token.use", "route", where, "ok", None)
    return principal


async def audit_failed_authentications(
    root: Services, limiter: FailedAuthLimiter, everything: bool = False
) -> None:
    """One audit entry per client and ended minute of failed authentications (none when there were none)."""
    for window in limiter.ended(everything):
        detail = {
            "window_start": datetime.fromtimestamp(window.start, UTC).isoformat(),
            "window_s": WINDOW_S,
            "failures": window.failures,
            "refused_429": window.refused,
        }
        await run_in_threadpool(root.audit, "auth.failures", "client", window.client, "refused", detail)


async def refusal_before_route(request: Request) -> HTTPException | None:
    """The 401/403 owed to a request that failed before ``authorize`` ran.

    FastAPI decodes a JSON body before running dependencies, so an undecodable body
    would otherwise be answered 400/422 to a caller with no valid token. Error
    handlers call this first, so authentication is always answered before input.
    """
    if getattr(request.state, "principal", None) is not None:
        return None
    try:
        await authorize(request, await bearer(request))
    except HTTPException as exc:
        return exc
    return None

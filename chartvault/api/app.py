"""The FastAPI application: one router per feature over the services, one policy table, one error map.

The web pages (``chartvault.web``) are served by the same app, at ``/`` and ``/ui/...``, over the same
services and policy table; they sign people in with sessions where the API takes tokens.

The app opens the services once (``Services``, the composition root) and hands each request the
same parts acting as its caller. Background work (batches uploaded, the index writer) runs in
threads of this process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from chartvault import __version__, web
from chartvault.api import docs, errors, observability
from chartvault.api.auth import audit_failed_authentications, authorize
from chartvault.api.bodylimit import BodyLimit
from chartvault.api.caching import NoStore
from chartvault.api.headers import SecurityHeaders
from chartvault.api.ratelimit import FailedAuthLimiter
from chartvault.api.routes import ROUTERS
from chartvault.api.uploads import receive_upload
from chartvault.config import Settings
from chartvault.services import Caller, Services
from chartvault.services.background import BackgroundWork


def create_app(settings: Settings | None = None, start_background: bool = True) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services(settings, Caller("api:anonymous"))  # named callers arrive with tokens
        background = BackgroundWork(services)
        app.state.services, app.state.background = services, background
        if start_background:
            background.start()
        try:
            yield
        finally:
            background.stop()
            await audit_failed_authentications(services, app.state.auth_limiter, everything=True)
            services.close()

    app = FastAPI(
        title="ChartVault",
        version=__version__,
        description="Scanned medical records: batches in, searchable archived documents out.",
        lifespan=lifespan,
        docs_url=None,  # served from the package by chartvault.api.docs (no CDN)
        redoc_url=None,
    )
    app.state.auth_limiter = FailedAuthLimiter(settings.auth_failures_per_minute)
    for router in ROUTERS:  # every API route: token + role from the POLICY table (chartvault/policy.py)
        app.include_router(router, dependencies=[Depends(authorize)])
    web.install(app, web.WebParts(receive_upload=receive_upload, status_of=errors.status_of))  # pages
    errors.install(app)
    docs.install(app)
    observability.install(app)
    # Bodies read whole are capped before the token is looked at (a stranger's 1 GB JSON is refused).
    app.add_middleware(BodyLimit, max_bytes=settings.max_form_bytes)
    app.add_middleware(SecurityHeaders)  # nosniff, no framing, inert API answers (pages: their own)
    app.add_middleware(NoStore)  # outermost: every answer, errors and 500s included, is never cached
    return app

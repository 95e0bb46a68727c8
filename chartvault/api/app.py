"""The FastAPI application: one router per feature over the services, one policy table, one error map.

The app opens the services once (``Services``, the composition root) and hands each request the
same parts acting as its caller. Background work (batches uploaded, the index writer) runs in
threads of this process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from chartvault import __version__
from chartvault.api import errors, observability
from chartvault.api.auth import authorize
from chartvault.api.routes import ROUTERS
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
            services.close()

    app = FastAPI(
        title="ChartVault",
        version=__version__,
        description="Scanned medical records: batches in, searchable archived documents out.",
        lifespan=lifespan,
        dependencies=[Depends(authorize)],  # every route: token + role from chartvault/api/auth.py POLICY
    )
    for router in ROUTERS:
        app.include_router(router)
    errors.install(app)
    observability.install(app)
    return app

"""Liveness."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from chartvault import __version__
from chartvault.api.deps import ServicesDep
from chartvault.schemas.common import Health

router = APIRouter(tags=["service"])


@router.get("/health", summary="The service is up; how many documents wait for the index writer")
async def health(services: ServicesDep) -> Health:
    queued = await run_in_threadpool(services.parts.indexer.pending)
    return Health(status="ok", version=__version__, index_queue=queued)
